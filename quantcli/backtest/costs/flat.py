"""``flat:X%``: X percent of turnover as brokerage and nothing statutory (no STT, no DP), for
comparisons with backtesters that charge one commission rate."""

from __future__ import annotations

import math
from typing import Any

from numba import cfunc
from numba.np.numpy_support import carray

from quantcli.backtest.costs import FORMULA, CostModel
from quantcli.errors import UsageError


@cfunc(FORMULA, cache=True)
def _formula(  # noqa: PLR0913, PLR0917 (the C signature FORMULA)
    param: float,
    rates: Any,
    n_rates: int,
    is_buy: int,
    quantity: float,
    price: float,
    out: Any,
    n_out: int,
) -> None:
    carray(out, n_out)[0] = param * quantity * price


class FlatRate(CostModel):
    """One percentage of turnover, as brokerage."""

    name = "flat"
    usage = "flat:X%"
    formula = _formula

    @property
    def flat_rate(self) -> float:
        """The rate as a fraction of turnover (0.0005 for ``flat:0.05%``)."""
        return self.param

    @classmethod
    def parse(cls, raw: str) -> CostModel:
        """``X%``: a non-negative percentage of turnover (the ``%`` is optional)."""
        spec = f"flat:{raw}"
        if not raw:
            raise UsageError(f"cost model {spec!r}: give a rate, e.g. flat:0.05%")
        try:
            percent = float(raw.removesuffix("%"))
        except ValueError:
            raise UsageError(f"cost model {spec!r}: rate must be a percentage like 0.05%") from None
        if not math.isfinite(percent) or percent < 0:
            raise UsageError(f"cost model {spec!r}: rate must be a non-negative percentage")
        return cls(percent / 100.0)


MODEL = FlatRate
