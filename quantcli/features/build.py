"""Building feature sets into the store, and reading them back.

A feature set is a dataset version whose source kind is ``features``: the same publish (temp
directory, lock, manifest, atomic rename), verify, references, tags, rm, gc and ``data query``
as bars, with symbol, ts and Float64 feature columns. Its manifest records the source dataset's
pinned reference and content hash, the definition, its source hash and parameters; equal
inputs give equal bytes, so re-running a build publishes nothing new.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from quantcli.core.hashing import sha256_hex
from quantcli.errors import NotFoundError, StrategyError, UsageError
from quantcli.features.labels import LabelSpec, make_labels
from quantcli.features.spec import BUILTINS, WHAT, LoadedFeatures, feature_view, load_features
from quantcli.store.manifest import (
    Manifest,
    SourceInfo,
    check_name,
    read_manifest,
    version_dir,
    version_numbers,
)
from quantcli.store.schema import FEATURES_KIND

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction
    from quantcli.store.catalog import DatasetSummary
    from quantcli.store.publish import PublishResult
    from quantcli.store.reader import DatasetVersion


def compute_features(view: pl.DataFrame, loaded: LoadedFeatures) -> pl.DataFrame:
    """symbol, ts and the definition's features over ``view`` (StrategyError if they fail)."""
    exprs, inputs = loaded.expressions(), loaded.inputs()
    shadowed = [name for name in inputs if name in view.columns]
    if shadowed:
        # A helper replacing a bar column would change what every feature and the look-ahead
        # check read as that column.
        raise StrategyError(
            f"{WHAT} {loaded.spec}: inputs() name {shadowed[0]!r} is a column of the bars; "
            "rename it"
        )
    try:
        return view.with_columns(*inputs.values()).select("symbol", "ts", *exprs.values())
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise StrategyError(
            f"{WHAT} {loaded.spec}: its features failed: {type(exc).__name__}: {text}"
        ) from exc


def check_point_in_time(view: pl.DataFrame, loaded: LoadedFeatures, features: pl.DataFrame) -> None:
    """StrategyError when a feature at some bar depends on later bars: the backtester's
    look-ahead check (quantcli.backtest.targets.find_lookahead) on ``features``, the
    definition's values over ``view``."""
    from quantcli.backtest.targets import find_lookahead
    from quantcli.market.corporate_actions import PRICE_COLUMNS, VOLUME_COLUMNS

    names = [c for c in features.columns if c not in ("symbol", "ts")]

    def evaluate(bars: pl.DataFrame) -> np.ndarray:
        values = compute_features(bars, loaded).select(names)
        return np.asarray(values.to_numpy(), dtype=np.float64)

    present = pl.any_horizontal(c.is_not_null() & c.is_finite() for c in map(pl.col, names))
    valid = features.select(present).to_series().to_numpy()
    # Prices and share counts: a feature may read either (a strategy's targets are checked on
    # prices alone, as the backtester trades on them).
    counts = [*VOLUME_COLUMNS, *(f"raw_{c}" for c in VOLUME_COLUMNS)]
    prices = [*PRICE_COLUMNS, *(f"raw_{c}" for c in PRICE_COLUMNS)]
    exprs = [*loaded.inputs().values(), *loaded.expressions().values()]
    row = find_lookahead(view, valid, evaluate, distort=[*prices, *counts], exprs=exprs)
    if row is not None:
        raise StrategyError(
            f"{WHAT} {loaded.spec} looks ahead: its features at {row['symbol']} {row['ts']} "
            "depend on later bars"
        )


def source_view(root: Path, source: DatasetVersion) -> tuple[pl.DataFrame, list[CorporateAction]]:
    """The feature view of dataset version ``source`` (see spec.feature_view) and the
    corporate actions it was adjusted with."""
    from quantcli.market.calendar import using_store
    from quantcli.store.reader import reading

    with reading(source):
        # One chunk per column: per-symbol windows over many chunks cost twice as much.
        bars = source.frame().rechunk()
    actions = list(source.actions())
    with using_store(root):
        return feature_view(bars, actions), actions


def rebuild_features(
    root: Path,
    dataset: str,
    spec: str,
    params: Mapping[str, object],
    definition: str,
) -> tuple[pl.DataFrame, str]:
    """The features a build of ``spec`` with parsed ``params`` made from dataset version
    ``dataset`` (``NAME@<content hash>``), recomputed without publishing, from the recorded
    ``definition`` source (a user file that has changed since is not read). The same frame
    as FeatureSet.frame() of that build when nothing else changed, with the sha256 of the
    definition used (a built-in's current source)."""
    import tempfile

    from quantcli.store.reader import open_dataset

    raw = {k: str(v).lower() if isinstance(v, bool | None) else str(v) for k, v in params.items()}
    source = open_dataset(dataset, root)
    with tempfile.TemporaryDirectory(prefix="quantcli-features-") as tmp:
        if spec in BUILTINS:
            loaded = load_features(spec, raw)
        else:
            path = Path(tmp) / "definition.py"
            path.write_text(definition, encoding="utf-8")
            loaded = load_features(f"{path}:{spec.rpartition(':')[2]}", raw)
        view, _ = source_view(root, source)
        return compute_features(view, loaded), loaded.source_hash


def is_feature_set(manifest: Manifest) -> bool:
    """Whether a version holds a feature set (rather than bars)."""
    return manifest.source.kind == FEATURES_KIND


