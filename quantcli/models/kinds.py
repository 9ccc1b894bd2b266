"""Model kinds: a small base class, the built-in kinds and their registry by name.

A kind turns a feature matrix into one score per row: the probability of class 1 for a
``direction:H`` label (a classifier), the predicted forward return for ``return:H`` (a
regressor). Its typed parameters are a frozen dataclass ``Params`` nested in the class, parsed
from ``-p name=value`` by the strategy parameter parser. A kind is deterministic given its seed:
scikit-learn estimators get ``random_state`` and a fixed thread count.

Kinds are registered as ``module:Class`` paths and imported on first use, so a kind with a heavy
library (the LSTM) is one more module and one more line in :data:`KINDS`; scikit-learn itself is
imported only inside the methods that fit, predict or store a model.

Fitted scikit-learn models are stored with skops and loaded with :data:`TRUSTED_TYPES`, a list
kept here: the types an artifact declares are never what decides whether it is trusted.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from quantcli.errors import IntegrityError, StrategyError, UsageError

CLASSIFIER = "classifier"
REGRESSOR = "regressor"
# Threads a fit may use: fixed, so a result never depends on the machine's core count. One:
# OpenMP's spinning threads made a small hgb fit 20x slower on a busy 2-core machine.
FIT_THREADS = 1

KINDS: dict[str, str] = {
    "baseline": "quantcli.models.kinds:Baseline",
    "logistic": "quantcli.models.kinds:Logistic",
    "hgb": "quantcli.models.kinds:HistGradientBoosting",
    "rf": "quantcli.models.kinds:RandomForest",
    "lstm": "quantcli.models.lstm:LSTM",
}

# The only non-default types a quantcli artifact may hold (beyond skops' own trusted
# scikit-learn and numpy types): the tree structures of hgb and rf.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
# skops names each node (``"__id__": N``) and array file (``"N.npy"``) after id() of the object:
# renumbered in order of appearance so that equal models give equal bytes.
_OBJECT_ID = re.compile(r'(?<="__id__": )([0-9]+)|(?<=")([0-9]+)(?=\.npy")')
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_DEFLATED = zipfile.ZIP_DEFLATED


class ModelKind:
    """Base class of model kinds.

    Subclasses set ``name`` and ``artifact_name`` (the file the fitted model is stored in),
    nest a frozen dataclass ``Params`` and implement ``fit``, ``score``, ``dumps`` and
    ``loads``. ``task`` is :data:`CLASSIFIER` or :data:`REGRESSOR`; ``features`` are the column
    names of ``x``, in order.

    ``fit`` and ``score`` also receive ``groups``, each row's symbol, with rows of one symbol in
    time order. A kind that reads a row's history (``sequences = True``) builds its inputs within
    a symbol from them; training lets it see earlier rows' features when scoring a test block,
    and drops (and counts) the rows it scores NaN for lack of history.
    """

    name: ClassVar[str]
    artifact_name: ClassVar[str] = "model.skops"
    sequences: ClassVar[bool] = False
    # Distributions beyond train.LIBRARIES whose versions decide this kind's numbers.
    libraries: ClassVar[tuple[str, ...]] = ()
    # Largest metric change reproduce accepts when re-training on another CPU (0: none).
    cross_cpu_tolerance: ClassVar[float] = 0.0

    @dataclass(frozen=True)
    class Params:
        """No parameters."""

    def __init__(self, params: Any, *, task: str, seed: int, features: tuple[str, ...]) -> None:
        self.params = params
        self.task = task
        self.seed = seed
        self.features = features

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Fit on ``x`` (rows x features, float64) and labels ``y``."""
        raise NotImplementedError

    def score(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """One float64 score per row of ``x``: P(class 1) or the predicted return."""
        raise NotImplementedError

    def dumps(self) -> bytes:
        """The fitted model as artifact bytes (equal models give equal bytes)."""
        raise NotImplementedError

    def loads(self, data: bytes) -> None:
        """Restore the fitted state from :meth:`dumps` bytes (IntegrityError if unreadable)."""
        raise NotImplementedError

    def sidecars(self) -> dict[str, bytes]:
        """Files derived from the fitted model, stored beside its artifact (name -> bytes) so
        that a registered version can be scored without deserialising it; none by default."""
        return {}

    def restore(self, data: bytes, sidecars: Mapping[str, bytes]) -> None:
        """Restore a registered version from its artifact and its :meth:`sidecars` (both
        sha256-checked by the caller; a version registered before a kind had sidecars has none)."""
        self.loads(data)


def kind_class(name: str) -> type[ModelKind]:
    """The class of kind ``name`` (UsageError naming the known kinds)."""
    path = KINDS.get(name)
    if path is None:
        raise UsageError(f"unknown model kind {name!r}; use one of {', '.join(KINDS)} (--model)")
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, ModelKind)):  # pragma: no cover
        raise TypeError(f"{path} is not a ModelKind")
    return cls


