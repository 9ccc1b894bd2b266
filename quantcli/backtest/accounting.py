"""The book: cash and per-symbol positions, updated only by the compiled functions here.

Both strategy kinds replay through the one compiled loop (quantcli.backtest.kernel), which keeps
its state in these arrays and books every cash movement through these functions, so the identity
``equity = cash + holdings`` holds by construction at every step:

- cash segments (delivery, intraday): a fill moves ``quantity * price`` between cash and the
  position; holdings are ``position * last price``.
- futures: positions are settled to the market (daily mark-to-market against the close, and at
  each fill against the fill price), so cash carries realised variation margin and holdings are
  only the unsettled ``position * (last price - settlement price)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np
import polars as pl

from quantcli.backtest.inputs import compiled, helper
from quantcli.backtest.orders import F_BAR, F_PRICE, F_QTY, F_SYM, labels, timestamps
from quantcli.core.dtypes import TS_DTYPE

if TYPE_CHECKING:
    from quantcli.backtest.inputs import Run
    from quantcli.backtest.kernel import Output

# Per-symbol state columns (one row per symbol, float64; counts stored exactly as floats).
# DP_DAY: the session index of the symbol's last fill that paid the DP charge. WORKING and
# LAST_WORKING: the first and last rows of the symbol's list of working orders (-1: none).
# LAST_BAR: the symbol's latest bar replayed so far (-1: none yet).
POS, MARK, REF, TARGET, PEND, PEND_BAR, SQ_DAY, USED, USED_BAR, WORKING, DP_DAY = range(11)
LAST_WORKING, LAST_BAR = 11, 12
STATE_COLS = 13

# Account scalars.
CASH, EQUITY_REF = 0, 1

# Counters: rows used in the buffers, working orders, and where the replay stands (bar,
# phase, the order row a matching pass resumes at, the end of the orders that pass sees,
# whether the resumed row still needs its IOC check, and the row of an order rejected under
# on_reject="error").
N_FILLS, N_ORDERS, N_EQUITY, N_EVENTS, N_WORKING = range(5)
C_BAR, C_PHASE, C_CURSOR, C_SNAP, C_PENDING, C_REJECT = range(5, 11)
COUNTERS = 11

# Corporate-action events applied to positions (for round-trip accounting).
E_BAR, E_SYM, E_SEQ = 0, 1, 2  # ints: bar, symbol, number of fills booked before the event
E_RATIO, E_CASH = 0, 1  # floats: quantity multiplier, cash credited
EVENT_INT_COLS, EVENT_FLOAT_COLS = 3, 2


def new_state(n_symbols: int, cash: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh (per-symbol state, account, counters) arrays for a run."""
    state = np.zeros((n_symbols, STATE_COLS), dtype=np.float64)
    state[:, TARGET] = np.nan
    state[:, PEND] = np.nan
    state[:, MARK] = np.nan
    state[:, PEND_BAR] = -1.0
    state[:, SQ_DAY] = -1.0
    state[:, USED_BAR] = -1.0
    state[:, WORKING] = -1.0
    state[:, DP_DAY] = -1.0
    state[:, LAST_WORKING] = -1.0
    state[:, LAST_BAR] = -1.0
    acct = np.array([cash, cash], dtype=np.float64)
    counters = np.zeros(COUNTERS, dtype=np.int64)
    counters[C_CURSOR] = counters[C_REJECT] = -1
    return state, acct, counters


@compiled()  # also called from Python (an event strategy's ctx.equity)
def holdings(state: np.ndarray, futures: bool) -> tuple[float, float]:
    """(market value of holdings, gross notional exposure) at the last prices."""
    value = 0.0
    gross = 0.0
    for s in range(state.shape[0]):
        pos = state[s, POS]
        if pos == 0.0:
            continue
        mark = state[s, MARK]
        gross += abs(pos) * mark
        if futures:
            value += pos * (mark - state[s, REF])
        else:
            value += pos * mark
    return value, gross


@helper
def book_fill(run: Run, s: int, quantity: float, price: float, fee: float) -> None:
    """Book a fill of signed ``quantity`` at ``price`` paying ``fee``."""
    state, acct = run.ledger.state, run.ledger.acct
    pos = state[s, POS]
    if run.params.futures:
        # Settle the open position at the fill price, then carry the new one from it.
        if pos != 0.0:
            acct[CASH] += pos * (price - state[s, REF])
        state[s, REF] = price
    else:
        acct[CASH] -= quantity * price
    acct[CASH] -= fee
    state[s, POS] = pos + quantity
    if math.isnan(state[s, MARK]):
        state[s, MARK] = price


@helper
def settle(state: np.ndarray, acct: np.ndarray, s: int) -> None:
    """Futures daily settlement: realise the position's move to its last price into cash."""
    pos = state[s, POS]
    if pos != 0.0:
        acct[CASH] += pos * (state[s, MARK] - state[s, REF])
    state[s, REF] = state[s, MARK]


