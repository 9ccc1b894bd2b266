"""`quantcli backtest` on split data and on bad strategy inputs, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from store_helpers import SOURCE
from test_backtest_adjusted import wave_bars

from quantcli.store.publish import publish

PURPOSE = "Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 2/- Per Share"


def split_store(store: Path) -> str:
    """Dataset ``d``: AAA with an unadjusted 1:5 split at its 150th bar, BBB without; returns
    the ex-date's EX-DATE text."""
    bars = pl.concat(
        [
            wave_bars("AAA", 200, split_at=150, ratio=5.0),
            wave_bars("BBB", 200, split_at=None, ratio=1.0),
        ]
    )
    publish(store, "d", bars, interval="1d", source=SOURCE)
    return f"{bars['ts'][150]:%d-%b-%Y}"


def backtest(cli: Any, runs: Path, *args: str) -> Any:
    return cli(
        "backtest", "-d", "d", "--costs", "flat:0%", "--runs-dir", str(runs), *args
    )  # fmt: skip


def test_suspected_unadjusted_split_is_warned_recorded_and_reported(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    ex = split_store(store)
    day = f"{pl.Series([ex]).str.to_date('%d-%b-%Y')[0]}"
    res = backtest(cli, tmp_path / "runs", "-s", "sma_cross", "--json")
    assert res.exit_code == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if "suspected_split" in line]
    assert len(lines) == 1 and f"(AAA, {day})" in lines[0] and "actions import" in lines[0]
    out = res.json()
    assert out["warnings"] == [lines[0].removeprefix("warning: ")]
    run_dir = Path(out["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["warnings"] == out["warnings"]
    report = (run_dir / "report.html").read_text()
    assert "<h2>Warnings</h2>" in report and f"(AAA, {day})" in report
    # With the split on record there is nothing to warn about.
    table = tmp_path / "actions.csv"
    table.write_text(f'SYMBOL,PURPOSE,EX-DATE\nAAA,"{PURPOSE}",{ex}\n')
    assert cli("actions", "import", str(table)).exit_code == 0
    res = backtest(cli, tmp_path / "runs", "-s", "sma_cross", "--json")
    assert res.exit_code == 0, res.stderr
    assert "suspected_split" not in res.stderr and res.json()["warnings"] == []
    manifest = json.loads((Path(res.json()["run_dir"]) / "manifest.json").read_text())
    assert manifest["warnings"] == []


def test_qty_with_weight_is_a_usage_error_naming_both(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    split_store(store)
    res = backtest(cli, tmp_path / "runs", "-s", "sma_cross", "-p", "qty=5", "-p", "weight=0.5")
    assert res.exit_code == 2
    assert "-p qty and -p weight" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # Either alone runs.
    for param in ("qty=5", "weight=0.5"):
        assert backtest(cli, tmp_path / "runs", "-s", "sma_cross", "-p", param).exit_code == 0


def test_futures_quantity_below_the_lot_size_names_it(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    bars = wave_bars("NIFTY", 120, split_at=None, ratio=1.0)  # 2023: NIFTY's lot is 50
    publish(store, "d", bars, interval="1d", source=SOURCE)
    args = ("-s", "sma_cross", "--segment", "futures", "-p", "fast=5", "-p", "slow=20")
    res = backtest(cli, tmp_path / "runs", *args, "-p", "qty=10")
    assert res.exit_code == 2
    message = res.stderr.strip().splitlines()[-1]
    assert "NIFTY" in message and "lot size of 50" in message and "-p qty=50" in message
    assert "2023-" in message and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    ok = backtest(cli, tmp_path / "runs", *args, "-p", "qty=50", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert ok.json()["fills"] > 0
