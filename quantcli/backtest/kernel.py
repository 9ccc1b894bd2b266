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
from quantcli.backtest.fills import execute
from quantcli.backtest.inputs import (
    EOD,
    FUNDING,
    LAST_OF_TS,
    SQUARE_OFF,
    Actions,
    Bars,
    Ledger,
    Params,
    Run,
    compiled,
)
from quantcli.backtest.orders import (
    DAY,
    EV_CANCEL,
    EV_FILL,
    EV_FILL_ALL,
    EV_REJECT,
    F_CHARGES,
    F_FLOAT_COLS,
    F_INT_COLS,
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
    R_ACTION,
    R_SQUARED_OFF,
    R_SUPERSEDED,
    transition,
)
from quantcli.backtest.slippage import parse_slippage
from quantcli.market.instruments import segment_rules

# Room each bar may need in the buffers: a target order and its fill, plus a square-off.
_ROOM = 4


@compiled()
def new_order(run: Run, bar: int, s: int, signed: float, tif: int) -> int:
    """Append an open market order for ``signed`` shares (positive buys); returns its row."""
    counters = run.ledger.counters
    order_ints, order_floats = run.ledger.order_ints, run.ledger.order_floats
    n = counters[N_ORDERS]
    counters[N_ORDERS] = n + 1
    order_ints[n, O_ID] = n + 1
    order_ints[n, O_BAR] = bar
    order_ints[n, O_SYM] = s
    order_ints[n, O_SIDE] = 1 if signed > 0 else -1
    order_ints[n, O_TYPE] = MARKET
    order_ints[n, O_TIF] = tif
    order_ints[n, O_QTY] = int(abs(signed))
    order_ints[n, O_STATUS] = OPEN
    order_ints[n, O_FILLED] = 0
    order_ints[n, O_REASON] = NO_REASON
    order_floats[n, O_LIMIT] = math.nan
    order_floats[n, O_STOP] = math.nan
    return int(n)


@compiled()
def close_order(run: Run, row: int, event: int, reason: int) -> None:
    """End a working order by ``event`` (cancel, expire or reject) for ``reason``."""
    order_ints = run.ledger.order_ints
    order_ints[row, O_STATUS] = transition(order_ints[row, O_STATUS], event)
    order_ints[row, O_REASON] = reason


@compiled()
def fill_order(run: Run, row: int, quantity: int) -> bool:
    """Record a fill of ``quantity`` (> 0) shares of order ``row``; True when it completes it."""
    order_ints = run.ledger.order_ints
    filled = order_ints[row, O_FILLED] + quantity
    order_ints[row, O_FILLED] = filled
    event = EV_FILL_ALL if filled == order_ints[row, O_QTY] else EV_FILL
    order_ints[row, O_STATUS] = transition(order_ints[row, O_STATUS], event)
    return event == EV_FILL_ALL


@compiled(nogil=True)
def replay(run: Run, i0: int, stop_at: int) -> tuple[int, int]:
    """Replay bars ``i0`` to ``stop_at``; returns (next bar, row of an order rejected under
    on_reject="error" or -1). Stops early when the buffers are nearly full."""
    # The loop reads plain local arrays taken out of the structures once: numba counts
    # references on the arrays of a structure held in a local, which costs per bar. The
    # helpers below read fields through ``run`` for the same reason.
    bars, prm, led = run.bars, run.params, run.ledger
    sym, day, flags, target = bars.sym, bars.day, bars.flags, bars.target
    open_, close = bars.open, bars.close
    act_bar = run.actions.bar
    state, acct, counters = led.state, led.acct, led.counters
    fill_cap, order_cap = led.fill_ints.shape[0] - _ROOM, led.order_ints.shape[0] - _ROOM
    fill_close, intraday, futures = prm.fill_close, prm.intraday, prm.futures
    n_act = act_bar.shape[0]
    ap = counters[N_EVENTS]
    for i in range(i0, stop_at):
        if counters[N_FILLS] > fill_cap or counters[N_ORDERS] > order_cap:
            return i, -1
        s = sym[i]
        d = day[i]
        while ap < n_act and act_bar[ap] == i:
            _book_action(run, ap, i)
            ap += 1
        blocked = intraday and state[s, SQ_DAY] == d
        if intraday and not blocked and flags[i] & SQUARE_OFF:
            _square_off(run, i, s, open_[i])
            blocked = True
        if not fill_close:
            pend = state[s, PEND]
            state[s, PEND] = math.nan
            if not blocked and not math.isnan(pend) and pend != state[s, TARGET]:
                _place(run, int(state[s, PEND_BAR]), s, pend, open_[i])
            if state[s, WORKING] >= 0.0:
                err = _work(run, i, s, open_[i])
                if err >= 0:
                    return i + 1, err
        state[s, MARK] = close[i]
        t = target[i]
        if not math.isnan(t):
            if not fill_close:
                state[s, PEND] = t
                state[s, PEND_BAR] = i
            elif not blocked and t != state[s, TARGET]:
                _place(run, i, s, t, close[i])
        if fill_close and state[s, WORKING] >= 0.0:
            err = _work(run, i, s, close[i])
            if err >= 0:
                return i + 1, err
        if flags[i] & EOD:
            if intraday and state[s, SQ_DAY] != d:
                _square_off(run, i, s, close[i])
            if futures:
                settle(state, acct, s)
        if flags[i] & LAST_OF_TS:
            snapshot(led, i, futures)
    return stop_at, -1