def parse_kind_params(name: str, raw: Mapping[str, str]) -> dict[str, object]:
    """``-p`` strings parsed to kind ``name``'s typed parameters (UsageError if wrong)."""
    from quantcli.backtest.strategy import parse_params

    cls = kind_class(name)
    try:
        params = parse_params(cls, raw, name)
    except StrategyError as exc:
        reason = exc.message.removeprefix(f"strategy {name}: ")
        raise UsageError(f"model kind {name}: {reason} (-p)") from None
    return dataclasses.asdict(params)


def make_kind(
    name: str, params: Mapping[str, object], *, task: str, seed: int, features: tuple[str, ...]
) -> ModelKind:
    """An unfitted instance of kind ``name`` with already parsed ``params``."""
    cls = kind_class(name)
    return cls(cls.Params(**params), task=task, seed=seed, features=features)


class Baseline(ModelKind):
    """No fitting: the score is the sign of a feature (by default the last H-session return).

    A classifier scores 1.0 when the feature is > 0, else 0.0; a regressor scores the feature
    itself (the last H-session return as the forecast of the next one).
    """

    name = "baseline"
    artifact_name = "model.json"

    @dataclass(frozen=True)
    class Params:
        """``feature``: the column to take the sign of."""

        feature: str = "ret_5"

    def _column(self) -> int:
        feature = self.params.feature
        if feature not in self.features:
            raise UsageError(
                f"model kind baseline: feature {feature!r} is not in the feature set "
                f"({', '.join(self.features)}); give -p feature=NAME"
            )
        return self.features.index(feature)

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Nothing to learn; checks that the feature exists."""
        self._column()

    def score(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """The sign (classifier) or value (regressor) of the chosen feature."""
        values = x[:, self._column()].astype(np.float64)
        return (values > 0).astype(np.float64) if self.task == CLASSIFIER else values

    def dumps(self) -> bytes:
        """The parameters as JSON: there is no fitted state."""
        doc = {"kind": self.name, "task": self.task, "feature": self.params.feature}
        return (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")

    def loads(self, data: bytes) -> None:
        """Check the stored parameters match this instance."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"unreadable baseline artifact: {exc}") from None
        if doc != json.loads(self.dumps()):
            raise IntegrityError("baseline artifact does not match its metadata")


class SklearnKind(ModelKind):
    """A scikit-learn estimator, stored with skops."""

    def __init__(self, params: Any, *, task: str, seed: int, features: tuple[str, ...]) -> None:
        super().__init__(params, task=task, seed=seed, features=features)
        self.model: Any = None

    def estimator(self) -> Any:
        """A new unfitted estimator for ``self.task``."""
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Fit a fresh estimator with at most FIT_THREADS threads."""
        from threadpoolctl import threadpool_limits

        model = self.estimator()
        with threadpool_limits(limits=FIT_THREADS):
            model.fit(x, y)
        self.model = model

    def score(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """P(class 1) for a classifier, the prediction for a regressor."""
        if self.task == CLASSIFIER:
            return np.asarray(self.model.predict_proba(x)[:, 1], dtype=np.float64)
        return np.asarray(self.model.predict(x), dtype=np.float64)

    def dumps(self) -> bytes:
        """skops bytes, rewritten with stable member names and times."""
        import skops.io

        return _canonical_zip(skops.io.dumps(self.model))

    def loads(self, data: bytes) -> None:
        """Load skops bytes trusting only skops' defaults and :data:`TRUSTED_TYPES`."""
        import skops.io

        try:
            self.model = skops.io.loads(data, trusted=list(TRUSTED_TYPES))
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise IntegrityError(f"refusing to load the artifact: {text}") from None


