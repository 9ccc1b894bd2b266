"""Comparing two models by backtesting them (``model compare --backtest``).

:func:`compare_backtests` runs the ``model`` strategy (quantcli.models.strategy) for each model
on the same window of a feature set's dataset, net of charges (the backtester's cost model), and
compares their daily returns (quantcli.backtest.metrics' conventions: the last equity of each
session, the first return from the initial cash):

- a paired, seeded stationary block bootstrap (``arch.bootstrap``): both series are resampled
  on the same sessions, so their dependence is kept; it gives percentile confidence intervals
  and two-sided p-values (of the resampled differences centred on the observed one) for the
  difference of the annualised Sharpe ratios and of the mean daily returns;
- each model's probabilistic Sharpe ratio, the probability that its true Sharpe ratio exceeds
  zero: ``Phi(SR * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))`` with SR the
  per-session Sharpe ratio (mean over the sample standard deviation), T the sessions, g3 the
  skewness and g4 the raw kurtosis (``m4 / m2^2``, 3 for a normal; excess kurtosis, which a
  common implementation passes, understates the denominator and inflates the result);
- its deflated form: the same probability against the Sharpe ratio the best of N candidate
  models with no skill would be expected to show, ``sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N)
  + gamma * Phi^-1(1 - 1/(N e)))`` (Bailey and Lopez de Prado, 2014; gamma the Euler-Mascheroni
  constant). The trials' Sharpe ratios are not kept, so V is the variance of a skill-less
  Sharpe estimate, ``1 / (T - 1)``. N is the count of candidates the registry keeps for the
  model's name, else the number of its registered versions (the result says which).

Both windows must be unseen by both models (quantcli.models.leakage, without a way round: a
comparison on training data is no evidence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from quantcli.errors import DataError, UsageError

if TYPE_CHECKING:
    from quantcli.backtest.engine import BacktestResult

EULER_GAMMA = 0.5772156649015329
# The registry metadata key holding how many candidate models were tried for a name.
CANDIDATES_KEY = "candidates"
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Difference:
    """A paired bootstrap estimate of ``a - b``: the observed value, its confidence interval
    and the two-sided p-value of no difference (None where undefined: a flat equity curve)."""

    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None


@dataclass(frozen=True)
class ModelBacktest:
    """One model's backtest in a comparison."""

    ref: str  # the version run, NAME@vN
    given: str  # as the caller named it (NAME@champion)
    artifact_sha256: str
    run_id: str | None  # when the run was saved
    sessions: int
    total_return: float
    sharpe: float | None  # annualised
    trades: int
    charges: float
    psr: float | None
    deflated_psr: float | None
    candidates: int
    candidates_source: str


@dataclass(frozen=True)
class BacktestComparison:
    """The outcome of :func:`compare_backtests`."""

    a: ModelBacktest
    b: ModelBacktest
    features: str
    dataset: str
    start: str
    end: str
    sessions: int
    sharpe_difference: Difference
    mean_difference: Difference
    reps: int
    block: int
    seed: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the schema of ``model compare --backtest --json``)."""
        return asdict(self)


def skew_and_kurtosis(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness ``m3 / m2^1.5`` and raw kurtosis ``m4 / m2^2`` (central moments with
    divisor T); NaN for a constant series."""
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= 0:
        return math.nan, math.nan
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float | None:
    """The probability that the true per-session Sharpe ratio of ``returns`` exceeds
    ``benchmark`` (per session): see the module docstring. None below two returns, for a flat
    series, or where the denominator is not positive (extreme skew)."""
    sessions = returns.size
    if sessions < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    if sd <= 1e-15:
        return None
    sr = float(np.mean(returns)) / sd
    g3, g4 = skew_and_kurtosis(returns)
    variance = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    if not variance > 0:
        return None
    return _NORMAL.cdf((sr - benchmark) * math.sqrt(sessions - 1) / math.sqrt(variance))


