"""The model registry: ``<root>/models/<name>/v<N>/`` holding ``metadata.json``, one artifact
and the kind's sidecars (files derived from the fitted model, such as hgb's scoring tables).

Versions are published, resolved, verified and removed by the store's own machinery (temp
directory renamed into place under the lock, ``NAME``/``NAME@latest``/``NAME@v3``/``NAME@<hash
prefix>`` references, tombstones for removed numbers); a model version is visible once its
``metadata.json`` exists. A hash prefix selects by the artifact's sha256.

Every load checks the sha256 of the artifact and of each sidecar (the metadata's ``files``)
first, so a changed file is refused before any byte of it is deserialised.

Aliases (``NAME@champion``, ``NAME@challenger`` or any name a tag could have) are movable
pointers at versions, resolved wherever a model is named. Their moves are kept, append-only, in
quantcli.models.aliases; the rules for making them are here: ``champion`` moves only through
``model promote``'s gate unless forced with a reason, and a version an alias points at is
removed only with ``--force``, which records the alias's removal first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from quantcli.core.hashing import sha256_hex
from quantcli.errors import DataError, IntegrityError, NotFoundError, UsageError
from quantcli.models import aliases as alias_log
from quantcli.store.manifest import (
    VERSION_DIR_RE,
    check_name,
    next_version,
    version_dir,
    version_numbers,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from quantcli.models.aliases import AliasMove
    from quantcli.models.kinds import ModelKind
    from quantcli.store.catalog import GcReport
    from quantcli.store.verify import VerifyReport

METADATA = "metadata.json"
MODELS_DIR = "models"
CHAMPION = "champion"


class Unchecked(Enum):
    """``set_alias(expect=Unchecked.ANY)``: the alias may hold any version before the move."""

    ANY = "any"


def models_root(root: Path) -> Path:
    """The registry's directory under the store root."""
    return root / MODELS_DIR


def can_name_model(name: str) -> bool:
    """Whether a valid dataset name can also name a model: one that reads as a version
    number (``v<N>``) cannot."""
    return not VERSION_DIR_RE.match(name)


def check_model_name(name: str) -> str:
    """``name`` if it can name a model (a dataset name that is not ``v<N>``)."""
    check_name(name)
    if not can_name_model(name):
        raise UsageError(f"invalid model name {name!r}: it reads as a version number")
    return name


def read_metadata(folder: Path) -> dict[str, Any]:
    """The metadata of the model version in ``folder``; IntegrityError if unreadable."""
    path = folder / METADATA
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc["artifact_sha256"], str):
            raise ValueError("not a model metadata document")
    except (OSError, ValueError, KeyError) as exc:
        raise IntegrityError(f"{path}: unreadable model metadata: {exc}") from None
    return doc


def metadata_bytes(metadata: Mapping[str, Any]) -> bytes:
    """``metadata.json`` text: sorted keys, so equal metadata are equal bytes."""
    from quantcli.output import to_json

    return (to_json(metadata) + "\n").encode("utf-8")


def _artifact_hash(folder: Path) -> str:
    return str(read_metadata(folder)["artifact_sha256"])


def _names_alias(selector: str) -> bool:
    """Whether a reference's selector can only be an alias (not latest, vN or a hash prefix)."""
    from quantcli.store.catalog import HEX_RE, LATEST, MIN_PREFIX, VERSION_RE

    return not (
        selector == LATEST
        or VERSION_RE.match(selector)
        or (len(selector) >= MIN_PREFIX and HEX_RE.match(selector))
    )


