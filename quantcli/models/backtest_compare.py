"""Comparing two models by backtesting them (``model compare --backtest``).

:func:`compare_backtests` runs the ``model`` strategy (quantcli.models.strategy) for each model
on the same window of a feature set's dataset, net of charges (the backtester's cost model), and
compares their daily returns (quantcli.backtest.metrics' conventions: the last equity of each
session, the first return from the initial cash):

- the paired block bootstrap of :mod:`quantcli.models.bootstrap`, resampling the sessions (both
  series on the same sessions, so their dependence is kept). A is the incumbent, B the
  challenger; the improvement is B's annualised Sharpe ratio (and mean daily return) minus
  A's, with its confidence interval and the one-sided p-value of "B is better";
- each model's probabilistic Sharpe ratio (the probability that its true Sharpe ratio exceeds
  zero, with raw kurtosis) and its form deflated by the number of candidate models the
  registry counts for the model's name (quantcli.backtest.sharpe).

Both windows must be unseen by both models (quantcli.models.leakage, without a way round: a
comparison on training data is no evidence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantcli.errors import DataError, UsageError
from quantcli.models.bootstrap import (
    DEFAULT_RESAMPLES,
    BootstrapTest,
    check_options,
    default_block,
    described,
    resample_index,
    summarise,
)

if TYPE_CHECKING:
    from quantcli.backtest.engine import BacktestResult


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
    tests: dict[str, BootstrapTest]

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
            "bootstrap": described(self.seed, self.resamples, self.block),
            "tests": {name: test.to_dict() for name, test in self.tests.items()},
        }


def candidates(root: Path, ref: str) -> tuple[int, str]:
    """How many candidate models were tried for the name of model ``ref`` (the registry's
    count: every version ever trained under the name, once), and where that count comes from."""
    from quantcli.models import registry

    name = str(registry.metadata(root, ref)["name"])
    return registry.candidates(root, name), f"the registry's count of candidates trained as {name}"


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
) -> dict[str, BootstrapTest]:
    """The ``sharpe`` (annualised) and ``mean_return`` improvements of daily returns ``b`` over
    ``a``, from one set of resamples of the sessions shared by both series and both statistics
    (quantcli.models.bootstrap)."""
    statistics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "sharpe": _sharpe_improvement,
        "mean_return": _mean_improvement,
    }
    index = resample_index(a.size, seed=seed, resamples=resamples, block=block)
    return {
        name: summarise(
            name,
            statistic(a, b),
            np.array([statistic(a[rows], b[rows]) for rows in index]),
            int(a.size),
        )
        for name, statistic in statistics.items()
    }


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
    from quantcli.backtest.metrics import session_returns
    from quantcli.features import open_feature_set
    from quantcli.models import registry
    from quantcli.models.leakage import require_unseen
    from quantcli.models.strategy import pinned_name

    check_options(seed, resamples, block, start, end)
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
    length = block or default_block(horizon, ra.size)
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
    from quantcli.backtest.sharpe import deflated_sharpe, probabilistic_sharpe

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
