"""Comparing two models by backtesting them (``model compare --backtest``).

:func:`compare_backtests` runs the ``model`` strategy (quantcli.models.strategy) for each model
on the same window of a feature set's dataset, net of charges (the backtester's cost model), and
compares their daily returns (quantcli.backtest.metrics' conventions: the last equity of each
session, the first return from the initial cash):

- a paired, seeded stationary block bootstrap (``arch.bootstrap``, as ``model compare``
  resamples its dates): both series are resampled on the same sessions, so their dependence is
  kept. A is the incumbent, B the challenger; the improvement is B's annualised Sharpe ratio
  (and mean daily return) minus A's, with a 95% percentile confidence interval and the
  one-sided p-value of "B is better";
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
from collections.abc import Callable, Mapping
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
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ReturnTest:
    """The paired bootstrap of one statistic of the daily returns: B's value minus A's (the
    improvement: positive means B did better), its percentile confidence interval and the
    one-sided p-value of "B is better" (None where undefined: a flat equity curve)."""

    statistic: str
    improvement: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    dates: int


@dataclass(frozen=True)
class ModelBacktest:
    """One model's backtest in a comparison."""

    ref: str  # the version run, NAME@vN
    given: str  # as the caller named it (NAME@champion)
    artifact_sha256: str
    run_id: str | None  # when the run was saved
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
    """The outcome of :func:`compare_backtests`: A and B backtested on one window."""

    a: ModelBacktest
    b: ModelBacktest
    features: str
    dataset: str
    start: date
    end: date
    sessions: int
    seed: int
    resamples: int
    block: int
    tests: dict[str, ReturnTest]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON (the layout of ``model compare --json``: sides, window,
        bootstrap and tests; no clock, so the same inputs and seed give the same bytes)."""
        return {
            "a": asdict(self.a),
            "b": asdict(self.b),
            "features": self.features,
            "dataset": self.dataset,
            "window": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "sessions": self.sessions,
            "bootstrap": {
                "method": "stationary",
                "seed": self.seed,
                "resamples": self.resamples,
                "block": self.block,
                "confidence": CONFIDENCE,
            },
            "tests": {
                name: {**asdict(test), "ci": list(test.ci)} for name, test in self.tests.items()
            },
        }


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
    comes from: the registry's count (``registry.candidates``: every version ever trained under
    the name) where the registry keeps one, else the name's registered versions, counted."""
    from quantcli.models import registry

    name = str(registry.metadata(root, ref)["name"])
    kept = getattr(registry, "candidates", None)
    if callable(kept):
        count = int(kept(root, name))
        return count, f"the registry's count of candidates trained as {name}"
    count = len(registry.versions(root, name))
    return count, (
        f"{count} registered version(s) of {name}, counted: the registry keeps no count of "
        "the candidates tried"
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


def _sharpe_improvement(a: np.ndarray, b: np.ndarray) -> float:
    return _sharpe(b) - _sharpe(a)


def _mean_improvement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(b - a))


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, seed: int, resamples: int, block: int
) -> dict[str, ReturnTest]:
    """The ``sharpe`` (annualised) and ``mean_return`` improvements of daily returns ``b`` over
    ``a`` with one set of stationary-bootstrap resamples of the sessions (mean block length
    ``block``, seeded with a numpy Generator from ``seed``) shared by both series and both
    statistics. The p-value is ``(1 + #{t* - t >= t}) / (K + 1)`` over the K resampled values
    ``t*`` of the observed ``t``: never 0, so it is always what K resamples can show."""
    from arch.bootstrap import StationaryBootstrap

    statistics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "sharpe": _sharpe_improvement,
        "mean_return": _mean_improvement,
    }
    sampler = StationaryBootstrap(block, np.arange(a.size), seed=np.random.default_rng(seed))
    index = np.stack([data[0] for data, _ in sampler.bootstrap(resamples)])
    tail = (1 - CONFIDENCE) / 2
    out: dict[str, ReturnTest] = {}
    for name, statistic in statistics.items():
        observed = statistic(a, b)
        draws = np.array([statistic(a[rows], b[rows]) for rows in index])
        draws = draws[np.isfinite(draws)]
        if not math.isfinite(observed) or draws.size == 0:
            out[name] = ReturnTest(name, None, (None, None), None, int(a.size))
            continue
        low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
        beyond = int(np.count_nonzero(draws - observed >= observed))
        p_value = (1 + beyond) / (draws.size + 1)
        out[name] = ReturnTest(name, observed, (low, high), p_value, int(a.size))
    return out


def compare_backtests(
    root: Path,
    a: str,
    b: str,
    *,
    features: str,
    start: date,
    end: date,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    block: int | None = None,
    params: Mapping[str, str] | None = None,
    costs: str = "statutory",
    runs_dir: Path | None = None,
) -> BacktestComparison:
    """Backtest models ``a`` (the incumbent) and ``b`` (the challenger) with the ``model``
    strategy on feature set ``features`` and the dataset it was built from, ``start`` to
    ``end``, and compare their daily returns (see the module docstring).

    ``params`` are the strategy's other ``-p`` strings (``long``, ``short``, ``weight``: the
    same for both); ``block`` is the bootstrap's mean block length (default: the longer label
    horizon, or the cube root of the sessions when that is larger); with ``runs_dir`` both runs
    are saved there. UsageError for bad options or a window either model has seen, DataError
    for a window of fewer than two sessions; nothing is written without ``runs_dir``.
    """
    from quantcli.backtest.config import BacktestConfig
    from quantcli.backtest.engine import run_backtest
    from quantcli.features import open_feature_set
    from quantcli.models import registry
    from quantcli.models.leakage import require_unseen
    from quantcli.models.strategy import pinned_name

    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    if block is not None and block < 1:
        raise UsageError(f"--block must be at least 1 session, got {block}")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
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
    (dates, ra), (dates_b, rb) = (session_returns(r) for r, _ in runs)
    if dates != dates_b:  # pragma: no cover - both runs replay the same bars
        raise DataError("the two backtests replayed different sessions")
    if ra.size < 2:
        raise DataError(
            f"{start}..{end} has {ra.size} session(s) of {fs.dataset_ref}; a comparison of "
            "daily returns needs at least two: widen --from/--to"
        )
    horizon = max(int(meta["horizon"]) for meta in metas)
    length = block or max(horizon, math.ceil(ra.size ** (1 / 3)))
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
        start=dates[0],
        end=dates[-1],
        sessions=ra.size,
        seed=seed,
        resamples=resamples,
        block=length,
        tests=paired_bootstrap(ra, rb, seed=seed, resamples=resamples, block=length),
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
        total_return=float(metrics["total_return"] or 0.0),
        sharpe=None if sharpe is None else float(sharpe),
        trades=int(metrics["trades"] or 0),
        charges=float(metrics.get("charges_total") or 0.0),
        psr=probabilistic_sharpe(returns),
        deflated_psr=deflated_sharpe(returns, count),
        candidates=count,
        candidates_source=source,
    )