def resolve(root: Path, ref: str) -> tuple[str, int]:
    """``(name, version)`` of a model reference (NAME, NAME@latest, NAME@v3, NAME@<alias>,
    NAME@<artifact sha256 prefix>); NotFoundError listing the versions and aliases."""
    from quantcli.store.catalog import parse_ref, resolve_version

    folder = models_root(root)
    name, selector = parse_ref(ref)
    if _names_alias(selector) and version_numbers(folder, name, METADATA):
        held = aliases(root, name)
        if selector not in held:
            versions = ", ".join(f"v{v}" for v in version_numbers(folder, name, METADATA))
            raise NotFoundError(
                f"model {name} has no alias {selector!r} (versions: {versions}; aliases: "
                f"{', '.join(f'{a} -> v{v}' for a, v in sorted(held.items())) or 'none'})"
            )
        version = held[selector]
        if version not in version_numbers(folder, name, METADATA):
            raise IntegrityError(
                f"alias {name}@{selector} points at {name}@v{version}, which is not in the "
                "registry (model history shows its moves)"
            )
        return name, version
    return resolve_version(folder, ref, marker=METADATA, digest=_artifact_hash, what="model")


def aliases(root: Path, name: str) -> dict[str, int]:
    """The aliases of model ``name`` now: alias -> version."""
    return alias_log.replay(alias_log.history(models_root(root), check_model_name(name)))


def alias_history(root: Path, name: str) -> list[AliasMove]:
    """Every alias move of model ``name``, oldest first (NotFoundError for an unknown model
    that has no history either)."""
    moves = alias_log.history(models_root(root), check_model_name(name))
    if not moves:
        resolve(root, name)
    return moves


def check_alias(alias: str) -> str:
    """``alias`` if it can name an alias: a tag name (never latest, vN or a hex prefix)."""
    from quantcli.store.catalog import check_tag

    return check_tag(alias, what="alias")


def set_alias(
    root: Path,
    ref: str,
    alias: str,
    *,
    reason: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    force: bool = False,
    expect: int | Literal[Unchecked.ANY] | None = Unchecked.ANY,
    wait: float = 0,
) -> AliasMove | None:
    """Point ``alias`` of the model ``ref`` names at that version and record the move (None,
    and nothing recorded, when it already points there).

    ``champion`` may be set when no version holds it; moving it to another version is
    ``model promote``'s to do, or needs ``force`` with a ``reason``. ``expect`` (a version, or
    None for "unset"; by default anything) is what the alias must hold when the move is made,
    so a promotion decided on evidence about one champion never replaces another
    (ConflictError).
    """
    from quantcli.core.lock import dataset_lock
    from quantcli.errors import ConflictError

    check_alias(alias)
    if force and not (reason or "").strip():
        raise UsageError("--force needs --reason TEXT (it is recorded in the model's history)")
    name, version = resolve(root, ref)
    folder = models_root(root)
    with dataset_lock(folder, name, wait=wait, what="model"):
        if version not in version_numbers(folder, name, METADATA):
            raise NotFoundError(f"{name}@v{version} was removed while the alias was being set")
        before = aliases(root, name).get(alias)
        if expect is not Unchecked.ANY and before != expect:
            was = "unset" if expect is None else f"{name}@v{expect}"
            now = "unset" if before is None else f"{name}@v{before}"
            raise ConflictError(
                f"{name}@{alias} moved from {was} to {now} while the evidence was gathered; "
                "run the command again"
            )
        if before == version:
            return None
        if alias == CHAMPION and before is not None and not force:
            raise UsageError(
                f"{name}@{CHAMPION} is {name}@v{before}: move it with `quantcli model promote "
                f"{name}@v{version}` (the gated path), or pass --force --reason TEXT"
            )
        return alias_log.append_locked(
            folder, name, alias, before, version, reason=reason, evidence=evidence
        )


def candidates(root: Path, name: str) -> int:
    """How many candidate models were trained as ``name``: every version ever registered,
    removed ones included (version numbers are never reused), for the deflated Sharpe ratio."""
    resolve(root, check_model_name(name))
    return next_version(models_root(root), name) - 1


def metadata(root: Path, ref: str) -> dict[str, Any]:
    """The metadata of the version ``ref`` names."""
    name, version = resolve(root, ref)
    return read_metadata(version_dir(models_root(root), name, version))


