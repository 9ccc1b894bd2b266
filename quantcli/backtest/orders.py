"""Order and fill domain types, the integer codes the compiled kernel uses for them, and the
typed frames a run reports them in.

The kernel cannot hold Python objects, so order types, time-in-force, statuses and reasons are
small integer codes; the tuples below turn them back into the strings of the result frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numba
import numpy as np
import polars as pl

from quantcli.core.dtypes import TS_DTYPE
from quantcli.market.charges import CHARGE_COMPONENTS

# Order types (index into ORDER_TYPES).
MARKET, LIMIT, STOP, STOP_LIMIT = 0, 1, 2, 3
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")

# Time in force. DAY works through the session the order first becomes eligible in (so a market
# order placed at a daily bar's close is good for the next session's open); IOC gets one bar;
# GTC works until filled or cancelled.
DAY, IOC, GTC = 0, 1, 2
TIFS = ("DAY", "IOC", "GTC")

# The order lifecycle (nautilus_trader's orders/base model): an order's status changes only
# through :func:`transition`, by one table of (status, event) -> status. A working order is
# OPEN, or OPEN_PARTIAL once part of it has filled (both reported as "open"); every other
# status is terminal and refuses every event. PARTIAL is an order that ended (cancelled,
# expired, rejected) after filling part of its quantity.
OPEN, FILLED, PARTIAL, CANCELLED, EXPIRED, REJECTED, OPEN_PARTIAL = range(7)
STATUSES = ("open", "filled", "partially_filled", "cancelled", "expired", "rejected", "open")
WORKING_STATUSES = (OPEN, OPEN_PARTIAL)
EV_FILL, EV_FILL_ALL, EV_CANCEL, EV_EXPIRE, EV_REJECT = range(5)
EVENTS = ("fill", "fill_all", "cancel", "expire", "reject")  # EV_FILL: part of what is left

TRANSITIONS = np.full((len(STATUSES), len(EVENTS)), -1, dtype=np.int64)  # -1: illegal
TRANSITIONS[OPEN] = (OPEN_PARTIAL, FILLED, CANCELLED, EXPIRED, REJECTED)
TRANSITIONS[OPEN_PARTIAL] = (OPEN_PARTIAL, FILLED, PARTIAL, PARTIAL, PARTIAL)
TRANSITIONS.setflags(write=False)


@numba.njit(cache=True)
def transition(status: int, event: int) -> int:
    """The status an order moves to on ``event`` (EV_*) from ``status``; raises ValueError on
    an illegal transition (any event on a finished order), which is a bug in the caller."""
    new = TRANSITIONS[status, event]
    if new < 0:
        raise ValueError("illegal order status transition")
    return int(new)


# Why an order ended without filling completely (index into REASONS; 0 = no reason).
NO_REASON, R_SHORT, R_CASH, R_MARGIN, R_LOT, R_SQUARED_OFF, R_SUPERSEDED, R_ACTION, R_USER = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
)
REASONS = (
    "",
    "short selling not allowed in this segment",
    "insufficient cash",
    "insufficient margin",
    "quantity below one lot",
    "position squared off for the day (intraday)",
    "superseded by a new target",
    "cancelled by a corporate action",
    "cancelled by the strategy",
)

# Columns of the integer and float order buffers: every order of a run (signal or event) is a
# row of them. O_NEXT links a symbol's working orders oldest first (-1 ends the list, whose
# head is the symbol's WORKING state); O_DAY is the session a DAY order works in (-1 until it
# first becomes eligible); O_FLAGS holds TRIGGERED and AT_CLOSE.
O_ID, O_BAR, O_SYM, O_SIDE, O_TYPE, O_TIF, O_QTY, O_STATUS, O_FILLED, O_REASON = range(10)
O_NEXT, O_DAY, O_FLAGS = 10, 11, 12
O_INT_COLS = 13
O_LIMIT, O_STOP = 0, 1
O_FLOAT_COLS = 2
TRIGGERED = 1  # a stop order's stop has been reached
AT_CLOSE = 2  # a market order placed in on_bar with fill="close": it works at closes

# Columns of the fill buffers: ints (ids, bar, symbol, signed quantity) and floats (price,
# slippage cost in rupees, the seven charge components, their total).
F_ID, F_ORDER, F_BAR, F_SYM, F_QTY = range(5)
F_INT_COLS = 5
F_PRICE, F_SLIPPAGE = 0, 1
F_CHARGES = 2  # first of the len(CHARGE_COMPONENTS) charge columns, then the total
F_FLOAT_COLS = 2 + len(CHARGE_COMPONENTS) + 1

CHARGE_COLUMNS = tuple(f"charge_{c}" for c in CHARGE_COMPONENTS)

ORDER_SCHEMA: dict[str, pl.DataType] = {
    "order_id": pl.Int64(),
    "ts": TS_DTYPE,
    "symbol": pl.String(),
    "side": pl.String(),
    "type": pl.String(),
    "tif": pl.String(),
    "quantity": pl.Int64(),
    "limit_price": pl.Float64(),
    "stop_price": pl.Float64(),
    "status": pl.String(),
    "filled_quantity": pl.Int64(),
    "reason": pl.String(),
}

FILL_SCHEMA: dict[str, pl.DataType] = {
    "fill_id": pl.Int64(),
    "order_id": pl.Int64(),
    "ts": TS_DTYPE,
    "symbol": pl.String(),
    "side": pl.String(),
    "quantity": pl.Int64(),
    "price": pl.Float64(),
    "slippage": pl.Float64(),
    **{c: pl.Float64() for c in CHARGE_COLUMNS},
    "charge_total": pl.Float64(),
}


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, as an event strategy's ``on_fill`` sees it: ``quantity`` (unsigned)
    in traded shares, ``price`` in the bars' split/bonus-adjusted units (like ``bar.close``)
    and ``raw_price`` the traded price (as in the run's fills frame)."""

    fill_id: int
    order_id: int
    ts: datetime
    symbol: str
    side: str
    quantity: int
    price: float
    charges: float
    raw_price: float


