"""NSE calendar: first and cached build, `quantcli calendar is-session` for cron, vectorised
bar checks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from timing import median_time

QUANTCLI = Path(sys.executable).with_name("quantcli")
ROWS = 10_000_000


def five_minute_bars(rows: int) -> object:
    """``rows`` 5-minute bar stamps (75 a day, 09:15-15:25 IST) over consecutive sessions."""
    import polars as pl

    from quantcli.market import calendar

    days = calendar.sessions(date(2000, 1, 1), date(2026, 12, 31))
    days = [d for d in days if calendar.session(d).kind == "regular"]
    opens = pl.Series(
        [datetime.combine(d, calendar.REGULAR_HOURS[0], calendar.IST) for d in days]
    ).dt.cast_time_unit("us")
    offsets = pl.Series([timedelta(minutes=5 * i) for i in range(75)])
    per_day = pl.DataFrame({"open": opens}).join(pl.DataFrame({"off": offsets}), how="cross")
    stamps = per_day.select(ts=pl.col("open") + pl.col("off"))["ts"]
    repeats = -(-rows // len(stamps))
    return pl.concat([stamps] * repeats).head(rows).rechunk()


def _run(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env={**os.environ, **env}, capture_output=True, check=True)


def _fresh(parent: str) -> str:
    return tempfile.mkdtemp(dir=parent)


def run() -> list[dict[str, object]]:
    from quantcli.market import calendar

    build = [sys.executable, "-c", "import quantcli.market.calendar as c; c.calendar()"]
    is_session = [str(QUANTCLI), "calendar", "is-session", "-q", "2026-01-16"]
    with tempfile.TemporaryDirectory(prefix="quantcli-bench-cache-") as cache:
        # An empty cache each time: exchange-calendars builds XBOM's sessions (first use).
        cold = median_time(lambda: _run(build, {"QUANTCLI_CACHE_DIR": _fresh(cache)}), repeat=3)
        # Then the per-user cache of those sessions, as every later run finds it.
        env = {"QUANTCLI_CACHE_DIR": cache}
        _run(build, env)
        warm = median_time(lambda: _run(build, env), repeat=5)
        cron = median_time(lambda: _run(is_session, env), repeat=5)
    calendar.calendar()
    probe = date(2025, 6, 2)
    per_call = median_time(lambda: [calendar.is_session(probe) for _ in range(100_000)]) / 100_000
    stamps = five_minute_bars(ROWS)
    calendar.bars_outside_sessions(stamps, "5m")  # warm the per-day table
    bars = median_time(lambda: calendar.bars_outside_sessions(stamps, "5m"))
    dates = stamps.dt.date()  # type: ignore[attr-defined]
    mask = median_time(lambda: calendar.session_mask(dates))
    return [
        {"benchmark": "import + build calendar (new process), first use", "value": cold,
         "unit": "s", "goal": "< 1 s"},
        {"benchmark": "import + build calendar (new process), cached", "value": warm,
         "unit": "s", "goal": "< 1 s"},
        {"benchmark": "quantcli calendar is-session (wall, cached)", "value": cron, "unit": "s",
         "goal": "< 1.5 s"},
        {"benchmark": "is_session, warm", "value": per_call * 1e6, "unit": "µs/call",
         "goal": "< 5 µs"},
        {"benchmark": f"bars_outside_sessions, {ROWS:,} 5m bars", "value": bars, "unit": "s",
         "goal": "< 1 s"},
        {"benchmark": f"session_mask, {ROWS:,} dates", "value": mask, "unit": "s",
         "goal": "< 0.5 s"},
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<45} {row['value']:>10.3f} {row['unit']:<8} (goal {row['goal']})")
