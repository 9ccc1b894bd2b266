"""The compiled replay loop for signal strategies, and the run inputs and state it shares with
the event loop (:class:`Prepared`, :class:`Book`).

Bars arrive as flat arrays sorted by (ts, symbol). A signal strategy has already turned them into
one target per bar (shares or a weight of equity; NaN = no opinion). The loop acts on a target
when it changes: at the next bar's open (``fill="open"``) or at the same bar's close
(``fill="close"``), so a target computed from bar t never trades inside bar t's range.

The loop is resumable: it stops before the fill or order buffers could overflow and returns the
bar to resume from, so the caller can grow the buffers (and report progress) without the kernel
allocating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numba
import numpy as np

from quantcli.backtest.accounting import (
    CASH,
    E_BAR,
    E_CASH,
    E_RATIO,
    E_SEQ,
    E_SYM,
    EQUITY_REF,
    EVENT_FLOAT_COLS,
    EVENT_INT_COLS,
    MARK,
    N_EQUITY,
    N_EVENTS,
    N_FILLS,
    N_ORDERS,
    PEND,
    PEND_BAR,
    POS,
    SQ_DAY,
    TARGET,
    WORKING,
    apply_action,
    holdings,
    new_state,
    settle,
)
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.costs import parse_costs
from quantcli.backtest.fills import FUND_CASH, FUND_MARGIN, FUND_PREMIUM, execute
from quantcli.backtest.orders import (
    CANCELLED,
    DAY,
    F_FLOAT_COLS,
    F_INT_COLS,
    FILLED,
    GTC,
    MARKET,
    NO_REASON,
    O_BAR,
    O_FILLED,
    O_FLOAT_COLS,
    O_ID,
    O_INT_COLS,
    O_LIMIT,
    O_QTY,
    O_REASON,
    O_SIDE,
    O_STATUS,
    O_STOP,
    O_SYM,
    O_TIF,
    O_TYPE,
    OPEN,
    PARTIAL,
    R_ACTION,
    R_SQUARED_OFF,
    R_SUPERSEDED,
    REJECTED,
)
from quantcli.backtest.slippage import parse_slippage

# Per-bar flags.
EOD = 1  # last bar of its symbol in its session
SQUARE_OFF = 2  # an intraday bar at or after the 15:20 square-off time
LAST_OF_TS = 4  # last bar of its timestamp (the equity row is written after it)

# Float parameters.
P_PARTICIPATION, P_SLIP, P_FLAT_RATE, P_MARGIN = range(4)
N_FPRM = 4
# Integer parameters.
(
    I_SLIP_KIND,
    I_COST_KIND,
    I_FILL_CLOSE,
    I_WEIGHTS,
    I_INTRADAY,
    I_SHORTABLE,
    I_FUNDING,
    I_FUTURES,
    I_REJECT_ERROR,
) = range(9)
N_IPRM = 9

# Room each bar may need in the buffers: a target order and its fill, plus a square-off.
_ROOM = 4


@numba.njit(cache=True)
def new_order(
    counters: np.ndarray,
    order_ints: np.ndarray,
    order_floats: np.ndarray,
    bar: int,
    s: int,
    is_buy: bool,
    kind: int,
    tif: int,
    quantity: float,
    limit: float,
    stop: float,
) -> int:
    """Append an open order to the order buffers; returns its row."""
    n = counters[N_ORDERS]
    counters[N_ORDERS] = n + 1
    order_ints[n, O_ID] = n + 1
    order_ints[n, O_BAR] = bar
    order_ints[n, O_SYM] = s
    order_ints[n, O_SIDE] = 1 if is_buy else -1
    order_ints[n, O_TYPE] = kind
    order_ints[n, O_TIF] = tif
    order_ints[n, O_QTY] = int(quantity)
    order_ints[n, O_STATUS] = OPEN
    order_ints[n, O_FILLED] = 0
    order_ints[n, O_REASON] = NO_REASON
    order_floats[n, O_LIMIT] = limit
    order_floats[n, O_STOP] = stop
    return int(n)


@numba.njit(cache=True)
def close_order(order_ints: np.ndarray, row: int, status: int, reason: int) -> None:
    """End a working order: ``status`` if nothing filled, else partially filled."""
    order_ints[row, O_STATUS] = PARTIAL if order_ints[row, O_FILLED] > 0 else status
    order_ints[row, O_REASON] = reason


@numba.njit(cache=True, nogil=True)
def replay(
    i0: int,
    sym: np.ndarray,
    day: np.ndarray,
    flags: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    prev_close: np.ndarray,
    tick: np.ndarray,
    sigma: np.ndarray,
    lot: np.ndarray,
    target: np.ndarray,
    rates: np.ndarray,
    act_bar: np.ndarray,
    act_sym: np.ndarray,
    act_ratio: np.ndarray,
    act_amount: np.ndarray,
    fprm: np.ndarray,
    iprm: np.ndarray,
    state: np.ndarray,
    acct: np.ndarray,
    counters: np.ndarray,
    order_ints: np.ndarray,
    order_floats: np.ndarray,
    fill_ints: np.ndarray,
    fill_floats: np.ndarray,
    equity: np.ndarray,
    equity_bar: np.ndarray,
    event_ints: np.ndarray,
    event_floats: np.ndarray,
    stop_at: int,
) -> tuple[int, int]:
    """Replay bars ``i0`` to ``stop_at``; returns (next bar, row of an order rejected under
    on_reject="error" or -1). Stops early when the buffers are nearly full."""
    fill_close = iprm[I_FILL_CLOSE] == 1
    weights = iprm[I_WEIGHTS] == 1
    intraday = iprm[I_INTRADAY] == 1
    futures = iprm[I_FUTURES] == 1
    scratch = np.zeros(7, dtype=np.float64)
    n_act = act_bar.shape[0]
    ap = counters[N_EVENTS]
    for i in range(i0, stop_at):
        if (
            counters[N_FILLS] + _ROOM > fill_ints.shape[0]
            or counters[N_ORDERS] + _ROOM > order_ints.shape[0]
        ):
            return i, -1
        s = sym[i]
        d = day[i]
        while ap < n_act and act_bar[ap] == i:
            a = act_sym[ap]
            ratio, cash = apply_action(state, acct, a, act_ratio[ap], act_amount[ap])
            w = int(state[a, WORKING])
            if w >= 0 and ratio != 1.0:
                close_order(order_ints, w, CANCELLED, R_ACTION)
                state[a, WORKING] = -1.0
            event_ints[ap, E_BAR] = i
            event_ints[ap, E_SYM] = a
            event_ints[ap, E_SEQ] = counters[N_FILLS]
            event_floats[ap, E_RATIO] = ratio
            event_floats[ap, E_CASH] = cash
            ap += 1
            counters[N_EVENTS] = ap
        blocked = intraday and state[s, SQ_DAY] == d
        if intraday and not blocked and flags[i] & SQUARE_OFF:
            _square_off(
                i, s, open_[i], state, acct, counters, order_ints, order_floats, fill_ints,
                fill_floats, scratch, volume, high, low, prev_close, lot, tick, sigma, rates,
                day, fprm, iprm,
            )  # fmt: skip
            blocked = True
        if not fill_close:
            pend = state[s, PEND]
            state[s, PEND] = math.nan
            if not blocked and not math.isnan(pend) and pend != state[s, TARGET]:
                _place(
                    int(state[s, PEND_BAR]), s, pend, open_[i], lot[i], weights, state, acct,
                    counters, order_ints, order_floats,
                )  # fmt: skip
            if state[s, WORKING] >= 0.0:
                err = _work(
                    i, s, open_[i], state, acct, counters, order_ints, fill_ints, fill_floats,
                    scratch, volume, high, low, prev_close, lot, tick, sigma, rates, day, fprm,
                    iprm,
                )  # fmt: skip
                if err >= 0:
                    return i + 1, err
        state[s, MARK] = close[i]
        t = target[i]
        if not math.isnan(t):
            if not fill_close:
                state[s, PEND] = t
                state[s, PEND_BAR] = i
            elif not blocked and t != state[s, TARGET]:
                _place(
                    i, s, t, close[i], lot[i], weights, state, acct, counters, order_ints,
                    order_floats,
                )  # fmt: skip
        if fill_close and state[s, WORKING] >= 0.0:
            err = _work(
                i, s, close[i], state, acct, counters, order_ints, fill_ints, fill_floats,
                scratch, volume, high, low, prev_close, lot, tick, sigma, rates, day, fprm, iprm,
            )  # fmt: skip
            if err >= 0:
                return i + 1, err
        if flags[i] & EOD:
            if intraday and state[s, SQ_DAY] != d:
                _square_off(
                    i, s, close[i], state, acct, counters, order_ints, order_floats, fill_ints,
                    fill_floats, scratch, volume, high, low, prev_close, lot, tick, sigma, rates,
                    day, fprm, iprm,
                )  # fmt: skip
            if futures:
                settle(state, acct, s)
        if flags[i] & LAST_OF_TS:
            snapshot(state, acct, counters, equity, equity_bar, i, futures)
    return stop_at, -1


@numba.njit(cache=True)
def snapshot(
    state: np.ndarray,
    acct: np.ndarray,
    counters: np.ndarray,
    equity: np.ndarray,
    equity_bar: np.ndarray,
    bar: int,
    futures: bool,
) -> None:
    """Append the equity row (cash, holdings, equity, gross exposure) after ``bar``."""
    value, gross = holdings(state, futures)
    n = counters[N_EQUITY]
    counters[N_EQUITY] = n + 1
    total = acct[CASH] + value
    equity[n, 0] = acct[CASH]
    equity[n, 1] = value
    equity[n, 2] = total
    equity[n, 3] = gross
    equity_bar[n] = bar
    acct[EQUITY_REF] = total


@numba.njit(cache=True)
def _place(
    i: int,
    s: int,
    target: float,
    price: float,
    lot: float,
    weights: bool,
    state: np.ndarray,
    acct: np.ndarray,
    counters: np.ndarray,
    order_ints: np.ndarray,
    order_floats: np.ndarray,
) -> None:
    # A new target supersedes the working order; the order for the difference is stamped with
    # the bar that produced the target (with fill="open" it first trades at the next bar).
    state[s, TARGET] = target
    w = int(state[s, WORKING])
    if w >= 0:
        close_order(order_ints, w, CANCELLED, R_SUPERSEDED)
        state[s, WORKING] = -1.0
    shares = target * acct[EQUITY_REF] / price if weights else target
    delta = math.trunc((shares - state[s, POS]) / lot) * lot
    if delta == 0.0 or not math.isfinite(delta):
        return
    row = new_order(
        counters, order_ints, order_floats, i, s, delta > 0, MARKET, GTC, abs(delta),
        math.nan, math.nan,
    )  # fmt: skip
    state[s, WORKING] = row


@numba.njit(cache=True)
def _work(
    i: int,
    s: int,
    price: float,
    state: np.ndarray,
    acct: np.ndarray,
    counters: np.ndarray,
    order_ints: np.ndarray,
    fill_ints: np.ndarray,
    fill_floats: np.ndarray,
    scratch: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    prev_close: np.ndarray,
    lot: np.ndarray,
    tick: np.ndarray,
    sigma: np.ndarray,
    rates: np.ndarray,
    day: np.ndarray,
    fprm: np.ndarray,
    iprm: np.ndarray,
) -> int:
    # Fill the symbol's working order at ``price``; returns the order row when it is rejected
    # under on_reject="error", else -1.
    row = int(state[s, WORKING])
    if row < 0:
        return -1
    remaining = order_ints[row, O_QTY] - order_ints[row, O_FILLED]
    q, reason = execute(
        state, acct, counters, fill_ints, fill_floats, scratch, s, i, day[i],
        order_ints[row, O_ID], order_ints[row, O_SIDE] > 0, float(remaining), price, volume[i],
        high[i], low[i], prev_close[i], lot[i], tick[i], sigma[i], fprm[P_PARTICIPATION],
        iprm[I_SLIP_KIND], fprm[P_SLIP], iprm[I_COST_KIND], fprm[P_FLAT_RATE], rates[day[i]],
        iprm[I_SHORTABLE] == 1, iprm[I_FUNDING], iprm[I_FUTURES] == 1, fprm[P_MARGIN], False,
    )  # fmt: skip
    order_ints[row, O_FILLED] += int(q)
    if reason != NO_REASON:
        close_order(order_ints, row, REJECTED, reason)
        state[s, WORKING] = -1.0
        return row if iprm[I_REJECT_ERROR] == 1 else -1
    if order_ints[row, O_FILLED] == order_ints[row, O_QTY]:
        order_ints[row, O_STATUS] = FILLED
        state[s, WORKING] = -1.0
    return -1


@numba.njit(cache=True)
def _square_off(
    i: int,
    s: int,
    price: float,
    state: np.ndarray,
    acct: np.ndarray,
    counters: np.ndarray,
    order_ints: np.ndarray,
    order_floats: np.ndarray,
    fill_ints: np.ndarray,
    fill_floats: np.ndarray,
    scratch: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    prev_close: np.ndarray,
    lot: np.ndarray,
    tick: np.ndarray,
    sigma: np.ndarray,
    rates: np.ndarray,
    day: np.ndarray,
    fprm: np.ndarray,
    iprm: np.ndarray,
) -> None:
    # Intraday (MIS) square-off: cancel the working order and close the position at ``price``;
    # the broker's square-off ignores volume caps and circuits. Trading stops for the session.
    state[s, SQ_DAY] = day[i]
    state[s, TARGET] = math.nan
    w = int(state[s, WORKING])
    if w >= 0:
        close_order(order_ints, w, CANCELLED, R_SQUARED_OFF)
        state[s, WORKING] = -1.0
    pos = state[s, POS]
    if pos == 0.0:
        return
    row = new_order(
        counters, order_ints, order_floats, i, s, pos < 0, MARKET, DAY, abs(pos), math.nan,
        math.nan,
    )  # fmt: skip
    state[s, WORKING] = row
    q, _ = execute(
        state, acct, counters, fill_ints, fill_floats, scratch, s, i, day[i],
        order_ints[row, O_ID], pos < 0, abs(pos), price, volume[i], high[i], low[i],
        prev_close[i], lot[i], tick[i],
        sigma[i], fprm[P_PARTICIPATION], iprm[I_SLIP_KIND], fprm[P_SLIP], iprm[I_COST_KIND],
        fprm[P_FLAT_RATE], rates[day[i]], True, iprm[I_FUNDING], iprm[I_FUTURES] == 1,
        fprm[P_MARGIN], True,
    )  # fmt: skip
    order_ints[row, O_FILLED] = int(q)
    order_ints[row, O_STATUS] = FILLED
    order_ints[row, O_REASON] = R_SQUARED_OFF
    state[s, WORKING] = -1.0


# --------------------------------------------------------------------------- inputs and state
# What the compiled replay (signal strategies) and the Python event loop (event strategies,
# quantcli.backtest.events) share: the prepared bar arrays and the mutable book of a run.

# Bars per kernel call or per chunk of the event loop: buffers grow and progress is reported
# between chunks.
CHUNK = 1 << 20

# How each segment funds its fills (see quantcli.backtest.fills).
FUNDING = {
    "delivery": FUND_CASH,
    "intraday": FUND_MARGIN,
    "futures": FUND_MARGIN,
    "options": FUND_PREMIUM,
}


@dataclass(frozen=True)
class Prepared:
    """The replay's inputs: bar arrays sorted by (ts, symbol) and per-run tables."""

    symbols: list[str]
    days: list[date]
    n: int
    ts: np.ndarray
    sym: np.ndarray
    day: np.ndarray
    flags: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    prev_close: np.ndarray
    tick: np.ndarray
    sigma: np.ndarray
    lot: np.ndarray
    target: np.ndarray
    rates: np.ndarray
    act_bar: np.ndarray
    act_sym: np.ndarray
    act_ratio: np.ndarray
    act_amount: np.ndarray
    adjust: np.ndarray  # each bar's split/bonus factor: what strategies see is traded x adjust
    n_ts: int


