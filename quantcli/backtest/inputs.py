"""The replay's inputs and mutable state as named structures (NamedTuples of arrays and
scalars, which numba compiles like plain arguments).

A per-bar input is one field of :class:`Bars` (and one line where ``prepare`` builds it); a
run parameter is one field of :class:`Params` (and one line in ``kernel.params_for``). Compiled
functions take a :class:`Run` and read ``run.bars.close[i]`` or ``run.params.margin``, so no
signature lists the arrays one by one and no parameter is packed into an array by index.
Fields carry their dtype, so handing an integer array where a float one belongs is a mypy
error.

The compiled functions that take these structures run without numba's reference counting:
they allocate no arrays, and counting references on every array of a structure at each call
made the replay three times slower. Python enters the few entries (:func:`compiled`) through
:func:`entry`, which compiles one signature per function whatever the arrays' layouts (a
broadcast target column and a contiguous one share it) and skips numba's per-call typing; the
functions they call are :func:`helper` functions, compiled into them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numba
import numpy as np
from numba.extending import register_jitable
from numpy.typing import NDArray

from quantcli.market.segments import Funding

F = TypeVar("F", bound=Callable[..., Any])

Ints = NDArray[np.int64]
Codes = NDArray[np.int32]
Floats = NDArray[np.float64]
Flags = NDArray[np.uint8]

# A compile-time switch of an entry's code: True keeps a feature's code, None leaves it out.
# numba prunes a branch on ``argument is None`` before typing it, so a run that cannot use a
# feature (a daily run's intraday square-off) neither compiles nor carries its code; each set
# of switches is one specialisation, compiled and cached once.
Switch = bool | None


def switch(on: bool) -> Switch:
    """The :data:`Switch` of a feature the run does (``on``) or cannot use."""
    return True if on else None


# The compiled code of each way of funding a fill (quantcli.market.segments.Funding; a
# segment's funding is its SegmentRules'; see quantcli.backtest.fills).
FUND_CASH, FUND_MARGIN, FUND_PREMIUM = 0, 1, 2
FUNDING = {Funding.CASH: FUND_CASH, Funding.MARGIN: FUND_MARGIN, Funding.PREMIUM: FUND_PREMIUM}

# Per-bar flags.
EOD = 1  # last bar of its symbol in its session
SQUARE_OFF = 2  # an intraday bar at or after the 15:20 square-off time
LAST_OF_TS = 4  # last bar of its timestamp (the equity row is written after it)


class Bars(NamedTuple):
    """The replay's per-bar arrays in (ts, symbol) order, the per-session charge rates, and
    the width of a full panel (see :func:`previous_close`)."""

    sym: Codes  # symbol code
    day: Codes  # session index (into the run's days and ``rates``)
    flags: Flags  # EOD | SQUARE_OFF | LAST_OF_TS (one byte a bar)
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    prev_close: Floats  # NaN when unknown (the symbol's first bar); see previous_close
    panel: int  # a full panel's symbols (then prev_close is all NaN), else 0
    slip_input: Floats  # the slippage model's per-bar input (sqrt: recent volatility)
    lot: Floats
    target: Floats  # a signal strategy's target (NaN = no opinion)
    rates: Floats  # the cost model's row per session (statutory: the charge rates)


class Actions(NamedTuple):
    """Corporate actions to book, sorted by the bar they apply before."""

    bar: Ints
    sym: Ints
    ratio: Floats  # shares per share (1.0 for a dividend)
    amount: Floats  # cash per share


class Params(NamedTuple):
    """A run's scalar parameters, as the compiled code reads them."""

    participation: float
    slip: int  # address of the slippage model's cfunc (see fills.call_formula)
    slip_param: float
    costs: int  # address of the cost model's cfunc (see costs.call_costs)
    cost_param: float
    margin: float
    funding: int
    fill_close: bool
    weights: bool  # targets are weights of equity, not share counts
    intraday: bool
    shortable: bool
    futures: bool
    reject_error: bool  # on_reject="error": a rejected order stops the run
    events: bool  # an event strategy: the replay stops for its callbacks and converts its
    # working orders on a split (a signal strategy's working order is cancelled)


class Ticks(NamedTuple):
    """The run's tick schedule (quantcli.market.instruments' tick tables) as arrays, for
    pricing fills and event orders on the tick (:func:`tick_at`): symbol ``s`` on session
    ``d`` uses row ``era[kind[s], d]`` of ``bounds`` (inclusive upper price bounds, padded
    with +inf) and ``ticks``. A table, not a tick per bar: at 10M bars that column was 80 MB
    and a pass over the bars."""

    kind: Ints
    era: Ints
    bounds: Floats
    ticks: Floats


