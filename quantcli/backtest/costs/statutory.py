"""``statutory``: the charge stack of quantcli.market.charges on every fill.

Brokerage per the run's broker profile, STT, exchange, SEBI, stamp, GST and DP, effective-dated
by the fill's session: the rate vector of each session is tabulated once and the compiled
``charges_kernel`` (the single place of that arithmetic) runs per fill.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from numba import cfunc
from numba.np.numpy_support import carray

from quantcli.backtest.costs import FORMULA, CostModel, eras
from quantcli.errors import CoverageError, UsageError
from quantcli.market.charges import (
    Segment,
    charge_rates,
    charges_kernel,
    load_profile,
    rate_schedule,
    rates_in_effect,
)


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
    charges_kernel(carray(rates, n_rates), is_buy != 0, quantity, price, carray(out, n_out))


class Statutory(CostModel):
    """Statutory charges and the broker profile's brokerage."""

    name = "statutory"
    usage = "statutory"
    formula = _formula
    uses_broker = True

    @classmethod
    def parse(cls, raw: str) -> CostModel:
        """Takes no parameter."""
        if raw:
            raise UsageError(f"cost model 'statutory' takes no parameter, got 'statutory:{raw}'")
        return cls()

    def prepare(self, segment: Segment, broker: str, days: list[date]) -> np.ndarray:
        """The rate vector (``RATE_FIELDS``) in force on each session."""
        profile = load_profile(broker)
        try:
            first = charge_rates(segment, days[0], profile)
        except CoverageError as exc:
            # The sessions are the run's, so the flag that fixes it is the run's start.
            start = rate_schedule(segment, profile)[0][0]
            raise CoverageError(
                f"{exc.message}; start the backtest there with --from {start}"
            ) from None
        # Rates change on a handful of dates: one lookup per era, not per session.
        table = np.empty((len(days), first.shape[0]), dtype=np.float64)
        for lo, hi in eras(days, lambda day: charge_rates(segment, day, profile).tobytes()):
            table[lo:hi] = charge_rates(segment, days[lo], profile)
        return table

    def schedule(
        self, segment: Segment, broker: str, first: date, last: date
    ) -> list[tuple[date, tuple[float, ...]]]:
        """The rate periods of ``segment`` under the broker profile in force from ``first``
        to ``last``."""
        return rates_in_effect(segment, first, last, load_profile(broker))


MODEL = Statutory
