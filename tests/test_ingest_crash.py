"""SIGKILL an ingest at random moments: no partial version is ever visible, verify passes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    # Time one full run, then kill later runs anywhere from start-up to just past its end.
    started = time.monotonic()
    subprocess.run(ingest_args(root, 0), check=True, env=env, capture_output=True)
    full = time.monotonic() - started
    rng = random.Random(20261125)
    killed = 0
    for trial in range(1, TRIALS + 1):
        proc = subprocess.Popen(
            ingest_args(root, trial), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.1, 1.05) * full)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= TRIALS // 2, f"only {killed} runs were killed mid-way"

    versions = sorted((root / "syn").glob("v*"))
    assert versions, "the first, unkilled ingest made no version"
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
    listed = subprocess.run(
        quantcli(root, "--json", "data", "list", "syn"),
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
