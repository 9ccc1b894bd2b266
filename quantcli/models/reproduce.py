"""Reproducing a registered model from its metadata alone, and saying what changed if it does
not: the data, the feature definition, the library versions or the artifact."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantcli.core.hashing import sha256_hex
from quantcli.errors import NotFoundError, UsageError
from quantcli.models.router import ROUTER

if TYPE_CHECKING:
    import polars as pl

    from quantcli.store.remotes import Remote


@dataclass(frozen=True)
class ReproduceReport:
    """The outcome of a re-training: ``identical`` when ``differences`` is empty."""

    ref: str
    recorded: dict[str, Any]
    metrics: dict[str, Any]
    predictions_sha256: str
    artifact_sha256: str
    differences: list[str] = field(default_factory=list)
    # Set when the kind re-trained on another CPU and its metrics moved within this tolerance.
    tolerance: float = 0.0

    @property
    def identical(self) -> bool:
        """Whether metrics, predictions and artifact all came out as recorded."""
        return not self.differences

    def summary(self) -> str:
        """One line: identical, or the short diff."""
        if self.identical and self.tolerance:
            return (
                f"{self.ref}: reproduced on another CPU (metrics within {self.tolerance:g}; "
                "predictions and artifact differ in their last bits)"
            )
        if self.identical:
            return f"{self.ref}: reproduced (metrics, predictions and artifact identical)"
        return f"{self.ref} does not reproduce: " + "; ".join(self.differences)


def _short(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _metric_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"{k} {_short(old.get(k))} -> {_short(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def _within(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> bool:
    """Whether every metric moved by at most ``tolerance`` (a kind re-trained on another CPU,
    whose predictions and artifact then differ in their last bits)."""
    if set(old) != set(new):
        return False
    return all(
        a == b or (isinstance(a, float) and isinstance(b, float) and abs(a - b) <= tolerance)
        for a, b in ((old[k], new[k]) for k in old)
    )


def reproduce_on_frames(
    root: Path,
    ref: str,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    found: list[str] | None = None,
) -> ReproduceReport:
    """Re-train model version ``ref`` on these frames with its recorded settings and compare.

    ``found`` holds differences already seen by the caller (the feature set's hashes).
    """
    from quantcli.models import registry
    from quantcli.models.kinds import kind_class
    from quantcli.models.train import (
        TrainSpec,
        cpu_name,
        fit_and_evaluate,
        frame_sha256,
        library_versions,
    )
    from quantcli.output import to_json

    name, version = registry.resolve(root, ref)
    meta = registry.metadata(root, f"{name}@v{version}")
    diffs = list(found or [])
    report = registry.verify_one(root, name, version)
    if not report.ok:
        diffs.append(f"artifact: {report.summary().split(': ', 1)[1]}")
    kind = kind_class(str(meta["kind"]))
    libs = library_versions(kind.libraries)
    changed = [
        f"{k} {meta['libraries'].get(k)} -> {libs.get(k)}"
        for k in sorted(set(libs) | set(meta["libraries"]))
        if libs.get(k) != meta["libraries"].get(k)
    ]
    if changed:
        diffs.append("library versions: " + ", ".join(changed))
    for what, frame in (("features", features), ("labels", labels)):
        if frame_sha256(frame) != meta[f"{what}_sha256"]:
            diffs.append(f"data: the {what} differ from those the model was trained on")
    trained = fit_and_evaluate(features, labels, TrainSpec.from_metadata(meta))
    # Through JSON, as recorded (NaN as null); a float's repr survives the round trip.
    metrics = json.loads(to_json(trained.metrics))
    artifact_sha = sha256_hex(trained.artifact)
    tolerance = kind.cross_cpu_tolerance if meta.get("cpu") != cpu_name() else 0.0
    exact = trained.predictions_sha256 == meta["predictions_sha256"]
    if exact or not (tolerance and _within(meta["metrics"], metrics, tolerance)):
        tolerance = 0.0
        moved = _metric_changes(meta["metrics"], metrics)
        if moved:
            diffs.append("metrics: " + ", ".join(moved))
        if trained.predictions_sha256 != meta["predictions_sha256"]:
            diffs.append(
                f"predictions: sha256 {meta['predictions_sha256'][:12]} -> "
                f"{trained.predictions_sha256[:12]}"
            )
        if artifact_sha != meta["artifact_sha256"]:
            diffs.append(f"artifact: sha256 {meta['artifact_sha256'][:12]} -> {artifact_sha[:12]}")
    return ReproduceReport(
        ref=f"{name}@v{version}",
        recorded=meta,
        metrics=metrics,
        predictions_sha256=trained.predictions_sha256,
        artifact_sha256=artifact_sha,
        differences=diffs,
        tolerance=tolerance,
    )


def reproduce(root: Path, ref: str, *, remote: Remote | None = None) -> ReproduceReport:
    """Re-train model version ``ref`` from its metadata against its pinned feature set and
    compare; when that feature-set version is gone but its dataset is not, the features are
    rebuilt from the definition and parameters the model recorded.

    With ``remote``, the model version (``NAME@vN``) and the feature-set and dataset versions
    it pinned are first pulled from it when the store lacks them (every hash checked)."""
    from quantcli.features import open_feature_set
    from quantcli.features.build import dataset_labels, rebuild_features
    from quantcli.models import registry
    from quantcli.models.train import feature_source
    from quantcli.store.reader import open_dataset

    if remote is not None:
        from quantcli.models.remote import ensure_model

        ensure_model(root, ref, remote)
    meta = registry.metadata(root, ref)
    if meta["kind"] == ROUTER:
        raise UsageError(
            f"{meta['ref']} is a router, which is not trained: `quantcli model verify "
            f"{meta['name']}` checks it, and each model it routes to reproduces on its own"
        )
    source = meta.get("source", {})
    if "features_ref" not in source:
        raise NotFoundError(
            f"{meta['ref']} was trained on frames, not on a feature set: reproduce it with "
            "quantcli.models.reproduce.reproduce_on_frames"
        )
    label = str(meta["label"])
    try:
        fs = open_feature_set(str(source["features_ref"]), root)
    except NotFoundError:
        # Rebuilt from the dataset version the model recorded, found by its content hash.
        dataset = f"{source['dataset_ref'].partition('@')[0]}@{source['dataset_hash']}"
        try:
            bars = open_dataset(dataset, root)
        except NotFoundError:
            raise NotFoundError(
                f"{meta['ref']}: neither its feature set {source['features_ref']} nor its "
                f"dataset {source['dataset_ref']} (hash {source['dataset_hash'][:12]}) is in "
                "the store; restore one of them to reproduce it"
            ) from None
        features, spec_sha256 = rebuild_features(
            root, dataset, str(source["spec"]), source["params"], str(source["definition"])
        )
        found = []
        if spec_sha256 != source["spec_sha256"]:
            found.append(
                f"feature definition: {source['spec']} sha256 {source['spec_sha256'][:12]} -> "
                f"{spec_sha256[:12]}"
            )
        return reproduce_on_frames(
            root, meta["ref"], features, dataset_labels(bars, label), found=found
        )
    now = feature_source(fs)
    found = []
    if now["dataset_hash"] != source["dataset_hash"]:
        found.append(
            f"data: dataset {source['dataset_ref']} hash {source['dataset_hash'][:12]} -> "
            f"{now['dataset_hash'][:12]}"
        )
    if now["features_hash"] != source["features_hash"]:
        found.append(
            f"feature definition: {source['features_ref']} hash "
            f"{source['features_hash'][:12]} -> {now['features_hash'][:12]}"
        )
    return reproduce_on_frames(root, meta["ref"], fs.frame(), fs.labels(label), found=found)
