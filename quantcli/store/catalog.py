"""The catalog of a store root: resolving references, listing, tags, removal and gc.

A reference is ``NAME`` (= ``NAME@latest``), ``NAME@v3``, ``NAME@<tag>`` or
``NAME@<content-hash prefix>`` (at least 6 hex digits). Tag names can never look like the
other forms, so a selector has exactly one reading.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quantcli.core.files import TMP_DIR, atomic_write_bytes, fsync_dir, make_temp_dir
from quantcli.core.lock import dataset_lock
from quantcli.errors import ConflictError, LockHeldError, NotFoundError, UsageError
from quantcli.store.manifest import (
    MANIFEST,
    NAME_RE,
    Manifest,
    check_name,
    read_manifest,
    removed_marker,
    removed_versions,
    version_dir,
    version_numbers,
)

TAGS_FILE = "tags.json"
LATEST = "latest"
MIN_PREFIX = 6
VERSION_RE = re.compile(r"^v([0-9]+)$")
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_ref(ref: str) -> tuple[str, str]:
    """``(name, selector)`` of a reference; the selector defaults to ``latest``."""
    name, at, selector = ref.partition("@")
    if at and not selector:
        raise UsageError(f"invalid reference {ref!r}: nothing after '@'")
    return check_name(name), selector or LATEST


def check_root(root: Path) -> Path:
    """``root`` if it can be a store root: a directory, or a path to create under one.

    Checked once, where the root is chosen, so that no command treats a file as an empty store
    or fails half-way with a traceback: a root that is a file (or a broken link), or lies under
    one, is a UsageError naming it.
    """
    for folder in (root, *root.parents):
        if folder.is_dir():
            return root
        if folder.exists() or folder.is_symlink():
            where = "" if folder == root else f" ({folder} is not a directory)"
            raise UsageError(
                f"the store root {root} is not a directory{where}; give --root a directory"
            )
    return root


def datasets(root: Path) -> list[str]:
    """Names of the datasets under ``root`` that have at least one version, sorted.

    Reserved entries (``_meta/``, ``.tmp/``) never match a dataset name.
    """
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and NAME_RE.match(entry.name) and version_numbers(root, entry.name)
    )


def _existing(root: Path) -> str:
    return ", ".join(datasets(root)) or "none"


def read_tags(root: Path, name: str) -> dict[str, int]:
    """The tags of dataset ``name``: tag -> version."""
    path = root / name / TAGS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): int(v) for k, v in data.items()}


def _write_tags(root: Path, name: str, tags: dict[str, int]) -> None:
    text = json.dumps(tags, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(root / name / TAGS_FILE, text.encode("utf-8"))


def _describe(root: Path, name: str, marker: str = MANIFEST) -> str:
    versions = ", ".join(f"v{v}" for v in version_numbers(root, name, marker)) or "none"
    tags = ", ".join(sorted(read_tags(root, name))) or "none"
    return f"versions: {versions}; tags: {tags}"


def _manifest_hash(folder: Path) -> str:
    return read_manifest(folder).content_hash


def resolve_version(
    root: Path,
    ref: str,
    *,
    marker: str = MANIFEST,
    digest: Callable[[Path], str] = _manifest_hash,
    what: str = "dataset",
) -> tuple[str, int]:
    """``(name, version)`` a reference points at; NotFoundError listing what exists.

    The defaults resolve datasets; another versioned kind (models) gives the file that marks
    its complete versions, how to read a version's content hash and its noun for messages.
    """
    name, selector = parse_ref(ref)
    versions = version_numbers(root, name, marker)
    if not versions:
        if marker != MANIFEST:
            raise NotFoundError(f"{what} {name!r} not found in {root}")
        raise NotFoundError(f"dataset {name!r} not found in {root} (datasets: {_existing(root)})")
    if selector == LATEST:
        return name, versions[-1]
    match = VERSION_RE.match(selector)
    if match:
        number = int(match.group(1))
        if number in versions:
            return name, number
        described = _describe(root, name, marker)
        if number in removed_versions(root, name):
            raise NotFoundError(f"{name}@v{number} was removed ({described})")
        raise NotFoundError(f"{name}@v{number} not found ({described})")
    tags = read_tags(root, name)
    if selector in tags:
        return name, tags[selector]
    if len(selector) >= MIN_PREFIX and HEX_RE.match(selector):
        return name, _by_hash(root, name, versions, selector.lower(), digest)
    raise NotFoundError(
        f"no version, tag or content hash {selector!r} in {name} ({_describe(root, name, marker)})"
    )


def _by_hash(
    root: Path, name: str, versions: list[int], prefix: str, read: Callable[[Path], str]
) -> int:
    hits = {}
    for v in versions:
        digest = read(version_dir(root, name, v))
        if digest.startswith(prefix):
            hits[v] = digest
    if not hits:
        raise NotFoundError(f"no version of {name} has content hash {prefix}...")
    if len(set(hits.values())) > 1:
        shown = ", ".join(f"v{v} ({h[:12]})" for v, h in sorted(hits.items()))
        raise UsageError(f"content hash prefix {prefix!r} of {name} is ambiguous: {shown}")
    # Equal hashes mean equal content (a re-publish after a change was undone): the newest.
    return max(hits)


def resolve(root: Path, ref: str) -> Manifest:
    """The manifest a reference points at."""
    name, version = resolve_version(root, ref)
    return read_manifest(version_dir(root, name, version))


@dataclass(frozen=True)
class DatasetSummary:
    """One dataset of the store: its versions, latest manifest and tags."""

    name: str
    versions: tuple[int, ...]
    latest: Manifest
    tags: dict[str, int]


def list_datasets(root: Path) -> list[DatasetSummary]:
    """Every dataset under ``root`` with its latest version, sorted by name."""
    out = []
    for name in datasets(root):
        versions = tuple(version_numbers(root, name))
        latest = read_manifest(version_dir(root, name, versions[-1]))
        out.append(DatasetSummary(name, versions, latest, read_tags(root, name)))
    return out


def list_versions(root: Path, name: str) -> list[Manifest]:
    """Every visible version of dataset ``name``, oldest first."""
    resolve_version(root, name)  # NotFoundError for an unknown dataset
    return [read_manifest(version_dir(root, name, v)) for v in version_numbers(root, name)]


def check_tag(tag: str, *, what: str = "tag") -> str:
    """``tag`` if it is a valid tag name (one that cannot be read as a version or a hash);
    ``what`` names it in the message (a model's aliases follow the same rule)."""
    if (
        not TAG_RE.match(tag)
        or tag == LATEST
        or VERSION_RE.match(tag)
        or (len(tag) >= MIN_PREFIX and HEX_RE.match(tag))
    ):
        raise UsageError(
            f"invalid {what} {tag!r}: use letters, digits, '.', '_' or '-'; not 'latest', "
            "'v<N>' or a hex string of 6+ digits"
        )
    return tag


def set_tag(root: Path, ref: str, tag: str, *, force: bool = False, wait: float = 0) -> int | None:
    """Point ``tag`` at the version ``ref`` resolves to; returns the version it pointed at before.

    Moving an existing tag to another version needs ``force`` (ConflictError otherwise).
    """
    check_tag(tag)
    name, version = resolve_version(root, ref)
    with dataset_lock(root, name, wait=wait):
        tags = read_tags(root, name)
        before = tags.get(tag)
        if before is not None and before != version and not force:
            raise ConflictError(
                f"tag {tag!r} already points at {name}@v{before}; use --force to move it"
            )
        tags[tag] = version
        _write_tags(root, name, tags)
    return before


def delete_tag(root: Path, name: str, tag: str, *, wait: float = 0) -> int:
    """Remove ``tag`` from dataset ``name``; returns the version it pointed at."""
    check_name(name)
    with dataset_lock(root, name, wait=wait):
        tags = read_tags(root, name)
        if tag not in tags:
            raise NotFoundError(f"no tag {tag!r} in {name} ({_describe(root, name)})")
        version = tags.pop(tag)
        _write_tags(root, name, tags)
    return version


def remove_locked(root: Path, name: str, version: int) -> None:
    """Remove a version of ``name`` (a dataset, or any versioned kind); the caller holds the lock.

    The tombstone is written first so the number is never reused; the rename into ``.tmp``
    makes the version vanish for readers in one step; the delete can then take its time.
    """
    marker = removed_marker(root, name, version)
    marker.touch()
    fsync_dir(marker.parent)
    trash = make_temp_dir(root, name, f"rm-v{version}")
    os.rename(version_dir(root, name, version), trash / f"v{version}")
    fsync_dir(root / name)
    tags = read_tags(root, name)
    kept = {t: v for t, v in tags.items() if v != version}
    if kept != tags:
        _write_tags(root, name, kept)
    shutil.rmtree(trash)


def remove_version(root: Path, ref: str, *, force: bool = False, wait: float = 0) -> Manifest:
    """Delete the version ``ref`` points at (and the tags on it). Refuses without ``force``."""
    name, version = resolve_version(root, ref)
    tagged = sorted(t for t, v in read_tags(root, name).items() if v == version)
    if not force:
        why = f" (it is tagged {', '.join(tagged)})" if tagged else ""
        raise UsageError(f"refusing to remove {name}@v{version}{why} without --force")
    with dataset_lock(root, name, wait=wait):
        manifest = read_manifest(version_dir(root, name, version))
        remove_locked(root, name, version)
    return manifest


@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    temp_removed: tuple[str, ...]
    temp_in_use: tuple[str, ...]
    versions_removed: tuple[str, ...]


def _old_versions(root: Path, name: str, keep_last: int) -> list[int]:
    tagged = set(read_tags(root, name).values())
    versions = version_numbers(root, name)
    return [v for v in versions[:-keep_last] if v not in tagged]


def gc(root: Path, *, keep_last: int | None = None, dry_run: bool = False) -> GcReport:
    """Remove abandoned temp files and directories and, only with ``keep_last``, old versions.

    A temp directory in ``.tmp`` belongs to the dataset named before its ``+``, and a
    ``.<file>.tmp`` in a dataset directory is a crashed atomic write (tags.json); either is left
    alone while that dataset's lock is held (a writer is running). Tagged versions are never
    collected.
    """
    if keep_last is not None and keep_last < 1:
        raise UsageError(f"--keep-last must be at least 1, got {keep_last}")
    owned: dict[str, list[Path]] = {}
    tmp_root = root / TMP_DIR
    if tmp_root.is_dir():
        for entry in sorted(tmp_root.iterdir()):
            owned.setdefault(entry.name.split("+", 1)[0], []).append(entry)
    for name in datasets(root):
        owned.setdefault(name, []).extend(sorted((root / name).glob(".*.tmp")))
    removed: list[str] = []
    in_use: list[str] = []
    versions_removed: list[str] = []
    for name, entries in sorted(owned.items()):
        if not NAME_RE.match(name) or not (root / name).is_dir():
            # Nothing can hold a lock for a dataset that has no directory.
            removed.extend(_drop(root, entries, dry_run))
            continue
        try:
            with dataset_lock(root, name):
                removed.extend(_drop(root, entries, dry_run))
                for v in _old_versions(root, name, keep_last) if keep_last else []:
                    if not dry_run:
                        remove_locked(root, name, v)
                    versions_removed.append(f"{name}@v{v}")
        except LockHeldError:
            in_use.extend(e.relative_to(root).as_posix() for e in entries)
    return GcReport(dry_run, tuple(removed), tuple(in_use), tuple(versions_removed))


def _drop(root: Path, entries: list[Path], dry_run: bool) -> list[str]:
    for entry in entries:
        if not dry_run:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return [e.relative_to(root).as_posix() for e in entries]
