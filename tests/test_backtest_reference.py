"""The compiled engine equals its own source run as plain Python (the reference semantics).

Every numba function keeps its Python original in ``.py_func``; swapping those in runs the
kernel, fill rules, book and charges interpreted. Both runs must give identical frames (so
numba's typing never changes a result) - and the interpreted run is what coverage can see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba.core.registry import CPUDispatcher
from test_backtest_engine import Script, Targets, cfg, flat, loaded, make_bars
from test_backtest_properties import ipc, run, scenarios

from quantcli.backtest import (
    accounting,
    costs,
    engine,
    fills,
    kernel,
    orders,
    replay_order,
    slippage,
)
from quantcli.backtest import prepare as preparation
from quantcli.backtest.config import BacktestConfig
from quantcli.errors import StrategyError
from quantcli.market import charges
from quantcli.market.corporate_actions import CorporateAction
from quantcli.market.instruments import ROUND_DOWN, ROUND_UP, round_to_tick_kernel

MODULES = (accounting, costs, engine, preparation, replay_order, fills, kernel, slippage, charges)


@contextmanager
def interpreted() -> Iterator[None]:
    """Swap every compiled function of the engine for its Python original while active."""
    saved: list[tuple[Any, str, Any]] = []
    for module in MODULES:
        for name, obj in list(vars(module).items()):
            if isinstance(obj, CPUDispatcher):
                saved.append((module, name, obj))
                setattr(module, name, obj.py_func)
    try:
        yield
    finally:
        for module, name, obj in saved:
            setattr(module, name, obj)


def both(fn: Any) -> tuple[list[bytes], list[bytes]]:
    """Arrow IPC bytes of ``fn()``'s result frames, compiled and interpreted."""
    compiled = ipc(fn())
    with interpreted():
        python = ipc(fn())
    return compiled, python


SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("sma_cross", {"fill": "open", "costs": "statutory", "slippage": "sqrt:0.5"}),
    ("sma_cross", {"fill": "close", "segment": "intraday", "allow_short": True}),
    ("sma_cross", {"segment": "futures", "allow_short": True, "costs": "statutory"}),
    ("buy_and_hold", {"costs": "statutory", "slippage": "spread:10"}),
    ("momentum", {"slippage": "bps:3"}),
]


