"""Dataset remotes: pushing pinned versions to S3-compatible storage and pulling them back.

A remote is a name for ``s3://bucket/prefix``, kept in ``<root>/_meta/remotes.json``
(``data remote add``) or in quantcli.toml as ``[remote.NAME] url = "s3://..."``. Its endpoint
and credentials never enter that file or any manifest: they come from ``[remote.NAME]``
(``endpoint_url``, ``region``, ``access_key_id``, ``secret_access_key``), from
``QUANTCLI_REMOTE_<NAME>_<KEY>`` variables, else from boto3's own environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...). Errors pass through core.redact.

The remote layout is content-addressed and immutable::

    <prefix>/objects/<sha256>                    every data file, keyed by its content
    <prefix>/datasets/<name>/v<N>/manifest.json  written last: the version is then complete

so a push killed at any moment leaves no visible version (only objects a re-push skips),
pushing again uploads nothing already there (checked by key and size), and a pull checks the
sha256 of every object before handing the version to the store's publish.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantcli.core.files import atomic_write_bytes
from quantcli.core.hashing import sha256_hex
from quantcli.core.redact import redact
from quantcli.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    QuantcliError,
    UsageError,
)
from quantcli.store.manifest import (
    MANIFEST,
    Manifest,
    check_name,
    content_hash,
    read_manifest,
    version_dir,
    version_numbers,
)

if TYPE_CHECKING:
    from quantcli.store.reader import DatasetVersion

REMOTES_FILE: Final = "remotes.json"
META_DIR: Final = "_meta"
OBJECTS: Final = "objects"
DATASETS: Final = "datasets"
URL_RE: Final = re.compile(
    r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$"
)
# The [remote.NAME] keys and what boto3 calls them; the credentials are never stored by quantcli.
CLIENT_KEYS: Final = {
    "endpoint_url": "endpoint_url",
    "region": "region_name",
    "access_key_id": "aws_access_key_id",
    "secret_access_key": "aws_secret_access_key",
}
CONFIG_KEYS: Final = ("url", *CLIENT_KEYS)
VERSION_REF_RE: Final = re.compile(r"^v([1-9][0-9]*)$")
# Where workers keep the versions they read from a remote, under the cache directory.
CACHE_SUBDIR: Final = "remote-stores"
# How long a worker waits for another worker on its machine pulling the same version.
CACHE_LOCK_WAIT: Final = 600.0


@dataclass(frozen=True)
class Remote:
    """A named remote: its bucket and key prefix. Picklable, and free of secrets, so it can be
    sent to workers; each process finds the endpoint and credentials itself."""

    name: str
    url: str

    @property
    def bucket(self) -> str:
        """The S3 bucket."""
        return _parse_url(self.url)[0]

    @property
    def prefix(self) -> str:
        """The key prefix, without a trailing slash ('' for the bucket's top)."""
        return _parse_url(self.url)[1]

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)


@dataclass(frozen=True)
class PushResult:
    """What a push did: the version, objects uploaded and skipped (already there), and
    whether the manifest was new on the remote."""

    ref: str
    uploaded: int
    skipped: int
    bytes_uploaded: int
    manifest_written: bool


@dataclass(frozen=True)
class PullResult:
    """What a pull did: the local version it gave and whether it had to be published."""

    ref: str
    local_ref: str
    downloaded: int
    created: bool


def _parse_url(url: str) -> tuple[str, str]:
    match = URL_RE.match(url)
    if match is None:
        raise UsageError(
            f"remote URL {url!r} is not s3://BUCKET[/PREFIX] (lower-case bucket name, 3-63 "
            "characters)"
        )
    return match["bucket"], (match["prefix"] or "").strip("/")


# ---------------------------------------------------------------------------------- config


def _remotes_path(root: Path) -> Path:
    return root / META_DIR / REMOTES_FILE


def _stored(root: Path) -> dict[str, str]:
    path = _remotes_path(root)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v["url"]) for k, v in data.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise IntegrityError(f"{path}: unreadable remotes file: {exc}") from exc


