"""The prediction audit log: one immutable Parquet batch per ``predict`` call.

A batch is ``<root>/audit/model=<name>/date=<YYYY-MM-DD>/<request id>.parquet`` (the requested
model's name and the call's IST date). It is written as a hidden temp file in its partition
directory, fsynced, then hard-linked to its name (a link never replaces an existing file, so
nothing is overwritten) and the directory fsynced: a call killed at any moment leaves either
no batch or a complete one, plus at most a hidden ``.*.tmp`` file that no reader lists. The
writer holds an exclusive ``flock`` on its temp file, so :func:`gc` (``model gc``) tells a
killed write's leftover from a write in progress.

Every batch holds :data:`COLUMNS` and a struct column ``features`` (the feature values each
row was scored on, named as in the feature set). The model name and date are columns of the
file too, so readers never infer them from the path. A prediction's id is
``<request_id>-<prediction_n>``: a batch stores the number, not the id (writing a formatted
string per row was a large part of the batch's write), and the view makes the id.
``data query --audit`` exposes the log as the view ``audit`` (:func:`view`): ``prediction_id``
then :data:`COLUMNS` and ``features``, over the listed batch files (DuckDB unions the
``features`` structs of different models by name).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Final

from quantcli.core.files import fsync_dir, fsync_file
from quantcli.errors import ConflictError

if TYPE_CHECKING:
    import polars as pl

    from quantcli.store.catalog import GcReport
    from quantcli.store.query import FileView

AUDIT_DIR = "audit"
SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
# The columns of every batch (before ``features``) with their DuckDB types, in file order.
COLUMNS: dict[str, str] = {
    "prediction_n": "BIGINT",
    "request_id": "VARCHAR",
    "logged_at": "TIMESTAMPTZ",
    "date": "DATE",
    "ts": "TIMESTAMPTZ",
    "symbol": "VARCHAR",
    "model": "VARCHAR",
    "version": "BIGINT",
    "artifact_sha256": "VARCHAR",
    "answered_by": "VARCHAR",
    "answered_sha256": "VARCHAR",
    "fallback_reason": "VARCHAR",
    "route": "INTEGER",
    "score": "DOUBLE",
    "prob_0": "DOUBLE",
    "prob_1": "DOUBLE",
    "decision": "TINYINT",
    "latency_ms": "DOUBLE",
}
# What the view adds before COLUMNS: the prediction id (see the module docstring).
PREDICTION_ID: Final = "prediction_id"
# Written for speed: the log must add little to a prediction (lz4 encodes several times faster
# than zstd here for a third more bytes).
COMPRESSION: Final = "lz4"


def audit_root(root: Path) -> Path:
    """The audit log's directory under the store root."""
    return root / AUDIT_DIR


def batch_path(root: Path, model: str, day: date, request_id: str) -> Path:
    """Where the batch of request ``request_id`` for ``model`` on ``day`` lives."""
    partition = audit_root(root) / f"model={model}" / f"date={day.isoformat()}"
    return partition / f"{request_id}{SUFFIX}"


def logged(root: Path, model: str, request_id: str) -> Path | None:
    """The batch of ``model`` already holding request ``request_id`` (on any date), if any."""
    folder = audit_root(root) / f"model={model}"
    if not folder.is_dir():
        return None
    for partition in sorted(folder.iterdir()):
        path = partition / f"{request_id}{SUFFIX}"
        if path.is_file():
            return path
    return None


def _make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each creation made durable in its parent."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        fsync_dir(folder.parent)


def write_batch(
    path: Path, frame: pl.DataFrame, *, written: Callable[[], object] | None = None
) -> Path:
    """Write ``frame`` as the batch ``path`` (see the module docstring); ConflictError, and
    nothing written, when a batch of that name exists. ``written`` is called once the bytes
    are written and before they are made durable, to start work (on another thread) that the
    fsync's wait can overlap."""
    _make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        frame.write_parquet(tmp, compression=COMPRESSION, statistics=False)
        os.chmod(tmp, 0o444)
        if written is not None:
            written()
        fsync_file(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ConflictError(
                f"{path}: the audit log already holds this request id; give another --request-id"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)
    fsync_dir(path.parent)
    return path


def gc(root: Path, *, dry_run: bool = False) -> GcReport:
    """Remove the temp files of audit writes killed before they finished; a temp file whose
    writer still holds its lock is a write in progress, and is kept."""
    from quantcli.store.catalog import GcReport

    top = audit_root(root)
    removed: list[str] = []
    in_use: list[str] = []
    leftovers = sorted(top.glob(f"model=*/date=*/.*{TMP_SUFFIX}")) if top.is_dir() else []
    for tmp in leftovers:
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its write finished meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            in_use.append(str(tmp.relative_to(root)))
            continue
        else:
            removed.append(str(tmp.relative_to(root)))
            if not dry_run:
                tmp.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return GcReport(dry_run, tuple(removed), tuple(in_use), ())


def batch_files(root: Path) -> list[Path]:
    """Every complete batch of the log, sorted by model, date and request id (hidden temp
    files of a write in progress or killed are never listed)."""
    top = audit_root(root)
    if not top.is_dir():
        return []
    return sorted(
        batch
        for model in top.iterdir()
        if model.name.startswith("model=") and model.is_dir()
        for partition in model.iterdir()
        if partition.name.startswith("date=") and partition.is_dir()
        for batch in partition.iterdir()
        if batch.name.endswith(SUFFIX) and not batch.name.startswith(".")
    )


def view(root: Path) -> FileView:
    """The ``audit`` view of ``data query``: each prediction's id, then every batch in the
    types it was written with; an empty log is an empty view with the fixed columns."""
    from quantcli.store.query import FileView
    from quantcli.store.reader import sql_ident, sql_string

    files = tuple(batch_files(root))
    if not files:
        fixed = {PREDICTION_ID: "VARCHAR", **COLUMNS}
        columns = ", ".join(f"NULL::{t} AS {sql_ident(c)}" for c, t in fixed.items())
        return FileView(f"SELECT {columns} WHERE false", ())
    listed = ", ".join(sql_string(str(f)) for f in files)
    return FileView(
        f"SELECT concat(request_id, '-', prediction_n) AS {PREDICTION_ID}, * "
        f"FROM read_parquet([{listed}], union_by_name=true, hive_partitioning=false)",
        files,
    )
