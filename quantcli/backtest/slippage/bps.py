"""``bps:X``: a fixed X basis points against the trader."""

from __future__ import annotations

from numba import cfunc

from quantcli.backtest.slippage import FORMULA, SlippageModel, number_param


@cfunc(FORMULA, cache=True)
def _formula(param: float, quantity: float, volume: float, x: float) -> float:
    return param / 1e4


class FixedBps(SlippageModel):
    """A fixed number of basis points."""

    name = "bps"
    usage = "bps:X"
    formula = _formula

    @classmethod
    def parse(cls, raw: str) -> SlippageModel:
        """``X``: basis points, a non-negative number."""
        return cls(number_param(f"bps:{raw}", raw))


MODEL = FixedBps
