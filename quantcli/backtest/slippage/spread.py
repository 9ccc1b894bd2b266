"""``spread:X``: crossing half of a quoted spread of X basis points."""

from __future__ import annotations

from numba import cfunc

from quantcli.backtest.slippage import FORMULA, SlippageModel, number_param


@cfunc(FORMULA, cache=True)
def _formula(param: float, quantity: float, volume: float, x: float) -> float:
    return param / 2e4


class HalfSpread(SlippageModel):
    """Half of a quoted spread."""

    name = "spread"
    usage = "spread:X"
    formula = _formula

    @classmethod
    def parse(cls, raw: str) -> SlippageModel:
        """``X``: the full spread in basis points, a non-negative number."""
        return cls(number_param(f"spread:{raw}", raw))


MODEL = HalfSpread