class Order:
    """An event strategy's order (``Context.open_orders``): a view of its row in the run's
    order buffers, which are the only record of it, so it follows the order as it fills,
    expires or is converted on a split. ``book`` is anything with the run's current
    ``ledger`` (the buffers are replaced when they grow)."""

    __slots__ = ("_book", "_row", "symbol")

    def __init__(self, book: Any, row: int, symbol: str) -> None:
        """The order in row ``row`` of ``book.ledger``'s buffers, for ``symbol``."""
        self._book = book
        self._row = row
        self.symbol = symbol

    def _int(self, column: int) -> int:
        return int(self._book.ledger.order_ints[self._row, column])

    def _float(self, column: int) -> float:
        return float(self._book.ledger.order_floats[self._row, column])

    @property
    def order_id(self) -> int:
        """The order's id (its place in the run's orders, from 1)."""
        return self._int(O_ID)

    @property
    def bar(self) -> int:
        """The bar it was placed in."""
        return self._int(O_BAR)

    @property
    def sym(self) -> int:
        """The symbol's code in the run."""
        return self._int(O_SYM)

    @property
    def is_buy(self) -> bool:
        """A buy (else a sell)."""
        return self._int(O_SIDE) > 0

    @property
    def type(self) -> int:
        """MARKET, LIMIT, STOP or STOP_LIMIT."""
        return self._int(O_TYPE)

    @property
    def tif(self) -> int:
        """DAY, IOC or GTC."""
        return self._int(O_TIF)

    @property
    def quantity(self) -> int:
        """Traded shares ordered (multiplied by a split while working)."""
        return self._int(O_QTY)

    @property
    def limit_price(self) -> float:
        """Traded limit price (NaN: none)."""
        return self._float(O_LIMIT)

    @property
    def stop_price(self) -> float:
        """Traded stop price (NaN: none)."""
        return self._float(O_STOP)

    @property
    def status(self) -> int:
        """Its status (an index into STATUSES)."""
        return self._int(O_STATUS)

    @property
    def filled(self) -> int:
        """Shares filled so far."""
        return self._int(O_FILLED)

    @property
    def reason(self) -> int:
        """Why it ended without filling completely (an index into REASONS)."""
        return self._int(O_REASON)

    @property
    def triggered(self) -> bool:
        """A stop order's stop has been reached."""
        return bool(self._int(O_FLAGS) & TRIGGERED)

    @property
    def day(self) -> int:
        """The session index a DAY order works in (-1 until it first becomes eligible)."""
        return self._int(O_DAY)

    @property
    def at_close(self) -> bool:
        """A market order placed in on_bar with fill="close" (it works at closes)."""
        return bool(self._int(O_FLAGS) & AT_CLOSE)

    @property
    def remaining(self) -> int:
        """Quantity still to fill."""
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        """Still working."""
        return self.status in WORKING_STATUSES

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (
            f"Order({self.order_id} {side} {self.quantity} {self.symbol} "
            f"{ORDER_TYPES[self.type]} {TIFS[self.tif]} {STATUSES[self.status]}, "
            f"filled {self.filled})"
        )


