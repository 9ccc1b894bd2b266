"""Backtests take tick sizes from the market model alone (quantcli.market.instruments).

Each segment is checked on the session before and on each date a tick schedule changes, for
prices across the bands: the tick the backtester's fills look up equals ``tick_size`` of the
schedule the market model names for that segment and symbol.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from quantcli.backtest.inputs import tick_at
from quantcli.backtest.prepare import _tick_table
from quantcli.errors import UsageError
from quantcli.market.calendar import previous_session
from quantcli.market.instruments import TICK_SCHEDULES, tick_kind, tick_size

# (segment, symbol, the schedule NSE applies to it): written out here, not derived.
CASES = [
    ("delivery", "RELIANCE", "equity"),
    ("intraday", "RELIANCE", "equity"),
    ("futures", "RELIANCE", "stock_futures"),
    ("futures", "NIFTY", "index_futures"),
    ("futures", "SENSEX", "index_futures"),
    ("options", "NIFTY", "options"),
    ("options", "RELIANCE", "options"),
]
CHANGES = sorted({era[0] for eras in TICK_SCHEDULES.values() for era in eras[1:]})
DATES = sorted({d for change in CHANGES for d in (previous_session(change), change)})
PRICES = np.array([0.5, 100.0, 249.99, 250.0, 999.0, 1_000.5, 7_000.0, 16_000.0, 25_000.0, 4e4])


def backtester_ticks(segment: str, symbols: list[str], day: date) -> np.ndarray:
    """The backtester's tick for every price of PRICES, for each symbol, on ``day``."""
    table = _tick_table(symbols, [day], segment)
    ticks = [tick_at(table, s, 0, float(p)) for s in range(len(symbols)) for p in PRICES]
    return np.array(ticks)


@pytest.mark.parametrize("day", DATES)
@pytest.mark.parametrize(("segment", "symbol", "kind"), CASES)
def test_backtester_ticks_are_the_market_models(
    segment: str, symbol: str, kind: str, day: date
) -> None:
    assert tick_kind(segment, symbol) == kind
    expected = [tick_size(float(p), day, kind) for p in PRICES]
    assert backtester_ticks(segment, [symbol], day).tolist() == expected


@pytest.mark.parametrize("day", DATES)
def test_mixed_futures_symbols_tick_by_their_own_schedule(day: date) -> None:
    got = backtester_ticks("futures", ["NIFTY", "RELIANCE"], day).reshape(2, -1)
    assert got[0].tolist() == [tick_size(float(p), day, "index_futures") for p in PRICES]
    assert got[1].tolist() == [tick_size(float(p), day, "stock_futures") for p in PRICES]


def test_stock_futures_keep_005_until_2024_07_08() -> None:
    # Cash stocks below Rs 250 tick 0.01 from 2024-06-10, stock futures a month later.
    between = date(2024, 7, 5)
    assert backtester_ticks("delivery", ["RELIANCE"], between)[1] == 0.01
    assert backtester_ticks("futures", ["RELIANCE"], between)[1] == 0.05
    assert backtester_ticks("futures", ["RELIANCE"], date(2024, 7, 8))[1] == 0.01


def test_unknown_segment_has_no_tick() -> None:
    with pytest.raises(UsageError, match="unknown segment 'bonds'"):
        tick_kind("bonds", "RELIANCE")
