"""Cost models: what a fill pays on top of its price.

``statutory`` charges every fill with quantcli.market.charges (brokerage per the run's broker
profile, STT, exchange, SEBI, stamp, GST, DP), effective-dated by the fill's session date: the
rate vectors of each session are tabulated once and the compiled ``charges_kernel`` (the single
place of that arithmetic) runs per fill. ``flat:0.05%`` puts one percentage of turnover into the
brokerage component and charges nothing statutory (for comparisons with simple backtesters).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from quantcli.backtest.inputs import compiled
from quantcli.errors import CoverageError, UsageError
from quantcli.market.charges import (
    CHARGE_COMPONENTS,
    Segment,
    charge_rates,
    charges_kernel,
    load_profile,
    rate_schedule,
)

if TYPE_CHECKING:
    from quantcli.backtest.inputs import Run

STATUTORY, FLAT = 0, 1
DP = CHARGE_COMPONENTS.index("dp")  # the DP charge's place among the components


@dataclass(frozen=True)
class CostModel:
    """A parsed cost spec: ``kind`` is the kernel's code, ``flat_rate`` a fraction of turnover."""

    kind: int
    flat_rate: float = 0.0


def parse_costs(spec: str) -> CostModel:
    """Parse ``statutory`` or ``flat:<percent>%`` (e.g. ``flat:0.05%``; UsageError otherwise)."""
    text = spec.strip().lower()
    if text == "statutory":
        return CostModel(STATUTORY)
    name, _, raw = text.partition(":")
    if name != "flat" or not raw:
        raise UsageError(f"unknown cost model {spec!r} (expected statutory or flat:0.05%)")
    try:
        percent = float(raw.removesuffix("%"))
    except ValueError:
        raise UsageError(f"cost model {spec!r}: rate must be a percentage like 0.05%") from None
    if not math.isfinite(percent) or percent < 0:
        raise UsageError(f"cost model {spec!r}: rate must be a non-negative percentage")
    return CostModel(FLAT, percent / 100.0)


def rate_table(model: CostModel, segment: str, broker: str, days: list[date]) -> np.ndarray:
    """One row of charge rates per session in ``days`` (a dummy row for the flat model)."""
    if model.kind == FLAT or not days:
        return np.zeros((max(len(days), 1), 1), dtype=np.float64)
    profile = load_profile(broker)
    seg = Segment(segment)
    try:
        first = charge_rates(seg, days[0], profile)
    except CoverageError as exc:
        # The sessions are the run's, so the flag that fixes it is the run's start.
        start = rate_schedule(seg, profile)[0][0]
        raise CoverageError(
            f"{exc.message}; start the backtest there with --from {start}"
        ) from None
    # Rates change on a handful of dates: one lookup per era, not per session.
    table = np.empty((len(days), first.shape[0]), dtype=np.float64)
    for lo, hi in eras(days, lambda day: charge_rates(seg, day, profile).tobytes()):
        table[lo:hi] = charge_rates(seg, days[lo], profile)
    return table


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
    quantity = abs(signed)
    out = run.ledger.scratch
    if run.params.cost_kind == FLAT:
        out[:] = 0.0
        out[0] = run.params.flat_rate * quantity * price
    else:
        rates = run.bars.rates[run.bars.day[bar]]
        charges_kernel(rates, signed > 0.0, quantity, price, out)
        if dp_paid:
            out[DP] = 0.0
    total = 0.0
    for k in range(out.shape[0]):
        total += out[k]
    return total
