"""Promotion: ``champion`` moves to a challenger only on evidence.

``promote(root, "NAME@vN", features=REF, start=D, end=D)`` does what ``quantcli model promote``
does:

- no champion yet: the version becomes champion directly (the move is recorded, with no
  evidence);
- else the champion and the challenger are compared on the window (quantcli.models.compare,
  which refuses a window either has seen), and champion moves only when the challenger's
  improvement in the gate statistic (log loss for classifiers, MAE for regressors) has a
  bootstrap p-value below ``alpha``. The move records the comparison as its evidence; a refusal
  writes nothing and returns the evidence (the CLI exits 3 with it);
- ``force`` with a ``reason`` moves champion whatever the evidence says (and without any when
  no window is given), recording the reason and the evidence.

The comparison runs without the model's lock (it takes seconds); the move then checks, under
the lock, that champion is still the version the evidence is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from quantcli.errors import UsageError
from quantcli.models.bootstrap import DEFAULT_RESAMPLES
from quantcli.models.compare import Comparison

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promotion request."""

    challenger: str
    champion: str | None  # the champion before, None when there was none
    promoted: bool
    forced: bool
    alpha: float
    reason: str | None
    comparison: Comparison | None

    @property
    def evidence(self) -> dict[str, Any] | None:
        """What the history records as the move's evidence (None without a comparison)."""
        if self.comparison is None:
            return None
        gate = self.comparison.gate
        return {
            "alpha": self.alpha,
            "statistic": gate.statistic,
            "p_value": gate.p_value,
            "passed": self.passed,
            "comparison": self.comparison.to_dict(),
        }

    @property
    def passed(self) -> bool:
        """Whether the evidence alone clears the gate."""
        if self.comparison is None:
            return False
        p = self.comparison.gate.p_value
        return p is not None and p < self.alpha

    def summary(self) -> str:
        """One line: what happened and on what evidence."""
        gate = None if self.comparison is None else self.comparison.gate
        said = (
            ""
            if gate is None
            else f"{gate.statistic} improvement {_num(gate.improvement)}, 95% CI "
            f"[{_num(gate.ci[0])}, {_num(gate.ci[1])}], p = {_num(gate.p_value)} "
            f"(alpha {self.alpha:g})"
        )
        if self.champion == self.challenger:
            return f"{self.challenger} is already champion; nothing recorded"
        if not self.promoted:
            return (
                f"{self.challenger} does not beat champion {self.champion}: {said}; champion "
                "stays (--force --reason TEXT overrides)"
            )
        if self.champion is None:
            return f"{self.challenger} is champion (there was none)"
        how = "forced" if self.forced and not self.passed else "promoted"
        return f"{self.challenger} is champion ({how} over {self.champion}" + (
            f": {said})" if said else ")"
        )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def promote(
    root: Path,
    ref: str,
    *,
    features: str | None = None,
    start: date | None = None,
    end: date | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    block: int | None = None,
    force: bool = False,
    reason: str | None = None,
    wait: float = 0,
) -> Promotion:
    """Make the version ``ref`` names champion if the evidence says so (see the module
    docstring). Nothing is written unless champion moves."""
    from quantcli.models import registry
    from quantcli.models.bootstrap import check_options
    from quantcli.models.compare import compare

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha:g}")
    if force and not (reason or "").strip():
        raise UsageError("--force needs --reason TEXT (it is recorded in the model's history)")
    window = (features, start, end)
    given = [w is not None for w in window]
    if any(given) and not all(given):
        raise UsageError("a comparison needs all of --features, --from and --to")
    if start is not None and end is not None:
        check_options(seed, resamples, block, start, end)
    name, version = registry.resolve(root, ref)
    challenger = f"{name}@v{version}"
    before = registry.aliases(root, name).get(registry.CHAMPION)
    champion = None if before is None else f"{name}@v{before}"
    if before == version:
        return Promotion(challenger, champion, True, force, alpha, reason, None)
    comparison = None
    if before is not None and features is not None and start is not None and end is not None:
        comparison = compare(
            root,
            f"{name}@v{before}",
            challenger,
            features=features,
            start=start,
            end=end,
            seed=seed,
            resamples=resamples,
            block=block,
        )
    elif before is not None and not force:
        raise UsageError(
            f"{name}@{registry.CHAMPION} is {champion}: give --features, --from and --to to "
            "compare on a window neither trained on, or --force --reason TEXT"
        )
    result = Promotion(challenger, champion, False, force, alpha, reason, comparison)
    if before is not None and not result.passed and not force:
        return result
    registry.set_alias(
        root,
        challenger,
        registry.CHAMPION,
        reason=reason or ("first champion" if before is None else "passed the promotion gate"),
        evidence=result.evidence,
        force=True,
        expect=before,
        wait=wait,
    )
    return Promotion(challenger, champion, True, force, alpha, reason, comparison)
