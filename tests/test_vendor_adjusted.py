"""Vendor-adjusted datasets: prices a vendor already adjusted get no split, bonus (or, when
dividend-adjusted too, dividend) applied a second time, anywhere.

The reference history is ``wave_bars`` with a 1:5 split at bar 150: raw, its prices drop 80% on
the ex-date; as Yahoo serves it (``by_hand``), the history before the ex-date is divided by 5
instead, and the prices never drop.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_helpers import SOURCE
from test_backtest_adjusted import by_hand, wave_bars

from quantcli.market.corporate_actions import CorporateAction
from quantcli.store.manifest import (
    PRICES,
    RAW,
    VENDOR_ADJUSTED,
    content_hash,
    partition_actions,
    read_manifest,
    version_dir,
)
from quantcli.store.publish import publish
from quantcli.store.reader import open_dataset

SPLIT = "Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 2/- Per Share"
DIVIDEND = "Final Dividend - Rs 40 Per Share"
BARS = 200
SPLIT_AT = 150


def raw_bars() -> pl.DataFrame:
    """AAA as traded: the close drops from ~650 to ~130 on the ex-date."""
    return wave_bars("AAA", BARS, split_at=SPLIT_AT, ratio=5.0)


def ex_date() -> date:
    value = raw_bars()["ts"][SPLIT_AT].date()
    assert isinstance(value, date)
    return value


def vendor_bars() -> pl.DataFrame:
    """AAA as Yahoo serves it: split-adjusted back from the ex-date."""
    return by_hand(raw_bars(), ex_date(), 5.0)


def write_yahoo(path: Path, bars: pl.DataFrame, *, adj_close: bool = True) -> Path:
    """A classic Yahoo download of ``bars`` (with Adj Close), or yfinance's auto_adjust layout
    (without)."""
    header = (
        "Date,Open,High,Low,Close,Adj Close,Volume"
        if adj_close
        else ("Date,Open,High,Low,Close,Volume")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for r in bars.iter_rows(named=True):
        adj = f"{r['close'] * 0.98:.2f}," if adj_close else ""
        lines.append(
            f"{r['ts']:%Y-%m-%d},{r['open']},{r['high']},{r['low']},{r['close']},{adj}{r['volume']}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, bars: pl.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d")).drop("symbol").write_csv(path)
    return path


def import_action(cli: Any, tmp_path: Path, purpose: str, day: date, name: str) -> None:
    table = tmp_path / f"{name}.csv"
    table.write_text(f'SYMBOL,PURPOSE,EX-DATE\nAAA,"{purpose}",{day:%d-%b-%Y}\n')
    res = cli("actions", "import", str(table))
    assert res.exit_code == 0, res.stderr


def ingest(cli: Any, name: str, *args: str) -> Any:
    res = cli("--json", "data", "ingest", name, *args)
    assert res.exit_code == 0, res.stderr
    return res.json()


def one_line(res: Any, code: int) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def backtest(cli: Any, runs: Path, dataset: str, *args: str) -> Any:
    res = cli(
        "backtest", "-d", dataset, "-s", "sma_cross", "-p", "fast=5", "-p", "slow=20",
        "--costs", "flat:0%", "--runs-dir", str(runs), "--json", *args,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    return res


def fills(res: Any) -> pl.DataFrame:
    return pl.read_parquet(Path(res.json()["run_dir"]) / "fills.parquet")


def run_manifest(res: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(
        (Path(res.json()["run_dir"]) / "manifest.json").read_text()
    )
    return manifest


def dates_and_sides(frame: pl.DataFrame) -> list[tuple[Any, str]]:
    return list(zip(frame["ts"].dt.date().to_list(), frame["side"].to_list(), strict=True))


# --------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize(
    ("adj_close", "kind"), [(True, "split_adjusted"), (False, "total_return_adjusted")]
)
def test_the_yahoo_source_records_what_the_vendor_adjusted(
    cli: Any, store: Path, tmp_path: Path, adj_close: bool, kind: str
) -> None:
    path = write_yahoo(tmp_path / "AAA.NS.csv", vendor_bars(), adj_close=adj_close)
    res = cli("data", "ingest", "yf", "--source", "yahoo", str(path))
    assert res.exit_code == 0, res.stderr
    assert "prices already split/bonus-" in res.stdout
    assert read_manifest(version_dir(store, "yf", 1)).prices == kind
    shown = cli("data", "show", "yf")
    assert shown.exit_code == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if " prices " in line)
    assert kind in line and "by the vendor" in line
    assert cli("--json", "data", "show", "yf").json()["manifest"]["prices"] == kind
    assert cli("data", "verify", "yf").exit_code == 0


def test_yahoo_files_of_two_kinds_are_refused(cli: Any, store: Path, tmp_path: Path) -> None:
    a = write_yahoo(tmp_path / "AAA.NS.csv", vendor_bars())
    b = write_yahoo(tmp_path / "BBB.NS.csv", vendor_bars(), adj_close=False)
    line = one_line(cli("data", "ingest", "yf", "--source", "yahoo", str(a), str(b)), 65)
    assert str(b) in line and str(a) in line and "Adj Close" in line
    assert not (store / "yf").exists()


def test_csv_takes_the_prices_flag(cli: Any, store: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "AAA.csv", vendor_bars())
    assert ingest(cli, "plain", str(path))["prices"] == RAW
    made = ingest(cli, "adj", "--prices", "split-adjusted", str(path))
    assert made["prices"] == "split_adjusted"
    assert open_dataset("adj", store).manifest.prices == "split_adjusted"
    assert open_dataset("adj", store).manifest.source.options == {"prices": "split-adjusted"}
    line = one_line(cli("data", "ingest", "x", "--prices", "adjusted", str(path)), 2)
    assert "--prices must be one of raw|split-adjusted|total-return-adjusted" in line
    yahoo = write_yahoo(tmp_path / "AAA.NS.csv", vendor_bars())
    line = one_line(
        cli("data", "ingest", "x", "--source", "yahoo", "--prices", "raw", str(yahoo)), 2
    )
    assert "does not take option(s): --prices" in line
    assert not (store / "x").exists()


def test_the_same_bars_of_another_kind_are_another_version(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "AAA.csv", vendor_bars())
    first = ingest(cli, "d", str(path))
    again = ingest(cli, "d", "--prices", "raw", str(path))
    assert again["created"] is False  # raw is the default: the same content
    fixed = ingest(cli, "d", "--prices", "split-adjusted", str(path))
    assert fixed["created"] is True and fixed["version"] == 2
    assert fixed["content_hash"] != first["content_hash"]
    assert ingest(cli, "d", "--prices", "split-adjusted", str(path))["created"] is False


def test_raw_content_hashes_are_those_from_before_the_kind_existed() -> None:
    files, schema = {"data/a.parquet": "ab" * 32}, {"ts": "timestamp", "close": "double"}
    # The pre-existing formula, verbatim: raw versions keep their hashes.
    import hashlib

    doc = {"files": sorted(files.items()), "schema": sorted(schema.items()), "interval": "1d"}
    old = hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()
    assert content_hash(files, schema, "1d") == content_hash(files, schema, "1d", RAW) == old
    others = {content_hash(files, schema, "1d", p) for p in PRICES if p != RAW}
    assert old not in others and len(others) == len(PRICES) - 1


def test_an_old_manifest_without_the_field_reads_as_raw(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    publish(store, "d", raw_bars(), interval="1d", source=SOURCE)
    path = version_dir(store, "d", 1) / "manifest.json"
    doc = json.loads(path.read_text())
    del doc["prices"]
    os.chmod(path, 0o644)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))
    assert read_manifest(path.parent).prices == RAW
    assert cli("--json", "data", "show", "d").json()["manifest"]["prices"] == RAW
    assert cli("data", "verify", "d").exit_code == 0
    # An unknown kind is a damaged manifest: one line pointing at it.
    doc["prices"] = "adjusted"
    path.write_text(json.dumps(doc))
    line = one_line(cli("data", "show", "d"), 1)
    assert "unreadable manifest" in line and "adjusted" in line


def test_an_append_of_another_kind_is_refused(cli: Any, store: Path, tmp_path: Path) -> None:
    bars = vendor_bars()
    old = write_csv(tmp_path / "AAA.csv", bars.head(100))
    new = write_csv(tmp_path / "new" / "AAA.csv", bars.tail(100))
    ingest(cli, "d", str(old))
    line = one_line(
        cli("data", "ingest", "d", "--append", "--prices", "split-adjusted", str(new)), 1
    )
    assert "cannot append split_adjusted bars to d@v1, whose prices are raw" in line
    assert "pass --prices raw" in line
    yahoo = write_yahoo(tmp_path / "new" / "AAA.NS.csv", bars.tail(100))
    line = one_line(cli("data", "ingest", "d", "--append", "--source", "yahoo", str(yahoo)), 1)
    assert "whose prices are raw" in line and "yahoo source reads the kind from the file" in line
    assert [v["version"] for v in cli("--json", "data", "list", "d").json()] == [1]
    # The same kind appends.
    made = ingest(cli, "d", "--append", "--prices", "raw", str(new))
    assert made["version"] == 2 and made["rows"] == BARS and made["prices"] == RAW


# --------------------------------------------------------------------------- actions


def test_the_predicate_partitions_in_order() -> None:
    kinds = ("split", "bonus", "dividend")

    @given(st.lists(st.sampled_from(kinds)), st.sampled_from(PRICES))
    def check(chosen: list[str], prices: str) -> None:
        actions = [
            CorporateAction("AAA", date(2024, 1, 1) + timedelta(days=i), k, 2.0, 0.0)
            for i, k in enumerate(chosen)
        ]
        applied, adjusted = partition_actions(actions, prices)
        assert sorted(applied + adjusted, key=actions.index) == actions
        assert [a for a in actions if a in applied] == applied
        assert all(a.kind in VENDOR_ADJUSTED[prices] for a in adjusted)
        assert all(a.kind not in VENDOR_ADJUSTED[prices] for a in applied)
        if prices == RAW:
            assert applied == actions

    check()


def test_yahoo_fills_do_not_change_when_the_split_is_imported(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    path = write_yahoo(tmp_path / "AAA.NS.csv", vendor_bars())
    ingest(cli, "yf", "--source", "yahoo", str(path))
    runs = tmp_path / "runs"
    before = backtest(cli, runs, "yf")
    assert before.json()["warnings"] == []
    import_action(cli, tmp_path, SPLIT, ex_date(), "split")
    after = backtest(cli, runs, "yf")
    assert fills(after).equals(fills(before)) and fills(after).height > 2
    assert after.json()["final_equity"] == before.json()["final_equity"]
    # One warning: the split on record was not applied, and why.
    lines = [line for line in after.stderr.splitlines() if "not applied" in line]
    assert len(lines) == 1, after.stderr
    assert f"AAA split ex {ex_date().isoformat()}" in lines[0]
    assert "yf@v1's prices are already split/bonus-adjusted by the vendor" in lines[0]
    assert "suspected_split" not in after.stderr
    manifest = run_manifest(after)
    assert manifest["warnings"] == [lines[0].removeprefix("warning: ")]
    assert manifest["dataset"]["prices"] == "split_adjusted"
    entry = manifest["inputs"]["corporate_actions"]
    assert entry["prices"] == "split_adjusted" and entry["count"] == 1 and entry["applied"] == 0
    assert entry["not_applied"].startswith("1 (split): ")
    # Another table of actions is another input: another run, never an overwrite.
    assert after.json()["run_id"] != before.json()["run_id"]
    assert run_manifest(before)["inputs"]["corporate_actions"]["count"] == 0
    # A run of a range before the ex-date has nothing to warn about.
    early = backtest(cli, runs, "yf", "--to", f"{raw_bars()['ts'][SPLIT_AT - 1]:%Y-%m-%d}")
    assert early.json()["warnings"] == []


def test_a_raw_csv_still_applies_the_split(cli: Any, store: Path, tmp_path: Path) -> None:
    yahoo = write_yahoo(tmp_path / "AAA.NS.csv", vendor_bars())
    ingest(cli, "yf", "--source", "yahoo", str(yahoo))
    ingest(cli, "raw", str(write_csv(tmp_path / "AAA.csv", raw_bars())), "--allow-warnings")
    import_action(cli, tmp_path, SPLIT, ex_date(), "split")
    runs = tmp_path / "runs"
    vendor, raw = backtest(cli, runs, "yf"), backtest(cli, runs, "raw")
    assert raw.json()["warnings"] == [] and "not applied" not in raw.stderr
    # The same signals; on raw prices the position is multiplied on the ex-date instead.
    assert dates_and_sides(fills(raw)) == dates_and_sides(fills(vendor))
    manifest = run_manifest(raw)
    entry = manifest["inputs"]["corporate_actions"]
    assert entry == {"sha256": entry["sha256"], "count": 1}  # raw runs' entries are unchanged
    assert "prices" not in manifest["dataset"]
    trades = pl.read_parquet(Path(raw.json()["run_dir"]) / "trades.parquet")
    assert (
        trades.height == pl.read_parquet(Path(vendor.json()["run_dir"]) / "trades.parquet").height
    )


def test_a_dividend_applies_to_split_adjusted_prices_only(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    bars = vendor_bars()
    ingest(cli, "split", "--source", "yahoo", str(write_yahoo(tmp_path / "AAA.NS.csv", bars)))
    total = write_yahoo(tmp_path / "t" / "AAA.NS.csv", bars, adj_close=False)
    ingest(cli, "total", "--source", "yahoo", str(total))
    runs = tmp_path / "runs"
    base = {name: backtest(cli, runs, name).json()["final_equity"] for name in ("split", "total")}
    assert base["split"] == base["total"]
    # Bar 60 falls while sma_cross holds its 100 shares (bought on 2023-03-10).
    day = bars["ts"][60].date()
    import_action(cli, tmp_path, DIVIDEND, day, "dividend")
    credited = backtest(cli, runs, "split")
    assert "not applied" not in credited.stderr
    held = fills(credited).filter(pl.col("ts").dt.date() < day)
    assert held["side"].to_list()[-1] == "buy" and held["quantity"].to_list()[-1] == 100
    assert credited.json()["final_equity"] == pytest.approx(base["split"] + 40 * 100)
    untouched = backtest(cli, runs, "total")
    assert untouched.json()["final_equity"] == base["total"]
    assert f"AAA dividend ex {day.isoformat()}" in untouched.stderr
    assert "dividend-adjusted by the vendor" in untouched.stderr


# --------------------------------------------------------------------------- prev_close, validate


def prev_close_on_ex_date(store: Path, name: str) -> float:
    frame = open_dataset(name, store).frame()
    value = frame["prev_close"][SPLIT_AT]
    assert isinstance(value, float)
    return value


def test_derived_prev_close_divides_only_raw_prices(cli: Any, store: Path, tmp_path: Path) -> None:
    import_action(cli, tmp_path, SPLIT, ex_date(), "split")
    vendor = vendor_bars()
    ingest(cli, "yf", "--source", "yahoo", str(write_yahoo(tmp_path / "AAA.NS.csv", vendor)))
    assert prev_close_on_ex_date(store, "yf") == vendor["close"][SPLIT_AT - 1]
    ingest(cli, "raw", str(write_csv(tmp_path / "AAA.csv", raw_bars())))
    assert prev_close_on_ex_date(store, "raw") == pytest.approx(
        raw_bars()["close"][SPLIT_AT - 1] / 5.0
    )
    for name in ("yf", "raw"):
        res = cli("--json", "data", "validate", name)
        assert res.exit_code == 0 and res.json()["counts"] == {}, res.stdout


def test_validate_skips_actions_for_vendor_adjusted_prices(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    vendor = write_csv(tmp_path / "AAA.csv", vendor_bars())
    ingest(cli, "raw", str(vendor))
    ingest(cli, "adj", "--prices", "split-adjusted", str(vendor))
    import_action(cli, tmp_path, SPLIT, ex_date(), "split")
    # Raw prices with the split on record: the derived prev_close is stale.
    stale = cli("--json", "data", "validate", "raw").json()
    assert stale["counts"] == {"stale_prev_close": 1}
    # Vendor-adjusted: the same value is right, and nothing is to be re-derived.
    assert cli("--json", "data", "validate", "adj").json()["counts"] == {}
    assert cli("--json", "data", "rederive", "adj").json()["created"] is None
    # A gap in split-adjusted prices is not explained by the split on record (the vendor
    # should have adjusted it away): it is a suspected split, at ingest and in validate.
    gapped = write_csv(tmp_path / "gap" / "AAA.csv", raw_bars())
    line = one_line(cli("data", "ingest", "gap", "--prices", "split-adjusted", str(gapped)), 65)
    assert "suspected_split" in line
    ingest(cli, "gap", "--prices", "split-adjusted", "--allow-warnings", str(gapped))
    assert cli("--json", "data", "validate", "gap").json()["counts"] == {"suspected_split": 1}
    ingest(cli, "gapraw", str(gapped))
    assert cli("--json", "data", "validate", "gapraw").json()["counts"] == {}


def test_adjusted_reads_skip_what_the_vendor_adjusted(
    cli: Any, store: Path, tmp_path: Path
) -> None:
    publish(store, "d", vendor_bars(), interval="1d", source=SOURCE, prices="split_adjusted")
    import_action(cli, tmp_path, SPLIT, ex_date(), "split")
    version = open_dataset("d", store)
    assert version.frame(adjusted=True)["close"].equals(version.frame()["close"])
    publish(store, "r", raw_bars(), interval="1d", source=SOURCE)
    raw = open_dataset("r", store)
    assert raw.frame(adjusted=True)["close"][0] == pytest.approx(raw.frame()["close"][0] / 5.0)


def test_the_readme_says_what_happens_to_yahoo_data() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    paragraph = next(p for p in readme.split("\n\n") if "The `yahoo`" in p)
    for said in ("`prices: split_adjusted`", "`total_return_adjusted`", "applied again"):
        assert said in paragraph
    assert "--prices split-adjusted" in paragraph and "`--append`" in paragraph