def labels(codes: np.ndarray, names: Sequence[str | None]) -> pl.Series:
    """The String column of ``names[code]`` per row (a gather: no Python string per row)."""
    return pl.Series(list(names), dtype=pl.String).gather(np.asarray(codes, dtype=np.int64))


def timestamps(micros: np.ndarray) -> pl.Series:
    """The IST timestamp column of epoch-µs values."""
    return pl.Series(micros, dtype=pl.Int64).cast(TS_DTYPE)


_SIDES = ("sell", "buy")
_REASON_LABELS = tuple(r or None for r in REASONS)


def orders_frame(
    ints: np.ndarray, floats: np.ndarray, ts: np.ndarray, symbols: list[str]
) -> pl.DataFrame:
    """The orders frame from the order buffers (``ts``: epoch-µs of each bar)."""
    return pl.DataFrame(
        {
            "order_id": ints[:, O_ID],
            "ts": timestamps(ts[ints[:, O_BAR]]),
            "symbol": labels(ints[:, O_SYM], symbols),
            "side": labels(ints[:, O_SIDE] > 0, _SIDES),
            "type": labels(ints[:, O_TYPE], ORDER_TYPES),
            "tif": labels(ints[:, O_TIF], TIFS),
            "quantity": ints[:, O_QTY],
            "limit_price": pl.Series(floats[:, O_LIMIT], nan_to_null=True),
            "stop_price": pl.Series(floats[:, O_STOP], nan_to_null=True),
            "status": labels(ints[:, O_STATUS], STATUSES),
            "filled_quantity": ints[:, O_FILLED],
            "reason": labels(ints[:, O_REASON], _REASON_LABELS),
        },
        schema=ORDER_SCHEMA,
    )


def fills_frame(
    ints: np.ndarray, floats: np.ndarray, ts: np.ndarray, symbols: list[str]
) -> pl.DataFrame:
    """The fills frame from the fill buffers (``ts``: epoch-µs of each bar)."""
    qty = ints[:, F_QTY]
    columns: dict[str, object] = {
        "fill_id": ints[:, F_ID],
        "order_id": ints[:, F_ORDER],
        "ts": timestamps(ts[ints[:, F_BAR]]),
        "symbol": labels(ints[:, F_SYM], symbols),
        "side": labels(qty > 0, _SIDES),
        "quantity": np.abs(qty),
        "price": floats[:, F_PRICE],
        "slippage": floats[:, F_SLIPPAGE],
    }
    for k, name in enumerate(CHARGE_COLUMNS):
        columns[name] = floats[:, F_CHARGES + k]
    columns["charge_total"] = floats[:, F_CHARGES + len(CHARGE_COLUMNS)]
    return pl.DataFrame(columns, schema=FILL_SCHEMA)
