"""``none``: fills at the reference price."""

from __future__ import annotations

from numba import cfunc

from quantcli.backtest.slippage import FORMULA, SlippageModel
from quantcli.errors import UsageError


@cfunc(FORMULA, cache=True)
def _formula(param: float, quantity: float, volume: float, x: float) -> float:
    return 0.0


class NoSlippage(SlippageModel):
    """No slippage."""

    name = "none"
    usage = "none"
    formula = _formula

    @classmethod
    def parse(cls, raw: str) -> SlippageModel:
        """Takes no parameter."""
        if raw:
            raise UsageError(f"slippage model 'none' takes no parameter, got 'none:{raw}'")
        return cls()


MODEL = NoSlippage
