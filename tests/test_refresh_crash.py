"""`data refresh` killed with SIGKILL at random moments: no partial version, the store verifies,
and the next refresh completes the work with the rows of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
from httpserver import FixtureServer

from quantcli.market import calendar
from quantcli.ops.recipe import make_recipe, save_recipe
from quantcli.ops.refresh import refresh
from quantcli.store.catalog import gc
from quantcli.store.manifest import version_numbers
from quantcli.store.reader import open_dataset
from quantcli.store.verify import verify

TRIALS = 20
FIRST, UNTIL = date(2025, 1, 1), date(2025, 2, 28)
SYMBOLS = tuple(f"S{i:03d}" for i in range(200))


def command(root: Path) -> list[str]:
    return [
        sys.executable, "-c", "from quantcli.cli import main; main()", "--root", str(root),
        "-q", "data", "refresh", "d", "--until", UNTIL.isoformat(),
    ]  # fmt: skip


def prepared(root: Path, template: str) -> Path:
    save_recipe(root, make_recipe("d", "bhavcopy-legacy", [template], start=FIRST))
    return root


def bars(root: Path) -> pl.DataFrame:
    return open_dataset("d", root).frame().sort("symbol", "ts")


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    days = calendar.sessions(FIRST, UNTIL)
    with FixtureServer() as server:
        template = server.serve_sessions(days, "legacy", SYMBOLS)
        reference = prepared(tmp_path / "reference", template)
        start = time.monotonic()
        subprocess.run(command(reference), check=True, capture_output=True)
        full = time.monotonic() - start
        expected = bars(reference)
        assert expected.height == len(days) * len(SYMBOLS)

        rng = random.Random(12)
        outcomes = {"killed before a version": 0, "killed after": 0}
        for trial in range(TRIALS):
            root = prepared(tmp_path / f"trial{trial}", template)
            proc = subprocess.Popen(
                command(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(0.0, full))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            versions = version_numbers(root, "d")
            assert len(versions) <= 1, versions
            # Whatever is visible is complete: every file there and hashing to its manifest.
            assert all(r.ok for r in verify(root, None)), trial
            outcomes["killed after" if versions else "killed before a version"] += 1
            report = refresh(root, "d", until=UNTIL)
            assert report.up_to_date == bool(versions)
            assert bars(root).equals(expected), trial
            assert refresh(root, "d", until=UNTIL).up_to_date
            # The killed run's temp files are gc's to remove, and nothing else is left over.
            gc(root)
            assert not any((root / ".tmp").iterdir())
    # The delays spread over the whole run, so kills landed before and after the publish.
    assert all(outcomes.values()), outcomes
