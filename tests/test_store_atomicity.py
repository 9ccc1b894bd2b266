"""Crash safety: SIGKILL a publishing process at observed points; no partial version is visible.

Each trial starts a process that publishes successive versions of a large frame in a loop and
kills it in one of its first publishes once the temp directory holds k data files, a few ms
later (so kills land while writing files, fsyncing, writing the manifest or renaming; links to
the parent version's files happen from the second publish on). Only kills that land before the
rename count, so the test cannot pass without killing mid-publish. After every kill, each
visible version must verify; at the end gc must empty ``.tmp``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import KillPoint, kill_during_publish, publish_dirs, staged_files

from quantcli.core.files import TMP_DIR
from quantcli.store.catalog import gc
from quantcli.store.manifest import MANIFEST, VERSION_DIR_RE, read_manifest, version_numbers
from quantcli.store.reader import open_dataset
from quantcli.store.verify import check, verify

TRIALS = 20

CHILD = """
import sys
from pathlib import Path
import numpy as np
import polars as pl
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish

root, symbols, days = Path(sys.argv[1]), 100, 1000
rng = np.random.default_rng(int(sys.argv[2]))
first = pl.datetime(2010, 1, 1)
ts = pl.datetime_range(first, first + pl.duration(days=days - 1), "1d", eager=True,
                       time_zone="Asia/Kolkata")
close = rng.uniform(10, 1000, symbols * days)
frame = pl.DataFrame({
    "symbol": np.repeat([f"S{i:03d}" for i in range(symbols)], days),
    "ts": pl.concat([ts] * symbols),
    "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
    "volume": rng.integers(1, 10**6, symbols * days),
})
print("ready", flush=True)
step = 0
while True:
    step += 1
    # Change a third of the symbols so copy-on-write links and new files both happen.
    changed = frame.with_columns(
        pl.when(pl.col("symbol") < f"S{step % 3}50").then(pl.col("close") + step)
        .otherwise(pl.col("close"))
    )
    publish(root, "big", changed, interval="1d", source=SourceInfo("crash-test"))
    print("published", step, flush=True)
"""


def _assert_consistent(root: Path) -> int:
    folder = root / "big"
    if folder.is_dir():
        for entry in folder.iterdir():
            if VERSION_DIR_RE.match(entry.name):
                assert (entry / MANIFEST).is_file(), f"partial version visible: {entry}"
    reports = verify(root)
    check(reports)
    return len(reports)


def _start(store: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_sigkill_during_publish_never_leaves_a_partial_version(store: Path) -> None:
    # A first version, unkilled, tells how many data files a publish writes.
    first = _start(store, 0)
    assert first.stdout is not None and first.stdout.readline().split()[0] == "published"
    first.kill()
    published = 1 + first.communicate()[0].count("published")
    files = len(read_manifest(store / "big" / "v1").files)
    rng = random.Random(20261125)
    landed: list[int] = []  # data files in each killed publish's abandoned temp directory
    attempts = 0
    while len(landed) < TRIALS:
        attempts += 1
        assert attempts <= 3 * TRIALS, f"only {len(landed)} of {attempts - 1} kills hit a publish"
        point = KillPoint(rng.randrange(3), rng.randint(0, files), rng.uniform(0, 0.005))
        known = publish_dirs(store)
        proc = _start(store, attempts)
        staged = kill_during_publish(proc, store, point, known)
        out, _ = proc.communicate()
        published += out.count("published")
        if staged is not None:
            landed.append(staged_files(staged))
        _assert_consistent(store)
    assert len(set(landed)) >= 3, landed
    versions = version_numbers(store, "big")
    # A kill between the rename and the print leaves a version the parent was not told about.
    assert len(versions) >= published > 1
    latest = open_dataset("big", store)
    assert latest.lazy().collect().height == latest.manifest.rows == 100 * 1000
    report = gc(store)
    assert not list((store / TMP_DIR).iterdir())
    assert len(report.temp_removed) >= len(landed)
    assert _assert_consistent(store) == len(versions)
