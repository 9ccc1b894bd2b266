"""Training a model kind on features and labels, evaluating it walk-forward, registering it.

A training request is a :class:`TrainSpec` (label, kind and parameters, window, folds, seed,
embargo): the CLI builds one from its options, reproduce from a version's metadata.
``train`` does what ``quantcli model train`` does: it opens a feature set, takes its labels,
and calls :func:`train_on_frames`, which does the work on two polars frames:

1. joins the features (``symbol, ts, <features>``) with the labels (``symbol, ts, label,
   forward_return``) and keeps the sessions from ``train_from`` to ``test_to`` (default
   ``train_to``);
2. drops, and counts, the rows with a null feature (warm-up windows) and those with no label
   yet (the last H sessions of the data); nothing is filled;
3. evaluates out of sample on walk-forward folds over session dates (:mod:`.evaluate`): with
   ``test_to`` the test blocks split the sessions after ``train_to``, else the training window
   is cut into ``folds + 1`` blocks and the last ``folds`` are tested;
4. fits the registered model on the training window without its last H sessions (their labels
   look past ``train_to``) and publishes it with its metadata, unless a version made from the
   same inputs exists (then nothing is written).

Everything that decides a number is hashed into the version's ``identity``: the feature and
label data themselves, the kind, its parameters, the seed, the window, the folds and the library
versions.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantcli import __version__
from quantcli.core.hashing import sha256_hex
from quantcli.errors import DataError, UsageError
from quantcli.features.labels import LabelSpec
from quantcli.models.kinds import CLASSIFIER, FIT_THREADS, REGRESSOR

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from quantcli.features import FeatureSet

KEYS = ("symbol", "ts")
LABEL_COLUMNS = ("label", "forward_return")
LIBRARIES = ("numpy", "scipy", "scikit-learn", "skops", "polars", "threadpoolctl")
# The metadata layout: part of every identity, so a new layout never matches an old version.
FORMAT = 1


def label_task(label: LabelSpec) -> str:
    """The task a label trains: ``direction:H`` a classifier, ``return:H`` a regressor."""
    return CLASSIFIER if label.kind == "direction" else REGRESSOR


@dataclass(frozen=True)
class TrainSpec:
    """What a training is asked for, apart from the data and where the model goes.

    ``params`` are the kind's raw ``-p`` strings; ``embargo`` defaults to the label horizon;
    ``test_to`` (after ``train_to``) tests walk-forward on the sessions after the training
    window, else the training window is cut into ``folds + 1`` blocks.
    """

    label: str
    kind: str
    train_from: date
    train_to: date
    seed: int
    params: Mapping[str, str] = field(default_factory=dict)
    test_to: date | None = None
    folds: int = 3
    embargo: int | None = None

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> TrainSpec:
        """The request a registered version was trained from (its recorded parameters,
        already typed, as the ``-p`` strings that parse back to them)."""
        window = meta["window"]
        test_to = window["test_to"]
        return cls(
            label=str(meta["label"]),
            kind=str(meta["kind"]),
            train_from=date.fromisoformat(window["train_from"]),
            train_to=date.fromisoformat(window["train_to"]),
            seed=int(meta["seed"]),
            params={k: str(v) for k, v in meta["params"].items()},
            test_to=None if test_to is None else date.fromisoformat(test_to),
            folds=int(meta["folds"]),
            embargo=int(meta["embargo"]),
        )

    @property
    def label_spec(self) -> LabelSpec:
        """The parsed label (UsageError if invalid)."""
        return LabelSpec.parse(self.label)

    @property
    def embargo_sessions(self) -> int:
        """Sessions embargoed after each test block: ``embargo``, else the label horizon."""
        return self.label_spec.horizon if self.embargo is None else self.embargo

    def kind_params(self) -> dict[str, object]:
        """The kind's parameters, typed (UsageError on an unknown kind or a bad value)."""
        from quantcli.models.kinds import parse_kind_params

        return parse_kind_params(self.kind, self.params)

    def check(self) -> dict[str, object]:
        """The cheap checks, before any data is read: label, kind, parameters, seed. Returns
        the typed parameters."""
        self.label_spec  # noqa: B018 - parsing is the check
        params = self.kind_params()
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        return params

    def recorded(self) -> dict[str, Any]:
        """The request as metadata records it (and identity hashes it)."""
        return {
            "label": self.label,
            "kind": self.kind,
            "params": self.kind_params(),
            "seed": self.seed,
            "window": {
                "train_from": self.train_from.isoformat(),
                "train_to": self.train_to.isoformat(),
                "test_to": None if self.test_to is None else self.test_to.isoformat(),
            },
            "folds": self.folds,
            "embargo": self.embargo_sessions,
        }


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The versions of Python, quantcli and every library that decides a model's numbers
    (``extra``: a kind's own, such as TensorFlow)."""
    out = {"python": platform.python_version(), "quantcli": __version__}
    for name in (*LIBRARIES, *extra):
        try:
            out[name] = package_version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_name() -> str:
    """The CPU model (with the architecture): where a kind's floating-point results may change."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
    except OSError:
        names = []
    return f"{platform.machine()} {names[0] if names else platform.processor()}".strip()


def frame_sha256(frame: pl.DataFrame) -> str:
    """sha256 of a frame's column names, dtypes, values and nulls (the whole content)."""
    import numpy as np
    import polars as pl

    digest = hashlib.sha256()
    for name, series in zip(frame.columns, frame.get_columns(), strict=True):
        digest.update(f"{name}\0{series.dtype}\0".encode())
        digest.update(series.is_null().to_numpy().tobytes())
        if series.dtype == pl.String:
            digest.update("\0".join(series.fill_null("").to_list()).encode("utf-8"))
        elif series.dtype.is_temporal():
            digest.update(series.to_physical().fill_null(0).to_numpy().astype(np.int64).tobytes())
        else:
            values = series.cast(pl.Float64).fill_null(0.0).to_numpy()
            digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Prepared:
    """The rows a training uses, as arrays in (session, symbol) order."""

    features: tuple[str, ...]
    input_schema: tuple[tuple[str, str], ...]
    x: np.ndarray
    y: np.ndarray
    forward_return: np.ndarray
    session: np.ndarray  # index into sessions
    symbols: np.ndarray
    ts_us: np.ndarray
    sessions: tuple[date, ...]
    train_sessions: int
    dropped: dict[str, int]


def prepare(features: pl.DataFrame, labels: pl.DataFrame, spec: TrainSpec) -> Prepared:
    """The rows of the spec's window with every feature and a label, as arrays (DataError if
    none)."""
    import numpy as np
    import polars as pl

    task, horizon = label_task(spec.label_spec), spec.label_spec.horizon
    train_from, train_to, test_to = spec.train_from, spec.train_to, spec.test_to

    for frame, what, needed in (
        (features, "features", KEYS),
        (labels, "labels", (*KEYS, *LABEL_COLUMNS)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"the {what} frame has no column(s) {', '.join(missing)}")
    names = tuple(c for c in features.columns if c not in KEYS)
    if not names:
        raise DataError("the feature set has no feature columns")
    bad = [c for c in names if not features.schema[c].is_numeric()]
    if bad:
        raise DataError(f"feature column(s) {', '.join(bad)} are not numeric")
    if test_to is not None and test_to <= train_to:
        raise UsageError(f"--test-to {test_to} must be after --train-to {train_to}")
    if train_to < train_from:
        raise UsageError(f"--train-to {train_to} is before --train-from {train_from}")
    end = test_to or train_to
    all_sessions = features.select(pl.col("ts").dt.date().unique().sort()).to_series()
    if all_sessions.len() <= horizon:
        raise DataError(
            f"the label horizon ({horizon} sessions) is longer than the data "
            f"({all_sessions.len()} sessions); use a shorter --label horizon"
        )
    joined = (
        features.join(labels.select(*KEYS, *LABEL_COLUMNS), on=list(KEYS), how="left")
        .with_columns(pl.col("ts").dt.date().alias("_date"))
        .filter(pl.col("_date").is_between(train_from, end))
        .sort("_date", "symbol")
    )
    if joined.height == 0:
        raise DataError(
            f"no rows between --train-from {train_from} and {end} in the feature set "
            f"(it spans {all_sessions[0]} to {all_sessions[-1]})"
        )
    sessions = tuple(joined.get_column("_date").unique(maintain_order=True).to_list())
    train_sessions = sum(1 for d in sessions if d <= train_to)
    null_features = pl.any_horizontal(pl.col(c).is_null() | pl.col(c).is_nan() for c in names)
    dropped = {
        "null_features": int(joined.select(null_features.sum()).item()),
    }
    kept = joined.filter(~null_features)
    no_label = pl.col("label").is_null() | pl.col("forward_return").is_null()
    dropped["no_label"] = int(kept.select(no_label.sum()).item())
    kept = kept.filter(~no_label)
    if kept.height == 0:
        raise DataError(
            f"no rows with every feature and a label between {train_from} and {end} "
            f"({dropped['null_features']} with null features, {dropped['no_label']} without "
            "a label); widen the window"
        )
    index = {d: i for i, d in enumerate(sessions)}
    session = np.asarray([index[d] for d in kept.get_column("_date").to_list()], dtype=np.int64)
    y = kept.get_column("label").cast(pl.Float64).to_numpy()
    if task == CLASSIFIER and not np.isin(y, (0.0, 1.0)).all():
        raise DataError("a direction label must be 0 or 1")
    return Prepared(
        features=names,
        input_schema=tuple((c, str(features.schema[c])) for c in names),
        x=kept.select(pl.col(c).cast(pl.Float64) for c in names).to_numpy(),
        y=y,
        forward_return=kept.get_column("forward_return").cast(pl.Float64).to_numpy(),
        session=session,
        symbols=kept.get_column("symbol").to_numpy(),
        ts_us=kept.get_column("ts").dt.epoch("us").to_numpy(),
        sessions=sessions,
        train_sessions=train_sessions,
        dropped=dropped,
    )


@dataclass(frozen=True)
class Trained:
    """A fitted model with its evaluation, before registration."""

    model: Any  # ModelKind
    folds: list[dict[str, Any]]
    metrics: dict[str, Any]
    predictions_sha256: str
    predictions_rows: int
    train_rows: int
    artifact: bytes
    prepared: Prepared
    # Files derived from the fitted model, stored beside the artifact (ModelKind.sidecars).
    sidecars: dict[str, bytes] = field(default_factory=dict)


def _check_classes(task: str, y: np.ndarray, where: str) -> None:
    import numpy as np

    if task == CLASSIFIER and len(np.unique(y)) < 2:
        raise DataError(
            f"the labels of {where} have a single class ({int(y[0])}); a classifier needs "
            "both: widen the window or use a return label"
        )


def _predictions_sha256(p: Prepared, rows: np.ndarray, score: np.ndarray) -> str:
    import numpy as np

    digest = hashlib.sha256()
    digest.update("\0".join(str(s) for s in p.symbols[rows]).encode("utf-8"))
    digest.update(np.ascontiguousarray(p.ts_us[rows], dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(score, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _score_rows(
    model: Any, p: Prepared, rows: np.ndarray, last_session: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows a fitted kind scores, their scores, and how many it could not score.

    A sequence kind also sees the features (never the labels) of every earlier row, so a test
    block's first rows have their history; rows it still scores NaN (a symbol's first rows)
    are dropped and counted.
    """
    import numpy as np

    context = np.flatnonzero(p.session <= last_session) if model.sequences else rows
    score = model.score(p.x[context], p.symbols[context])[np.isin(context, rows)]
    keep = ~np.isnan(score)
    return rows[keep], score[keep], int(len(rows) - keep.sum())


def fit_and_evaluate(features: pl.DataFrame, labels: pl.DataFrame, spec: TrainSpec) -> Trained:
    """Evaluate the spec's kind on the walk-forward folds of these frames and fit the final
    model (UsageError or DataError on bad input)."""
    import numpy as np

    from quantcli.models.evaluate import final_train, walk_forward
    from quantcli.models.kinds import make_kind
    from quantcli.models.metrics import evaluate

    p = prepare(features, labels, spec)
    task, horizon = label_task(spec.label_spec), spec.label_spec.horizon
    kind, params, seed, folds = spec.kind, spec.kind_params(), spec.seed, spec.folds
    embargo, test_window = spec.embargo_sessions, spec.test_to is not None
    first_test = p.train_sessions if test_window else p.train_sessions // (folds + 1)
    n_sessions = len(p.sessions) if test_window else p.train_sessions
    plan = walk_forward(n_sessions, first_test, folds, horizon, embargo)
    fold_docs: list[dict[str, Any]] = []
    oos_rows: list[np.ndarray] = []
    oos_scores: list[np.ndarray] = []
    for fold in plan:
        train_rows = np.flatnonzero(np.isin(p.session, fold.train))
        test_rows = np.flatnonzero((p.session >= fold.test_start) & (p.session <= fold.test_end))
        if len(train_rows) == 0 or len(test_rows) == 0:
            raise DataError(
                f"fold {fold.number} has no {'training' if len(train_rows) == 0 else 'test'} "
                "rows once null features are dropped; widen the window or give fewer --folds"
            )
        _check_classes(task, p.y[train_rows], f"fold {fold.number}'s training rows")
        model = make_kind(kind, params, task=task, seed=seed, features=p.features)
        model.fit(p.x[train_rows], p.y[train_rows], p.symbols[train_rows])
        test_rows, score, short = _score_rows(model, p, test_rows, fold.test_end)
        if len(test_rows) == 0:
            raise DataError(
                f"fold {fold.number} has no test rows with enough history for model kind "
                f"{kind}; widen the window or give fewer --folds"
            )
        fold_docs.append(
            {
                "fold": fold.number,
                "train_rows": len(train_rows),
                "train_from": p.sessions[fold.train[0]].isoformat(),
                "train_to": p.sessions[fold.train[-1]].isoformat(),
                "test_from": p.sessions[fold.test_start].isoformat(),
                "test_to": p.sessions[fold.test_end].isoformat(),
                "metrics": evaluate(
                    task, p.y[test_rows], score, p.session[test_rows], p.forward_return[test_rows]
                ),
                **({"short_history_rows": short} if model.sequences else {}),
            }
        )
        oos_rows.append(test_rows)
        oos_scores.append(score)
    rows = np.concatenate(oos_rows)
    scores = np.concatenate(oos_scores)
    overall = evaluate(task, p.y[rows], scores, p.session[rows], p.forward_return[rows])
    final_rows = np.flatnonzero(np.isin(p.session, final_train(p.train_sessions, horizon)))
    if len(final_rows) == 0:
        raise DataError(
            f"the training window has no rows once its last {horizon} sessions (whose labels "
            "look past --train-to) are left out; widen the window"
        )
    _check_classes(task, p.y[final_rows], "the training window")
    final = make_kind(kind, params, task=task, seed=seed, features=p.features)
    final.fit(p.x[final_rows], p.y[final_rows], p.symbols[final_rows])
    return Trained(
        model=final,
        folds=fold_docs,
        metrics=overall,
        predictions_sha256=_predictions_sha256(p, rows, scores),
        predictions_rows=len(rows),
        train_rows=len(final_rows),
        artifact=final.dumps(),
        prepared=p,
        sidecars=final.sidecars(),
    )


@dataclass(frozen=True)
class TrainResult:
    """A training's registered version (``created`` False when it already existed)."""

    metadata: dict[str, Any]
    created: bool


def _identity(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_hex(text.encode("utf-8"))


def train_on_frames(
    root: Path,
    name: str,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    spec: TrainSpec,
    *,
    source: Mapping[str, Any] | None = None,
    wait: float = 0,
) -> TrainResult:
    """Train, evaluate and register model ``name`` on frames (see the module docstring).

    ``source`` records where the frames came from (feature set and dataset refs and hashes).
    UsageError or DataError (and nothing written) on bad input.
    """
    from quantcli.models import registry
    from quantcli.models.kinds import kind_class

    registry.check_model_name(name)
    spec.check()
    task, horizon = label_task(spec.label_spec), spec.label_spec.horizon
    inputs = {
        "format": FORMAT,
        "source": dict(source or {}),
        "features_sha256": frame_sha256(features),
        "labels_sha256": frame_sha256(labels),
        **spec.recorded(),
        "fit_threads": FIT_THREADS,
        "libraries": library_versions(kind_class(spec.kind).libraries),
    }
    identity = _identity(inputs)
    existing = registry.find(root, name, identity)
    if existing is not None:
        return TrainResult(existing, created=False)
    trained = fit_and_evaluate(features, labels, spec)
    prepared = trained.prepared
    artifact_name = kind_class(spec.kind).artifact_name
    artifact_sha = sha256_hex(trained.artifact)

    sidecar_shas = {file: sha256_hex(data) for file, data in sorted(trained.sidecars.items())}

    def build(version: int) -> tuple[dict[str, Any], dict[str, bytes]]:
        meta = {
            **inputs,
            "name": name,
            "version": version,
            "ref": f"{name}@v{version}",
            "task": task,
            "horizon": horizon,
            "identity": identity,
            "sessions": len(prepared.sessions),
            "train_rows": trained.train_rows,
            "fold_results": trained.folds,
            "metrics": trained.metrics,
            "predictions_sha256": trained.predictions_sha256,
            "predictions_rows": trained.predictions_rows,
            "dropped_rows": prepared.dropped,
            "input_schema": [{"name": c, "dtype": t} for c, t in prepared.input_schema],
            "artifact": artifact_name,
            "artifact_sha256": artifact_sha,
            "files": {artifact_name: artifact_sha, **sidecar_shas},
            "cpu": cpu_name(),
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        return meta, {artifact_name: trained.artifact, **trained.sidecars}

    meta, created = registry.publish(root, name, build, identity, wait=wait)
    return TrainResult(meta, created)


def train(name: str, spec: TrainSpec, *, features: str, root: Path, wait: float = 0) -> TrainResult:
    """What ``quantcli model train`` does: train ``spec`` on feature set ``features`` (a
    reference) and its labels, and register the model as ``name``."""
    from quantcli.features import open_feature_set
    from quantcli.models.registry import check_model_name

    # The cheap checks first: a typo is reported before the feature set is read.
    check_model_name(name)
    spec.check()
    fs = open_feature_set(features, root)
    return train_on_frames(
        root,
        name,
        fs.frame(),
        fs.labels(spec.label),
        spec,
        source=feature_source(fs),
        wait=wait,
    )


def feature_source(fs: FeatureSet) -> dict[str, Any]:
    """What a model records about its feature set: refs and content hashes, and the definition
    with its parameters (to rebuild the set from its dataset when the version is gone)."""
    return {
        "features_ref": fs.ref,
        "features_hash": fs.content_hash,
        "dataset_ref": fs.dataset_ref,
        "dataset_hash": fs.dataset_hash,
        "columns": list(fs.columns),
        "spec": fs.spec,
        "spec_sha256": fs.spec_hash,
        "params": fs.params,
        "definition": fs.definition,
    }