def _configured() -> dict[str, Mapping[str, Any]]:
    """The ``[remote.NAME]`` tables of the nearest quantcli.toml."""
    from quantcli.settings import read_config_file

    path, config = read_config_file()
    tables = config.get("remote", {})
    where = path or "quantcli.toml"
    if not isinstance(tables, Mapping):
        raise UsageError(f"{where}: [remote] must hold [remote.NAME] tables")
    out: dict[str, Mapping[str, Any]] = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise UsageError(f"{where}: [remote.{name}] must be a table")
        unknown = sorted(set(table) - set(CONFIG_KEYS))
        if unknown:
            raise UsageError(
                f"{where}: [remote.{name}] {unknown[0]}: unknown key (known: "
                f"{', '.join(CONFIG_KEYS)})"
            )
        out[str(name)] = table
    return out


def list_remotes(root: Path) -> list[Remote]:
    """Every remote: those ``add_remote`` stored under ``root``, then those quantcli.toml names
    with a ``url`` (a stored one wins), sorted by name."""
    found = dict(_stored(root))
    for name, table in _configured().items():
        if "url" in table and name not in found:
            found[name] = str(table["url"])
    return [Remote(name, url) for name, url in sorted(found.items())]


def add_remote(root: Path, name: str, url: str) -> Remote:
    """Store remote ``name`` for ``url`` under ``root``; ConflictError if it names another URL."""
    check_name(name)
    _parse_url(url)
    stored = _stored(root)
    if stored.get(name, url) != url:
        raise ConflictError(
            f"remote {name} already points at {stored[name]}; `quantcli data remote rm {name}` "
            "first"
        )
    stored[name] = url
    _write_remotes(root, stored)
    return Remote(name, url)


def remove_remote(root: Path, name: str) -> Remote:
    """Forget stored remote ``name``; NotFoundError if it is not stored under ``root``."""
    stored = _stored(root)
    if name not in stored:
        raise NotFoundError(f"no remote {name!r} in {_remotes_path(root)}")
    url = stored.pop(name)
    _write_remotes(root, stored)
    return Remote(name, url)


def _write_remotes(root: Path, remotes: Mapping[str, str]) -> None:
    path = _remotes_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {name: {"url": url} for name, url in sorted(remotes.items())}
    atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


def get_remote(root: Path, name: str | None) -> Remote:
    """Remote ``name``, or the only remote when None; UsageError naming ``--remote`` else."""
    remotes = list_remotes(root)
    if name is None:
        if len(remotes) == 1:
            return remotes[0]
        if not remotes:
            raise UsageError(
                "no remote configured: `quantcli data remote add NAME s3://BUCKET/PREFIX` "
                "(or [remote.NAME] url in quantcli.toml)"
            )
        names = ", ".join(r.name for r in remotes)
        raise UsageError(f"several remotes ({names}): choose one with --remote")
    for remote in remotes:
        if remote.name == name:
            return remote
    have = ", ".join(r.name for r in remotes) or "none"
    raise NotFoundError(f"no remote {name!r} (remotes: {have}); add it with `data remote add`")


def _client_options(name: str, env: Mapping[str, str]) -> dict[str, str]:
    table = _configured().get(name, {})
    options: dict[str, str] = {}
    for key, boto_name in CLIENT_KEYS.items():
        variable = f"QUANTCLI_REMOTE_{name.upper().replace('-', '_').replace('.', '_')}_{key}"
        value = env.get(variable.upper(), table.get(key))
        if value is not None:
            options[boto_name] = str(value)
    return options


# ---------------------------------------------------------------------------------- client


