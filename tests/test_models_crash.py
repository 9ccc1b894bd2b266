"""SIGKILL a training while it publishes: no partial model version is ever visible.

Each kill is aimed at an observed point of a publish (its temp directory holding k files, plus
a few ms), as tests/test_ingest_crash.py does for datasets; a kill that lands after the rename
is not counted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantcli.core.files import TMP_DIR
from quantcli.models import load, registry

TRIALS = 6
TIMEOUT = 120
CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_models import run
root = Path({root!r})
for seed in range({first}, {first} + 40):
    params = {{"n_estimators": "60", "max_depth": "12", "min_samples_leaf": "1"}}
    run(root, kind="rf", params=params, seed=seed, folds=1)
"""


def publishing(root: Path) -> set[Path]:
    try:
        return {p for p in (root / TMP_DIR).iterdir() if "+publish-" in p.name}
    except FileNotFoundError:
        return set()


def staged(folder: Path) -> int:
    try:
        return len(os.listdir(folder))
    except FileNotFoundError:
        return -1


def kill_at(
    proc: subprocess.Popen[bytes], models: Path, skip: int, files: int, delay: float
) -> int | None:
    """SIGKILL ``proc`` once its publish after ``skip`` others holds ``files`` files; the
    number it held when the process died, or None if that publish finished first."""
    known = publishing(models)
    seen: list[Path] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, "no publish seen"
            seen.extend(sorted(publishing(models) - known - set(seen)))
            if len(seen) > skip:
                folder = seen[skip]
                if staged(folder) < 0:
                    skip += 1  # renamed before the point was seen: aim at the next one
                elif staged(folder) >= files:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    left = staged(folder)
                    return left if left >= 0 else None
            time.sleep(0.0005)
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_model_version(tmp_path: Path) -> None:
    root = tmp_path / "store"
    models = registry.models_root(root)
    rng = random.Random(20261201)
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    landed: list[int] = []
    attempts = 0
    while len(landed) < TRIALS:
        attempts += 1
        assert attempts <= 3 * TRIALS, f"only {len(landed)} of {attempts - 1} kills hit a publish"
        code = CHILD.format(tests=tests, root=str(root), first=attempts * 100)
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
        point = (rng.randint(0, 2), rng.randint(0, 1), rng.uniform(0, 0.002))
        left = kill_at(proc, models, *point)
        if left is not None:
            landed.append(left)
    # Kills before the artifact was written and between it and the metadata.
    assert len(set(landed)) >= 2, landed
    for folder in models.glob("m/v*"):
        assert (folder / "metadata.json").is_file(), f"{folder} is visible without metadata"
    reports = registry.verify(root)
    assert reports and all(r.ok for r in reports), [r.summary() for r in reports]
    for meta in registry.versions(root, "m"):
        assert load(root, meta["ref"]).metadata == meta
    # Every killed publish left its temp directory, and gc removes exactly those.
    assert len(publishing(models)) == len(landed)
    assert len(registry.gc(root, dry_run=True).temp_removed) == len(landed)
    assert len(registry.gc(root).temp_removed) == len(landed)
    assert not publishing(models)
    assert [m["ref"] for m in registry.versions(root, "m")] == [r.ref for r in reports]
