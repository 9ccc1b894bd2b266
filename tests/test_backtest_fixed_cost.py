"""What prepare keeps per process for small runs (a sweep's thousands of them): the calendar's
session flags and complete session-date lists. They follow the calendar in effect, so a
``calendar import`` (or its replacement) is never answered from an older calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.prepare import prepare
from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy
from quantcli.errors import CoverageError
from quantcli.market.calendar import import_year, sessions, using_store
from quantcli.store.schema import TS_DTYPE

CONFIG = BacktestConfig(dataset="mem", strategy="hold")
JANUARY = [date(2027, 1, d) for d in (25, 26, 27, 28)]  # Monday to Thursday


class Hold(SignalStrategy):
    """One share on every bar."""

    def targets(self) -> pl.Expr:
        return pl.lit(1.0)


HOLD = LoadedStrategy("hold", Hold(None), "targets", "hash", {})


def daily(days: list[date]) -> pl.DataFrame:
    """One symbol's daily bars at 15:30 IST on ``days``."""
    stamps = [f"{d.isoformat()}T10:00:00" for d in days]
    return pl.DataFrame(
        {
            "symbol": ["A"] * len(days),
            "ts": pl.Series(stamps).str.to_datetime(time_zone="UTC").cast(TS_DTYPE),
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.0,
            "volume": 10,
        }
    )


def holidays(tmp_path: Path, name: str, rows: str) -> Path:
    path = tmp_path / name
    path.write_text("Sr. No,Date,Day,Description\n" + rows, encoding="utf-8")
    return path


def test_a_calendar_import_and_its_replacement_reach_the_next_run(
    store: Path, tmp_path: Path
) -> None:
    bars = daily(JANUARY)
    with using_store(store), pytest.raises(CoverageError):
        prepare(bars, CONFIG, HOLD)  # 2027 is past the bundled calendar
    import_year(store, holidays(tmp_path, "a.csv", "1,26-Jan-2027,Tuesday,Republic Day\n"))
    with using_store(store):
        assert prepare(bars, CONFIG, HOLD).days == [JANUARY[0], *JANUARY[2:]]
    replaced = holidays(tmp_path, "b.csv", "1,27-Jan-2027,Wednesday,A holiday moved\n")
    import_year(store, replaced, replace=True)
    with using_store(store):
        assert prepare(bars, CONFIG, HOLD).days == [*JANUARY[:2], JANUARY[3]]
    with pytest.raises(CoverageError):
        prepare(bars, CONFIG, HOLD)  # outside the store, the bundled calendar again


def test_shared_session_lists_are_the_ranges_sessions() -> None:
    # A complete range (every session) shares one list across runs; a gap makes its own.
    full = sessions(date(2024, 1, 1), date(2024, 3, 31))
    first = prepare(daily(full), CONFIG, HOLD).days
    again = prepare(daily(full), CONFIG, HOLD).days
    assert first == again == full and first is again
    gap = [*full[:10], *full[11:]]
    assert prepare(daily(gap), CONFIG, HOLD).days == gap
    assert prepare(daily(full), CONFIG, HOLD).days is first