class _Store:
    """The S3 operations a remote needs, on one boto3 client (imported only here)."""

    def __init__(self, remote: Remote) -> None:
        import boto3
        from botocore.config import Config

        self.remote = remote
        options = _client_options(remote.name, os.environ)
        # Path-style addressing works with every S3-compatible server (moto, MinIO, Ceph).
        config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
        self.client: Any = boto3.session.Session().client("s3", config=config, **options)

    def size(self, key: str) -> int | None:
        """The size of object ``key``, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.remote.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return int(head["ContentLength"])

    def get(self, key: str) -> bytes | None:
        """The bytes of object ``key``, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.remote.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) == "NoSuchKey":
                return None
            raise
        return bytes(body.read())

    def put(self, key: str, data: bytes) -> None:
        """Write object ``key`` (one request: an object is either absent or whole)."""
        self.client.put_object(Bucket=self.remote.bucket, Key=key, Body=data)

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``."""
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.remote.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _talking_to(remote: Remote) -> Iterator[None]:
    """Turn boto3's errors into one redacted QuantcliError line naming the remote."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        raise QuantcliError(
            redact(f"remote {remote.name} ({remote.url}): {_code(exc) or 'error'}: {exc}")
        ) from None
    except BotoCoreError as exc:
        raise QuantcliError(redact(f"remote {remote.name} ({remote.url}): {exc}")) from None


# ---------------------------------------------------------------------------------- push/pull


def _manifest_key(remote: Remote, name: str, version: int) -> str:
    return remote.key(DATASETS, name, f"v{version}", MANIFEST)


@dataclass(frozen=True)
class LocalVersion:
    """A published version as a remote moves it: where it is, the file written last (its
    ``marker``: manifest.json, a model's metadata.json) and the sha256 of every other file.
    ``kind`` is the remote folder it goes under (``datasets``, ``models``)."""

    kind: str
    name: str
    version: int
    folder: Path
    marker: str
    files: Mapping[str, str]

    @property
    def ref(self) -> str:
        """``NAME@vN``."""
        return f"{self.name}@v{self.version}"


def push_version(
    local: LocalVersion,
    remote: Remote,
    *,
    same: Callable[[bytes], bool],
    progress: Callable[[str, bool], None] | None = None,
) -> PushResult:
    """Upload ``local`` to ``remote``: every file not already there (by key and size), then
    its marker, last. ``same(marker bytes on the remote)`` says whether a marker already there
    describes the same content; ConflictError when it does not. ``progress(path, uploaded)``
    is called after each file."""
    uploaded = skipped = sent = 0
    with _talking_to(remote):
        s3 = _Store(remote)
        key = remote.key(local.kind, local.name, f"v{local.version}", local.marker)
        text = (local.folder / local.marker).read_bytes()
        there = s3.get(key)
        if there is not None and there != text and not same(there):
            raise ConflictError(
                f"remote {remote.name} already holds a different {local.ref}; push it under "
                "another name"
            )
        for rel, sha in sorted(local.files.items()):
            object_key = remote.key(OBJECTS, sha)
            path = local.folder / rel
            if s3.size(object_key) == path.stat().st_size:
                skipped += 1
                new = False
            else:
                data = path.read_bytes()
                if sha256_hex(data) != sha:
                    raise IntegrityError(
                        f"{path}: sha256 differs from the {local.marker}; not pushing a damaged "
                        "file (verify it)"
                    )
                s3.put(object_key, data)
                uploaded += 1
                sent += len(data)
                new = True
            if progress is not None:
                progress(rel, new)
        if there is None:
            s3.put(key, text)
    return PushResult(local.ref, uploaded, skipped, sent, there is None)


def push(
    root: Path,
    ref: str,
    remote: Remote,
    *,
    progress: Callable[[str, bool], None] | None = None,
) -> PushResult:
    """Upload dataset version ``ref`` to ``remote`` (see :func:`push_version`).

    ConflictError when the remote holds a different manifest for that version number (two
    stores published the same name independently).
    """
    from quantcli.store.catalog import resolve

    manifest = resolve(root, ref)
    local = LocalVersion(
        DATASETS,
        manifest.name,
        manifest.version,
        version_dir(root, manifest.name, manifest.version),
        MANIFEST,
        manifest.files,
    )
    return push_version(
        local,
        remote,
        same=lambda there: _content_of(there) == manifest.content_hash,
        progress=progress,
    )