def build_features(
    root: Path,
    name: str,
    dataset_ref: str,
    spec: str,
    params: Mapping[str, str] | None = None,
    *,
    wait: float = 0,
    progress: Callable[[float], None] | None = None,
) -> PublishResult:
    """Build feature set ``name`` from dataset ``dataset_ref`` with definition ``spec``
    (``basic`` or ``path.py:ClassName``) and raw ``-p`` ``params``, and publish it as its next
    version (``created`` False when the latest version already holds the same features).

    Errors (an unknown dataset or definition, a bad parameter, a definition that raises or
    looks ahead, a name holding bars) leave nothing in the store.
    """
    from quantcli.store.publish import check_kind, publish
    from quantcli.store.reader import open_dataset

    def step(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    check_name(name)
    # publish checks the kind again under the lock; this fails before the features are computed.
    versions = version_numbers(root, name)
    if versions:
        check_kind(read_manifest(version_dir(root, name, versions[-1])), features=True)
    loaded = load_features(spec, params or {})
    source = open_dataset(dataset_ref, root)
    if is_feature_set(source.manifest):
        raise UsageError(f"{source.ref} is a feature set; build features from a bar dataset")
    view, actions = source_view(root, source)
    step(0.2)
    # The splits and bonuses decide the adjusted view, so they are recorded by their hash.
    actions_doc = json.dumps([a.to_dict() for a in actions], sort_keys=True)
    features = compute_features(view, loaded)
    step(0.5)
    check_point_in_time(view, loaded, features)
    del view
    step(0.6)
    options = {
        "dataset": source.ref,
        "dataset_hash": source.manifest.content_hash,
        "spec": spec,
        "spec_sha256": loaded.source_hash,
        "params": json.dumps(loaded.params, sort_keys=True),
        "actions_sha256": sha256_hex(actions_doc.encode("utf-8")),
    }
    result = publish(
        root,
        name,
        features,
        interval=source.manifest.interval,
        source=SourceInfo(kind=FEATURES_KIND, options=options),
        notes={
            "features": features.columns[2:],
            "params": dict(loaded.params),
            "definition": loaded.source,
        },
        wait=wait,
    )
    step(1.0)
    return result


@dataclass(frozen=True)
class FeatureSet:
    """One immutable feature-set version, opened from the store."""

    version: DatasetVersion

    @property
    def manifest(self) -> Manifest:
        """The version's manifest."""
        return self.version.manifest

    @property
    def ref(self) -> str:
        """The pinned reference ``NAME@vN``."""
        return self.manifest.ref

    @property
    def content_hash(self) -> str:
        """The content hash of the features."""
        return self.manifest.content_hash

    @property
    def dataset_ref(self) -> str:
        """The pinned reference of the dataset the features were built from."""
        return self.manifest.source.options["dataset"]

    @property
    def dataset_hash(self) -> str:
        """The content hash of that dataset version."""
        return self.manifest.source.options["dataset_hash"]

    @property
    def spec(self) -> str:
        """The definition as given to the build (``basic`` or ``path.py:ClassName``)."""
        return self.manifest.source.options["spec"]

    @property
    def spec_hash(self) -> str:
        """The sha256 of the definition's source file."""
        return self.manifest.source.options["spec_sha256"]

    @property
    def definition(self) -> str:
        """The definition's source file as it was built (to rebuild the set from it)."""
        return str(self.manifest.notes["definition"])

    @property
    def params(self) -> dict[str, object]:
        """The definition's parsed parameters."""
        loaded: dict[str, object] = json.loads(self.manifest.source.options["params"])
        return loaded

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature names, in stored order."""
        return tuple(c for c in self.manifest.schema if c not in ("symbol", "ts"))

    def frame(
        self,
        symbols: Sequence[str] | str | None = None,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
    ) -> pl.DataFrame:
        """symbol, ts and the features, sorted by (symbol, ts)."""
        return self.version.frame(symbols, start, end)

    def dataset(self) -> DatasetVersion:
        """The source dataset version, found by its content hash (so a pinned feature set
        never reads other bars); NotFoundError when it is no longer in the store."""
        from quantcli.store.reader import open_dataset

        name = self.dataset_ref.partition("@")[0]
        return open_dataset(f"{name}@{self.dataset_hash}", self.version.root)

    def labels(self, spec: LabelSpec | str) -> pl.DataFrame:
        """symbol, ts, label, forward_return from the source dataset's bars (see
        quantcli.features.labels.make_labels), on the same rows as :meth:`frame`."""
        return dataset_labels(self.dataset(), spec)


def dataset_labels(source: DatasetVersion, spec: LabelSpec | str) -> pl.DataFrame:
    """symbol, ts, label, forward_return of every bar of dataset version ``source`` (see
    quantcli.features.labels.make_labels)."""
    from quantcli.store.reader import reading

    label = spec if isinstance(spec, LabelSpec) else LabelSpec.parse(spec)
    columns = [c for c in ("symbol", "ts", "close", "prev_close") if c in source.manifest.schema]
    with reading(source):
        bars = source.frame(columns=columns)
    return make_labels(bars, label, actions=source.actions())


def open_feature_set(ref: str, root: Path) -> FeatureSet:
    """The feature-set version ``ref`` (NAME, NAME@vN, NAME@<tag>, NAME@<hash prefix>) names;
    NotFoundError when it is missing or holds bars."""
    from quantcli.store.reader import open_dataset

    try:
        version = open_dataset(ref, root)
    except NotFoundError as exc:
        raise NotFoundError(
            f"feature set {ref}: {exc.message}; build it with `quantcli features build`"
        ) from None
    if not is_feature_set(version.manifest):
        raise NotFoundError(
            f"{version.ref} is a bar dataset, not a feature set; build one with "
            f"`quantcli features build NAME --dataset {version.ref} --spec basic`"
        )
    return FeatureSet(version)


def list_feature_sets(root: Path) -> list[DatasetSummary]:
    """Every feature set under ``root`` with its latest version, sorted by name."""
    from quantcli.store.catalog import list_datasets

    return [s for s in list_datasets(root) if is_feature_set(s.latest)]