def _bars(symbols: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    data = {}
    for sym in symbols:
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
        data[sym] = [(c, c * 1.01, c * 0.99, c, 20_000) for c in closes]
    return make_bars(data)


@pytest.mark.parametrize(("strategy", "options"), SCENARIOS)
def test_signal_kernel_interpreted_equals_compiled(strategy: str, options: dict[str, Any]) -> None:
    futures = options.get("segment") == "futures"
    bars = _bars(["NIFTY"] if futures else ["AAA", "BBB", "CCC"])
    params = {"fast": "3", "slow": "9", "qty": "50"} if strategy == "sma_cross" else {}
    if strategy == "momentum":
        params = {"lookback": "10", "top": "1"}
    config = cfg(strategy=strategy, params=params, **options)
    compiled, python = both(lambda: engine.simulate(bars, config))
    assert compiled == python


def test_event_path_interpreted_equals_compiled() -> None:
    rows = [(100.0, 103.0, 97.0, 101.0, 5_000)] * 4 + [(101.0, 101.0, 101.0, 101.0, 5_000)]
    rows += flat(5, 99.0)

    def make() -> Any:
        script = Script(
            {
                0: lambda c, b: c.buy("AAA", 80, tif="GTC"),
                1: lambda c, b: c.buy("AAA", 5, stop=102.0, limit=104.0),
                2: lambda c, b: c.sell("AAA", 40, limit=102.5, tif="IOC"),
                3: lambda c, b: c.buy("AAA", 10),
                5: lambda c, b: c.sell("AAA", 30, stop=99.5),
            }
        )
        bars = make_bars({"AAA": rows})
        return engine.simulate(
            bars, cfg(costs="statutory", slippage="bps:2"), strategy=loaded(script, "events")
        )

    compiled, python = both(make)
    assert compiled == python


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(scenarios())
def test_random_scenarios_interpreted_equal_compiled(
    scenario: tuple[pl.DataFrame, BacktestConfig, str],
) -> None:
    bars, config, kind = scenario
    compiled, python = both(lambda: run(bars, config, kind))
    assert compiled == python


def intraday_bars(symbol: str, closes: list[float]) -> pl.DataFrame:
    """5-minute bars from 14:55 on two sessions (so both cross the 15:20 square-off)."""
    stamps = []
    for day in (2, 3):
        start = datetime(2024, 1, day, 14, 55)
        stamps += [start + timedelta(minutes=5 * k) for k in range(len(closes) // 2)]
    return pl.DataFrame(
        {
            "symbol": symbol,
            "ts": pl.Series(stamps).dt.replace_time_zone("Asia/Kolkata"),
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": 100_000,
            "tgt": [10.0] * len(closes),
        }
    )


def test_kernel_intraday_square_off_interpreted_equals_compiled() -> None:
    bars = intraday_bars("AAA", [100.0 + k for k in range(14)])

    def make() -> Any:
        return engine.simulate(bars, cfg(segment="intraday"), strategy=loaded(Targets(), "targets"))

    compiled, python = both(make)
    assert compiled == python
    result = make()
    # Bought at 14:55's next open, squared off at the 15:20 bar's open each day.
    squares = result.orders.filter(pl.col("reason").is_not_null())
    assert squares.height == 2
    assert result.fills.filter(pl.col("side") == "sell")["ts"].dt.minute().to_list() == [20, 20]


def test_kernel_corporate_actions_interpreted_equals_compiled() -> None:
    big, thin = 1_000_000, 10
    rows = [(100.0, 101.0, 99.0, 100.0, big)] * 2 + [(100.0, 101.0, 99.0, 100.0, thin)]
    rows += [(50.0, 51.0, 49.0, 50.0, big)] * 5
    bars = make_bars({"AAA": rows}).with_columns(
        tgt=pl.Series([10.0, 1000.0, None, None, None, None, 0.0, None])
    )
    actions = [
        CorporateAction("AAA", bars["ts"][3].date(), "split", 2.0, 0.0),
        CorporateAction("AAA", bars["ts"][4].date(), "dividend", 1.0, 2.5),
    ]

    def make() -> Any:
        return engine.simulate(
            bars, cfg(participation=0.5), strategy=loaded(Targets(), "targets"), actions=actions
        )

    compiled, python = both(make)
    assert compiled == python
    result = make()
    orders = result.orders
    # The order for 990 more shares works across the split: cancelled by the corporate action.
    assert "cancelled by a corporate action" in orders["reason"].to_list()
    # 10 + 5 shares at 100, split 2:1 -> 30 shares, dividend 2.5 each, sold at 50.
    assert result.fills["quantity"].to_list() == [10, 5, 30]
    assert result.trades["pnl"][0] == pytest.approx(30 * 50 - 15 * 100 + 30 * 2.5)


def test_kernel_rejection_error_interpreted() -> None:
    bars = make_bars({"AAA": flat(3)}).with_columns(tgt=pl.Series([-10.0, None, None]))
    with interpreted(), pytest.raises(StrategyError, match="short selling"):
        engine.simulate(bars, cfg(on_reject="error"), strategy=loaded(Targets(), "targets"))


def test_many_orders_grow_buffers() -> None:
    n = 700
    bars = make_bars({"AAA": flat(n)}, start=date(2020, 1, 1))
    bars = bars.with_columns(tgt=pl.Series([10.0 * (k % 2) for k in range(n)]))
    result = engine.simulate(bars, cfg(), strategy=loaded(Targets(), "targets"))
    assert result.orders.height == n - 2
    assert result.fills.height == n - 2
    script = Script({k: (lambda c, b: c.buy("AAA", 1)) for k in range(300)})
    events = engine.simulate(bars.head(310), cfg(), strategy=loaded(script, "events"))
    assert events.fills.height == 300


@given(st.integers(0, 10**8))
def test_order_and_fill_rows_start_near_a_row_per_16_bars(n: int) -> None:
    # A power of two from 256 on, covering a row per 16 bars: the benchmark's 250 k-bar run
    # (9,651 orders) no longer stops six times to grow its buffers.
    cap = kernel._capacity(n)
    assert cap >= 256 and cap & (cap - 1) == 0
    assert cap > n // 16 and (cap == 256 or cap <= n // 8)


NAN = float("nan")
# (kind, is_buy, limit, stop, triggered, open, high, low) -> (price, triggered)
TRIGGERS = [
    (orders.LIMIT, True, 100.0, NAN, False, 99.0, 101.0, 98.0, 99.0, False),  # gap below: open
    (orders.LIMIT, True, 100.0, NAN, False, 101.0, 102.0, 99.0, 100.0, False),  # trades through
    (orders.LIMIT, True, 100.0, NAN, False, 101.0, 102.0, 100.5, NAN, False),  # never reached
    (orders.LIMIT, False, 100.0, NAN, False, 101.0, 102.0, 99.0, 101.0, False),
    (orders.LIMIT, False, 100.0, NAN, False, 99.0, 100.5, 98.0, 100.0, False),
    (orders.LIMIT, False, 100.0, NAN, False, 99.0, 99.5, 98.0, NAN, False),
    (orders.STOP, True, NAN, 100.0, False, 101.0, 102.0, 100.5, 101.0, True),  # gap: open
    (orders.STOP, True, NAN, 100.0, False, 99.0, 100.5, 98.0, 100.0, True),
    (orders.STOP, True, NAN, 100.0, False, 98.0, 99.0, 97.0, NAN, False),
    (orders.STOP, False, NAN, 100.0, False, 99.0, 99.5, 98.0, 99.0, True),
    (orders.STOP, False, NAN, 100.0, False, 101.0, 101.5, 99.0, 100.0, True),
    (orders.STOP, True, NAN, 100.0, True, 97.0, 98.0, 96.0, 97.0, True),  # already triggered
    (orders.STOP_LIMIT, True, 101.0, 100.0, False, 99.0, 100.5, 98.0, 100.0, True),  # at stop
    (orders.STOP_LIMIT, True, 99.0, 100.0, False, 98.0, 100.5, 98.5, 99.0, True),  # to limit
    (orders.STOP_LIMIT, True, 99.0, 100.0, False, 98.0, 100.5, 99.5, NAN, True),  # not reached
    (orders.STOP_LIMIT, True, 102.0, 100.0, False, 101.0, 103.0, 100.5, 101.0, True),  # gap
    (orders.STOP_LIMIT, False, 99.0, 100.0, True, 98.0, 99.5, 97.0, 99.0, True),  # triggered
]


@pytest.mark.parametrize("case", TRIGGERS)
def test_trigger_prices(case: tuple[Any, ...]) -> None:
    *args, price, triggered = case
    for fn in (fills.trigger_price, fills.trigger_price.py_func):
        got, now = fn(*args)
        assert (got == price or (np.isnan(got) and np.isnan(price))) and now == triggered


def test_tick_rounding_and_circuits() -> None:
    for fn in (round_to_tick_kernel, round_to_tick_kernel.py_func):
        assert fn(100.07, 0.05, ROUND_UP) == 100.1
        assert fn(100.07, 0.05, ROUND_DOWN) == 100.05
        assert fn(100.05, 0.05, ROUND_UP) == 100.05
        assert fn(100.0 * 1.0005, 0.05, ROUND_UP) == 100.05  # 100.05000000000001 is noise
        assert fn(37457.99, 0.0025, ROUND_DOWN) == 37457.99  # beyond the snap: exact decimal
        assert fn(100.07, 0.0, ROUND_UP) == 100.07
        assert fn(math.nan, 0.05, ROUND_UP) != fn(math.nan, 0.05, ROUND_UP)
    for fn in (fills.circuit_blocked, fills.circuit_blocked.py_func):
        assert fn(True, 110.0, 110.0, 100.0) and not fn(False, 110.0, 110.0, 100.0)
        assert fn(False, 90.0, 90.0, 100.0) and not fn(True, 90.0, 90.0, 100.0)
        assert not fn(True, 110.0, 110.0, NAN) and not fn(True, 111.0, 110.0, 100.0)


def test_cash_and_first_bar_margin_checks_interpreted() -> None:
    rows = flat(4, 1000.0)

    def make(config: BacktestConfig, first: str, script: Script) -> Any:
        late = make_bars({first: rows, "NIFTY": rows}).filter(
            ~((pl.col("symbol") == "NIFTY") & (pl.col("ts") == pl.col("ts").min()))
        )
        return engine.simulate(late, config, strategy=loaded(script, "events"))

    with interpreted():
        # Less cash than one share: rejected.
        poor = make(cfg(cash=500.0), "AAA", Script({0: lambda c, b: c.buy("AAA", 1)}))
        assert poor.orders["reason"].to_list() == ["insufficient cash"]
        # An order for a symbol before its first bar is margined at its fill price.
        early = make(
            cfg(segment="futures", cash=500.0),
            "BANKNIFTY",
            Script({0: lambda c, b: c.buy("NIFTY", 1000)}),
        )
        assert early.orders["reason"].to_list() == ["insufficient margin"]
