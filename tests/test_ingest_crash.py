"""SIGKILL an ingest during its publish: no partial version is ever visible, verify passes.

Each kill is aimed at an observed point of the ingest's publish (its temp directory holding k
data files, plus a few ms), not at a time calibrated on an earlier run, so it lands mid-publish
on a cold or loaded machine too; a kill that lands after the rename is not counted.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import KillPoint, kill_during_publish, publish_dirs, staged_files

from quantcli.store.manifest import read_manifest, version_dir

TRIALS = 20
MAIN = "from quantcli.cli import main; main()"


def quantcli(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", MAIN, "--root", str(root), *args]


def ingest_args(root: Path, seed: int) -> list[str]:
    return quantcli(
        root,
        "-q",
        "data",
        "ingest",
        "syn",
        "--source",
        "synthetic",
        "--symbols",
        "300",
        "--days",
        "2000",
        "--seed",
        str(seed),
    )


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_version(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(ingest_args(root, 0), check=True, env=env, capture_output=True)
    files = len(read_manifest(version_dir(root, "syn", 1)).files)
    rng = random.Random(20261125)
    landed: list[int] = []  # data files in each killed publish's abandoned temp directory
    attempts = 0
    while len(landed) < TRIALS:
        attempts += 1
        assert attempts <= 3 * TRIALS, f"only {len(landed)} of {attempts - 1} kills hit a publish"
        point = KillPoint(skip=0, files=rng.randint(0, files), delay=rng.uniform(0, 0.005))
        known = publish_dirs(root)
        proc = subprocess.Popen(
            ingest_args(root, attempts), env=env, stdout=subprocess.DEVNULL, text=True
        )
        staged = kill_during_publish(proc, root, point, known)
        if staged is not None:
            landed.append(staged_files(staged))
    # Kills at varied points: before any data file, between them, after the last.
    assert len(set(landed)) >= 3, landed

    versions = sorted((root / "syn").glob("v*"))
    for folder in versions:
        assert (folder / "manifest.json").is_file(), f"{folder} is visible without a manifest"
    res = subprocess.run(
        quantcli(root, "--json", "data", "verify"),
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] and len(doc["versions"]) == len(versions)
    # Every killed publish left its temp directory, and gc removes exactly those.
    gc = subprocess.run(
        quantcli(root, "--json", "data", "gc"), check=True, env=env, capture_output=True, text=True
    )
    assert len(json.loads(gc.stdout)["temp_removed"]) == len(landed)
    assert not publish_dirs(root)