@compiled()
def _book_action(run: Run, ap: int, i: int) -> None:
    # Corporate action ``ap`` before bar ``i``: a split or bonus cancels the working order.
    a = run.actions.sym[ap]
    ratio, cash = apply_action(
        run.ledger.state, run.ledger.acct, a, run.actions.ratio[ap], run.actions.amount[ap]
    )
    w = int(run.ledger.state[a, WORKING])
    if w >= 0 and ratio != 1.0:
        close_order(run, w, EV_CANCEL, R_ACTION)
        run.ledger.state[a, WORKING] = -1.0
    record_action(run, ap, i, ratio, cash)


@compiled()
def record_action(run: Run, ap: int, i: int, ratio: float, cash: float) -> None:
    """Record corporate action ``ap`` as booked before bar ``i`` (for round trips)."""
    run.ledger.event_ints[ap, E_BAR] = i
    run.ledger.event_ints[ap, E_SYM] = run.actions.sym[ap]
    run.ledger.event_ints[ap, E_SEQ] = run.ledger.counters[N_FILLS]
    run.ledger.event_floats[ap, E_RATIO] = ratio
    run.ledger.event_floats[ap, E_CASH] = cash
    run.ledger.counters[N_EVENTS] = ap + 1


@compiled()
def snapshot(ledger: Ledger, bar: int, futures: bool) -> None:
    """Append the equity row (cash, holdings, equity, gross exposure) after ``bar``.

    It takes the ledger rather than the run: the event loop calls it from Python at every
    timestamp, and a call with the whole run (its slippage formula) costs ~0.4 ms to type."""
    acct, counters = ledger.acct, ledger.counters
    value, gross = holdings(ledger.state, futures)
    n = counters[N_EQUITY]
    counters[N_EQUITY] = n + 1
    total = acct[CASH] + value
    ledger.equity[n, 0] = acct[CASH]
    ledger.equity[n, 1] = value
    ledger.equity[n, 2] = total
    ledger.equity[n, 3] = gross
    ledger.equity_bar[n] = bar
    acct[EQUITY_REF] = total


@compiled()
def _place(run: Run, i: int, s: int, target: float, price: float) -> None:
    # A new target supersedes the working order; the order for the difference is stamped with
    # the bar that produced the target (with fill="open" it first trades at the next bar).
    state = run.ledger.state
    state[s, TARGET] = target
    w = int(state[s, WORKING])
    if w >= 0:
        close_order(run, w, EV_CANCEL, R_SUPERSEDED)
        state[s, WORKING] = -1.0
    shares = target * run.ledger.acct[EQUITY_REF] / price if run.params.weights else target
    lot = run.bars.lot[i]
    delta = math.trunc((shares - state[s, POS]) / lot) * lot
    if delta == 0.0 or not math.isfinite(delta):
        return
    state[s, WORKING] = new_order(run, i, s, delta, GTC)


@compiled()
def _work(run: Run, i: int, s: int, price: float) -> int:
    # Fill the symbol's working order at ``price``; returns the order row when it is rejected
    # under on_reject="error", else -1.
    state, order_ints = run.ledger.state, run.ledger.order_ints
    row = int(state[s, WORKING])
    if row < 0:
        return -1
    remaining = float(order_ints[row, O_QTY] - order_ints[row, O_FILLED])
    signed = remaining if order_ints[row, O_SIDE] > 0 else -remaining
    q, reason = execute(run, i, order_ints[row, O_ID], signed, price, False)
    if reason != NO_REASON:
        close_order(run, row, EV_REJECT, reason)
        state[s, WORKING] = -1.0
        return row if run.params.reject_error else -1
    if q > 0.0 and fill_order(run, row, int(q)):
        state[s, WORKING] = -1.0
    return -1


@compiled()
def _square_off(run: Run, i: int, s: int, price: float) -> None:
    # Intraday (MIS) square-off: cancel the working order and close the position at ``price``;
    # the broker's square-off ignores volume caps and circuits. Trading stops for the session.
    state, order_ints = run.ledger.state, run.ledger.order_ints
    state[s, SQ_DAY] = run.bars.day[i]
    state[s, TARGET] = math.nan
    w = int(state[s, WORKING])
    if w >= 0:
        close_order(run, w, EV_CANCEL, R_SQUARED_OFF)
        state[s, WORKING] = -1.0
    pos = state[s, POS]
    if pos == 0.0:
        return
    row = new_order(run, i, s, -pos, DAY)
    # Forced, it fills in full.
    q, _ = execute(run, i, order_ints[row, O_ID], -pos, price, True)
    fill_order(run, row, int(q))
    order_ints[row, O_REASON] = R_SQUARED_OFF