def expected_max_sharpe(candidates: int, sessions: int) -> float:
    """The per-session Sharpe ratio the best of ``candidates`` skill-less models would be
    expected to show over ``sessions`` (0 for a single candidate: nothing to deflate)."""
    if candidates <= 1 or sessions < 2:
        return 0.0
    n = float(candidates)
    quantiles = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1 - 1 / (n * math.e)
    )
    return quantiles / math.sqrt(sessions - 1)


def deflated_sharpe(returns: np.ndarray, candidates: int) -> float | None:
    """The probabilistic Sharpe ratio against the best of ``candidates`` skill-less models."""
    return probabilistic_sharpe(returns, expected_max_sharpe(candidates, returns.size))


def candidates(root: Path, ref: str) -> tuple[int, str]:
    """How many candidate models were tried for the name of model ``ref``, and where that count
    comes from: the registry's count when its metadata keeps one, else the registered versions
    of the name (counted, and said so)."""
    from quantcli.models import registry

    meta = registry.metadata(root, ref)
    kept = meta.get(CANDIDATES_KEY)
    if isinstance(kept, int) and not isinstance(kept, bool) and kept >= 1:
        return kept, f"the registry's count of candidates for {meta['name']}"
    count = len(registry.versions(root, str(meta["name"])))
    return count, (
        f"{count} registered version(s) of {meta['name']}, counted: the registry keeps no "
        "count of the candidates tried"
    )


def session_returns(result: BacktestResult) -> tuple[list[date], np.ndarray]:
    """The session dates of a run and its daily returns, net of charges."""
    from quantcli.backtest.metrics import daily_equity, daily_returns

    daily = daily_equity(result.equity)
    values = daily.get_column("equity").to_numpy().astype(np.float64)
    return daily.get_column("date").to_list(), daily_returns(values, result.config.cash)


def _sharpe(returns: np.ndarray) -> float:
    from quantcli.backtest.metrics import sharpe_ratio

    value = sharpe_ratio(returns)
    return math.nan if value is None else value


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, reps: int, block: int, seed: int, confidence: float
) -> tuple[Difference, Difference]:
    """The Sharpe and mean differences of ``a - b`` with a paired stationary block bootstrap
    (``reps`` resamples of mean block length ``block``, seeded by ``seed``)."""
    from arch.bootstrap import StationaryBootstrap

    def stats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([_sharpe(x) - _sharpe(y), float(np.mean(x) - np.mean(y))])

    observed = stats(a, b)
    bootstrap = StationaryBootstrap(block, a, b, seed=seed)
    draws = bootstrap.apply(stats, reps)
    tail = (1.0 - confidence) / 2.0
    out = []
    for k in range(2):
        estimate, column = float(observed[k]), draws[:, k]
        column = column[np.isfinite(column)]
        if not math.isfinite(estimate) or column.size == 0:
            out.append(Difference(None, None, None, None))
            continue
        low, high = (float(q) for q in np.quantile(column, [tail, 1.0 - tail]))
        extreme = np.abs(column - estimate) >= abs(estimate) - 1e-15
        out.append(Difference(estimate, low, high, float(np.mean(extreme))))
    return out[0], out[1]


