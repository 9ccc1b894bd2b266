"""The example strategies shipped in examples/ run end to end on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.conftest import REPO


def test_breakout_event_strategy_on_sample(cli, sample_dir: Path, tmp_path: Path) -> None:
    files = [str(p) for p in sorted(sample_dir.glob("*.csv"))]
    ingest = cli(
        "data",
        "ingest",
        "nse",
        "--source",
        "nifty50",
        "--drop-duplicates",
        "--allow-warnings",
        *files,
    )
    assert ingest.exit_code == 0, ingest.stderr
    runs = tmp_path / "runs"
    res = cli(
        "--json",
        "backtest",
        "--dataset",
        "nse",
        "--strategy",
        f"{REPO / 'examples' / 'breakout.py'}:Breakout",
        "-p",
        "lookback=20",
        "--from",
        "2015-01-01",
        "--runs-dir",
        str(runs),
    )
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["trades"] > 0
    orders = pl.read_parquet(Path(out["run_dir"]) / "orders.parquet")
    # Entries are stop buys; exits are ratcheting GTC stop sells, some of which get cancelled.
    assert set(orders.filter(pl.col("side") == "buy")["type"].unique()) == {"stop"}
    sells = orders.filter(pl.col("side") == "sell")
    assert set(sells["tif"].unique()) == {"GTC"}
    assert "cancelled" in set(sells["status"].unique())
