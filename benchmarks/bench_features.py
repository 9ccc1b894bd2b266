"""`quantcli features build basic` on 2,000 synthetic symbols x 5,000 daily bars (10M rows).

Goal: under 15 s wall and under 4 GiB peak RSS on 2 cores, as a CLI process (read the dataset,
split-adjusted view, nine features, the look-ahead check, publish). The dataset is ingested
first (not timed); the build runs in a subprocess whose peak RSS is read with
``getrusage(RUSAGE_CHILDREN)`` by a one-child wrapper, as bench_ingest does. A re-run of the
same build (which publishes nothing) is timed too.

Usage: .venv/bin/python benchmarks/bench_features.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from bench_ingest import SEED, WRAPPER

SYMBOLS, DAYS = 2000, 5000


def _cli(root: str) -> list[str]:
    return [sys.executable, "-c", "from quantcli.cli import main; main()", "--root", root, "-q"]


def measured(root: str, *args: str) -> dict[str, float]:
    """Wall time and peak RSS of one quantcli process."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *_cli(root), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run() -> list[dict[str, object]]:
    rows = SYMBOLS * DAYS
    build = ["features", "build", "feats", "--dataset", "bench", "--spec", "basic"]
    with tempfile.TemporaryDirectory(prefix="bench-features-") as root:
        ingest = ["data", "ingest", "bench", "--source", "synthetic"]
        ingest += ["--symbols", str(SYMBOLS), "--days", str(DAYS), "--seed", str(SEED)]
        subprocess.run([*_cli(root), *ingest], check=True, capture_output=True)
        first = measured(root, *build)
        again = measured(root, *build)
    return [
        {
            "benchmark": f"features build basic, {rows:,} rows via CLI: wall",
            "value": first["wall"],
            "unit": "s",
            "goal": "< 15 s",
        },
        {
            "benchmark": f"features build basic, {rows:,} rows via CLI: peak RSS",
            "value": first["peak_kib"] / 2**20,
            "unit": "GiB",
            "goal": "< 4 GiB",
        },
        {
            "benchmark": "same build re-run (unchanged, publishes nothing): wall",
            "value": again["wall"],
            "unit": "s",
            "goal": "",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<58} {row['value']:>8.2f} {row['unit']:<4} (goal {row['goal']})")