def names(root: Path) -> list[str]:
    """Every model with at least one version, sorted."""
    folder = models_root(root)
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and version_numbers(folder, p.name, METADATA)
    )


def versions(root: Path, name: str) -> list[dict[str, Any]]:
    """The metadata of every version of model ``name``, oldest first."""
    resolve(root, check_model_name(name))
    folder = models_root(root)
    return [
        read_metadata(version_dir(folder, name, v)) for v in version_numbers(folder, name, METADATA)
    ]


def publish(
    root: Path,
    name: str,
    build: Callable[[int], tuple[dict[str, Any], Mapping[str, bytes]]],
    identity: str,
    *,
    wait: float = 0,
) -> tuple[dict[str, Any], bool]:
    """Publish ``build(version)`` = (metadata, {file name: bytes}: the artifact and any
    sidecars) as the next version of ``name``, unless a version with the same ``identity``
    (the hash of everything that decides the model) exists: then that version's metadata and
    False."""
    from quantcli.store.publish import publish_files

    check_model_name(name)
    built: dict[str, Any] = {}

    def files(version: int) -> dict[str, bytes]:
        meta, data = build(version)
        built.update(meta)
        return {**data, METADATA: metadata_bytes(meta)}

    def same(folder: Path) -> bool:
        return read_metadata(folder).get("identity") == identity

    version, created = publish_files(
        models_root(root), name, files, marker=METADATA, existing=same, wait=wait, what="model"
    )
    if created:
        return built, True
    return read_metadata(version_dir(models_root(root), name, version)), False


def find(root: Path, name: str, identity: str) -> dict[str, Any] | None:
    """The metadata of the version of ``name`` with ``identity``, if there is one."""
    folder = models_root(root)
    for v in version_numbers(folder, name, METADATA):
        meta = read_metadata(version_dir(folder, name, v))
        if meta.get("identity") == identity:
            return meta
    return None


def verify_one(root: Path, name: str, version: int) -> VerifyReport:
    """Recompute the hashes of a model version's files and compare with its metadata."""
    from quantcli.store.verify import VerifyReport, compare_files

    folder = version_dir(models_root(root), name, version)
    meta = read_metadata(folder)
    files = {str(k): str(v) for k, v in meta.get("files", {}).items()}
    missing, extra, changed = compare_files(folder, files, METADATA)
    return VerifyReport(
        ref=f"{name}@v{version}",
        files=len(files),
        missing=tuple(missing),
        extra=tuple(extra),
        changed=tuple(changed),
        content_hash_ok=files.get(meta["artifact"]) == meta["artifact_sha256"],
    )


def verify(root: Path, ref: str | None = None) -> list[VerifyReport]:
    """Reports for the version ``ref`` names, every version of a bare NAME, or all models."""
    if ref is None:
        targets = [
            (n, v) for n in names(root) for v in version_numbers(models_root(root), n, METADATA)
        ]
    elif "@" in ref:
        targets = [resolve(root, ref)]
    else:
        resolve(root, check_model_name(ref))
        targets = [(ref, v) for v in version_numbers(models_root(root), ref, METADATA)]
    return [verify_one(root, n, v) for n, v in targets]


def remove(root: Path, ref: str, *, force: bool = False, wait: float = 0) -> dict[str, Any]:
    """Delete the model version ``ref`` names (refused without ``force``); its metadata.

    The aliases pointing at it are removed with it, each removal recorded in the history
    before the version goes (a crash in between leaves a version without aliases, never an
    alias without its version)."""
    from quantcli.core.lock import dataset_lock
    from quantcli.store.catalog import remove_locked

    name, version = resolve(root, ref)
    if not force:
        on = sorted(a for a, v in aliases(root, name).items() if v == version)
        why = f" (alias {', '.join(on)} points at it; --force removes the alias too)" if on else ""
        raise UsageError(f"refusing to remove model {name}@v{version}{why} without --force")
    folder = models_root(root)
    with dataset_lock(folder, name, wait=wait, what="model"):
        meta = read_metadata(version_dir(folder, name, version))
        for alias, held in sorted(aliases(root, name).items()):
            if held == version:
                alias_log.append_locked(
                    folder,
                    name,
                    alias,
                    version,
                    None,
                    reason=f"model rm --force removed {name}@v{version}",
                    evidence=None,
                )
        remove_locked(folder, name, version)
    return meta


