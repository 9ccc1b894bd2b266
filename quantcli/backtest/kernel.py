"""The one compiled replay loop, for signal and event strategies alike, and the run inputs and
state it works on (:class:`Prepared`, :class:`Book`).

Bars arrive as flat arrays sorted by (ts, symbol). :func:`advance` does every bar's book work:
corporate actions (a split converts an event strategy's working orders, and cancels a signal
strategy's working target order), the intraday square-off, matching the working orders of
every type and time in force (fills by quantcli.backtest.fills.execute), futures settlement
and the equity snapshot. A bar's work is a sequence of phases; the loop's position (bar and
phase, and within a matching pass the order it resumes at) lives in the ledger's counters, so
it can stop anywhere and resume:

- a signal strategy has already turned the bars into one target per bar (shares or a weight
  of equity; NaN = no opinion). The loop acts on a target when it changes: at the next bar's
  open (``fill="open"``) or at the same bar's close (``fill="close"``), so a target computed
  from bar t never trades inside bar t's range. It runs to the end in one call, stopping only
  to let the caller grow the buffers (and report progress);
- an event strategy's orders are rows of the same order buffers, placed by :func:`place` and
  cancelled by :func:`cancel`; the loop returns to Python at a bar's strategy point (for
  ``on_bar``) and after each fill (for ``on_fill``), see quantcli.backtest.events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from quantcli.backtest.accounting import (
    C_BAR,
    C_CURSOR,
    C_PENDING,
    C_PHASE,
    C_REJECT,
    C_SNAP,
    CASH,
    E_BAR,
    E_CASH,
    E_RATIO,
    E_SEQ,
    E_SYM,
    EQUITY_REF,
    EVENT_FLOAT_COLS,
    EVENT_INT_COLS,
    LAST_BAR,
    LAST_WORKING,
    MARK,
    N_EQUITY,
    N_EVENTS,
    N_FILLS,
    N_ORDERS,
    N_WORKING,
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
from quantcli.backtest.costs import formula_address, parse_costs
from quantcli.backtest.fills import execute, trigger_price
from quantcli.backtest.inputs import (
    EOD,
    FUNDING,
    LAST_OF_TS,
    SQUARE_OFF,
    Actions,
    Bars,
    Ledger,
    OrderRequest,
    Params,
    Run,
    Switch,
    Ticks,
    compiled,
    entry,
    helper,
    switch,
    tick_at,
)
from quantcli.backtest.orders import (
    AT_CLOSE,
    DAY,
    EV_CANCEL,
    EV_EXPIRE,
    EV_FILL,
    EV_FILL_ALL,
    EV_REJECT,
    F_CHARGES,
    F_FLOAT_COLS,
    F_INT_COLS,
    GTC,
    IOC,
    MARKET,
    NO_REASON,
    O_BAR,
    O_DAY,
    O_FILLED,
    O_FLAGS,
    O_FLOAT_COLS,
    O_ID,
    O_INT_COLS,
    O_LIMIT,
    O_NEXT,
    O_QTY,
    O_REASON,
    O_SIDE,
    O_STATUS,
    O_STOP,
    O_SYM,
    O_TIF,
    O_TYPE,
    OPEN,
    OPEN_PARTIAL,
    R_ACTION,
    R_LOT,
    R_SQUARED_OFF,
    R_SUPERSEDED,
    R_USER,
    TRIGGERED,
    transition,
)
from quantcli.backtest.slippage import FORMULA, parse_slippage
from quantcli.errors import UsageError
from quantcli.market.instruments import ROUND_DOWN, ROUND_UP, round_to_tick_kernel
from quantcli.market.segments import segment_rules

# A bar's phases, in order (counters[C_PHASE] is the next one to do). An event strategy's
# on_bar runs at PH_STRATEGY.
(
    PH_ACTIONS,
    PH_OPEN,
    PH_TARGET_OPEN,
    PH_MATCH_OPEN,
    PH_MARK,
    PH_STRATEGY,
    PH_MATCH_CLOSE,
    PH_CLOSE,
    PH_SETTLE,
    PH_SNAPSHOT,
) = range(10)

# Why advance returned: it reached the stop (or the end), booked a fill of an event
# strategy's order (on_fill is due), needs bigger buffers, or an order was rejected under
# on_reject="error" (its row is counters[C_REJECT]).
AT_STOP, AT_FILL, AT_ROOM, AT_REJECT = range(4)

# Rows each phase may add to the buffers before the loop checks again: two orders and two
# fills (an intraday square-off, and a target order and its fill).
_ROOM = 4


@compiled(nogil=True)
def advance(
    run: Run, stop: int, square_off: Switch, book_actions: Switch, event_orders: Switch
) -> int:
    """Replay from the ledger's position to bar ``stop``'s strategy point (or to the end when
    ``stop`` is past the last bar); returns why it stopped (AT_*). The switches (see
    :func:`switches`) leave out what the run cannot meet: the intraday square-off, corporate
    actions, and an event strategy's limit, stop and IOC orders (a signal strategy's orders
    are market orders). A daily signal run compiles about a third less."""
    # The loop reads plain local arrays taken out of the structures once: numba counts
    # references on the arrays of a structure held in a local, which costs per bar. The
    # helpers below read fields through ``run`` for the same reason.
    bars, prm, led = run.bars, run.params, run.ledger
    sym, day, flags, target = bars.sym, bars.day, bars.flags, bars.target
    open_, close = bars.open, bars.close
    act_bar = run.actions.bar
    state, acct, counters = led.state, led.acct, led.counters
    fill_cap, order_cap = led.fill_ints.shape[0] - _ROOM, led.order_ints.shape[0] - _ROOM
    fill_close, intraday, futures, events = prm.fill_close, prm.intraday, prm.futures, prm.events
    n = sym.shape[0]
    n_act = act_bar.shape[0]
    i = counters[C_BAR]
    phase = counters[C_PHASE]
    code = AT_STOP
    while i < n:
        if counters[N_FILLS] > fill_cap or counters[N_ORDERS] > order_cap:
            code = AT_ROOM
            break
        s = sym[i]
        d = day[i]
        if phase == PH_ACTIONS:
            if book_actions is not None:
                ap = counters[N_EVENTS]
                while ap < n_act and act_bar[ap] == i:
                    _book_action(run, ap, i)
                    ap += 1
            phase = PH_OPEN
        if phase == PH_OPEN:
            phase = PH_TARGET_OPEN
            if square_off is not None:
                squaring = state[s, SQ_DAY] != d and flags[i] & SQUARE_OFF
                if squaring and _square_off(run, i, s, open_[i]) and events:
                    code = AT_FILL
                    break
        if phase == PH_TARGET_OPEN:
            # A signal strategy's target from the previous bar, at this bar's open.
            pend = state[s, PEND]
            if not math.isnan(pend):
                state[s, PEND] = math.nan
                blocked = intraday and state[s, SQ_DAY] == d
                if not blocked and pend != state[s, TARGET]:
                    _place_target(run, int(state[s, PEND_BAR]), s, pend, open_[i])
            phase = PH_MATCH_OPEN
            _start_match(run.ledger, s)
        if phase == PH_MATCH_OPEN:
            if counters[C_CURSOR] >= 0:
                code = _match(run, i, phase == PH_MATCH_CLOSE, event_orders)
                if code != AT_STOP:
                    break
            phase = PH_MARK
        if phase == PH_MARK:
            state[s, MARK] = close[i]
            state[s, LAST_BAR] = i
            phase = PH_STRATEGY
        if phase == PH_STRATEGY:
            if i == stop:
                break
            t = target[i]
            if not (events or math.isnan(t)):
                if not fill_close:
                    state[s, PEND] = t
                    state[s, PEND_BAR] = i
                elif not (intraday and state[s, SQ_DAY] == d) and t != state[s, TARGET]:
                    _place_target(run, i, s, t, close[i])
            phase = PH_MATCH_CLOSE
            _start_match(run.ledger, s)
        if phase == PH_MATCH_CLOSE:
            if fill_close and counters[C_CURSOR] >= 0:
                code = _match(run, i, phase == PH_MATCH_CLOSE, event_orders)
                if code != AT_STOP:
                    break
            phase = PH_CLOSE
        if phase == PH_CLOSE:
            phase = PH_SETTLE
            if square_off is not None:
                squaring = flags[i] & EOD and state[s, SQ_DAY] != d
                if squaring and _square_off(run, i, s, close[i]) and events:
                    code = AT_FILL
                    break
        if phase == PH_SETTLE:
            if futures and flags[i] & EOD:
                settle(state, acct, s)
            phase = PH_SNAPSHOT
        if flags[i] & LAST_OF_TS:
            _snapshot(run, i)
        i += 1
        phase = PH_ACTIONS
    counters[C_BAR] = i
    counters[C_PHASE] = phase
    return code


# --------------------------------------------------------------------------- the phases


@helper
def _book_action(run: Run, ap: int, i: int) -> None:
    # Corporate action ``ap`` before bar ``i``. A split or bonus converts an event strategy's
    # working orders (they keep their meaning) and cancels a signal strategy's working target
    # order (the next target is computed on the converted position).
    a = run.actions.sym[ap]
    state = run.ledger.state
    ratio, cash = apply_action(
        state, run.ledger.acct, a, run.actions.ratio[ap], run.actions.amount[ap]
    )
    if ratio != 1.0:
        row = int(state[a, WORKING])
        while row >= 0:
            nxt = run.ledger.order_ints[row, O_NEXT]
            if run.params.events:
                _convert(run, i, row, ratio)
            else:
                finish_order(run.ledger, row, int(EV_CANCEL), int(R_ACTION))
            row = nxt
    ledger = run.ledger
    ledger.event_ints[ap, E_BAR] = i
    ledger.event_ints[ap, E_SYM] = a
    ledger.event_ints[ap, E_SEQ] = ledger.counters[N_FILLS]
    ledger.event_floats[ap, E_RATIO] = ratio
    ledger.event_floats[ap, E_CASH] = cash
    ledger.counters[N_EVENTS] = ap + 1


@helper
def _convert(run: Run, i: int, row: int, ratio: float) -> None:
    # A split or bonus: the order's traded prices divided by the ratio (on the tick, against
    # the trader, as when placed) and the quantity left multiplied (in lots); one with nothing
    # left (a consolidation of a small order) is cancelled.
    order_ints, order_floats = run.ledger.order_ints, run.ledger.order_floats
    lot = int(run.bars.lot[i])
    filled = order_ints[row, O_FILLED]
    left = int((order_ints[row, O_QTY] - filled) * ratio) // lot * lot
    if left == 0:
        finish_order(run.ledger, row, int(EV_CANCEL), int(R_ACTION))
        return
    order_ints[row, O_QTY] = filled + left
    s = order_ints[row, O_SYM]
    d = run.bars.day[i]
    buy = order_ints[row, O_SIDE] > 0
    limit, stop = order_floats[row, O_LIMIT], order_floats[row, O_STOP]
    if not math.isnan(limit):
        order_floats[row, O_LIMIT] = on_tick(run, s, d, limit / ratio, not buy)
    if not math.isnan(stop):
        order_floats[row, O_STOP] = on_tick(run, s, d, stop / ratio, buy)


@helper
def _square_off(run: Run, i: int, s: int, price: float) -> bool:
    # Intraday (MIS) square-off: cancel the symbol's working orders and close the position at
    # ``price``; the broker's square-off ignores volume caps and circuits. Trading stops for
    # the session. True when it booked a fill.
    state, order_ints = run.ledger.state, run.ledger.order_ints
    state[s, SQ_DAY] = run.bars.day[i]
    state[s, TARGET] = math.nan
    while state[s, WORKING] >= 0.0:
        finish_order(run.ledger, int(state[s, WORKING]), int(EV_CANCEL), int(R_SQUARED_OFF))
    pos = state[s, POS]
    if pos == 0.0:
        return False
    request = OrderRequest(i, i, s, pos < 0.0, MARKET, DAY, int(abs(pos)), math.nan, math.nan)
    row = new_order(run, request)
    order_ints[row, O_REASON] = R_SQUARED_OFF
    # Forced, it fills in full.
    q, _ = execute(run, i, order_ints[row, O_ID], -pos, price, bool(True))  # noqa: UP018
    fill_order(run.ledger, row, int(q))
    return True


@helper
def _place_target(run: Run, i: int, s: int, target: float, price: float) -> None:
    # A signal strategy's new target supersedes its working order; the order for the
    # difference is stamped with the bar that produced the target (with fill="open" it first
    # trades at the next bar).
    state = run.ledger.state
    state[s, TARGET] = target
    while state[s, WORKING] >= 0.0:
        finish_order(run.ledger, int(state[s, WORKING]), int(EV_CANCEL), int(R_SUPERSEDED))
    shares = target * run.ledger.acct[EQUITY_REF] / price if run.params.weights else target
    lot = run.bars.lot[i]
    delta = math.trunc((shares - state[s, POS]) / lot) * lot
    if delta == 0.0 or not math.isfinite(delta):
        return
    request = OrderRequest(i, i, s, delta > 0.0, MARKET, GTC, int(abs(delta)), math.nan, math.nan)
    _link(run.ledger, new_order(run, request))


@helper
def _start_match(ledger: Ledger, s: int) -> None:
    # A matching pass over symbol ``s``'s working orders: the orders placed during it (by an
    # on_fill) wait for the next pass.
    counters = ledger.counters
    counters[C_CURSOR] = int(ledger.state[s, WORKING])
    counters[C_SNAP] = counters[N_ORDERS]
    counters[C_PENDING] = 0


@helper
def _match(run: Run, i: int, at_close: bool, event_orders: Switch) -> int:
    # Work bar ``i``'s symbol's orders, oldest first, from the pass's cursor: market orders at
    # the open (or, placed with fill="close", at the close), limit and stop orders where the
    # bar trades through their price. A DAY order expires when its session has passed, an IOC
    # order after its one bar. Returns AT_STOP at the end of the pass, AT_FILL after a fill
    # of an event strategy's order (the pass resumes after its IOC check), AT_REJECT.
    bars, led = run.bars, run.ledger
    counters, order_ints = led.counters, led.order_ints
    d = bars.day[i]
    want = AT_CLOSE if at_close else 0
    market = bars.close[i] if at_close else bars.open[i]
    row = counters[C_CURSOR]
    snap = counters[C_SNAP]
    if event_orders is not None and counters[C_PENDING]:
        counters[C_PENDING] = 0
        _expire_ioc(run.ledger, row)
        row = order_ints[row, O_NEXT]
    while 0 <= row < snap:
        nxt = order_ints[row, O_NEXT]
        status = order_ints[row, O_STATUS]
        if _working(status) and (order_ints[row, O_FLAGS] & AT_CLOSE) == want:
            if order_ints[row, O_TIF] == DAY and order_ints[row, O_DAY] != d:
                if order_ints[row, O_DAY] >= 0:
                    finish_order(run.ledger, row, int(EV_EXPIRE), int(NO_REASON))
                    row = nxt
                    continue
                order_ints[row, O_DAY] = d
            price = market
            if event_orders is not None and order_ints[row, O_TYPE] != MARKET:
                price = _trigger(run, i, row)
            if not math.isnan(price):
                remaining = float(order_ints[row, O_QTY] - order_ints[row, O_FILLED])
                signed = remaining if order_ints[row, O_SIDE] > 0 else -remaining
                forced = bool(False)  # noqa: UP018 - not a literal (see finish_order)
                q, reason = execute(run, i, order_ints[row, O_ID], signed, price, forced)
                if reason != NO_REASON:
                    finish_order(run.ledger, row, int(EV_REJECT), reason)
                    if run.params.reject_error:
                        counters[C_REJECT] = row
                        return AT_REJECT
                elif q > 0.0:
                    fill_order(run.ledger, row, int(q))
                    if event_orders is not None:
                        counters[C_CURSOR] = row
                        counters[C_PENDING] = 1
                        return AT_FILL
            if event_orders is not None:
                _expire_ioc(run.ledger, row)
        row = nxt
    counters[C_CURSOR] = -1
    return AT_STOP


@helper
def _trigger(run: Run, i: int, row: int) -> float:
    # The price a limit or stop order trades at in bar ``i`` (NaN: none); remembers a stop
    # reached.
    order_ints, order_floats = run.ledger.order_ints, run.ledger.order_floats
    flags = order_ints[row, O_FLAGS]
    price, triggered = trigger_price(
        order_ints[row, O_TYPE], order_ints[row, O_SIDE] > 0, order_floats[row, O_LIMIT],
        order_floats[row, O_STOP], (flags & TRIGGERED) != 0, run.bars.open[i], run.bars.high[i],
        run.bars.low[i],
    )  # fmt: skip
    order_ints[row, O_FLAGS] = (flags | TRIGGERED) if triggered else (flags & ~TRIGGERED)
    return price


@helper
def _expire_ioc(ledger: Ledger, row: int) -> None:
    order_ints = ledger.order_ints
    if order_ints[row, O_TIF] == IOC and _working(order_ints[row, O_STATUS]):
        finish_order(ledger, row, int(EV_EXPIRE), int(NO_REASON))


@helper
def _working(status: int) -> bool:
    return status in (OPEN, OPEN_PARTIAL)


@helper
def _snapshot(run: Run, bar: int) -> None:
    # Append the equity row (cash, holdings, equity, gross exposure) after ``bar``.
    ledger = run.ledger
    acct, counters = ledger.acct, ledger.counters
    value, gross = holdings(ledger.state, run.params.futures)
    n = counters[N_EQUITY]
    counters[N_EQUITY] = n + 1
    total = acct[CASH] + value
    ledger.equity[n, 0] = acct[CASH]
    ledger.equity[n, 1] = value
    ledger.equity[n, 2] = total
    ledger.equity[n, 3] = gross
    ledger.equity_bar[n] = bar
    acct[EQUITY_REF] = total


# --------------------------------------------------------------------------- orders


@helper
def new_order(run: Run, request: OrderRequest) -> int:
    """Append an open order (not yet working: see _link) for ``request``, whose prices are
    final; returns its row. A market order works at closes when the run fills at the close."""
    counters = run.ledger.counters
    order_ints, order_floats = run.ledger.order_ints, run.ledger.order_floats
    n = counters[N_ORDERS]
    counters[N_ORDERS] = n + 1
    order_ints[n, O_ID] = n + 1
    order_ints[n, O_BAR] = request.bar
    order_ints[n, O_SYM] = request.sym
    order_ints[n, O_SIDE] = 1 if request.buy else -1
    order_ints[n, O_TYPE] = request.kind
    order_ints[n, O_TIF] = request.tif
    order_ints[n, O_QTY] = request.quantity
    order_ints[n, O_STATUS] = OPEN
    order_ints[n, O_FILLED] = 0
    order_ints[n, O_REASON] = NO_REASON
    order_ints[n, O_NEXT] = -1
    order_ints[n, O_DAY] = -1
    at_close = request.kind == MARKET and run.params.fill_close
    order_ints[n, O_FLAGS] = AT_CLOSE if at_close else 0
    order_floats[n, O_LIMIT] = request.limit
    order_floats[n, O_STOP] = request.stop
    return int(n)


@helper
def _link(ledger: Ledger, row: int) -> None:
    # Append order ``row`` to its symbol's working orders.
    state, order_ints = ledger.state, ledger.order_ints
    s = order_ints[row, O_SYM]
    tail = int(state[s, LAST_WORKING])
    if tail >= 0:
        order_ints[tail, O_NEXT] = row
    else:
        state[s, WORKING] = row
    state[s, LAST_WORKING] = row
    ledger.counters[N_WORKING] += 1


@helper
def _unlink(ledger: Ledger, row: int) -> None:
    # Take order ``row`` out of its symbol's working orders (if it is in them). Its O_NEXT is
    # kept, so a matching pass standing on it still finds the orders after it.
    state, order_ints = ledger.state, ledger.order_ints
    s = order_ints[row, O_SYM]
    prev = -1
    cur = int(state[s, WORKING])
    while cur >= 0 and cur != row:
        prev = cur
        cur = order_ints[cur, O_NEXT]
    if cur < 0:
        return
    nxt = order_ints[row, O_NEXT]
    if prev >= 0:
        order_ints[prev, O_NEXT] = nxt
    else:
        state[s, WORKING] = nxt
    if nxt < 0:
        state[s, LAST_WORKING] = prev
    ledger.counters[N_WORKING] -= 1


@helper
def finish_order(ledger: Ledger, row: int, event: int, reason: int) -> None:
    """End a working order by ``event`` (cancel, expire or reject) for ``reason``.

    Compiled callers pass constant codes as ``int(EV_CANCEL)`` (and flags as ``bool(True)``):
    numba compiles a callee once per literal argument value otherwise."""
    order_ints = ledger.order_ints
    order_ints[row, O_STATUS] = transition(order_ints[row, O_STATUS], event)
    order_ints[row, O_REASON] = reason
    _unlink(ledger, row)


@helper
def fill_order(ledger: Ledger, row: int, quantity: int) -> None:
    """Record a fill of ``quantity`` (> 0) shares of order ``row``."""
    order_ints = ledger.order_ints
    filled = order_ints[row, O_FILLED] + quantity
    order_ints[row, O_FILLED] = filled
    event = EV_FILL_ALL if filled == order_ints[row, O_QTY] else EV_FILL
    order_ints[row, O_STATUS] = transition(order_ints[row, O_STATUS], event)
    if event == EV_FILL_ALL:
        _unlink(ledger, row)


@compiled()
def place(run: Run, request: OrderRequest) -> int:
    """Place an event strategy's order (see events.Context.buy); returns its row. Its
    quantity is rounded down to the lot of bar ``request.at`` and its prices to the tick
    against the trader (a buy limit down, a buy stop up). Below one lot, or once the symbol
    is squared off for the session, it is rejected."""
    s, bar = request.sym, request.bar
    lot = int(run.bars.lot[request.at])
    quantity = request.quantity // lot * lot
    d = run.bars.day[bar]
    limit, stop = request.limit, request.stop
    if not math.isnan(limit):
        limit = on_tick(run, s, d, limit, not request.buy)
    if not math.isnan(stop):
        stop = on_tick(run, s, d, stop, request.buy)
    row = new_order(
        run,
        OrderRequest(
            bar, request.at, s, request.buy, request.kind, request.tif, quantity, limit, stop
        ),
    )
    if quantity == 0:
        finish_order(run.ledger, row, int(EV_REJECT), int(R_LOT))
    elif run.params.intraday and run.ledger.state[s, SQ_DAY] == d:
        finish_order(run.ledger, row, int(EV_REJECT), int(R_SQUARED_OFF))
    else:
        _link(run.ledger, row)
    return row


@compiled()
def cancel(ledger: Ledger, row: int) -> bool:
    """Cancel working order ``row`` for the strategy; False when it is not working. It takes
    the ledger alone: an entry taking a Run compiled ~1 s more, mostly unboxing the Run."""
    if not _working(ledger.order_ints[row, O_STATUS]):
        return False
    finish_order(ledger, row, int(EV_CANCEL), int(R_USER))
    return True


@helper
def on_tick(run: Run, s: int, d: int, price: float, up: bool) -> float:
    """``price`` of symbol ``s`` on session ``d`` rounded to its tick (up or down)."""
    tick = tick_at(run.ticks, s, d, price)
    return round_to_tick_kernel(price, tick, ROUND_UP if up else ROUND_DOWN)


# --------------------------------------------------------------------------- inputs and state

# Bars per call of the signal replay (between progress reports) and per chunk of the event
# loop.
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
    ticks: Ticks  # the symbols' tick schedules over the sessions

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


def params_for(config: BacktestConfig, *, weights: bool = False, events: bool = False) -> Params:
    """The compiled parameters of ``config`` (``weights``: targets are weights of equity;
    ``events``: an event strategy).

    Every field is converted to its exact Python type: numba compiles one specialisation per
    combination of types, and its on-disk cache should hold one."""
    costs = parse_costs(config.costs)
    slip = parse_slippage(config.slippage)
    formula: Any = slip.formula
    if getattr(formula, "_sig", None) != FORMULA:
        # The replay calls the formula by its address: only a cfunc of FORMULA is safe.
        raise UsageError(
            f"slippage model {slip.name!r}: its formula must be a numba cfunc of {FORMULA}"
        )
    rules = segment_rules(config.segment)
    return Params(
        participation=float(config.participation),
        slip=int(formula.address),
        slip_param=float(slip.param),
        costs=formula_address(costs),
        cost_param=float(costs.param),
        margin=float(config.margin),
        funding=FUNDING[rules.funding],
        fill_close=config.fill == "close",
        weights=bool(weights),
        intraday=rules.square_off is not None,
        shortable=bool(config.allow_short and rules.shortable),
        futures=rules.marked_to_market,
        reject_error=config.on_reject == "error",
        events=bool(events),
    )


def switches(params: Params, n_actions: int) -> tuple[Switch, Switch, Switch]:
    """The switches :func:`advance` is compiled with for a run of ``params`` with
    ``n_actions`` corporate actions: (intraday square-off, corporate actions, an event
    strategy's orders)."""
    return switch(params.intraday), switch(n_actions > 0), switch(params.events)


class Book:
    """The mutable state of one run (:class:`Ledger`, whose buffers grow), its inputs, and
    the compiled entries that work on them."""

    def __init__(
        self,
        prep: Prepared,
        config: BacktestConfig,
        *,
        weights: bool = False,
        events: bool = False,
    ) -> None:
        state, acct, counters = new_state(len(prep.symbols), config.cash)
        cap = _capacity(prep.n)
        n_act = prep.actions.bar.shape[0]
        self.prep = prep
        self.params = params_for(config, weights=weights, events=events)
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
        self.run = Run(prep.bars, prep.actions, self.params, prep.ticks, self.ledger)
        self._switches = switches(self.params, n_act)
        self._advance = entry(advance, self.run, 0, *self._switches)
        self._place: Any = None
        self._cancel: Any = None

    def advance(self, stop: int) -> int:
        """Replay to bar ``stop``'s strategy point (see :func:`advance`); returns AT_*."""
        code: int = self._advance(self.run, stop, *self._switches)
        return code

    def place(self, request: OrderRequest) -> int:
        """Place an event strategy's order (see :func:`place`); returns its row."""
        self.ensure_room()
        if self._place is None:
            self._place = entry(place, self.run, request)
        row: int = self._place(self.run, request)
        return row

    def cancel(self, row: int) -> bool:
        """Cancel working order ``row`` (see :func:`cancel`)."""
        if self._cancel is None:
            self._cancel = entry(cancel, self.ledger, row)
        done: bool = self._cancel(self.ledger, row)
        return done

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


def _capacity(n: int) -> int:
    """The order and fill rows a run of ``n`` bars starts with: a power of two from 256 to
    about a row per 16 bars. Each time they fill up the replay returns to grow them (a copy
    and a re-entry), which from 256 rows was six times on the signal benchmark's 250 k bars
    and 9,651 orders; zeroed rows that are never written cost no memory."""
    return max(256, 1 << (n // 16).bit_length())


def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.zeros((buffer.shape[0] * 2, buffer.shape[1]), dtype=buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger
