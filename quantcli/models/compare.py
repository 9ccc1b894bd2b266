"""Comparing two model versions on a window neither has seen: metrics side by side and a
paired, seeded block bootstrap of their per-date differences.

``compare(root, a, b, features=REF, start=D, end=D)`` does what ``quantcli model compare A B``
does. A is the incumbent (in ``model promote``, the champion), B the challenger.

- Both versions must predict the same label from the same feature schema, and the window must
  lie outside each one's training window plus label horizon (quantcli.models.leakage): a test
  on data a model learned from is no evidence.
- Both score the same rows: the feature set's rows from ``start`` to ``end`` with every feature
  and a label. A kind that reads a row's history also sees its symbol's earlier feature rows
  (never their labels); a row either version cannot score is dropped for both, and counted.
- Per date, each version's mean loss over that date's rows (log loss for classifiers; absolute
  and squared error for regressors) and its Spearman IC. The improvement of a date is A's loss
  minus B's (B's IC minus A's): positive means the challenger did better.
- The paired block bootstrap of :mod:`quantcli.models.bootstrap` resamples the dates (mean
  block length ``block``, default the label horizon, or the cube root of the number of dates
  when that is larger: neighbouring dates' labels overlap by up to H sessions, so their losses
  are correlated); each statistic gets its mean improvement, a confidence interval and the
  one-sided p-value of "the challenger is better".

The result has no clock in it: the same inputs and seed give byte-identical ``--json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from quantcli.models.kinds import CLASSIFIER, REGRESSOR

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from quantcli.models.registry import LoadedModel

# The loss each task's promotion gate tests (model promote); the others are reported alongside.
GATE_STATISTIC = {CLASSIFIER: "log_loss", REGRESSOR: "mae"}


@dataclass(frozen=True)
class Comparison:
    """Two versions scored on one window: their metrics and the bootstrap tests."""

    a: str
    b: str
    features: str
    start: date
    end: date
    task: str
    label: str
    rows: int
    dates: int
    dropped: dict[str, int]
    seed: int
    resamples: int
    block: int
    metrics: dict[str, dict[str, Any]]  # "a" and "b"
    tests: dict[str, BootstrapTest]

    @property
    def gate(self) -> BootstrapTest:
        """The test a promotion is decided on: log loss (classifiers) or MAE (regressors)."""
        return self.tests[GATE_STATISTIC[self.task]]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as ``model compare --json`` prints it (no timestamps: deterministic)."""
        return {
            "a": {"ref": self.a, "metrics": self.metrics["a"]},
            "b": {"ref": self.b, "metrics": self.metrics["b"]},
            "features": self.features,
            "window": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "task": self.task,
            "label": self.label,
            "rows": self.rows,
            "dates": self.dates,
            "dropped_rows": self.dropped,
            "bootstrap": described(self.seed, self.resamples, self.block),
            "tests": {k: t.to_dict() for k, t in self.tests.items()},
        }