def _content_of(manifest: bytes) -> str | None:
    try:
        return Manifest.from_json(manifest.decode("utf-8")).content_hash
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def fetch_objects(
    remote: Remote, files: Mapping[str, str], what: str, progress: Callable[[str], None] | None
) -> dict[str, bytes]:
    """The bytes of ``files`` (path -> sha256) from ``remote``'s objects, each checked against
    its sha256; IntegrityError naming the object (of ``what``) when one is missing or differs."""
    contents: dict[str, bytes] = {}
    with _talking_to(remote):
        s3 = _Store(remote)
        for rel, sha in sorted(files.items()):
            key = remote.key(OBJECTS, sha)
            data = s3.get(key)
            if data is None:
                raise IntegrityError(
                    f"remote {remote.name}: object {key} of {what} is missing; push {what} "
                    "again from a store that has it"
                )
            if sha256_hex(data) != sha:
                raise IntegrityError(
                    f"remote {remote.name}: object {key} of {what} does not match its sha256 "
                    "(tampered or damaged); refused, nothing was pulled"
                )
            contents[rel] = data
            if progress is not None:
                progress(rel)
    return contents


def fetch_marker(remote: Remote, kind: str, name: str, version: int, marker: str) -> bytes:
    """The marker file of ``name`` version ``version`` under ``kind`` on ``remote``;
    NotFoundError when there is none (the version is not there, or not complete)."""
    with _talking_to(remote):
        data = _Store(remote).get(remote.key(kind, name, f"v{version}", marker))
    if data is None:
        raise NotFoundError(f"{name}@v{version} is not on remote {remote.name} ({remote.url})")
    return data


def remote_versions(remote: Remote, name: str) -> list[int]:
    """The complete versions of ``name`` on ``remote`` (those with a manifest), ascending."""
    return remote_datasets(remote, name).get(name, [])


def remote_datasets(remote: Remote, name: str | None = None) -> dict[str, list[int]]:
    """Every dataset on ``remote`` (or only ``name``) with its complete versions (those with a
    manifest), ascending, by name: what ``data remote ls`` shows, from one key listing."""
    if name is not None:
        check_name(name)
    return remote_listing(remote, DATASETS, MANIFEST, name)


def remote_listing(
    remote: Remote, kind: str, marker: str, name: str | None = None
) -> dict[str, list[int]]:
    """Every ``kind`` entry (datasets, models) on ``remote``, or only ``name``, with its
    complete versions, ascending, by name: a version is complete when its ``marker`` (written
    last) is there."""
    prefix = remote.key(kind, *([name] if name is not None else [])) + "/"
    top = remote.key(kind) + "/"
    found: dict[str, set[int]] = {}
    with _talking_to(remote):
        for key in _Store(remote).keys(prefix):
            entry, _, rest = key[len(top) :].partition("/")
            head, _, leaf = rest.partition("/")
            match = VERSION_REF_RE.match(head)
            if match and leaf == marker:
                found.setdefault(entry, set()).add(int(match.group(1)))
    return {entry: sorted(found[entry]) for entry in sorted(found)}


def _remote_manifest(s3: _Store, remote: Remote, ref: str) -> Manifest:
    """The manifest of ``ref`` on the remote: ``NAME``, ``NAME@latest``, ``NAME@vN``, or
    ``NAME@<content hash>`` (the form runs pin)."""
    from quantcli.store.catalog import LATEST, parse_ref

    name, which = parse_ref(ref)
    match = VERSION_REF_RE.match(which)
    candidates = [int(match.group(1))] if match else remote_versions(remote, name)[::-1]
    for version in candidates:
        data = s3.get(_manifest_key(remote, name, version))
        if data is None:
            continue
        key = _manifest_key(remote, name, version)
        try:
            manifest = Manifest.from_json(data.decode("utf-8"))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise IntegrityError(
                f"remote {remote.name}: {key}: unreadable manifest: {exc}"
            ) from None
        if manifest.name != name or manifest.version != version:
            raise IntegrityError(f"remote {remote.name}: {key} describes {manifest.ref}; refused")
        if which == LATEST or match or manifest.content_hash.startswith(which.lower()):
            return manifest
    raise NotFoundError(f"{ref} is not on remote {remote.name} ({remote.url})")


