"""Store test helpers: canonical-schema bar frames (built with polars, deterministic), and
SIGKILLs aimed at observed points of a publish in another process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from quantcli.core.files import TMP_DIR
from quantcli.core.timezone import TIMEZONE
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import DATA_DIR

SOURCE = SourceInfo(kind="test")
# A publish writes a data file in milliseconds; polling at 0.5 ms sees every step.
POLL_SECONDS = 0.0005
PUBLISH_TIMEOUT = 120.0


def make_bars(
    symbols: Sequence[str] = ("AAA", "BBB", "CCC"),
    start: date = date(2019, 12, 20),
    days: int = 30,
    *,
    seed: int = 0,
    extra: bool = False,
) -> pl.DataFrame:
    """Daily bars (00:00 IST) for every symbol on ``days`` consecutive calendar days.

    Prices depend on the symbol, the day and ``seed`` so frames are reproducible; ``extra``
    adds the optional vwap and oi columns.
    """
    rows = []
    for k, sym in enumerate(symbols):
        for d in range(days):
            base = 100.0 + 10 * k + d + seed
            rows.append(
                {
                    "symbol": sym,
                    "ts": datetime.combine(start + timedelta(days=d), datetime.min.time()),
                    "open": base,
                    "high": base + 2,
                    "low": base - 2,
                    "close": base + 1,
                    "volume": 1000 + d,
                }
            )
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").dt.replace_time_zone(TIMEZONE))
    if extra:
        frame = frame.with_columns(vwap=pl.col("close") - 0.5, oi=pl.lit(7, dtype=pl.Int64))
    return frame


def publish_dirs(root: Path) -> set[Path]:
    """The temp directories publishes are building in ``<root>/.tmp`` right now."""
    try:
        return {p for p in (root / TMP_DIR).iterdir() if "+publish-" in p.name}
    except FileNotFoundError:
        return set()


def staged_files(folder: Path) -> int:
    """How many data files a publish's temp directory holds (0 before it has ``data/``)."""
    try:
        return len(os.listdir(folder / DATA_DIR))
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class KillPoint:
    """Where a SIGKILL is aimed: in the publish after ``skip`` others, once its temp directory
    holds ``files`` data files, ``delay`` seconds later."""

    skip: int
    files: int
    delay: float


def kill_during_publish(
    proc: subprocess.Popen[str], root: Path, point: KillPoint, known: set[Path]
) -> Path | None:
    """SIGKILL ``proc`` at ``point``, watching the publish temp directories it makes under
    ``root`` (those in ``known`` are older). Returns the targeted directory when the kill landed
    before the publish renamed it into place, else None (the publish finished first, or the
    process exited before reaching the point).

    The kill follows the process's observed progress, not a clock calibrated on another run, so
    a cold first run or a loaded machine moves where kills land by milliseconds, not seconds.
    """
    seen: list[Path] = []
    target = point.skip
    deadline = time.monotonic() + PUBLISH_TIMEOUT
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"no publish reached {point} in {PUBLISH_TIMEOUT} s"
            seen.extend(sorted(publish_dirs(root) - known - set(seen)))
            if len(seen) > target:
                folder = seen[target]
                if not folder.exists():
                    target += 1  # renamed before the point was seen: aim at the next publish
                elif staged_files(folder) >= point.files:
                    time.sleep(point.delay)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    assert proc.returncode == -signal.SIGKILL
                    return folder if folder.exists() else None
            time.sleep(POLL_SECONDS)
        return None
    finally:
        if proc.poll() is None:  # a failed assertion must not leave it publishing forever
            proc.kill()
            proc.wait()
