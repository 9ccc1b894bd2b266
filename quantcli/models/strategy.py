"""The built-in ``model`` strategy: trade a registered model's scores.

``quantcli backtest --strategy model -p model=NAME@vN -p long=0.55 [-p short=0.45]
[-p weight=0.1]`` holds ``weight`` of equity long in a symbol while its score is at least
``long``, short while it is at most ``short`` (when given), and nothing in between; a bar the
model cannot score (a feature still warming up) is no opinion, so the position is kept.

Before the replay, :meth:`ModelStrategy.setup` loads the version (its artifact checked against
its sha256; a router with the models it routes to, as ``model predict`` opens it, but without
an audit log: a backtest is not a prediction served), refuses a run whose sessions the version
saw in training (its training window plus its label horizon, quantcli.models.leakage) unless
the run allows the overlap, and scores every
bar of the run in one batch. The features come from ``-p features=REF`` when given, else from
the feature set the model recorded when that version is in the store and was built from the
run's dataset, else they are built from the run's dataset with the definition and parameters
the model recorded. Either way they are point in time (a feature set is checked when it is
built), and a bar's target reads only its own row's score, so the backtester's look-ahead check
passes. The run records the version, its artifact's sha256 and the features' content as its
``model`` input, pinned to ``NAME@vN``: a run of ``NAME@champion`` reproduces that version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantcli.backtest.strategy import RunContext, Setup, SignalStrategy
from quantcli.core.hashing import sha256_hex
from quantcli.errors import DataError, IntegrityError, NotFoundError, StrategyError, UsageError

if TYPE_CHECKING:
    from quantcli.features import FeatureSet
    from quantcli.models.predict import Scorer
    from quantcli.store.remotes import Remote

KEYS = ("symbol", "ts")
# Where a run's window meets what its model learned from, the flag that allows it.
OVERLAP_FLAG = "--allow-overlap"


class ModelStrategy(SignalStrategy):
    """Long (or short) ``weight`` of equity per symbol by a registered model's score."""

    @dataclass(frozen=True)
    class Params:
        """``model``: a version reference; ``long``/``short``: score thresholds; ``weight``:
        of equity per position; ``features``: a feature set to score instead of the model's."""

        model: str
        long: float = 0.55
        short: float | None = None
        weight: float = 0.1
        features: str | None = None

    params: Params

    def __init__(self, params: Params) -> None:
        if not 0 < params.weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {params.weight}")
        if params.short is not None and not params.short < params.long:
            raise ValueError(f"short ({params.short}) must be below long ({params.long})")
        super().__init__(params)
        self._scores: pl.DataFrame | None = None

    def setup(self, run: RunContext) -> Setup:
        """Load the model, apply the leakage guard and score the run's bars in one batch."""
        from quantcli.models import registry
        from quantcli.models.leakage import require_unseen, seen_span
        from quantcli.models.predict import open_scorer
        from quantcli.models.train import frame_sha256

        if run.root is None:
            raise UsageError(
                "strategy model reads the model registry: backtest a store dataset "
                "(run_backtest, or simulate(..., root=...))"
            )
        scorer = open_scorer(run.root, registry.metadata(run.root, self.params.model))
        meta = scorer.metadata
        span = seen_span(meta)
        overlap = span.overlap(run.first, run.last)
        warnings: tuple[str, ...] = ()
        if overlap is not None:
            if not run.config.allow_overlap:
                require_unseen(meta, run.first, run.last, flag=OVERLAP_FLAG)
            warnings = (
                f"model {span.model} saw {overlap[0]}..{overlap[1]} of this run's window in "
                f"training (its training window plus label horizon is {span.first}.."
                f"{span.last}); allowed by {OVERLAP_FLAG}: those sessions are in sample",
            )
        features, described, pin = self._features(run, meta, scorer.sequences)
        self._scores = score_rows(scorer, features, run)
        features_sha = frame_sha256(features)
        entry: dict[str, object] = {
            "sha256": sha256_hex(
                json.dumps(
                    {"artifact": meta["artifact_sha256"], "features": features_sha}, sort_keys=True
                ).encode()
            ),
            "ref": span.model,
            "name": meta["name"],
            "version": meta["version"],
            "artifact_sha256": meta["artifact_sha256"],
            "features": described,
            "features_sha256": features_sha,
            "pin": {"model": span.model, **pin},
        }
        if overlap is not None:
            entry["overlap"] = f"{overlap[0]}..{overlap[1]}"
        return Setup(inputs={"model": entry}, warnings=warnings)

    @staticmethod
    def pull(root: Path, inputs: Mapping[str, Mapping[str, Any]], remote: Remote) -> None:
        """Fetch what a run's ``model`` input pinned from ``remote`` when the store at
        ``root`` lacks it: the model version with the feature set and dataset it was trained
        on (quantcli.models.remote.ensure_model), and a feature set given as ``-p features``."""
        from quantcli.models.remote import ensure_model
        from quantcli.store.remotes import ensure_local

        pin = inputs.get("model", {}).get("pin", {})
        if not isinstance(pin, Mapping) or "model" not in pin:
            raise IntegrityError(
                "damaged run manifest: its model input pins no model version to pull"
            )
        ensure_model(root, str(pin["model"]), remote)
        if "features" in pin:
            name, _, content = str(pin["features"]).partition("@")
            ensure_local(root, name, content, remote)

    def _features(
        self, run: RunContext, meta: dict[str, Any], sequences: bool
    ) -> tuple[pl.DataFrame, str, dict[str, str]]:
        """The feature rows of the run's symbols up to its last session (from its first, but
        for a kind that reads each symbol's history), where they came from, and the parameter
        pin a reproduction needs."""
        from quantcli.features import open_feature_set
        from quantcli.features.build import rebuild_features

        root = run.root
        assert root is not None  # setup checked it
        start = None if sequences else run.first
        if self.params.features is not None:
            fs = open_feature_set(self.params.features, root)
            if fs.dataset_hash != run.dataset_hash:
                raise UsageError(
                    f"strategy model: feature set {fs.ref} was built from {fs.dataset_ref}, "
                    f"not from the run's dataset {run.config.dataset}: backtest "
                    f"--dataset {fs.dataset_ref} or build the features from "
                    f"{run.config.dataset}"
                )
            pin = {"features": pinned_name(fs.ref, fs.content_hash)}
            return fs.frame(run.symbols, start, run.last), f"feature set {fs.ref}", pin
        source = meta.get("source") or {}
        if "definition" not in source:
            raise UsageError(
                f"strategy model: {meta['ref']} was trained on frames, not on a feature set: "
                "give the features to score with -p features=REF"
            )
        recorded = pinned_name(source["features_ref"], source["features_hash"])
        try:
            kept: FeatureSet | None = open_feature_set(recorded, root)
        except NotFoundError:
            kept = None
        if kept is not None and kept.dataset_hash == run.dataset_hash:
            return kept.frame(run.symbols, start, run.last), f"feature set {kept.ref}", {}
        if not run.dataset_hash:
            raise UsageError(
                f"strategy model: bars from outside the store give no dataset to build "
                f"{meta['ref']}'s features from; backtest a store dataset or give -p features=REF"
            )
        dataset = pinned_name(run.config.dataset, run.dataset_hash)
        built, _ = rebuild_features(
            root, dataset, str(source["spec"]), source["params"], str(source["definition"])
        )
        day = pl.col("ts").dt.date()
        window = day <= run.last if start is None else day.is_between(start, run.last)
        frame = built.filter(pl.col("symbol").is_in(list(run.symbols)) & window)
        return frame, f"{source['spec']} built from {run.config.dataset}", {}

    def features(self) -> list[pl.Expr]:
        """Each bar's score, looked up by (symbol, ts) among those setup computed."""
        keys = pl.struct(*KEYS).map_batches(self._lookup, return_dtype=pl.Float64)
        return [keys.alias("_score")]

    def _lookup(self, keys: pl.Series) -> pl.Series:
        if self._scores is None:
            raise StrategyError(
                "strategy model has no scores: its setup() did not run (backtest it with "
                "run_backtest, or simulate(..., root=...))"
            )
        frame = keys.struct.unnest().with_columns(pl.col("symbol").cast(pl.String))
        joined = frame.join(self._scores, on=list(KEYS), how="left", maintain_order="left")
        return joined.get_column("score")

    def weights(self) -> pl.Expr:
        """``weight`` at a score >= long, ``-weight`` at a score <= short, else 0; no opinion
        where there is no score."""
        score, w, short = pl.col("_score"), self.params.weight, self.params.short
        below = pl.lit(False) if short is None else score <= short
        long = score >= self.params.long
        return pl.when(long).then(w).when(below).then(-w).when(score.is_not_null()).then(0.0)


