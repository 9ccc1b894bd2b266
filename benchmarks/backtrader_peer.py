"""Backtrader's SMA crossover with target-size semantics: the peer of quantcli's ``sma_cross``.

One definition shared by the differential test (tests/test_backtrader_diff.py) and the peer
benchmark (benchmarks/bench_backtest.py), so both compare against the same strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import backtrader as bt
import polars as pl

Fill = tuple[date, str, int, float]


class SmaTarget(bt.Strategy):  # type: ignore[misc]
    """Hold ``qty`` shares while SMA(fast) > SMA(slow), else none; fills recorded per order."""

    params = (("fast", 10), ("slow", 30), ("qty", 100))

    def __init__(self) -> None:
        self.fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        self.slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.fills: list[Fill] = []

    def next(self) -> None:
        target = self.p.qty if self.fast[0] > self.slow[0] else 0
        if self.position.size != target:
            self.order_target_size(target=target)

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            side = "buy" if order.isbuy() else "sell"
            day = bt.num2date(order.executed.dt).date()
            self.fills.append((day, side, abs(int(order.executed.size)), order.executed.price))


@dataclass(frozen=True)
class PeerRun:
    fills: list[Fill]
    final_value: float
    seconds: float  # building and running cerebro, not the data conversion


def run_backtrader(
    bars: pl.DataFrame, *, fast: int, slow: int, qty: int, cash: float, commission: float
) -> PeerRun:
    """Run ``SmaTarget`` on one symbol's bars (next-open fills, flat percentage commission)."""
    frame = bars.select(
        pl.col("ts").dt.replace_time_zone(None).alias("datetime"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    ).to_pandas()
    start = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame.set_index("datetime")))
    cerebro.addstrategy(SmaTarget, fast=fast, slow=slow, qty=qty)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=commission)
    strat = cerebro.run()[0]
    seconds = time.perf_counter() - start
    return PeerRun(strat.fills, cerebro.broker.getvalue(), seconds)
