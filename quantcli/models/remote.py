"""Model versions on a dataset remote: ``model push``, and what ``model reproduce --pull``
and ``backtest reproduce --pull`` of a model-strategy run fetch (:func:`ensure_model`).

A model version travels like a dataset version (quantcli.store.remotes): its artifact and
sidecars as content-addressed objects, then ``models/<name>/v<N>/metadata.json`` last; a pull
checks every sha256 before the store's publish puts the version in the registry under its own
number. Aliases are local pointers and do not travel: a remote model is named ``NAME@vN``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from quantcli.errors import IntegrityError, NotFoundError, UsageError
from quantcli.models.registry import (
    METADATA,
    can_name_model,
    check_model_name,
    metadata,
    models_root,
    read_artifact,
    read_metadata,
    resolve,
)
from quantcli.store.catalog import VERSION_RE, parse_ref
from quantcli.store.manifest import version_dir
from quantcli.store.remotes import (
    LocalVersion,
    PullResult,
    PushResult,
    Remote,
    ensure_local,
    fetch_marker,
    fetch_objects,
    push_version,
    remote_datasets,
    remote_listing,
)

KIND = "models"


def _files(meta: dict[str, object]) -> dict[str, str]:
    files = meta.get("files", {})
    if not isinstance(files, dict):
        raise IntegrityError("model metadata: 'files' is not an object")
    return {str(k): str(v) for k, v in files.items()}


def remote_models(remote: Remote, name: str | None = None) -> dict[str, list[int]]:
    """Every model on ``remote`` (or only ``name``) with its complete versions (those with
    their metadata, written last), ascending, by name."""
    if name is not None:
        check_model_name(name)
    return remote_listing(remote, KIND, METADATA, name)


@dataclass(frozen=True)
class RemoteContents:
    """What a remote holds: its datasets and its models, each by name with its complete
    versions, ascending."""

    datasets: dict[str, list[int]]
    models: dict[str, list[int]]


def remote_contents(remote: Remote, name: str | None = None) -> RemoteContents:
    """Every dataset and model on ``remote`` (or only those named ``name``; NotFoundError when
    neither has a complete version): what ``data remote ls`` shows. A dataset may be named
    like a version (``v1``); a model may not, so such a name is not looked up among models."""
    datasets = remote_datasets(remote, name)
    models = remote_models(remote, name) if name is None or can_name_model(name) else {}
    if name is not None and not datasets and not models:
        raise NotFoundError(f"no version of {name} on remote {remote.name} ({remote.url})")
    return RemoteContents(datasets, models)


def push_model(root: Path, ref: str, remote: Remote) -> PushResult:
    """Upload model version ``ref`` (any local reference, aliases too) to ``remote``."""
    name, version = resolve(root, ref)
    folder = version_dir(models_root(root), name, version)
    meta = read_metadata(folder)
    local = LocalVersion(KIND, name, version, folder, METADATA, _files(meta))

    def same(there: bytes) -> bool:
        try:
            theirs = json.loads(there.decode("utf-8")).get("identity")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return False
        return bool(theirs == meta.get("identity"))

    return push_version(local, remote, same=same)


def pull_model(root: Path, ref: str, remote: Remote) -> PullResult:
    """Fetch model version ``ref`` (``NAME@vN``) from ``remote`` into the registry, every
    file's sha256 checked first; nothing is fetched when a local version has its identity."""
    from quantcli.store.publish import publish_files

    name, selector = parse_ref(ref)
    match = VERSION_RE.match(selector)
    if match is None:
        raise UsageError(f"a model on a remote is named NAME@vN, not {ref!r} (aliases are local)")
    version = int(match.group(1))
    marker = fetch_marker(remote, KIND, name, version, METADATA)
    key = remote.key(KIND, name, f"v{version}", METADATA)
    try:
        meta = json.loads(marker.decode("utf-8"))
        files = _files(meta)
        identity = meta["identity"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, IntegrityError) as exc:
        raise IntegrityError(
            f"remote {remote.name}: {key}: unreadable model metadata: {exc}"
        ) from None
    contents = fetch_objects(remote, files, f"{name}@v{version}", None)
    contents[METADATA] = marker
    got, created = publish_files(
        models_root(root),
        name,
        lambda _version: contents,
        marker=METADATA,
        existing=lambda folder: read_metadata(folder).get("identity") == identity,
        what="model",
        version=version,
    )
    return PullResult(f"{name}@v{version}", f"{name}@v{got}", len(files), created)


def ensure_model(root: Path, ref: str, remote: Remote) -> None:
    """Model version ``ref`` in the store at ``root`` with everything it pinned, each pulled
    from ``remote`` when the store lacks it (every hash checked): the version itself
    (``NAME@vN`` when it is not here), the feature-set and dataset versions it was trained
    on, and, for a router, each model it routes to, likewise."""
    from quantcli.models.router import ROUTER, RouterSpec

    try:
        resolve(root, ref)
    except NotFoundError:
        pull_model(root, ref, remote)
    meta = metadata(root, ref)
    source = meta.get("source", {})
    for ref_key, hash_key in (("features_ref", "features_hash"), ("dataset_ref", "dataset_hash")):
        if ref_key in source:
            name = str(source[ref_key]).partition("@")[0]
            ensure_local(root, name, str(source[hash_key]), remote)
    if meta["kind"] == ROUTER:
        for model in RouterSpec.from_bytes(read_artifact(root, meta)).models:
            ensure_model(root, model, remote)