def pinned_name(ref: str, content_hash: str) -> str:
    """``NAME@<content hash>`` of the version ``ref`` (``NAME@...``) names by its content."""
    return f"{ref.partition('@')[0]}@{content_hash}"


def score_rows(scorer: Scorer, features: pl.DataFrame, run: RunContext) -> pl.DataFrame:
    """symbol, ts, score of the run's bars that have every feature the model reads, scored in
    one batch per answering model (a kind reading each symbol's history scores the rows before
    the window too)."""
    if scorer.router is not None and scorer.router.feature not in features.columns:
        raise DataError(
            f"feature column {scorer.router.feature!r} is missing (router "
            f"{scorer.metadata['ref']} routes on it)"
        )
    names = list(scorer.columns)
    present = [c for c in names if c in features.columns]
    complete = pl.all_horizontal(
        pl.col(c).is_not_null() & ~pl.col(c).cast(pl.Float64).is_nan() for c in present
    )
    rows = features.filter(complete) if present else features
    # The model names a missing feature column in its own words.
    score = scorer.score(rows)[0] if rows.height else np.empty(0)
    scored = rows.select(
        pl.col("symbol").cast(pl.String), "ts", pl.Series("score", score, dtype=pl.Float64)
    )
    return scored.filter(pl.col("score").is_not_nan() & (pl.col("ts").dt.date() >= run.first)).sort(
        KEYS
    )
