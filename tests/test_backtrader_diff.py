"""Differential test: quantcli and backtrader agree on an SMA crossover on real NSE bars.

Both are configured alike: market orders placed on a bar's close fill at the next bar's open,
a flat 0.05 % commission on both sides, a fixed whole-share quantity, no slippage and no
volume cap (quantcli ``--participation 1``: the 5-share orders are far below any bar's
volume). The strategy is "long ``qty`` shares while SMA(fast) > SMA(slow), else flat", which is
what quantcli's built-in ``sma_cross`` does; in backtrader it is ``order_target_size``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import simulate
from quantcli.market.calendar import session_mask
from tests.conftest import load_sample

backtrader_peer = pytest.importorskip("benchmarks.backtrader_peer")

FAST, SLOW, QTY, CASH, COMMISSION = 10, 30, 5, 100_000.0, 0.0005
SYMBOLS = ("MARUTI", "BAJAJ-AUTO")


def sample_bars(sample_dir: Path, symbol: str) -> pl.DataFrame:
    """The bundled CSV as store-schema bars on NSE sessions (duplicate rows dropped)."""
    frame = (
        load_sample(symbol)
        .select("symbol", "ts", "open", "high", "low", "close", "volume")
        .unique(subset=["ts"], keep="first", maintain_order=True)
        .sort("ts")
    )
    return frame.filter(session_mask(frame["ts"].dt.date()))


def run_backtrader(bars: pl.DataFrame) -> tuple[list[tuple[date, str, int, float]], float]:
    peer = backtrader_peer.run_backtrader(
        bars, fast=FAST, slow=SLOW, qty=QTY, cash=CASH, commission=COMMISSION
    )
    return peer.fills, peer.final_value


def config(**overrides: object) -> BacktestConfig:
    base: dict[str, object] = {
        "dataset": "sample",
        "strategy": "sma_cross",
        "params": {"fast": str(FAST), "slow": str(SLOW), "qty": str(QTY)},
        "cash": CASH,
        "costs": "flat:0.05%",
        "slippage": "none",
        "fill": "open",
        "participation": 1.0,
    }
    base.update(overrides)
    return BacktestConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_same_trades_and_equity_as_backtrader(sample_dir: Path, symbol: str) -> None:
    bars = sample_bars(sample_dir, symbol)
    result = simulate(bars, config(symbols=(symbol,)))
    bt_fills, bt_equity = run_backtrader(bars)

    fills = result.fills.select(
        pl.col("ts").dt.date(), "side", pl.col("quantity").abs().cast(pl.Int64), "price"
    ).rows()
    assert len(fills) == len(bt_fills) > 20
    for ours, theirs in zip(fills, bt_fills, strict=True):
        assert ours[:3] == theirs[:3]
        assert ours[3] == pytest.approx(theirs[3], rel=1e-12)
    final = result.equity["equity"][-1]
    assert final == pytest.approx(bt_equity, rel=1e-6)
    commissions = result.fills["charge_total"].sum()
    assert commissions == pytest.approx(
        sum(q * p * COMMISSION for _, _, q, p in bt_fills), rel=1e-9
    )


def test_cli_matches_backtrader(cli, sample_dir: Path, tmp_path: Path) -> None:
    """The same comparison through the CLI: `quantcli data ingest`, then `quantcli backtest`."""
    store = tmp_path / "store"
    res = cli(
        "data", "ingest", "sample", "--source", "nifty50", "--allow-warnings",
        "--drop-duplicates", str(sample_dir / "MARUTI.csv"), root=store,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli(
        "backtest", "--dataset", "sample", "--strategy", "sma_cross",
        "-p", f"fast={FAST}", "-p", f"slow={SLOW}", "-p", f"qty={QTY}",
        "--costs", "flat:0.05%", "--slippage", "none", "--cash", str(CASH),
        "--participation", "1", "--runs-dir", str(tmp_path / "runs"), "--json",
        root=store,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    bt_fills, bt_equity = run_backtrader(sample_bars(sample_dir, "MARUTI"))
    out = res.json()
    assert out["fills"] == len(bt_fills)
    assert out["final_equity"] == pytest.approx(bt_equity, rel=1e-6)
