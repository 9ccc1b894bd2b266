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
3. ``formula``: a numba ``cfunc`` of signature :data:`FORMULA`, ``(param, row, is_buy,
   quantity, price, out) -> None``: write the charges of one fill of ``quantity`` shares at
   ``price`` into ``out`` (zeroed, laid out as ``CHARGE_COMPONENTS``), ``row`` the fill's
   session row from ``prepare``. The replay calls it through a function pointer, so a new
   model compiles nothing else. The DP component is per scrip and day: the replay waives it
   on a symbol's second delivery sale of a session.
4. ``prepare(segment, broker, days)`` (optional): one row of float64 per session of the run
   (``days``, sorted), e.g. the rates in force that day; None: no per-session input.
5. ``schedule(segment, broker, first, last)`` (optional): the dated rates behind those rows
   that a run from ``first`` to ``last`` can pay, which the run manifest hashes; a model whose
   charges follow from its spec alone (hashed with the run's options) returns None. Set
   ``uses_broker`` when the model reads the run's broker profile (a run then keeps a copy).
6. :func:`register` the class (built-ins are registered at the end of this module).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numba import types

from quantcli.backtest.inputs import compiled
from quantcli.errors import UsageError
from quantcli.market.charges import CHARGE_COMPONENTS, Segment

if TYPE_CHECKING:
    from quantcli.backtest.inputs import Run

DP = CHARGE_COMPONENTS.index("dp")  # the DP charge's place among the components

# The compiled formula's signature: (param, session row, is_buy, quantity, price, out).
_ROW = types.float64[::1]
FORMULA = types.void(types.float64, _ROW, types.boolean, types.float64, types.float64, _ROW)


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


MODELS: dict[str, type[CostModel]] = {}


def register(model: type[CostModel]) -> type[CostModel]:
    """Make ``model`` available to ``--costs`` under its name (usable as a decorator)."""
    MODELS[model.name] = model
    return model


def parse_costs(spec: str) -> CostModel:
    """Parse ``statutory``, ``flat:0.05%`` or a registered model's spec (UsageError otherwise)."""
    name, _, raw = spec.strip().partition(":")
    model = MODELS.get(name.lower())
    if model is None:
        known = ", ".join(m.usage for m in MODELS.values())
        raise UsageError(f"unknown cost model {spec!r} (expected {known})")
    return model.parse(raw.strip())


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


@compiled()
def fill_costs(run: Run, bar: int, signed: float, price: float, dp_paid: bool) -> float:
    """Write the charge components of a fill of ``signed`` shares (positive buys) at
    ``price`` in bar ``bar`` into the ledger's scratch and return their total.

    The DP charge is per scrip and day, not per fill: ``dp_paid`` (the symbol's delivery sale
    has already paid it this session) waives it.
    """
    out = run.ledger.scratch
    out[:] = 0.0
    row = run.bars.rates[run.bars.day[bar]]
    run.params.costs(run.params.cost_param, row, signed > 0.0, abs(signed), price, out)
    if dp_paid:
        out[DP] = 0.0
    total = 0.0
    for k in range(out.shape[0]):
        total += out[k]
    return total


def _register_builtins() -> None:
    from quantcli.backtest.costs import flat, statutory

    for module in (statutory, flat):
        register(module.MODEL)


_register_builtins()

__all__ = [
    "DP",
    "FORMULA",
    "MODELS",
    "CostModel",
    "eras",
    "fill_costs",
    "parse_costs",
    "rate_table",
    "register",
]
