"""sha256 hex digests of bytes and of files: the one spelling of "the hash of this content".

Identity hashes of structured payloads (canonical JSON of a manifest, a run's inputs) build
their bytes where the payload is defined and hash them here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_hex(*parts: bytes | memoryview) -> str:
    """The hex sha256 of ``parts`` one after the other: buffers (an array's ``.data``) are
    hashed where they lie, without joining them into a copy first."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``, streamed (a file of any size fits in memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