@dataclass
class Output:
    """A run's trimmed buffers: orders, fills, equity rows and booked corporate actions."""

    order_ints: np.ndarray
    order_floats: np.ndarray
    fill_ints: np.ndarray
    fill_floats: np.ndarray
    equity: np.ndarray
    equity_bar: np.ndarray
    event_ints: np.ndarray
    event_floats: np.ndarray


class Book:
    """The mutable arrays of one run (state, account, counters and the growable buffers)."""

    def __init__(self, prep: Prepared, config: BacktestConfig) -> None:
        self.state, self.acct, self.counters = new_state(len(prep.symbols), config.cash)
        cap = 256
        self.order_ints = np.zeros((cap, O_INT_COLS), dtype=np.int64)
        self.order_floats = np.zeros((cap, O_FLOAT_COLS), dtype=np.float64)
        self.fill_ints = np.zeros((cap, F_INT_COLS), dtype=np.int64)
        self.fill_floats = np.zeros((cap, F_FLOAT_COLS), dtype=np.float64)
        self.equity = np.zeros((prep.n_ts, 4), dtype=np.float64)
        self.equity_bar = np.zeros(prep.n_ts, dtype=np.int64)
        n_act = prep.act_bar.shape[0]
        self.event_ints = np.zeros((n_act, EVENT_INT_COLS), dtype=np.int64)
        self.event_floats = np.zeros((n_act, EVENT_FLOAT_COLS), dtype=np.float64)
        costs = parse_costs(config.costs)
        slip = parse_slippage(config.slippage)
        self.fprm = np.zeros(N_FPRM, dtype=np.float64)
        self.fprm[P_PARTICIPATION] = config.participation
        self.fprm[P_SLIP] = slip.param
        self.fprm[P_FLAT_RATE] = costs.flat_rate
        self.fprm[P_MARGIN] = config.margin
        self.iprm = np.zeros(N_IPRM, dtype=np.int64)
        self.iprm[I_SLIP_KIND] = slip.kind
        self.iprm[I_COST_KIND] = costs.kind
        self.iprm[I_FILL_CLOSE] = config.fill == "close"
        self.iprm[I_INTRADAY] = config.segment == "intraday"
        self.iprm[I_SHORTABLE] = config.allow_short and config.segment != "delivery"
        self.iprm[I_FUNDING] = FUNDING[config.segment]
        self.iprm[I_FUTURES] = config.segment == "futures"
        self.iprm[I_REJECT_ERROR] = config.on_reject == "error"

    def ensure_room(self, extra: int = 8) -> None:
        """Double the order and fill buffers when fewer than ``extra`` rows are left."""
        if self.counters[N_ORDERS] + extra > self.order_ints.shape[0]:
            self.order_ints = _grow(self.order_ints)
            self.order_floats = _grow(self.order_floats)
        if self.counters[N_FILLS] + extra > self.fill_ints.shape[0]:
            self.fill_ints = _grow(self.fill_ints)
            self.fill_floats = _grow(self.fill_floats)

    def output(self) -> Output:
        """Trimmed copies of the buffers."""
        n_o, n_f = int(self.counters[N_ORDERS]), int(self.counters[N_FILLS])
        n_e, n_ev = int(self.counters[N_EQUITY]), int(self.counters[N_EVENTS])
        return Output(
            order_ints=self.order_ints[:n_o],
            order_floats=self.order_floats[:n_o],
            fill_ints=self.fill_ints[:n_f],
            fill_floats=self.fill_floats[:n_f],
            equity=self.equity[:n_e],
            equity_bar=self.equity_bar[:n_e],
            event_ints=self.event_ints[:n_ev],
            event_floats=self.event_floats[:n_ev],
        )


def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.zeros((buffer.shape[0] * 2, buffer.shape[1]), dtype=buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger
