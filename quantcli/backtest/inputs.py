"""The replay's inputs and mutable state as named structures (NamedTuples of arrays and
scalars, which numba compiles like plain arguments).

A per-bar input is one field of :class:`Bars` (and one line where ``prepare`` builds it); a
run parameter is one field of :class:`Params` (and one line in ``kernel.params_for``). Compiled
functions take a :class:`Run` and read ``run.bars.close[i]`` or ``run.params.margin``, so no
signature lists the arrays one by one and no parameter is packed into an array by index.
Fields carry their dtype, so handing an integer array where a float one belongs is a mypy
error.

The compiled functions that take these structures are compiled by :func:`compiled`, without
numba's reference counting: they allocate no arrays, and counting references on every array
of a structure at each call made the replay three times slower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numba
import numpy as np
from numpy.typing import NDArray

from quantcli.market.instruments import Funding

F = TypeVar("F", bound=Callable[..., Any])

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]

# The compiled code of each way of funding a fill (quantcli.market.instruments.Funding; a
# segment's funding is its SegmentRules'; see quantcli.backtest.fills).
FUND_CASH, FUND_MARGIN, FUND_PREMIUM = 0, 1, 2
FUNDING = {Funding.CASH: FUND_CASH, Funding.MARGIN: FUND_MARGIN, Funding.PREMIUM: FUND_PREMIUM}

# Per-bar flags.
EOD = 1  # last bar of its symbol in its session
SQUARE_OFF = 2  # an intraday bar at or after the 15:20 square-off time
LAST_OF_TS = 4  # last bar of its timestamp (the equity row is written after it)


class Bars(NamedTuple):
    """The replay's per-bar arrays in (ts, symbol) order, and the per-session charge rates."""

    sym: Ints  # symbol code
    day: Ints  # session index (into the run's days and ``rates``)
    flags: Ints  # EOD | SQUARE_OFF | LAST_OF_TS
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    prev_close: Floats  # NaN when unknown (the symbol's first bar)
    tick: Floats
    slip_input: Floats  # the slippage model's per-bar input (sqrt: recent volatility)
    lot: Floats
    target: Floats  # a signal strategy's target (NaN = no opinion)
    rates: Floats  # one row of charge rates per session


class Actions(NamedTuple):
    """Corporate actions to book, sorted by the bar they apply before."""

    bar: Ints
    sym: Ints
    ratio: Floats  # shares per share (1.0 for a dividend)
    amount: Floats  # cash per share


class Params(NamedTuple):
    """A run's scalar parameters, as the compiled code reads them."""

    participation: float
    slip: Callable[[float, float, float, float], float]  # the slippage model's cfunc
    slip_param: float
    cost_kind: int
    flat_rate: float
    margin: float
    funding: int
    fill_close: bool
    weights: bool  # targets are weights of equity, not share counts
    intraday: bool
    shortable: bool
    futures: bool
    reject_error: bool  # on_reject="error": a rejected order stops the run


class Ledger(NamedTuple):
    """The mutable arrays of a run: per-symbol state, account, counters, the growable order
    and fill buffers, equity rows, booked corporate actions and a fill's charge scratch."""

    state: Floats
    acct: Floats
    counters: Ints
    order_ints: Ints
    order_floats: Floats
    fill_ints: Ints
    fill_floats: Floats
    equity: Floats
    equity_bar: Ints
    event_ints: Ints
    event_floats: Floats
    scratch: Floats


class Run(NamedTuple):
    """Everything a compiled replay function reads or writes."""

    bars: Bars
    actions: Actions
    params: Params
    ledger: Ledger


def compiled(*, nogil: bool = False) -> Callable[[F], F]:
    """``numba.njit`` for the replay's functions: cached on disk and without reference
    counting (a function compiled so must not allocate arrays)."""
    options: dict[str, Any] = {"cache": True, "nogil": nogil, "_nrt": False}
    jit: Callable[[F], F] = numba.njit(**options)
    return jit
