"""Slippage models: how far a fill lands from its reference price, against the trader.

A model is one module holding one :class:`SlippageModel` subclass, registered by name; the
``--slippage`` spec ``name`` or ``name:param`` picks it (:func:`parse_slippage`). Built in:

    none         no slippage (quantcli.backtest.slippage.none)
    bps:X        a fixed X basis points (.bps)
    spread:X     half of a quoted spread of X basis points, crossing the spread once (.spread)
    sqrt:K       square-root market impact K * sigma * sqrt(quantity / bar volume), sigma the
                 recent per-bar volatility (.sqrt)

Adding a model (zipline's finance/slippage.py recipe, compiled):

1. Subclass :class:`SlippageModel` in a new module and set ``name`` and ``usage``.
2. ``parse(raw)``: validate the text after ``name:`` and return an instance (raise
   UsageError naming the spec otherwise); :func:`number_param` parses one number.
3. ``formula``: a numba ``cfunc`` of signature :data:`FORMULA`, ``(param, quantity, volume,
   x) -> fraction``: the adverse move as a fraction of the reference price for one fill of
   ``quantity`` shares in a bar of ``volume``, ``x`` the bar's value from ``prepare``. The
   replay calls it through a function pointer, so a new model compiles nothing else.
4. ``prepare(bars)`` (optional): the model's per-bar input ``x``, vectorised over the run's
   bars (one float64 per row of ``bars``, sorted by symbol then ts; None: all 0). A bar's
   value must depend on no later bar.
5. :func:`register` the class (a built-in is named in ``MODELS``, imported when first used).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import polars as pl
from numba import types

from quantcli.backtest.registry import Registry
from quantcli.errors import UsageError

# The compiled formula's signature: (param, quantity, volume, x) -> fraction of price.
FORMULA = types.float64(types.float64, types.float64, types.float64, types.float64)


class SlippageModel(ABC):
    """A parsed slippage spec: its parameter, compiled formula and per-bar preparation."""

    name: ClassVar[str]
    usage: ClassVar[str]  # the spec form shown in errors, e.g. "bps:X"
    formula: ClassVar[Any]  # a numba cfunc of signature FORMULA

    def __init__(self, param: float = 0.0) -> None:
        """A model with its numeric parameter (0 for models without one)."""
        self.param = float(param)

    @classmethod
    @abstractmethod
    def parse(cls, raw: str) -> SlippageModel:
        """The model for the spec text after ``name:`` (``""`` when none was given)."""

    def prepare(self, bars: pl.DataFrame) -> np.ndarray | None:
        """The per-bar input of the formula over ``bars`` (sorted by symbol, ts), or None."""
        del bars
        return None

    def fraction(self, quantity: float, volume: float, x: float = 0.0) -> float:
        """Adverse move as a fraction of price for a fill of ``quantity`` in a bar of
        ``volume`` (``x``: the bar's prepared input)."""
        return float(self.formula(self.param, float(quantity), float(volume), float(x)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param!r})"


MODELS: Registry[SlippageModel] = Registry(
    "slippage model",
    {name: f"quantcli.backtest.slippage.{name}" for name in ("none", "bps", "spread", "sqrt")},
)
register = MODELS.register


def parse_slippage(spec: str) -> SlippageModel:
    """Parse ``none``, ``bps:5``, ``spread:10``, ``sqrt:0.1`` or a registered model's spec
    (UsageError otherwise)."""
    return MODELS.parse(spec)


def number_param(spec: str, raw: str) -> float:
    """A model's non-negative numeric parameter ``raw`` (UsageError naming ``spec``)."""
    try:
        param = float(raw)
    except ValueError:
        raise UsageError(f"slippage {spec!r}: parameter must be a number") from None
    if not math.isfinite(param) or param < 0:
        raise UsageError(f"slippage {spec!r}: parameter must be a non-negative number")
    return param


__all__ = ["FORMULA", "MODELS", "SlippageModel", "number_param", "parse_slippage", "register"]