# --------------------------------------------------------------------------- inputs and state
# What the compiled replay (signal strategies) and the Python event loop (event strategies,
# quantcli.backtest.events) share: the prepared inputs and the mutable book of a run.

# Bars per kernel call or per chunk of the event loop: buffers grow and progress is reported
# between chunks.
CHUNK = 1 << 20


@dataclass(frozen=True)
class Prepared:
    """The replay's inputs: the bars (in (ts, symbol) order), corporate actions and the
    run's symbols, sessions and timestamps."""

    symbols: list[str]
    days: list[date]
    n: int
    ts: np.ndarray
    bars: Bars
    actions: Actions
    adjust: np.ndarray  # each bar's split/bonus factor: what strategies see is traded x adjust
    n_ts: int

    @property
    def target(self) -> np.ndarray:
        """A signal strategy's target per bar in replay order (NaN = no opinion)."""
        return self.bars.target


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


def params_for(config: BacktestConfig, *, weights: bool = False) -> Params:
    """The compiled parameters of ``config`` (``weights``: targets are weights of equity).

    Every field is converted to its exact Python type: numba compiles one specialisation per
    combination of types, and its on-disk cache should hold one."""
    costs = parse_costs(config.costs)
    slip = parse_slippage(config.slippage)
    rules = segment_rules(config.segment)
    return Params(
        participation=float(config.participation),
        slip=slip.formula,
        slip_param=float(slip.param),
        cost_kind=int(costs.kind),
        flat_rate=float(costs.flat_rate),
        margin=float(config.margin),
        funding=FUNDING[rules.funding],
        fill_close=config.fill == "close",
        weights=bool(weights),
        intraday=rules.square_off is not None,
        shortable=bool(config.allow_short and rules.shortable),
        futures=rules.marked_to_market,
        reject_error=config.on_reject == "error",
    )


class Book:
    """The mutable state of one run (:class:`Ledger`, whose buffers grow) and its inputs."""

    def __init__(self, prep: Prepared, config: BacktestConfig, *, weights: bool = False) -> None:
        state, acct, counters = new_state(len(prep.symbols), config.cash)
        cap = 256
        n_act = prep.actions.bar.shape[0]
        self.prep = prep
        self.params = params_for(config, weights=weights)
        self.ledger = Ledger(
            state=state,
            acct=acct,
            counters=counters,
            order_ints=np.zeros((cap, O_INT_COLS), dtype=np.int64),
            order_floats=np.zeros((cap, O_FLOAT_COLS), dtype=np.float64),
            fill_ints=np.zeros((cap, F_INT_COLS), dtype=np.int64),
            fill_floats=np.zeros((cap, F_FLOAT_COLS), dtype=np.float64),
            equity=np.zeros((prep.n_ts, 4), dtype=np.float64),
            equity_bar=np.zeros(prep.n_ts, dtype=np.int64),
            event_ints=np.zeros((n_act, EVENT_INT_COLS), dtype=np.int64),
            event_floats=np.zeros((n_act, EVENT_FLOAT_COLS), dtype=np.float64),
            scratch=np.zeros(F_FLOAT_COLS - F_CHARGES - 1, dtype=np.float64),
        )
        self.run = Run(prep.bars, prep.actions, self.params, self.ledger)

    def ensure_room(self, extra: int = 8) -> None:
        """Double the order and fill buffers when fewer than ``extra`` rows are left."""
        led = self.ledger
        if led.counters[N_ORDERS] + extra > led.order_ints.shape[0]:
            led = led._replace(
                order_ints=_grow(led.order_ints), order_floats=_grow(led.order_floats)
            )
        if led.counters[N_FILLS] + extra > led.fill_ints.shape[0]:
            led = led._replace(fill_ints=_grow(led.fill_ints), fill_floats=_grow(led.fill_floats))
        if led is not self.ledger:
            self.ledger = led
            self.run = self.run._replace(ledger=led)

    def output(self) -> Output:
        """Trimmed copies of the buffers."""
        led = self.ledger
        n_o, n_f = int(led.counters[N_ORDERS]), int(led.counters[N_FILLS])
        n_e, n_ev = int(led.counters[N_EQUITY]), int(led.counters[N_EVENTS])
        return Output(
            order_ints=led.order_ints[:n_o],
            order_floats=led.order_floats[:n_o],
            fill_ints=led.fill_ints[:n_f],
            fill_floats=led.fill_floats[:n_f],
            equity=led.equity[:n_e],
            equity_bar=led.equity_bar[:n_e],
            event_ints=led.event_ints[:n_ev],
            event_floats=led.event_floats[:n_ev],
        )


def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.zeros((buffer.shape[0] * 2, buffer.shape[1]), dtype=buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger
