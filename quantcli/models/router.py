"""Routers: a registry entry that sends each row to one model by the regime it is in.

A regime is a quantile bin of one feature of the feature set (``vol_20``, say): ``--bins
0.33,0.66`` cuts it at its 33rd and 66th percentiles over the router's window, every row of
every symbol in it with the feature, into three regimes, and ``--models a@v1,b@v2,c@v1``
answers each one, lowest first. The edges are computed once, when the router is registered,
and recorded in its artifact (``router.json``) with each model's pinned version and artifact
sha256; a row whose feature lies on an edge belongs to the regime above it.

A router is a version in the registry like any model (``model list``, ``show``, ``verify``,
``rm``); ``predict`` scores each regime's rows with its model in one batch. Its ``window``
spans its own and every routed model's training window, so the leakage rule
(:mod:`.leakage`) keeps a backtest or comparison off anything one of them saw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantcli.core.hashing import sha256_hex
from quantcli.errors import DataError, IntegrityError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from quantcli.models.train import TrainResult

ROUTER = "router"
ARTIFACT = "router.json"
# The router metadata layout: part of its identity, as train.FORMAT is of a model's.
FORMAT = 1


@dataclass(frozen=True)
class RouterSpec:
    """A router's artifact: the regime feature, its quantile levels and edges, and the pinned
    model answering each regime (one more model than edges)."""

    feature: str
    levels: tuple[float, ...]
    edges: tuple[float, ...]
    models: tuple[str, ...]  # NAME@vN, lowest regime first
    sha256: tuple[str, ...]  # each model's artifact sha256 when the router was registered

    def to_bytes(self) -> bytes:
        """The artifact: JSON with sorted keys, so equal routers are equal bytes."""
        doc = {
            "kind": ROUTER,
            "feature": self.feature,
            "levels": list(self.levels),
            "edges": list(self.edges),
            "models": [
                {"ref": r, "artifact_sha256": s}
                for r, s in zip(self.models, self.sha256, strict=True)
            ],
        }
        return (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> RouterSpec:
        """The spec an artifact holds (IntegrityError if it is not a router's)."""
        try:
            doc = json.loads(data)
            spec = cls(
                feature=str(doc["feature"]),
                levels=tuple(float(v) for v in doc["levels"]),
                edges=tuple(float(v) for v in doc["edges"]),
                models=tuple(str(m["ref"]) for m in doc["models"]),
                sha256=tuple(str(m["artifact_sha256"]) for m in doc["models"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"unreadable router artifact: {exc}") from None
        if len(spec.models) != len(spec.edges) + 1:
            raise IntegrityError("router artifact: the models do not match its regimes")
        return spec

    def regimes(self, values: np.ndarray) -> np.ndarray:
        """The regime (0 = lowest) of each value of the feature."""
        import numpy as np

        return np.searchsorted(np.asarray(self.edges), values, side="right").astype(np.int32)


def parse_levels(text: str) -> tuple[float, ...]:
    """``--bins 0.33,0.66``: quantile levels strictly between 0 and 1, increasing."""
    try:
        levels = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"--bins: expected quantile levels such as 0.33,0.66, got {text!r}"
        ) from None
    if not all(0 < v < 1 for v in levels) or list(levels) != sorted(set(levels)):
        raise UsageError(
            f"--bins: levels must be increasing and strictly between 0 and 1, got {text!r}"
        )
    return levels


def _routed(root: Path, refs: Sequence[str], levels: Sequence[float]) -> list[dict[str, Any]]:
    """The metadata of the routed models, checked: known, one per regime, not routers or
    sequence kinds, one label."""
    from quantcli.models import registry
    from quantcli.models.kinds import kind_class

    if len(refs) != len(levels) + 1:
        raise UsageError(
            f"--models gives {len(refs)} model(s) for the {len(levels) + 1} regimes --bins makes"
        )
    metas = [registry.metadata(root, ref) for ref in refs]
    for ref, meta in zip(refs, metas, strict=True):
        if meta["kind"] == ROUTER:
            raise UsageError(f"{ref} is a router; route to models, not to routers (--models)")
        if kind_class(str(meta["kind"])).sequences:
            raise UsageError(
                f"{ref} is a {meta['kind']} model, which reads each row's history: a regime's "
                "rows alone would cut it (--models)"
            )
    labels = sorted({str(m["label"]) for m in metas})
    if len(labels) > 1:
        raise UsageError(
            f"the routed models predict different labels ({', '.join(labels)}); route models "
            "of one label (--models)"
        )
    return metas


def route(
    root: Path,
    name: str,
    *,
    feature: str,
    levels: Sequence[float],
    models: Sequence[str],
    features: str,
    train_from: date,
    train_to: date,
    wait: float = 0,
) -> TrainResult:
    """What ``quantcli model route`` does: register router ``name`` over feature set
    ``features``, its edges the ``levels`` quantiles of ``feature`` from ``train_from`` to
    ``train_to`` (see the module docstring). Bad input (an unknown model or feature, a window
    without the feature) is one error and writes nothing; the same router again makes no new
    version."""
    import numpy as np

    from quantcli.features import open_feature_set
    from quantcli.models import registry
    from quantcli.models.train import TrainResult, feature_source, frame_sha256, library_versions
    from quantcli.store.schema import column_dtype

    registry.check_model_name(name)
    if train_to < train_from:
        raise UsageError(f"--train-to {train_to} is before --train-from {train_from}")
    metas = _routed(root, models, levels)
    fs = open_feature_set(features, root)
    if feature not in fs.columns:
        raise UsageError(
            f"regime feature {feature!r} is not in feature set {fs.ref} "
            f"(columns: {', '.join(fs.columns)}); give --feature one of them"
        )
    needed = {c["name"]: c["dtype"] for m in metas for c in m["input_schema"]}
    for ref, meta in zip(models, metas, strict=True):
        missing = [c["name"] for c in meta["input_schema"] if c["name"] not in fs.columns]
        if missing:
            raise DataError(
                f"{ref} reads feature(s) {', '.join(missing)}, which feature set {fs.ref} lacks"
            )
    loaded = [registry.load(root, f"{m['name']}@v{m['version']}") for m in metas]
    frame = fs.version.frame(start=train_from, end=train_to, columns=["symbol", "ts", feature])
    values = frame.get_column(feature).drop_nulls().drop_nans().to_numpy()
    if len(values) == 0:
        raise DataError(
            f"feature {feature!r} of {fs.ref} has no values between --train-from {train_from} "
            f"and --train-to {train_to}; choose a window the feature set covers"
        )
    edges = tuple(float(e) for e in np.quantile(values, levels))
    if len(set(edges)) < len(edges):
        raise DataError(
            f"the {', '.join(map(str, levels))} quantiles of {feature!r} are not distinct "
            f"({', '.join(f'{e:g}' for e in edges)}); give fewer --bins or another --feature"
        )
    spec = RouterSpec(
        feature=feature,
        levels=tuple(levels),
        edges=edges,
        models=tuple(m.metadata["ref"] for m in loaded),
        sha256=tuple(m.metadata["artifact_sha256"] for m in loaded),
    )
    artifact = spec.to_bytes()
    counts = np.bincount(spec.regimes(values), minlength=len(edges) + 1)
    columns = list(fs.columns)
    schema = [
        {"name": c, "dtype": needed.get(c, str(column_dtype(c)))}
        for c in columns
        if c in needed or c == feature
    ]
    windows = [m["window"] for m in metas]
    params: dict[str, Any] = {
        "feature": feature,
        "levels": list(levels),
        "models": list(spec.models),
    }
    inputs = {
        "format": FORMAT,
        "kind": ROUTER,
        "source": feature_source(fs),
        "features_sha256": frame_sha256(frame),
        "params": params,
        "regime_window": {"from": train_from.isoformat(), "to": train_to.isoformat()},
        "artifact_sha256": sha256_hex(artifact),
        "libraries": library_versions(),
    }
    identity = sha256_hex(json.dumps(inputs, sort_keys=True, default=str).encode("utf-8"))
    existing = registry.find(root, name, identity)
    if existing is not None:
        return TrainResult(existing, created=False)
    first = metas[0]

    def build(version: int) -> tuple[dict[str, Any], dict[str, bytes]]:
        meta = {
            **inputs,
            "name": name,
            "version": version,
            "ref": f"{name}@v{version}",
            "identity": identity,
            "label": first["label"],
            "task": first["task"],
            "horizon": max(int(m["horizon"]) for m in metas),
            "seed": 0,
            "params": {**params, "edges": list(edges)},
            # What the router and its models have seen, for the leakage rule.
            "window": {
                "train_from": min([train_from.isoformat(), *(w["train_from"] for w in windows)]),
                "train_to": max([train_to.isoformat(), *(w["train_to"] for w in windows)]),
                "test_to": None,
            },
            "folds": 0,
            "embargo": 0,
            "fold_results": [],
            "metrics": {"rows": len(values), "regime_rows": [int(n) for n in counts]},
            "predictions_sha256": sha256_hex(spec.regimes(values).tobytes()),
            "predictions_rows": len(values),
            "dropped_rows": {"null_feature": int(frame.height - len(values))},
            "input_schema": schema,
            "artifact": ARTIFACT,
            "files": {ARTIFACT: inputs["artifact_sha256"]},
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        return meta, {ARTIFACT: artifact}

    meta, created = registry.publish(root, name, build, identity, wait=wait)
    return TrainResult(meta, created)