@helper
def apply_action(
    state: np.ndarray, acct: np.ndarray, s: int, ratio: float, amount: float
) -> tuple[float, float]:
    """Apply a split/bonus (``ratio`` shares per share) or a dividend (``amount`` per share).

    Returns (quantity multiplier applied, cash credited). A fractional entitlement is paid out
    in cash at the adjusted last price, as the exchange does for odd lots.
    """
    pos = state[s, POS]
    cash = 0.0
    if amount != 0.0:
        cash += pos * amount
    if ratio != 1.0 and ratio > 0.0:
        exact = pos * ratio
        whole = float(math.trunc(exact))
        mark = state[s, MARK] / ratio
        if not math.isnan(mark):
            cash += (exact - whole) * mark
            state[s, MARK] = mark
        state[s, REF] = state[s, REF] / ratio
        state[s, POS] = whole
    acct[CASH] += cash
    return ratio, cash


TRADE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "entry_ts": TS_DTYPE,
    "exit_ts": TS_DTYPE,
    "side": pl.String(),
    "quantity": pl.Int64(),
    "entry_price": pl.Float64(),
    "exit_price": pl.Float64(),
    "pnl": pl.Float64(),
}


def round_trips(out: Output, ts: np.ndarray, symbols: list[str]) -> pl.DataFrame:
    """Closed round trips (flat to flat per symbol), pnl net of charges and with dividends.

    A fill that reverses a position closes the trade with the part that flattens it and opens
    the next with the rest (charges split pro rata). A split or bonus multiplies an open trade's
    quantities and divides its entry price (the cost basis). Positions still open at the end
    are not trades yet.
    """
    ints, floats = _trips(
        out.fill_ints, out.fill_floats, out.event_ints, out.event_floats, len(symbols)
    )
    return pl.DataFrame(
        {
            "symbol": labels(ints[:, 0], symbols),
            "entry_ts": timestamps(ts[ints[:, 1]]),
            "exit_ts": timestamps(ts[ints[:, 2]]),
            "side": labels(ints[:, 3] > 0, ("short", "long")),
            "quantity": ints[:, 4],
            "entry_price": floats[:, 0],
            "exit_price": floats[:, 1],
            "pnl": floats[:, 2],
        },
        schema=TRADE_SCHEMA,
    )


# Open-trade columns: position, side (+1/-1, 0 = none), entry bar, quantity in, value in,
# quantity out, value out, net cash flow.
_T_POS, _T_SIDE, _T_BAR, _T_QIN, _T_VIN, _T_QOUT, _T_VOUT, _T_FLOW = range(8)


@numba.njit(cache=True)
def _trips(
    fill_ints: np.ndarray,
    fill_floats: np.ndarray,
    event_ints: np.ndarray,
    event_floats: np.ndarray,
    n_symbols: int,
) -> tuple[np.ndarray, np.ndarray]:
    n_fills = fill_ints.shape[0]
    book = np.zeros((n_symbols, 8), dtype=np.float64)
    out_ints = np.zeros((n_fills, 5), dtype=np.int64)  # symbol, entry bar, exit bar, side, qty
    out_floats = np.zeros((n_fills, 3), dtype=np.float64)  # entry price, exit price, pnl
    m = 0
    ev = 0
    for n in range(n_fills):
        # Corporate actions booked before this fill (events are in booking order).
        while ev < event_ints.shape[0] and event_ints[ev, E_SEQ] <= n:
            a = event_ints[ev, E_SYM]
            if book[a, _T_SIDE] != 0.0:
                ratio = event_floats[ev, E_RATIO]
                book[a, _T_POS] = math.trunc(book[a, _T_POS] * ratio)
                # Quantities scale, values do not: the cost basis per share divides.
                book[a, _T_QIN] *= ratio
                book[a, _T_QOUT] *= ratio
                book[a, _T_FLOW] += event_floats[ev, E_CASH]
            ev += 1
        s = fill_ints[n, F_SYM]
        q = float(fill_ints[n, F_QTY])
        price = fill_floats[n, F_PRICE]
        fee = fill_floats[n, fill_floats.shape[1] - 1]
        bar = fill_ints[n, F_BAR]
        while q != 0.0:
            if book[s, _T_SIDE] == 0.0:
                book[s, :] = 0.0
                book[s, _T_SIDE] = 1.0 if q > 0 else -1.0
                book[s, _T_BAR] = bar
            if (q > 0) == (book[s, _T_SIDE] > 0):
                book[s, _T_POS] += q
                book[s, _T_QIN] += abs(q)
                book[s, _T_VIN] += abs(q) * price
                book[s, _T_FLOW] -= q * price + fee
                break
            part = min(abs(q), abs(book[s, _T_POS]))
            signed = part if q > 0 else -part
            share = fee * part / abs(q)
            book[s, _T_POS] += signed
            book[s, _T_QOUT] += part
            book[s, _T_VOUT] += part * price
            book[s, _T_FLOW] -= signed * price + share
            fee -= share
            q -= signed
            if book[s, _T_POS] == 0.0:
                out_ints[m, 0] = s
                out_ints[m, 1] = int(book[s, _T_BAR])
                out_ints[m, 2] = bar
                out_ints[m, 3] = int(book[s, _T_SIDE])
                out_ints[m, 4] = int(book[s, _T_QIN])
                out_floats[m, 0] = book[s, _T_VIN] / book[s, _T_QIN]
                out_floats[m, 1] = book[s, _T_VOUT] / book[s, _T_QOUT]
                out_floats[m, 2] = book[s, _T_FLOW]
                book[s, _T_SIDE] = 0.0
                m += 1
    return out_ints[:m], out_floats[:m]
