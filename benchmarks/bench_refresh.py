"""`data refresh` of 250 sessions of legacy bhavcopy, 2,000 symbols a day, from the loopback
server (tests/httpserver.py), end to end through the CLI in a subprocess.

Goal: under 30 s wall on 2 cores (fetching concurrently, bounded by the default policy).
The files are built and served before the clock starts; the time covers process start,
planning, 250 HTTP fetches with their download checks, parsing, validation and the publish.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
SYMBOLS, SESSIONS = 2000, 250
FIRST = date(2024, 1, 1)


def run() -> list[dict[str, object]]:
    sys.path.insert(0, str(TESTS))
    from httpserver import FixtureServer

    from quantcli.market import calendar
    from quantcli.ops.recipe import make_recipe, save_recipe
    from quantcli.store.reader import open_dataset

    days = calendar.sessions(FIRST, date(2025, 6, 30))[:SESSIONS]
    symbols = tuple(f"SYM{i:04d}" for i in range(SYMBOLS))
    with FixtureServer() as server, tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        template = server.serve_sessions(days, "legacy", symbols)
        root = Path(tmp)
        save_recipe(root, make_recipe("bhav", "bhavcopy-legacy", [template], start=days[0]))
        cli = [sys.executable, "-c", "from quantcli.cli import main; main()", "--root", tmp]
        args = ["-q", "data", "refresh", "bhav", "--until", days[-1].isoformat()]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([*cli, *args], check=True, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows = open_dataset("bhav", root).manifest.rows
    assert rows == SYMBOLS * SESSIONS, rows
    return [
        {
            "benchmark": f"refresh {SESSIONS} sessions x {SYMBOLS:,} symbols (legacy, loopback)",
            "value": wall,
            "unit": "s",
            "goal": "< 30 s",
        },
        {
            "benchmark": f"refresh {SESSIONS} sessions: the process's CPU (user + sys)",
            "value": cpu,
            "unit": "s",
            "goal": "",
        },
        {
            "benchmark": f"refresh {SESSIONS} sessions: peak requests in flight",
            "value": float(server.peak_in_flight),
            "unit": "requests",
            "goal": "bounded (policy)",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
