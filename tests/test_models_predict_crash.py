"""SIGKILL a prediction while it writes its audit batch: no partial batch is ever visible.

Each kill is aimed at an observed write (its hidden temp file in the partition directory, plus
a few ms), as tests/test_models_crash.py does for model versions.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from test_models import published_feature_set, train_on_set

from quantcli.models.audit import audit_root, batch_files, gc
from quantcli.store.query import query_rows

TRIALS = 6
TIMEOUT = 120
CHILD = """
from pathlib import Path
from quantcli.models import Predictor
predictor = Predictor("m@v1", features="fs@v1", root=Path({root!r}))
for _ in range(200):
    predictor()
"""


def temp_files(root: Path) -> list[Path]:
    top = audit_root(root)
    return [
        Path(folder) / f
        for folder, _, files in os.walk(top)
        for f in files
        if f.startswith(".") and f.endswith(".tmp")
    ]


def kill_during_write(proc: subprocess.Popen[bytes], root: Path, skip: int, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` s after the temp file of its write after ``skip`` others
    appears; whether a temp file was left."""
    known = set(temp_files(root))
    seen: set[Path] = set()
    deadline = time.monotonic() + TIMEOUT
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, "no audit write seen"
            seen |= set(temp_files(root)) - known
            if len(seen) > skip:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return bool(set(temp_files(root)) - known)
            time.sleep(0.0002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_audit_batch(tmp_path: Path) -> None:
    root = tmp_path / "store"
    published_feature_set(root, days=3000)
    train_on_set(root)
    rng = random.Random(20261201)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    landed = attempts = 0
    while landed < TRIALS:
        attempts += 1
        assert attempts <= 3 * TRIALS, f"only {landed} of {attempts - 1} kills hit a write"
        code = CHILD.format(root=str(root))
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
        landed += kill_during_write(proc, root, rng.randint(0, 2), rng.uniform(0, 0.003))
    files = batch_files(root)
    assert files, "no call finished a batch"
    heights = {pl.read_parquet(f).height for f in files}
    assert len(heights) == 1, f"batches of different sizes: {heights}"
    # Killed writes left only hidden temp files, which the log's readers never list.
    assert len(temp_files(root)) >= landed
    assert not set(temp_files(root)) & set(files)
    from quantcli.models.audit import view

    counted = query_rows(root, "SELECT count(*) FROM audit", [], {"audit": view(root)})
    assert counted.rows == [(len(files) * heights.pop(),)]
    # model gc removes exactly the killed writes' temp files.
    left = sorted(str(p.relative_to(root)) for p in temp_files(root))
    assert sorted(gc(root, dry_run=True).temp_removed) == left
    assert sorted(gc(root).temp_removed) == left
    assert not temp_files(root) and batch_files(root) == files


def test_gc_keeps_the_temp_file_of_a_write_in_progress(tmp_path: Path) -> None:
    partition = audit_root(tmp_path) / "model=m" / "date=2026-12-01"
    partition.mkdir(parents=True)
    running, killed = partition / ".a.parquet.1.tmp", partition / ".b.parquet.2.tmp"
    running.write_bytes(b"half")
    killed.write_bytes(b"half")
    fd = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        report = gc(tmp_path)
    finally:
        os.close(fd)
    assert report.temp_in_use == (str(running.relative_to(tmp_path)),)
    assert report.temp_removed == (str(killed.relative_to(tmp_path)),)
    assert running.exists() and not killed.exists()
