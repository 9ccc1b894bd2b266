"""Cost models: what a fill pays on top of its price.

A model is one module holding one :class:`CostModel` subclass, registered by name; the
``--costs`` spec ``name`` or ``name:param`` picks it (:func:`parse_costs`). Built in:

    statutory    quantcli.market.charges per fill (brokerage per the run's broker profile,
                 STT, exchange, SEBI, stamp, GST, DP), effective-dated by the fill's session
                 (quantcli.backtest.costs.statutory)
    flat:X%      X percent of turnover as brokerage, nothing statutory, for comparisons with
                 simple backtesters (.flat)

Adding a model (zipline's finance/commission.py recipe, compiled):

1. Subclass :class:`CostModel` in a new module and set ``name`` and ``usage``.
2. ``parse(raw)``: validate the text after ``name:`` and return an instance (raise
   UsageError naming the spec otherwise).
3. ``formula``: a numba ``cfunc`` of signature :data:`FORMULA`, ``(param, row, n_row,
   is_buy, quantity, price, out, n_out) -> None``: write the charges of one fill of
   ``quantity`` shares at ``price`` into ``out`` (``n_out`` float64s, zeroed, laid out as
   ``CHARGE_COMPONENTS``), ``row`` the fill's session row from ``prepare`` (``n_row``
   float64s); ``is_buy`` is 1 or 0. ``row`` and ``out`` are C pointers: take arrays of them
   with ``numba.carray(row, n_row)``. The replay calls the formula through its address, so a
   new model compiles nothing else. The DP component is per scrip and day: the replay waives
   it on a symbol's second delivery sale of a session.
4. ``prepare(segment, broker, days)`` (optional): one row of float64 per session of the run
   (``days``, sorted), e.g. the rates in force that day; None: no per-session input.
5. ``schedule(segment, broker, first, last)`` (optional): the dated rates behind those rows
   that a run from ``first`` to ``last`` can pay, which the run manifest hashes; a model whose
   charges follow from its spec alone (hashed with the run's options) returns None. Set
   ``uses_broker`` when the model reads the run's broker profile (a run then keeps a copy).
6. :func:`register` the class (a built-in is named in ``MODELS``, imported when first used).
"""

from __future__ import annotations

import ctypes
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.extending import intrinsic, overload

from quantcli.backtest.inputs import helper
from quantcli.backtest.registry import Registry
from quantcli.errors import UsageError
from quantcli.market.charges import CHARGE_COMPONENTS, Segment

if TYPE_CHECKING:
    from quantcli.backtest.inputs import Run

DP = CHARGE_COMPONENTS.index("dp")  # the DP charge's place among the components

# The compiled formula's signature: (param, session row, its length, is_buy (1/0), quantity,
# price, out, its length). Pointers, not arrays, so that the replay can call it by address.
_PTR = types.CPointer(types.float64)  # type: ignore[no-untyped-call]
FORMULA = types.void(
    types.float64, _PTR, types.int64, types.int64, types.float64, types.float64, _PTR, types.int64
)


class CostModel(ABC):
    """A parsed cost spec: its parameter, compiled formula and per-session preparation."""

    name: ClassVar[str]
    usage: ClassVar[str]  # the spec form shown in errors, e.g. "flat:X%"
    formula: ClassVar[Any]  # a numba cfunc of signature FORMULA
    uses_broker: ClassVar[bool] = False  # reads the run's broker profile

    def __init__(self, param: float = 0.0) -> None:
        """A model with its numeric parameter (0 for models without one)."""
        self.param = float(param)

    @classmethod
    @abstractmethod
    def parse(cls, raw: str) -> CostModel:
        """The model for the spec text after ``name:`` (``""`` when none was given)."""

    def prepare(self, segment: Segment, broker: str, days: list[date]) -> np.ndarray | None:
        """One row of the formula's input per session in ``days``, or None."""
        del segment, broker, days
        return None

    def schedule(
        self, segment: Segment, broker: str, first: date, last: date
    ) -> list[tuple[date, tuple[float, ...]]] | None:
        """The dated rates (period start, rates) a trade from ``first`` to ``last`` can pay,
        for the run manifest to hash; None when the spec alone decides the charges."""
        del segment, broker, first, last
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param!r})"


MODELS: Registry[CostModel] = Registry(
    "cost model",
    {name: f"quantcli.backtest.costs.{name}" for name in ("statutory", "flat")},
)
register = MODELS.register


def parse_costs(spec: str) -> CostModel:
    """Parse ``statutory``, ``flat:0.05%`` or a registered model's spec (UsageError otherwise)."""
    return MODELS.parse(spec)


def rate_table(model: CostModel, segment: str, broker: str, days: list[date]) -> np.ndarray:
    """The replay's per-session rows of ``model`` over ``days``: C-ordered float64, one row per
    session (one dummy row when there is no session or the model prepares nothing)."""
    table = model.prepare(Segment(segment), broker, days) if days else None
    if table is None:
        return np.zeros((max(len(days), 1), 1), dtype=np.float64)
    # One array type for every model, so the replay compiles once (writeable, C-ordered).
    rows = np.require(table, dtype=np.float64, requirements=["C", "W"])
    if rows.ndim != 2 or rows.shape[0] != len(days):
        raise UsageError(
            f"cost model {model.name!r}: prepare returned shape {rows.shape}, expected "
            f"({len(days)}, k): one row per session"
        )
    return rows