def check_comparable(a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """UsageError unless versions ``a`` and ``b`` predict the same label from the same
    feature schema (column names and dtypes)."""
    if a["label"] != b["label"]:
        raise UsageError(
            f"{a['ref']} predicts {a['label']} and {b['ref']} predicts {b['label']}: a "
            "comparison needs models of the same label"
        )
    schema_a = {(c["name"], c["dtype"]) for c in a["input_schema"]}
    schema_b = {(c["name"], c["dtype"]) for c in b["input_schema"]}
    if schema_a != schema_b:

        def shown(cols: set[tuple[str, str]]) -> str:
            return ", ".join(f"{n} {t}" for n, t in sorted(cols)) or "nothing"

        raise UsageError(
            f"{a['ref']} and {b['ref']} have different feature schemas (only {a['ref']}: "
            f"{shown(schema_a - schema_b)}; only {b['ref']}: {shown(schema_b - schema_a)}); "
            "compare models trained on the same features"
        )


@dataclass(frozen=True)
class Scored:
    """The window's rows both versions scored, in (date, symbol) order."""

    day: np.ndarray  # int64 date ordinal
    label: np.ndarray
    forward_return: np.ndarray
    score_a: np.ndarray
    score_b: np.ndarray
    dropped: dict[str, int]


def score_window(
    a: LoadedModel,
    b: LoadedModel,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    start: date,
    end: date,
    where: str,
) -> Scored:
    """Score the rows of ``start..end`` with every feature and a label with both versions
    (DataError naming ``where`` and the window when there are none)."""
    import numpy as np
    import polars as pl

    names = [c["name"] for c in a.metadata["input_schema"]]
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise DataError(
            f"feature set {where} has no column(s) {', '.join(missing)}, which "
            f"{a.metadata['ref']} needs"
        )
    null_features = pl.any_horizontal(pl.col(c).is_null() | pl.col(c).is_nan() for c in names)
    day = pl.col("ts").dt.date()
    frame = (
        features.select("symbol", "ts", *names)
        .filter(day <= end)
        .join(
            labels.select("symbol", "ts", "label", "forward_return"),
            on=["symbol", "ts"],
            how="left",
        )
        .sort("ts", "symbol")
    )
    in_window = frame.filter(day >= start)
    if in_window.height == 0:
        raise DataError(
            f"feature set {where} has no rows between --from {start} and --to {end}; "
            "choose a window inside it"
        )
    dropped = {"null_features": int(in_window.select(null_features.sum()).item())}
    context = frame.filter(~null_features)
    if not (a.model.sequences or b.model.sequences):
        context = context.filter(day >= start)
    # else a kind that reads a row's history gets its symbol's earlier rows (features only).
    score_a, score_b = a.score(context), b.score(context)
    no_label = pl.col("label").is_null() | pl.col("forward_return").is_null()
    dates = context.get_column("ts").dt.date()
    keep = (
        (dates >= start).to_numpy()
        & ~context.select(no_label).to_series().to_numpy()
        & ~np.isnan(score_a)
        & ~np.isnan(score_b)
    )
    window_rows = int((dates >= start).sum())
    dropped["no_label"] = int(context.filter((day >= start) & no_label).height)
    dropped["unscored"] = window_rows - dropped["no_label"] - int(keep.sum())
    if not keep.any():
        raise DataError(
            f"no rows of feature set {where} between --from {start} and --to {end} have every "
            f"feature, a label and a score ({dropped['null_features']} with null features, "
            f"{dropped['no_label']} without a label yet); choose another window"
        )
    kept = context.filter(pl.Series(keep))
    return Scored(
        day=kept.get_column("ts").dt.date().to_physical().to_numpy().astype(np.int64),
        label=kept.get_column("label").cast(pl.Float64).to_numpy(),
        forward_return=kept.get_column("forward_return").cast(pl.Float64).to_numpy(),
        score_a=score_a[keep],
        score_b=score_b[keep],
        dropped=dropped,
    )


def _per_date(day: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over each distinct day, in ascending day order."""
    import numpy as np

    _, inverse, counts = np.unique(day, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=values) / counts


def improvements(task: str, s: Scored, ic_a: np.ndarray, ic_b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-date improvement series of B over A (one value per date, NaN where undefined);
    ``ic_a`` and ``ic_b`` are the versions' :func:`~quantcli.models.metrics.daily_ic`."""
    import numpy as np

    from quantcli.models.metrics import EPS

    out: dict[str, np.ndarray] = {}
    if task == CLASSIFIER:

        def log_loss(p: np.ndarray) -> np.ndarray:
            p = np.clip(p, EPS, 1 - EPS)
            return np.asarray(-(s.label * np.log(p) + (1 - s.label) * np.log1p(-p)))

        out["log_loss"] = _per_date(s.day, log_loss(s.score_a) - log_loss(s.score_b))
    else:
        err_a, err_b = s.score_a - s.label, s.score_b - s.label
        out["mae"] = _per_date(s.day, np.abs(err_a) - np.abs(err_b))
        out["mse"] = _per_date(s.day, err_a**2 - err_b**2)
    out["ic"] = ic_b - ic_a
    return out


def bootstrap(
    series: Mapping[str, np.ndarray], *, seed: int, resamples: int, block: int
) -> dict[str, BootstrapTest]:
    """One :class:`BootstrapTest` of the mean of each series (all of one length: the dates;
    NaN where undefined), from one set of resamples of the dates shared by all of them."""
    import numpy as np

    length = len(next(iter(series.values())))
    index = resample_index(length, seed=seed, resamples=resamples, block=block)
    out: dict[str, BootstrapTest] = {}
    for name, values in series.items():
        defined = ~np.isnan(values)
        if not defined.any():
            out[name] = summarise(name, math.nan, np.empty(0), 0)
            continue
        picked, counted = np.where(defined, values, 0.0)[index], defined[index].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = picked.sum(axis=1) / counted
        observed = float(values[defined].mean())
        out[name] = summarise(name, observed, means[counted > 0], int(defined.sum()))
    return out


def compare(
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
) -> Comparison:
    """What ``quantcli model compare A B`` does (see the module docstring). UsageError for a
    window either version has seen, different labels or feature schemas; DataError for a
    window with no rows; nothing is written."""
    from quantcli.features import open_feature_set
    from quantcli.models import registry
    from quantcli.models.leakage import require_unseen
    from quantcli.models.metrics import daily_ic, evaluate

    check_options(seed, resamples, block, start, end)
    meta_a, meta_b = registry.metadata(root, a), registry.metadata(root, b)
    check_comparable(meta_a, meta_b)
    for meta in (meta_a, meta_b):
        require_unseen(meta, start, end)
    fs = open_feature_set(features, root)
    model_a, model_b = registry.load(root, meta_a["ref"]), registry.load(root, meta_b["ref"])
    scored = score_window(
        model_a, model_b, fs.frame(), fs.labels(meta_a["label"]), start, end, fs.ref
    )
    task = str(meta_a["task"])
    ic_a = daily_ic(scored.day, scored.score_a, scored.forward_return)
    ic_b = daily_ic(scored.day, scored.score_b, scored.forward_return)
    series = improvements(task, scored, ic_a, ic_b)
    dates = len(ic_a)
    length = block or default_block(int(meta_a["horizon"]), dates)
    args = (scored.label, scored.day, scored.forward_return)
    return Comparison(
        a=meta_a["ref"],
        b=meta_b["ref"],
        features=fs.ref,
        start=start,
        end=end,
        task=task,
        label=str(meta_a["label"]),
        rows=len(scored.day),
        dates=dates,
        dropped=scored.dropped,
        seed=seed,
        resamples=resamples,
        block=length,
        metrics={
            "a": evaluate(task, args[0], scored.score_a, args[1], args[2], ic_by_date=ic_a),
            "b": evaluate(task, args[0], scored.score_b, args[1], args[2], ic_by_date=ic_b),
        },
        tests=bootstrap(series, seed=seed, resamples=resamples, block=length),
    )