def gc(root: Path, *, dry_run: bool = False) -> GcReport:
    """Remove the temp directories of trainings killed while publishing (the store's gc on
    the registry: a directory whose model's lock is held is a publish running, and is kept)."""
    from quantcli.store.catalog import gc as store_gc

    return store_gc(models_root(root), dry_run=dry_run)


@dataclass
class LoadedModel:
    """A registered model ready to score: its metadata and fitted kind."""

    metadata: dict[str, Any]
    model: ModelKind

    def score(self, features: pl.DataFrame) -> np.ndarray:
        """Scores of ``features``' rows; DataError unless its columns match the input schema."""
        import numpy as np
        import polars as pl

        schema = [(c["name"], c["dtype"]) for c in self.metadata["input_schema"]]
        have = {c: str(t) for c, t in features.schema.items()}
        for column, dtype in schema:
            if column not in have:
                raise DataError(f"feature column {column!r} is missing (the model needs it)")
            if have[column] != dtype:
                raise DataError(
                    f"feature column {column!r} has dtype {have[column]}, the model was "
                    f"trained on {dtype}"
                )
        x = features.select(pl.col(c).cast(pl.Float64) for c, _ in schema).to_numpy()
        # A sequence kind builds each row's history from the rows of its symbol.
        groups = features.get_column("symbol").to_numpy() if "symbol" in have else None
        return np.asarray(self.model.score(x, groups), dtype=np.float64)


def read_artifact(root: Path, meta: Mapping[str, Any]) -> bytes:
    """The artifact of the version ``meta`` describes, after checking its sha256
    (IntegrityError if missing or changed)."""
    folder = version_dir(models_root(root), str(meta["name"]), int(meta["version"]))
    return _read_checked(folder / str(meta["artifact"]), str(meta["artifact_sha256"]), "artifact")


def _read_checked(path: Path, sha256: str, what: str) -> bytes:
    """The bytes of a model version's file after checking them against their recorded sha256
    (IntegrityError if missing or changed)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if sha256_hex(data) != sha256:
        raise IntegrityError(
            f"{path}: {what} sha256 does not match the metadata; refusing to load it "
            "(model verify shows what changed)"
        )
    return data


def load(root: Path, ref: str) -> LoadedModel:
    """Load a model version after checking its artifact's sha256 (IntegrityError if changed).
    A router is not one model: quantcli.models.predict opens it with its models."""
    from quantcli.models.kinds import make_kind
    from quantcli.models.router import ROUTER

    name, version = resolve(root, ref)
    folder = version_dir(models_root(root), name, version)
    meta = read_metadata(folder)
    if meta["kind"] == ROUTER:
        raise UsageError(
            f"{meta['ref']} is a router: score it with quantcli.models.predict "
            "(model predict), which loads the models it routes to"
        )
    data = read_artifact(root, meta)
    sidecars = {
        str(file): _read_checked(folder / str(file), str(sha), "file")
        for file, sha in meta.get("files", {}).items()
        if file != meta["artifact"]
    }
    model = make_kind(
        str(meta["kind"]),
        meta["params"],
        task=str(meta["task"]),
        seed=int(meta["seed"]),
        features=tuple(c["name"] for c in meta["input_schema"]),
    )
    model.restore(data, sidecars)
    return LoadedModel(meta, model)
