"""Verifying stored versions against their manifests: every file hash and the content hash."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from quantcli.core.hashing import sha256_file
from quantcli.errors import IntegrityError
from quantcli.store.catalog import datasets, resolve_version
from quantcli.store.manifest import (
    MANIFEST,
    content_hash,
    read_manifest,
    version_dir,
    version_numbers,
)


@dataclass(frozen=True)
class VerifyReport:
    """The result of checking one version; ``ok`` when nothing is missing, extra or changed."""

    ref: str
    files: int
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    changed: tuple[str, ...]
    content_hash_ok: bool

    @property
    def ok(self) -> bool:
        """Whether the version matches its manifest exactly."""
        return self.content_hash_ok and not (self.missing or self.extra or self.changed)

    def summary(self) -> str:
        """One line naming what is wrong (or "ok")."""
        if self.ok:
            return f"{self.ref}: ok ({self.files} file{'' if self.files == 1 else 's'})"
        parts = [
            f"{label} {', '.join(paths)}"
            for label, paths in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("changed", self.changed),
            )
            if paths
        ]
        if not self.content_hash_ok:
            parts.append("content hash does not match the manifest")
        return f"{self.ref}: " + "; ".join(parts)


def _on_disk(folder: Path, marker: str) -> set[str]:
    found = set()
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            found.add((Path(dirpath) / name).relative_to(folder).as_posix())
    found.discard(marker)
    return found


def compare_files(
    folder: Path, expected: Mapping[str, str], marker: str = MANIFEST
) -> tuple[list[str], list[str], list[str]]:
    """``(missing, extra, changed)`` relative paths of ``folder`` against ``expected`` (path ->
    sha256; ``marker``, the file holding that list, is not itself listed)."""
    present = _on_disk(folder, marker)
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    to_hash = sorted(set(expected) & present)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(lambda rel: sha256_file(folder / rel), to_hash))
    changed = [rel for rel, d in zip(to_hash, digests, strict=True) if d != expected[rel]]
    return missing, extra, changed


def verify_version(root: Path, name: str, version: int) -> VerifyReport:
    """Recompute every hash of ``name`` version ``version`` and compare with its manifest."""
    folder = version_dir(root, name, version)
    manifest = read_manifest(folder)
    expected = manifest.files
    missing, extra, changed = compare_files(folder, expected)
    recomputed = content_hash(expected, manifest.schema, manifest.interval, manifest.prices)
    return VerifyReport(
        ref=manifest.ref,
        files=len(expected),
        missing=tuple(missing),
        extra=tuple(extra),
        changed=tuple(changed),
        content_hash_ok=recomputed == manifest.content_hash,
    )


def verify(root: Path, ref: str | None = None) -> list[VerifyReport]:
    """Reports for the version ``ref`` names, or for every version in the store when None."""
    if ref is not None:
        return [verify_version(root, *resolve_version(root, ref))]
    return [
        verify_version(root, name, v)
        for name in datasets(root)
        for v in version_numbers(root, name)
    ]


def failure(reports: list[VerifyReport]) -> IntegrityError | None:
    """The IntegrityError (one line) when any report is not ok, else None."""
    bad = [r for r in reports if not r.ok]
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more bad versions)" if len(bad) > 1 else ""
    return IntegrityError(bad[0].summary() + more)


def check(reports: list[VerifyReport]) -> None:
    """Raise :func:`failure`'s IntegrityError when any report is not ok."""
    error = failure(reports)
    if error is not None:
        raise error
