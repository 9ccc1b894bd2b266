"""Fill rules: when an order trades against a bar, at what price and for how much.

- Limit and stop orders fill when the bar trades through their price, gap-aware: a bar that
  opens beyond the price fills at the open (the better price for a limit, the worse for a stop).
- A bar locked at its circuit (high == low) fills nothing on the locked side: locked above the
  previous close is an upper circuit (no sellers, so buys do not fill), below it a lower one.
- At most ``participation`` of the bar's volume fills per symbol and bar (rounded down to lots);
  the rest stays working.
- Slippage moves the price against the trader and the result is rounded to the tick in the
  adverse direction (up for buys, down for sells).
- Funding, by segment: delivery buys are cut to what cash pays for (charges included);
  intraday and futures reject an order that would lift the margin (``margin`` x gross
  notional) above equity; options pay buys' premium from cash and margin their short sales.
  An order that would open a short where shorting is not allowed is rejected.

:func:`execute` is the one implementation of these checks and of the booking, shared by the
compiled signal kernel and the Python event loop.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.extending import intrinsic, overload

from quantcli.backtest.accounting import (
    CASH,
    DP_DAY,
    MARK,
    N_FILLS,
    POS,
    USED,
    USED_BAR,
    book_fill,
    holdings,
)
from quantcli.backtest.costs import DP, fill_costs
from quantcli.backtest.inputs import (
    FUND_MARGIN,
    FUND_PREMIUM,
    Run,
    compiled,
    helper,
    previous_close,
    tick_at,
)
from quantcli.backtest.orders import (
    F_BAR,
    F_CHARGES,
    F_ID,
    F_ORDER,
    F_PRICE,
    F_QTY,
    F_SLIPPAGE,
    F_SYM,
    LIMIT,
    NO_REASON,
    R_CASH,
    R_MARGIN,
    R_SHORT,
    STOP,
)
from quantcli.market.instruments import ROUND_DOWN, ROUND_UP, round_to_tick_kernel

_EPS = 1e-9


@compiled()
def circuit_blocked(is_buy: bool, high: float, low: float, prev_close: float) -> bool:
    """True when the bar is locked at a circuit on this order's side."""
    if high != low or math.isnan(prev_close):
        return False
    return high > prev_close if is_buy else low < prev_close


@compiled()
def trigger_price(  # noqa: PLR0913, PLR0917 - one scalar per bar price: the tested contract
    kind: int,
    is_buy: bool,
    limit: float,
    stop: float,
    triggered: bool,
    open_: float,
    high: float,
    low: float,
) -> tuple[float, bool]:
    """(price at which the order trades in this bar or NaN, stop triggered) for non-market
    orders; gap-aware (a bar opening through the price fills at the open)."""
    if kind == LIMIT:
        return _limit_price(is_buy, limit, open_, high, low), triggered
    if not triggered:
        if is_buy and high >= stop:
            triggered = True
            gap = open_ >= stop
        elif not is_buy and low <= stop:
            triggered = True
            gap = open_ <= stop
        else:
            return math.nan, False
        if kind == STOP:
            return (open_ if gap else stop), True
        if not gap:
            # Triggered inside the bar: the limit fills at the stop when the stop is within it,
            # else only if the bar later reaches the limit.
            within = stop <= limit if is_buy else stop >= limit
            if within:
                return stop, True
            reached = low <= limit if is_buy else high >= limit
            return (limit if reached else math.nan), True
    if kind == STOP:
        return open_, True
    return _limit_price(is_buy, limit, open_, high, low), True


@helper
def _limit_price(is_buy: bool, limit: float, open_: float, high: float, low: float) -> float:
    if is_buy:
        if open_ <= limit:
            return open_
        return limit if low <= limit else math.nan
    if open_ >= limit:
        return open_
    return limit if high >= limit else math.nan