def renumber_ids(pattern: re.Pattern[str], text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each match of ``pattern`` (an id() of an object when saved) renumbered
    0, 1, ... in order of first appearance, and the old-to-new mapping."""
    ids: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        return ids.setdefault(match.group(0), str(len(ids)))

    return pattern.sub(renumber, text), ids


def _canonical_zip(data: bytes) -> bytes:
    """skops' zip with object ids renumbered 0, 1, ... and fixed member times."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = src.read("schema.json").decode("utf-8")
        schema, ids = renumber_ids(_OBJECT_ID, schema)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", _DEFLATED) as dst:
            arrays = {
                f"{ids[n.removesuffix('.npy')]}.npy": n
                for n in src.namelist()
                if n != "schema.json"
            }
            for new in sorted(arrays, key=lambda n: int(n.removesuffix(".npy"))):
                dst.writestr(zipfile.ZipInfo(new, ZIP_TIME), src.read(arrays[new]), _DEFLATED)
            dst.writestr(zipfile.ZipInfo("schema.json", ZIP_TIME), schema, _DEFLATED)
    return out.getvalue()


class Logistic(SklearnKind):
    """Logistic regression (classifier) or ridge regression (regressor), L2 strength ``1/c``."""

    name = "logistic"

    @dataclass(frozen=True)
    class Params:
        """``c``: inverse L2 strength; ``max_iter``: solver iterations."""

        c: float = 1.0
        max_iter: int = 200

    def estimator(self) -> Any:
        """LogisticRegression(C=c) or Ridge(alpha=1/c)."""
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.params.c <= 0:
            raise UsageError(f"model kind logistic: c must be > 0, got {self.params.c} (-p c=)")
        if self.task == CLASSIFIER:
            return LogisticRegression(
                C=self.params.c, max_iter=self.params.max_iter, random_state=self.seed
            )
        return Ridge(alpha=1.0 / self.params.c, random_state=self.seed)


class HistGradientBoosting(SklearnKind):
    """Histogram gradient boosting; early stopping off, so every fit runs ``max_iter`` rounds
    (its random validation split would make the model depend on the row count).

    The fitted trees laid out as bitvector tables (:mod:`.bitvector`) score the same bits as
    scikit-learn, about ten times faster. A registered version stores them as its
    :data:`~quantcli.models.bitvector.TABLES_FILE` sidecar: restored from it, every batch is
    scored from them, and the skops artifact is deserialised (scikit-learn imported) only if
    the estimator itself is asked for. A model fitted or loaded in this process builds its
    tables on its first batch of :data:`TABLE_ROWS` rows or more; smaller ones go through
    scikit-learn's own walk, quicker there than loading the compiled scorer into the process.
    """

    name = "hgb"
    # scikit-learn walked 50 k rows of 100 trees in 0.26-0.47 s here; loading the compiled scorer
    # costs 0.3-1 s once a process (several seconds to compile on an empty numba cache).
    TABLE_ROWS: ClassVar[int] = 50_000

    # Set through ``model``: the estimator; a restored version's skops bytes, deserialised on
    # first use; the tables it stored (they stand for the estimator, loaded or not).
    _estimator: Any
    _artifact: bytes | None
    _stored: Any

    def __init__(self, params: Any, *, task: str, seed: int, features: tuple[str, ...]) -> None:
        super().__init__(params, task=task, seed=seed, features=features)
        # Derived from the fitted model on its first big score; rebuilt when the model changes.
        self._tables: Any = None
        self._tables_of: Any = None

    @property
    def model(self) -> Any:
        """The fitted estimator (a restored version's skops artifact loaded on first use)."""
        if self._artifact is not None:
            data, stored = self._artifact, self._stored
            self.loads(data)
            self._stored = stored
        return self._estimator

    @model.setter
    def model(self, value: Any) -> None:
        self._artifact = None
        self._estimator = value
        self._stored = None

    @dataclass(frozen=True)
    class Params:
        """Boosting rounds, step size, tree size and L2 regularisation."""

        max_iter: int = 100
        learning_rate: float = 0.1
        max_leaf_nodes: int = 31
        min_samples_leaf: int = 20
        l2_regularization: float = 0.0

    def estimator(self) -> Any:
        """HistGradientBoostingClassifier or ...Regressor."""
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = (
            HistGradientBoostingClassifier
            if self.task == CLASSIFIER
            else HistGradientBoostingRegressor
        )
        return cls(**dataclasses.asdict(self.params), early_stopping=False, random_state=self.seed)

    def sidecars(self) -> dict[str, bytes]:
        """The fitted trees' bitvector tables, when the layout can hold them."""
        from quantcli.models import bitvector

        tables = bitvector.build_tables(self.model)
        return {} if tables is None else {bitvector.TABLES_FILE: bitvector.dumps_tables(tables)}

    def restore(self, data: bytes, sidecars: Mapping[str, bytes]) -> None:
        """From the stored tables when there are some (the skops bytes kept for later), else
        from the skops artifact."""
        from quantcli.models import bitvector

        stored = sidecars.get(bitvector.TABLES_FILE)
        if stored is None:
            self.loads(data)
            return
        try:
            tables = bitvector.loads_tables(stored)
        except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
            raise IntegrityError(f"refusing to load the stored tables: {exc}") from None
        self.model = None
        self._artifact = data
        self._stored = tables

    def score(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """P(class 1) or the prediction, bit-identical to ``predict_proba``/``predict``."""
        stored = self._stored
        if stored is not None and x.ndim == 2 and x.shape[1] == stored.n_features:
            from quantcli.models import bitvector

            return bitvector.scores(stored, x)
        # Input scikit-learn should reject in its words goes to the estimator too.
        model = self.model
        if len(x) < self.TABLE_ROWS:
            return super().score(x, groups)
        from quantcli.models import bitvector

        if self._tables_of is not model:
            self._tables = bitvector.build_tables(model)
            self._tables_of = model
        if self._tables is None or x.ndim != 2 or x.shape[1] != model.n_features_in_:
            return super().score(x, groups)
        return bitvector.scores(self._tables, x)


class RandomForest(SklearnKind):
    """Random forest fitted with FIT_THREADS jobs."""

    name = "rf"

    @dataclass(frozen=True)
    class Params:
        """Trees, depth (none: unlimited), leaf size and features tried per split."""

        n_estimators: int = 100
        max_depth: int | None = 8
        min_samples_leaf: int = 20
        max_features: float = 0.5

    def estimator(self) -> Any:
        """RandomForestClassifier or ...Regressor."""
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if self.task == CLASSIFIER else RandomForestRegressor
        return cls(**dataclasses.asdict(self.params), n_jobs=FIT_THREADS, random_state=self.seed)
