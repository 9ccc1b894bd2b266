"""Durable file-system primitives: atomic replacement (with the directory fsync that makes the
rename itself survive a crash), fsynced creation, and the temporary directories a store builds
versions in (on the store's own file system, so a rename publishes them atomically).

Kept apart from publishing so that reading commands (list, show, query) do not import the
data-frame libraries that publishing needs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TMP_DIR = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make the contents of the file at ``path``, written by someone else, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (it must not exist) holding ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def make_temp_dir(root: Path, name: str, purpose: str) -> Path:
    """A fresh ``<root>/.tmp/<name>+<purpose>-<random>`` directory on the store's file system.

    ``gc`` reads the dataset name before the ``+`` to know which lock guards the directory.
    """
    tmp_root = root / TMP_DIR
    tmp_root.mkdir(parents=True, exist_ok=True)
    path = tmp_root / f"{name}+{purpose}-{secrets.token_hex(6)}"
    path.mkdir()
    return path