def remote_manifest(remote: Remote, ref: str) -> Manifest:
    """The manifest of dataset version ``ref`` on ``remote`` (``NAME``, ``NAME@vN`` or
    ``NAME@<content hash>``); NotFoundError when it is not there (or not complete)."""
    with _talking_to(remote):
        return _remote_manifest(_Store(remote), remote, ref)


def pull(
    root: Path,
    ref: str,
    remote: Remote,
    *,
    progress: Callable[[str], None] | None = None,
    wait: float = 0,
) -> PullResult:
    """Fetch dataset version ``ref`` from ``remote`` into the store at ``root``, keeping its
    version number, after checking the sha256 of every object and the content hash. The
    publish waits up to ``wait`` seconds for the dataset's lock (else LockHeldError).

    Nothing is downloaded when a local version already holds the same content. IntegrityError
    (naming the object) for tampered or damaged remote data: nothing is published then.
    ConflictError when the local store already used that version number for other content.
    """
    from quantcli.store.publish import publish_files

    with _talking_to(remote):
        s3 = _Store(remote)
        manifest = _remote_manifest(s3, remote, ref)
        name, version = manifest.name, manifest.version
        recomputed = content_hash(
            manifest.files, manifest.schema, manifest.interval, manifest.prices
        )
        if recomputed != manifest.content_hash:
            raise IntegrityError(
                f"remote {remote.name}: {_manifest_key(remote, name, version)}: content hash "
                "does not match its file list; refused"
            )
        local = _local_copy(root, manifest)
        if local is not None:
            return PullResult(manifest.ref, f"{name}@v{local}", 0, created=False)
    contents = fetch_objects(remote, manifest.files, manifest.ref, progress)
    contents[MANIFEST] = manifest.to_json().encode("utf-8")
    got, created = publish_files(
        root,
        name,
        lambda _version: contents,
        marker=MANIFEST,
        existing=lambda folder: read_manifest(folder).content_hash == manifest.content_hash,
        wait=wait,
        version=version,
    )
    return PullResult(manifest.ref, f"{name}@v{got}", len(contents) - 1, created)


def _local_copy(root: Path, manifest: Manifest) -> int | None:
    """The local version of ``manifest.name`` holding the same content, if any."""
    for v in version_numbers(root, manifest.name):
        if read_manifest(version_dir(root, manifest.name, v)).content_hash == (
            manifest.content_hash
        ):
            return v
    return None


def ensure_local(root: Path, name: str, content: str, remote: Remote) -> str:
    """``NAME@<content hash>`` present in the store at ``root``, pulled from ``remote`` when it
    is not: what ``reproduce --pull`` calls for each pinned input. Returns the local ref."""
    from quantcli.store.catalog import resolve

    try:
        return resolve(root, f"{name}@{content}").ref
    except NotFoundError:
        return pull(root, f"{name}@{content}", remote).local_ref


def cache_store(remote: Remote, cache: Path | None = None) -> Path:
    """The local store a process keeps the versions it reads from ``remote`` in:
    ``<cache>/remote-stores/<hash of the URL>/`` (``cache``: $QUANTCLI_CACHE_DIR, else the XDG
    cache)."""
    if cache is None:
        from quantcli.market.calendar import cache_dir

        cache = cache_dir()
    return cache / CACHE_SUBDIR / sha256_hex(remote.url.encode("utf-8"))[:16]


def open_remote(ref: str, remote: Remote, *, cache: Path | None = None) -> DatasetVersion:
    """Dataset version ``ref`` read straight from ``remote``, for the workers of a cluster
    that have no copy of the store: pulled (every hash checked) into :func:`cache_store` on
    first use, then opened from there like any local version.

    ``ref`` should be pinned (``NAME@vN`` or ``NAME@<content hash>``), so every worker reads
    the same bytes. ``remote`` is picklable and carries no secrets: each worker's endpoint and
    credentials come from its own environment or quantcli.toml.
    """
    from quantcli.store.reader import open_dataset

    root = cache_store(remote, cache)
    root.mkdir(parents=True, exist_ok=True)
    # Workers of one machine share the cache: one publishes, the others wait and find it.
    result = pull(root, ref, remote, wait=CACHE_LOCK_WAIT)
    return open_dataset(result.local_ref, root)