class OrderRequest(NamedTuple):
    """An event strategy's order as placed: prices in traded units, before tick rounding."""

    bar: int  # the bar being replayed
    at: int  # the symbol's latest bar (its lot applies)
    sym: int
    buy: bool
    kind: int
    tif: int
    quantity: int
    limit: float  # NaN: none
    stop: float


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
    ticks: Ticks
    ledger: Ledger


def compiled(*, nogil: bool = False) -> Callable[[F], F]:
    """``numba.njit`` for the replay's entries from Python: cached on disk and without
    reference counting (a function compiled so must not allocate arrays)."""
    options: dict[str, Any] = {"cache": True, "nogil": nogil, "_nrt": False}
    options["no_cfunc_wrapper"] = True  # nothing calls an entry from C
    jit: Callable[[F], F] = numba.njit(**options)
    return jit


def helper(fn: F) -> F:
    """A function the replay's compiled code calls, left a plain Python function.

    numba compiles it into each compiled caller (and that caller's cache entry), without
    reference counting and without the Python and C wrappers a dispatcher builds: for a
    function taking a Run those wrappers (unboxing every array of it) were a third of the
    replay's compile time. Called from Python, it runs interpreted."""
    jitable: Callable[[F], F] = register_jitable(_nrt=False, no_cfunc_wrapper=True)
    return jitable(fn)


@helper
def tick_at(ticks: Ticks, s: int, d: int, price: float) -> float:
    """The tick of symbol ``s`` on session ``d`` at ``price``: its schedule's band of that
    price. A bad price (NaN, zero, negative) gets the lowest band's tick; the fill rules
    reject its orders."""
    row = ticks.era[ticks.kind[s], d]
    band = 0
    while band < ticks.bounds.shape[1] and ticks.bounds[row, band] < price:
        band += 1
    tick: float = ticks.ticks[row, band]
    return tick


@helper
def previous_close(bars: Bars, bar: int) -> float:
    """The previous close of bar ``bar`` (NaN: unknown): the input's, or its symbol's
    previous bar's close. A full panel (``bars.panel`` symbols on every timestamp, without
    the input's own) has no column of them: the symbol's previous bar is ``panel`` rows
    earlier."""
    if bars.panel:
        prev: float = bars.close[bar - bars.panel] if bar >= bars.panel else math.nan
        return prev
    given: float = bars.prev_close[bar]
    return given


def entry(fn: Any, *args: Any) -> Callable[..., Any]:
    """The compiled entry of :func:`compiled` function ``fn`` for arguments like ``args``.

    Every array is typed with layout "A" (any strides), so a zero-stride column and a
    contiguous one share one specialisation, and the arrays of the bars, actions and tick
    table read-only (the ledger's stay writable): one signature per function, compiled or
    loaded from the cache once. The entry converts its arguments by that signature instead of
    typing them at each call, which for a Run costs ~1 ms; a call costs about a microsecond.
    """
    if not isinstance(fn, numba.core.registry.CPUDispatcher):
        # Swapped for its Python original (tests run the replay interpreted).
        python: Callable[..., Any] = fn
        return python
    # numba.typeof of a Run takes ~0.7 ms (a sweep's run pays it once per entry): the
    # entries are remembered by what decides the signature, the arrays' dtypes and dimensions.
    key = (fn, *(_kind(a) for a in args))
    found = _ENTRIES.get(key)
    if found is None:
        typeof: Any = numba.typeof  # untyped in numba's stubs
        signature = tuple(_any_layout(typeof(a), readonly=True) for a in args)
        overload: Any = fn.overloads.get(signature)
        if overload is None:
            fn.compile(signature)
            overload = fn.overloads[signature]
        found = _ENTRIES[key] = overload.entry_point
    return found


_ENTRIES: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _kind(value: Any) -> Any:
    # What numba's type of ``value`` depends on, once layout and writability are set aside.
    if isinstance(value, np.ndarray):
        return value.dtype.str, value.ndim, value.flags.aligned
    if isinstance(value, tuple):
        return type(value), tuple(_kind(v) for v in value)
    return type(value)


def _any_layout(ty: Any, *, readonly: bool) -> Any:
    if isinstance(ty, numba.types.Array):
        return ty.copy(layout="A", readonly=readonly)
    if isinstance(ty, numba.types.BaseNamedTuple):
        named: Any = ty
        # The ledger is the one structure the replay writes.
        keep = readonly and named.instance_class is not Ledger
        fields = [_any_layout(t, readonly=keep) for t in named.types]
        from_types: Any = numba.types.BaseTuple.from_types
        return from_types(fields, named.instance_class)
    return ty
