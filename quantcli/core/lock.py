"""The writer lock of one store entry (a dataset, a model, the store's ``_meta`` tables): an
exclusive ``fcntl.flock`` on ``<root>/<name>/.lock``.

Every operation that changes an entry (publish, tag, rm, gc, an import) holds it; readers never
take it, because versions are immutable and appear by one atomic rename. The kernel drops a
flock when its holder dies, so a killed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quantcli.errors import LockHeldError

LOCK_FILE = ".lock"
POLL_SECONDS = 0.05


def lock_path(root: Path, name: str, file: str = LOCK_FILE) -> Path:
    """The lock file of dataset ``name`` (``file``: another lock of the same entry)."""
    return root / name / file


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


@contextmanager
def dataset_lock(
    root: Path, name: str, *, wait: float = 0, what: str = "dataset", file: str = LOCK_FILE
) -> Iterator[None]:
    """Hold the writer lock of ``name`` for the ``with`` block.

    Tries without blocking, then polls for up to ``wait`` seconds; raises LockHeldError
    (exit 75, "try again later") naming the holder's pid when the lock stays held; ``what``
    names the kind of thing locked in that message (a dataset, a model). ``file`` is another
    lock of the entry, held over longer work that publishes through the writer lock (a refresh).
    """
    path = lock_path(root, name, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        f"{what} {name} is locked by another process ({_holder(path)}); "
                        "try again later"
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)
