"""Ingest 2,000 synthetic symbols x 5,000 daily bars (10M rows) through the CLI.

Goal: under 20 s wall and under 4 GiB peak RSS on 2 cores, end to end (generation,
validation, publish). The CLI runs in a subprocess whose peak RSS is read with
``getrusage(RUSAGE_CHILDREN)`` by a one-child wrapper, so other benchmarks' children in the
same run cannot inflate it. Also reports generation and validation alone, in process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

SYMBOLS, DAYS, SEED = 2000, 5000, 42

WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"wall": wall, "peak_kib": peak}))
"""


def cli_run(root: str) -> dict[str, float]:
    """Wall time and peak RSS of one `quantcli data ingest --source synthetic` process."""
    cli = [sys.executable, "-c", "from quantcli.cli import main; main()", "--root", root, "-q"]
    args = ["data", "ingest", "bench", "--source", "synthetic"]
    args += ["--symbols", str(SYMBOLS), "--days", str(DAYS), "--seed", str(SEED)]
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cli, *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def in_process() -> tuple[float, float]:
    """Seconds to generate and to validate the 10M rows, without the CLI or publish."""
    from quantcli.market import calendar
    from quantcli.store.sources.synthetic import generate
    from quantcli.store.validate import validate_frame

    calendar.calendar()  # built once per process; not part of generation
    start = time.perf_counter()
    frame = generate(SYMBOLS, DAYS, SEED, None)  # None: up to the calendar's last day
    generated = time.perf_counter() - start
    start = time.perf_counter()
    report = validate_frame(frame, interval="1d")
    validated = time.perf_counter() - start
    assert report.ok, report.summary()
    return generated, validated


def run() -> list[dict[str, object]]:
    rows = SYMBOLS * DAYS
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as root:
        measured = cli_run(root)
    generated, validated = in_process()
    return [
        {
            "benchmark": f"ingest synthetic {rows:,} rows via CLI: wall",
            "value": measured["wall"],
            "unit": "s",
            "goal": "< 20 s",
        },
        {
            "benchmark": f"ingest synthetic {rows:,} rows via CLI: peak RSS",
            "value": measured["peak_kib"] / 2**20,
            "unit": "GiB",
            "goal": "< 4 GiB",
        },
        {
            "benchmark": f"generate {rows:,} synthetic rows (in process)",
            "value": generated,
            "unit": "s",
            "goal": "a few s",
        },
        {
            "benchmark": f"validate {rows:,} rows (in process)",
            "value": validated,
            "unit": "s",
            "goal": "",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<55} {row['value']:>8.2f} {row['unit']:<4} (goal {row['goal']})")