def eras(days: list[date], key: Callable[[date], object]) -> list[tuple[int, int]]:
    """Split the sorted ``days`` into maximal runs with the same ``key`` (by bisection: rate
    and tick schedules change on few dates, so this calls ``key`` O(changes x log n) times)."""
    bounds: list[int] = [0]

    def split(lo: int, hi: int, klo: object, khi: object) -> None:
        # Invariant: key(days[lo]) == klo, key(days[hi]) == khi, and they differ.
        if hi - lo == 1:
            bounds.append(hi)
            return
        mid = (lo + hi) // 2
        kmid = key(days[mid])
        if kmid != klo:
            split(lo, mid, klo, kmid)
        if kmid != khi:
            split(mid, hi, kmid, khi)

    if days:
        last = len(days) - 1
        kfirst, klast = key(days[0]), key(days[last])
        if kfirst != klast:
            split(0, last, kfirst, klast)
    bounds.append(len(days))
    return list(itertools.pairwise(bounds))


@helper
def fill_costs(run: Run, bar: int, signed: float, price: float, dp_paid: bool) -> float:
    """Write the charge components of a fill of ``signed`` shares (positive buys) at
    ``price`` in bar ``bar`` into the ledger's scratch and return their total.

    The DP charge is per scrip and day, not per fill: ``dp_paid`` (the symbol's delivery sale
    has already paid it this session) waives it.
    """
    out = run.ledger.scratch
    out[:] = 0.0
    row = run.bars.rates[run.bars.day[bar]]
    call_costs(run.params.costs, run.params.cost_param, row, signed, price, out)
    if dp_paid:
        out[DP] = 0.0
    total = 0.0
    for k in range(out.shape[0]):
        total += out[k]
    return total


def formula_address(model: CostModel) -> int:
    """The address of ``model``'s formula, checked to be a cfunc of :data:`FORMULA` (the
    replay calls it through that address, so nothing else is safe)."""
    formula: Any = model.formula
    if getattr(formula, "_sig", None) != FORMULA:
        raise UsageError(
            f"cost model {model.name!r}: its formula must be a numba cfunc of {FORMULA}"
        )
    return int(formula.address)


_FORMULA_C = ctypes.CFUNCTYPE(
    None,
    ctypes.c_double,
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_double,
    ctypes.c_double,
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_int64,
)


def call_costs(
    address: int, param: float, row: np.ndarray, signed: float, price: float, out: np.ndarray
) -> None:
    """Call the cost formula whose C wrapper is at ``address`` for a fill of ``signed`` shares
    (positive buys) at ``price``, on the session ``row`` (C contiguous, as :func:`rate_table`
    makes it), writing into ``out`` (compiled: a direct call through the pointer; interpreted:
    through ctypes).

    Params carries the formula as an address, as it does the slippage formula
    (quantcli.backtest.fills.call_formula): a numba function argument makes every entry into
    compiled code with a Run cost microseconds more."""
    rows = np.ascontiguousarray(row, dtype=np.float64)
    pointer = ctypes.POINTER(ctypes.c_double)
    _FORMULA_C(address)(
        param,
        rows.ctypes.data_as(pointer),
        rows.shape[0],
        1 if signed > 0.0 else 0,
        abs(signed),
        price,
        out.ctypes.data_as(pointer),
        out.shape[0],
    )


@overload(call_costs)
def _call_costs_compiled(
    address: Any, param: Any, row: Any, signed: Any, price: Any, out: Any
) -> Any:
    del address, param, row, signed, price, out

    # numba requires the implementation's parameters to be exactly the typing function's.
    def impl(address: Any, param: Any, row: Any, signed: Any, price: Any, out: Any) -> Any:
        is_buy = 1 if signed > 0.0 else 0
        _call_at(address, param, row, is_buy, abs(signed), price, out)

    return impl


def _typed_call_at(  # noqa: PLR0913, PLR0917 (an intrinsic takes its call's arguments)
    typingctx: Any,
    address: Any,
    param: Any,
    row: Any,
    is_buy: Any,
    quantity: Any,
    price: Any,
    out: Any,
) -> Any:
    # The intrinsic: a C call through the pointer ``address`` with the arrays' data pointers
    # and lengths (both arrays are contiguous: the rate table's rows and the scratch).
    del typingctx, address, param, is_buy, quantity, price
    sig = types.void(types.int64, types.float64, row, types.int64, types.float64,
                     types.float64, out)  # fmt: skip

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        double, i64 = ir.DoubleType(), ir.IntType(64)
        ptr = double.as_pointer()
        row_arr = context.make_array(signature.args[2])(context, builder, args[2])
        out_arr = context.make_array(signature.args[6])(context, builder, args[6])
        fnty = ir.FunctionType(ir.VoidType(), [double, ptr, i64, i64, double, double, ptr, i64])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(
            fn,
            [
                args[1],
                row_arr.data,
                builder.extract_value(row_arr.shape, 0),
                args[3],
                args[4],
                args[5],
                out_arr.data,
                builder.extract_value(out_arr.shape, 0),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


_call_at: Any = intrinsic(_typed_call_at)


__all__ = [
    "DP",
    "FORMULA",
    "MODELS",
    "CostModel",
    "call_costs",
    "eras",
    "fill_costs",
    "formula_address",
    "parse_costs",
    "rate_table",
    "register",
]
