"""Slippage models: how far a fill lands from its reference price, against the trader.

Every model is one small protocol: ``fraction(quantity, volume, sigma)`` is the adverse price
move as a fraction of the reference price. The compiled :func:`slip_fraction` is the single
implementation; :class:`SlippageModel` parses the ``--slippage`` spec and calls it.

    none         no slippage
    bps:X        a fixed X basis points
    spread:X     half of a quoted spread of X basis points (crossing the spread once)
    sqrt:K       square-root market impact K * sigma * sqrt(quantity / bar volume), sigma the
                 recent per-bar volatility (Almgren et al., "Direct estimation of equity market
                 impact", 2005: impact grows with the square root of participation)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba

from quantcli.errors import UsageError

NONE, BPS, SPREAD, SQRT = 0, 1, 2, 3
_KINDS = {"none": NONE, "bps": BPS, "spread": SPREAD, "sqrt": SQRT}


@numba.njit(cache=True)
def slip_fraction(kind: int, param: float, quantity: float, volume: float, sigma: float) -> float:
    """Adverse move as a fraction of price for one fill."""
    if kind == BPS:
        return param / 1e4
    if kind == SPREAD:
        return param / 2e4
    if kind == SQRT:
        if volume <= 0.0:
            return param * sigma
        return param * sigma * math.sqrt(quantity / volume)
    return 0.0


@dataclass(frozen=True)
class SlippageModel:
    """A parsed slippage spec (``kind`` is the kernel's integer code)."""

    kind: int
    param: float

    def fraction(self, quantity: float, volume: float, sigma: float = 0.0) -> float:
        """Adverse move as a fraction of price for a fill of ``quantity`` in a bar of ``volume``."""
        return float(slip_fraction(self.kind, self.param, quantity, volume, sigma))


def parse_slippage(spec: str) -> SlippageModel:
    """Parse ``none``, ``bps:5``, ``spread:10`` or ``sqrt:0.1`` (UsageError otherwise)."""
    name, _, raw = spec.strip().partition(":")
    kind = _KINDS.get(name.lower())
    if kind is None:
        raise UsageError(
            f"unknown slippage model {spec!r} (expected none, bps:X, spread:X, sqrt:K)"
        )
    if kind == NONE:
        if raw:
            raise UsageError(f"slippage model 'none' takes no parameter, got {spec!r}")
        return SlippageModel(NONE, 0.0)
    try:
        param = float(raw)
    except ValueError:
        raise UsageError(f"slippage {spec!r}: parameter must be a number") from None
    if not math.isfinite(param) or param < 0:
        raise UsageError(f"slippage {spec!r}: parameter must be a non-negative number")
    return SlippageModel(kind, param)
