"""Differential test of the two strategy kinds: a signal strategy and its hand-written event
twin (which places, at each target change, the market order the signal path would) give
identical fills and equity, through next-open and close fills, the intraday square-off (also
of orders still working under the participation cap), a split on record, futures settlement
and the participation cap: both run through the one compiled replay loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from test_backtest_engine import cfg, loaded

from quantcli.backtest.engine import simulate
from quantcli.backtest.events import Bar
from quantcli.backtest.prepare import prepare
from quantcli.backtest.strategy import EventStrategy, load_strategy
from quantcli.market.calendar import sessions
from quantcli.market.corporate_actions import CorporateAction

SQUARE_OFF = time(15, 20)


class Twin(EventStrategy):
    """The event strategy equivalent to a signal strategy's per-bar share targets: when a
    bar's target differs from the last one acted on, cancel the symbol's working orders and
    order the difference (GTC, like the signal path's orders). With ``intraday``, targets
    after the square-off time are ignored and each session starts from no target, as the
    signal path does after squaring off."""

    def __init__(self, targets: dict[tuple[str, int], float], intraday: bool) -> None:
        super().__init__(None)
        self.targets = targets
        self.intraday = intraday
        self.last: dict[str, float] = {}
        self.session: dict[str, date] = {}

    def on_bar(self, ctx: Any, bar: Bar) -> None:
        if self.intraday:
            day = bar.ts.date()
            if self.session.get(bar.symbol) != day:
                self.session[bar.symbol] = day
                self.last.pop(bar.symbol, None)
            if bar.ts.time() >= SQUARE_OFF:
                return
        target = self.targets.get((bar.symbol, bar.ts_us), math.nan)
        if math.isnan(target) or target == self.last.get(bar.symbol):
            return
        self.last[bar.symbol] = target
        for order in ctx.open_orders(bar.symbol):
            ctx.cancel(order.order_id)
        ctx.order_target(bar.symbol, int(target), tif="GTC")


def random_walk(symbols: Sequence[str], stamps: list[datetime], seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k, symbol in enumerate(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, len(stamps))))
        close = np.round(close, 1)
        open_ = np.round(close * (1 + rng.normal(0, 0.005, len(stamps))), 1)
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": pl.Series(stamps).dt.replace_time_zone("Asia/Kolkata"),
                    "open": open_,
                    "high": np.maximum(open_, close) + 0.5,
                    "low": np.minimum(open_, close) - 0.5,
                    "close": close,
                    "volume": rng.integers(50, 2_000, len(stamps)) * (k + 1),
                }
            )
        )
    return pl.concat(frames)


def daily(n: int) -> list[datetime]:
    return [
        datetime(d.year, d.month, d.day) for d in sessions(date(2023, 1, 2), date(2024, 12, 31))[:n]
    ]


def five_minute(days: int) -> list[datetime]:
    stamps = []
    for d in sessions(date(2024, 3, 1), date(2024, 3, 31))[:days]:
        start = datetime(d.year, d.month, d.day, 14, 0)
        stamps += [start + timedelta(minutes=5 * k) for k in range(20)]  # 14:00 to 15:35
    return stamps


def twins(
    bars: pl.DataFrame, actions: list[CorporateAction], qty: str = "40", **options: Any
) -> tuple[Any, Any]:
    params = {"fast": "3", "slow": "8", "qty": qty}
    if options.get("allow_short"):
        params["short"] = "true"
    config = cfg(strategy="sma_cross", params=params, **options)
    signal = load_strategy("sma_cross", params)
    prep = prepare(bars, config, signal, actions)
    names = [prep.symbols[k] for k in prep.bars.sym.tolist()]
    targets = dict(
        zip(zip(names, prep.ts.tolist(), strict=True), prep.target.tolist(), strict=True)
    )
    twin = Twin(targets, intraday=config.segment == "intraday")
    a = simulate(bars, config, strategy=signal, actions=actions)
    b = simulate(bars, config, strategy=loaded(twin, "events"), actions=actions)
    return a, b


CASES: list[tuple[str, dict[str, Any]]] = [
    ("next_open", {"fill": "open", "costs": "statutory", "slippage": "bps:5"}),
    ("close", {"fill": "close", "costs": "statutory"}),
    ("participation", {"fill": "open", "participation": 0.02}),
    ("participation_close", {"fill": "close", "participation": 0.02, "slippage": "sqrt:0.5"}),
    ("short_intraday_daily", {"fill": "close", "segment": "intraday", "allow_short": True}),
]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[c[0] for c in CASES])
def test_signal_and_event_twin_fill_identically(name: str, options: dict[str, Any]) -> None:
    bars = random_walk(["AAA", "BBB", "CCC"], daily(160), seed=len(name))
    a, b = twins(bars, [], **options)
    assert a.fills.height > 10
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)


def test_twins_through_the_intraday_square_off() -> None:
    bars = random_walk(["AAA", "BBB"], five_minute(6), seed=7)
    a, b = twins(bars, [], fill="close", segment="intraday", allow_short=True)
    squared = a.orders.filter(pl.col("reason") == "position squared off for the day (intraday)")
    assert squared.height > 2
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)


def test_twins_with_a_split_on_record() -> None:
    bars = random_walk(["AAA", "BBB"], daily(120), seed=3).with_columns(
        volume=pl.lit(1_000_000, dtype=pl.Int64)  # every order fills at once: none spans the split
    )
    ex = bars["ts"][60].date()
    halved = (pl.col("symbol") == "AAA") & (pl.col("ts").dt.date() >= ex)
    bars = bars.with_columns(
        [
            pl.when(halved).then(pl.col(c) / 2).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ]
    )
    actions = [CorporateAction("AAA", ex, "split", 2.0, 0.0)]
    a, b = twins(bars, actions, fill="open")
    assert not a.warnings
    assert a.fills.filter(pl.col("symbol") == "AAA")["ts"].dt.date().max() >= ex
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)


def test_twins_through_the_square_off_with_orders_still_working() -> None:
    # Thin bars: orders fill over several bars and some are still working at 15:20.
    bars = random_walk(["AAA", "BBB"], five_minute(6), seed=11)
    a, b = twins(bars, [], fill="close", segment="intraday", allow_short=True, participation=0.05)
    reasons = a.orders["reason"].to_list()
    assert "position squared off for the day (intraday)" in reasons
    assert a.orders.filter(pl.col("filled_quantity") < pl.col("quantity")).height > 0
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)


@pytest.mark.parametrize("fill", ["open", "close"])
def test_twins_in_futures(fill: str) -> None:
    # Daily settlement moves the cash of both runs alike; NIFTY's lot is 50 (a target of 100
    # is two lots).
    bars = random_walk(["NIFTY"], daily(160), seed=5).with_columns(
        [pl.col(c) * 200 for c in ("open", "high", "low", "close")]
    )
    a, b = twins(bars, [], qty="100", fill=fill, segment="futures", allow_short=True)
    assert a.fills.height > 10
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)