@helper
def execute(
    run: Run, bar: int, order_id: int, signed: float, ref_price: float, forced: bool
) -> tuple[float, int]:
    """Try to fill up to ``signed`` shares (positive buys, negative sells) at ``ref_price``
    in bar ``bar`` for order ``order_id``.

    Returns (quantity filled, unsigned; reason code). A zero fill with NO_REASON means "not
    this bar" (circuit lock or no volume left); a reason means the order is rejected. A
    delivery buy cut to the cash available fills what it can and keeps working for the rest
    (a rebalance's buys complete once its sells have paid in). ``forced`` (an intraday
    square-off) skips the circuit, volume, shorting and funding checks. The DP charge is paid
    once per symbol and session.
    """
    state, acct = run.ledger.state, run.ledger.acct
    s = run.bars.sym[bar]
    day = run.bars.day[bar]
    is_buy = signed > 0.0
    lot = run.bars.lot[bar]
    if state[s, USED_BAR] != bar:
        state[s, USED_BAR] = bar
        state[s, USED] = 0.0
    q = abs(signed)
    if not forced:
        b = run.bars
        if circuit_blocked(is_buy, b.high[bar], b.low[bar], previous_close(b, bar)):
            return 0.0, NO_REASON
        room = math.floor(run.params.participation * run.bars.volume[bar] - state[s, USED] + _EPS)
        q = min(q, math.floor(room / lot) * lot)
        if q <= 0.0:
            return 0.0, NO_REASON
    pos = state[s, POS]
    if not is_buy and not (forced or run.params.shortable) and pos - q < 0.0:
        return 0.0, R_SHORT
    dp_paid = state[s, DP_DAY] == day
    price, fee = _priced(run, bar, q if is_buy else -q, ref_price, dp_paid)
    if not forced and is_buy and run.params.funding != FUND_MARGIN:
        cash = acct[CASH]
        while q > 0.0 and q * price + fee > cash:
            q = min(q - lot, math.floor(cash / price / lot) * lot)
            if q > 0.0:
                price, fee = _priced(run, bar, q, ref_price, dp_paid)
        if q <= 0.0:
            return 0.0, R_CASH
    signed = q if is_buy else -q
    margined = run.params.funding == FUND_MARGIN or (
        run.params.funding == FUND_PREMIUM and not is_buy
    )
    if not forced and margined and abs(pos + signed) > abs(pos):
        value, gross = holdings(state, run.params.futures)
        mark = state[s, MARK]
        if math.isnan(mark):
            mark = price
        after = gross - abs(pos) * mark + abs(pos + signed) * price
        if run.params.margin * after > acct[CASH] + value - fee:
            return 0.0, R_MARGIN
    book_fill(run, s, signed, price, fee)
    state[s, USED] += q
    scratch = run.ledger.scratch
    if scratch[DP] > 0.0:
        state[s, DP_DAY] = day
    n = run.ledger.counters[N_FILLS]
    run.ledger.counters[N_FILLS] = n + 1
    fill_ints, fill_floats = run.ledger.fill_ints, run.ledger.fill_floats
    fill_ints[n, F_ID] = n + 1
    fill_ints[n, F_ORDER] = order_id
    fill_ints[n, F_BAR] = bar
    fill_ints[n, F_SYM] = s
    fill_ints[n, F_QTY] = int(signed)
    fill_floats[n, F_PRICE] = price
    fill_floats[n, F_SLIPPAGE] = abs(price - ref_price) * q
    for k in range(scratch.shape[0]):
        fill_floats[n, F_CHARGES + k] = scratch[k]
    fill_floats[n, F_CHARGES + scratch.shape[0]] = fee
    return q, NO_REASON


@helper
def _priced(
    run: Run, bar: int, signed: float, ref_price: float, dp_paid: bool
) -> tuple[float, float]:
    # The fill price (slipped, on the tick against the trader) and charges of ``signed``
    # shares; the charge components land in the ledger's scratch.
    is_buy = signed > 0.0
    q = abs(signed)
    frac = call_formula(
        run.params.slip, run.params.slip_param, q, run.bars.volume[bar], run.bars.slip_input[bar]
    )
    raw = ref_price * (1.0 + frac) if is_buy else ref_price * (1.0 - frac)
    # The bar's tick: its symbol's schedule on its session, in the band of its open price.
    b = run.bars
    tick = tick_at(run.ticks, b.sym[bar], b.day[bar], b.open[bar])
    price = round_to_tick_kernel(raw, tick, ROUND_UP if is_buy else ROUND_DOWN)
    fee = fill_costs(run, bar, signed, price, dp_paid)
    return price, fee


_FORMULA_C = ctypes.CFUNCTYPE(
    ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double
)


def call_formula(address: int, param: float, quantity: float, volume: float, x: float) -> float:
    """Call the slippage formula (a cfunc of signature FORMULA) whose C wrapper is at
    ``address`` (compiled: a direct call, see _call_at; interpreted: through ctypes).

    Params carries the formula as that address, not as a numba first-class function:
    unboxing a function argument unpickles its signature twice, which made every entry into
    compiled code with a Run cost ~6 us instead of ~0.8 us. The address is read at run time,
    so the compiled code (and its cache) holds no process's pointer."""
    return float(_FORMULA_C(address)(param, quantity, volume, x))


@overload(call_formula)
def _call_formula_compiled(address: Any, param: Any, quantity: Any, volume: Any, x: Any) -> Any:
    del address, param, quantity, volume, x

    # numba requires the implementation's parameters to be exactly the typing function's.
    def impl(address: Any, param: Any, quantity: Any, volume: Any, x: Any) -> Any:
        return _call_at(address, param, quantity, volume, x)

    return impl


def _typed_call_at(
    typingctx: Any, address: Any, param: Any, quantity: Any, volume: Any, x: Any
) -> Any:
    # The intrinsic: a C call through the pointer ``address``.
    del typingctx, address, param, quantity, volume, x
    sig = types.float64(types.int64, types.float64, types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        del context, signature
        double = ir.DoubleType()
        fnty = ir.FunctionType(double, [double] * 4)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fn, list(args[1:]))

    return sig, codegen


_call_at: Any = intrinsic(_typed_call_at)