def compare_backtests(
    root: Path,
    a: str,
    b: str,
    *,
    features: str,
    start: date,
    end: date,
    seed: int,
    reps: int = 1000,
    block: int | None = None,
    confidence: float = 0.95,
    params: Mapping[str, str] | None = None,
    costs: str = "statutory",
    runs_dir: Path | None = None,
) -> BacktestComparison:
    """Backtest models ``a`` and ``b`` with the ``model`` strategy on feature set
    ``features`` (and the dataset it was built from) from ``start`` to ``end``, and compare
    their daily returns (see the module docstring).

    ``params`` are the strategy's other ``-p`` strings (``long``, ``short``, ``weight``; the
    same for both); ``block`` is the bootstrap's mean block length (default ``T^(1/3)``,
    rounded up); with ``runs_dir`` both runs are saved there. UsageError when a model saw the
    window, DataError when it has fewer than two sessions.
    """
    from quantcli.backtest.config import BacktestConfig
    from quantcli.backtest.engine import run_backtest
    from quantcli.features import open_feature_set
    from quantcli.models import registry
    from quantcli.models.leakage import require_unseen
    from quantcli.models.strategy import pinned_name

    if reps < 1:
        raise UsageError(f"the bootstrap needs at least one resample, got {reps}")
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be in (0, 1), got {confidence}")
    if block is not None and block < 1:
        raise UsageError(f"the bootstrap block length must be >= 1, got {block}")
    extra = dict(params or {})
    taken = sorted({"model", "features"} & set(extra))
    if taken:
        raise UsageError(f"-p {taken[0]} is set by the comparison itself")
    metas = [registry.metadata(root, ref) for ref in (a, b)]
    for meta in metas:
        require_unseen(meta, start, end)
    fs = open_feature_set(features, root)
    dataset = pinned_name(fs.dataset_ref, fs.dataset_hash)
    pinned_features = pinned_name(fs.ref, fs.content_hash)
    runs = []
    for meta in metas:
        config = BacktestConfig(
            dataset=dataset,
            strategy="model",
            params={**extra, "model": str(meta["ref"]), "features": pinned_features},
            start=start,
            end=end,
            costs=costs,
            seed=seed,
        )
        result = run_backtest(config, root=root)
        run_id = None
        if runs_dir is not None:
            from quantcli.backtest.runs import save_run

            run_id = save_run(result, runs_dir, root=root).run_id
        runs.append((result, run_id))
    (dates_a, ra), (dates_b, rb) = (session_returns(r) for r, _ in runs)
    if dates_a != dates_b:  # pragma: no cover - both runs replay the same bars
        raise DataError("the two backtests replayed different sessions")
    sessions = ra.size
    if sessions < 2:
        raise DataError(
            f"{start}..{end} has {sessions} session(s) of {fs.dataset_ref}; a comparison of "
            "daily returns needs at least two: widen --from/--to"
        )
    length = block or math.ceil(sessions ** (1 / 3))
    sharpe_diff, mean_diff = paired_bootstrap(
        ra, rb, reps=reps, block=length, seed=seed, confidence=confidence
    )
    sides = [
        _side(root, given, meta, result, run_id, returns)
        for given, meta, (result, run_id), returns in zip(
            (a, b), metas, runs, (ra, rb), strict=True
        )
    ]
    return BacktestComparison(
        a=sides[0],
        b=sides[1],
        features=fs.ref,
        dataset=fs.dataset_ref,
        start=str(dates_a[0]),
        end=str(dates_a[-1]),
        sessions=sessions,
        sharpe_difference=sharpe_diff,
        mean_difference=mean_diff,
        reps=reps,
        block=length,
        seed=seed,
        confidence=confidence,
    )


def _side(
    root: Path,
    given: str,
    meta: Mapping[str, Any],
    result: BacktestResult,
    run_id: str | None,
    returns: np.ndarray,
) -> ModelBacktest:
    from quantcli.backtest.metrics import metrics_of

    metrics = metrics_of(result)
    count, source = candidates(root, str(meta["ref"]))
    sharpe = metrics["sharpe"]
    return ModelBacktest(
        ref=str(meta["ref"]),
        given=given,
        artifact_sha256=str(meta["artifact_sha256"]),
        run_id=run_id,
        sessions=returns.size,
        total_return=float(metrics["total_return"] or 0.0),
        sharpe=None if sharpe is None else float(sharpe),
        trades=int(metrics["trades"] or 0),
        charges=float(metrics.get("charges_total") or 0.0),
        psr=probabilistic_sharpe(returns),
        deflated_psr=deflated_sharpe(returns, count),
        candidates=count,
        candidates_source=source,
    )
