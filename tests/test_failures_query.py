"""`data query` printing a table fetches only the rows it shows (plus one to know there are more),
so a huge or endless result neither takes the memory nor the time of the whole result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.store.publish import publish

MAX_RSS_MB = 500

CHILD = """
import json, resource, sys

# A regression must fail this test, not exhaust the machine's memory.
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from quantcli.cli import app

root, sql, limit = sys.argv[1:]
try:
    app(["--root", root, "data", "query", sql, "-d", "d", "--limit", limit])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
# Linux carries the forking process's peak into ru_maxrss across exec (and pytest's is large
# by now); VmHWM is this process's own peak. Elsewhere ru_maxrss is all there is.
try:
    status = open("/proc/self/status").read()
    rss_kb = int(status.split("VmHWM:")[1].split()[0])
except OSError:
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_mb": rss_kb / 1024}), file=sys.stderr)
"""


@pytest.fixture
def root(store: Path) -> Path:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    return store


def _run(root: Path, sql: str, limit: int) -> tuple[str, str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), sql, str(limit)],
        capture_output=True,
        text=True,
        timeout=120,  # the whole of either result takes hours (or all the memory there is)
        check=True,
    )
    *narration, usage = out.stderr.strip().splitlines()
    return out.stdout, "\n".join(narration), json.loads(usage)["rss_mb"]


def test_an_endless_result_shows_its_first_rows(root: Path) -> None:
    stdout, narration, _ = _run(root, "SELECT * FROM range(100000000000)", 5)
    rows = [line for line in stdout.splitlines() if line.startswith("│")]
    assert [r.strip("│ ") for r in rows] == ["0", "1", "2", "3", "4"]
    assert narration == "showing the first 5 rows; more exist (use --limit or -o)"


def test_a_large_result_is_never_held_in_memory(root: Path) -> None:
    # 5 M rows of ~110 bytes each: over a GB as Python rows, a few KB as the 101 fetched.
    sql = "SELECT range AS i, repeat('x', 100) AS s FROM range(5000000)"
    stdout, _, rss_mb = _run(root, sql, 100)
    shown = [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]
    assert shown == [str(i) for i in range(100)]
    assert rss_mb < MAX_RSS_MB, f"data query used {rss_mb:.0f} MB to show 100 rows"


def test_limit_zero_and_negative(cli, root: Path) -> None:
    none = cli("data", "query", "SELECT 1 AS one", "-d", "d", "--limit", "0")
    assert none.exit_code == 0 and "one" in none.stdout and "more exist" in none.stderr
    bad = cli("data", "query", "SELECT 1", "-d", "d", "--limit", "-1")
    assert bad.exit_code == 2 and "--limit must be 0 or more" in bad.stderr


def test_json_output_still_has_every_row(cli, root: Path) -> None:
    doc = cli("--json", "data", "query", "SELECT * FROM range(250)", "-d", "d").json()
    assert len(doc["rows"]) == 250  # --limit is for tables
