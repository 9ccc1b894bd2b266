"""The paired, seeded block bootstrap both model comparisons test with (``model compare``'s
per-date losses and ICs, ``--backtest``'s daily returns).

arch's stationary bootstrap resamples positions (dates or sessions) in blocks of mean length
``block``, seeded with a numpy Generator from ``seed``: neighbouring dates' labels overlap and
neighbouring sessions' returns are correlated, so single draws would understate the variance.
One set of resampled positions serves every statistic of a comparison, which keeps them paired.
Each statistic is summarised by its observed improvement (positive: the challenger is better), a
percentile confidence interval and the one-sided p-value of "the challenger is better",
``(1 + #{t* - t >= t}) / (K + 1)`` over the K resampled values ``t*`` of the observed ``t``:
never 0, so a p-value is always what K resamples can show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from quantcli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class BootstrapTest:
    """The bootstrap of one improvement statistic (None where it is undefined: no defined
    date, or a flat equity curve) over ``dates`` dates or sessions."""

    statistic: str
    improvement: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    dates: int

    def to_dict(self) -> dict[str, Any]:
        """The test as ``--json`` and the history's evidence record it."""
        return {
            "statistic": self.statistic,
            "improvement": self.improvement,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "dates": self.dates,
        }


def described(seed: int, resamples: int, block: int) -> dict[str, Any]:
    """How a comparison resampled, as its ``--json`` records it."""
    return {
        "method": "stationary",
        "seed": seed,
        "resamples": resamples,
        "block": block,
        "confidence": CONFIDENCE,
    }


def check_options(seed: int, resamples: int, block: int | None, start: date, end: date) -> None:
    """The cheap checks of a comparison's options, before anything is read."""
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    if block is not None and block < 1:
        raise UsageError(f"--block must be at least 1 session, got {block}")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")


def default_block(horizon: int, dates: int) -> int:
    """The default mean block length: the label horizon, or the cube root of the number of
    dates when that is larger."""
    return max(horizon, math.ceil(math.pow(dates, 1 / 3)))


def resample_index(length: int, *, seed: int, resamples: int, block: int) -> np.ndarray:
    """``resamples`` rows of ``length`` positions drawn by arch's stationary bootstrap."""
    import numpy as np
    from arch.bootstrap import StationaryBootstrap

    sampler = StationaryBootstrap(block, np.arange(length), seed=np.random.default_rng(seed))
    return np.stack([data[0] for data, _ in sampler.bootstrap(resamples)])


def summarise(name: str, observed: float, draws: np.ndarray, dates: int) -> BootstrapTest:
    """The test of statistic ``name`` from its ``observed`` value and its resampled ``draws``
    (the non-finite ones ignored); undefined when ``observed`` is not finite or no draw is."""
    import numpy as np

    draws = draws[np.isfinite(draws)]
    if not math.isfinite(observed) or draws.size == 0:
        return BootstrapTest(name, None, (None, None), None, dates)
    tail = (1 - CONFIDENCE) / 2
    low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
    beyond = int(np.count_nonzero(draws - observed >= observed))
    return BootstrapTest(name, observed, (low, high), (1 + beyond) / (draws.size + 1), dates)
