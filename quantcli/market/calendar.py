"""The NSE trading calendar (equity and F&O segments).

Built from exchange-calendars' ``XBOM`` calendar (BSE keeps the same trading holidays as NSE)
plus the override table ``data/calendar_overrides.csv`` for what the package lacks or gets wrong:
holiday names (XBOM records none), holidays it misses, misplaces or learns of late, and special
sessions (Muhurat trading, budget-day weekends, disaster-recovery drills), none of which XBOM
4.13.2 reports as sessions.
Every row of the table cites its NSE circular or source.

Sources (docs/india-market-facts.md): normal market 09:15-15:30 IST, pre-open 09:00-09:08;
equity settlement T+1 fully in force from 2023-01-27, T+2 before.

Coverage ends on 2026-12-31, where XBOM and NSE's published lists stop; later dates raise
CoverageError rather than guess. Carrying 2027 needs its holiday rows in the table, LAST_DAY moved
and, until XBOM records 2027, weekdays past XBOM's end treated as sessions unless listed.

The calendar is built once, on first use; importing this module loads neither exchange_calendars
nor pandas nor polars, so the CLI starts fast.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import functools
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError

if TYPE_CHECKING:
    import polars as pl

IST = ZoneInfo("Asia/Kolkata")
# XBOM must be built from 1997 (its default start is 20 years back, which silently drops older
# data), and cannot be built past 2026: its holidays, like NSE's published lists, stop there.
FIRST_DAY = date(1997, 1, 1)
LAST_DAY = date(2026, 12, 31)
REGULAR_HOURS = (time(9, 15), time(15, 30))
PRE_OPEN_HOURS = (time(9, 0), time(9, 8))
T1_SETTLEMENT_FROM = date(2023, 1, 27)
OVERRIDES_CSV = Path(__file__).parent / "data" / "calendar_overrides.csv"
UNNAMED_HOLIDAY = "Trading holiday"
SESSION_KINDS = ("regular", "special", "muhurat", "dr_drill", "budget")
_OVERRIDE_KINDS = ("holiday", *SESSION_KINDS)
_OVERRIDE_COLUMNS = ("date", "kind", "name", "windows", "pre_open", "source")
_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
_SATURDAY = 5

Hours = tuple[time, time]


@dataclass(frozen=True)
class Holiday:
    """A weekday on which the normal market is closed (a Muhurat session may still run)."""

    day: date
    name: str


@dataclass(frozen=True)
class Session:
    """A trading day: its windows (tz-aware IST; normally one, 09:15-15:30) and its kind."""

    day: date
    windows: tuple[tuple[datetime, datetime], ...]
    kind: str  # one of SESSION_KINDS


@dataclass(frozen=True)
class Override:
    """One row of the override table: a holiday, a reopened normal day, or a special session."""

    day: date
    kind: str  # "holiday", "regular" (a normal session XBOM wrongly closes) or a special kind
    name: str
    windows: tuple[Hours, ...]
    pre_open: Hours | None
    source: str


@dataclass(frozen=True)
class Calendar:
    """The assembled calendar: every session, holiday and special session within coverage."""

    sessions: tuple[date, ...]  # sorted
    session_set: frozenset[date]
    settlement_days: tuple[date, ...]  # clearing runs on neither weekends nor holidays
    holidays: Mapping[date, str]
    specials: Mapping[date, Override]


# --- the override table ---------------------------------------------------------------------


def _parse_hours(text: str, *, path: str, row: int) -> Hours:
    match = _WINDOW.match(text)
    if match is None:
        raise DataError(f"bad hours {text!r}: expected HH:MM-HH:MM", path=path, row=row)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise DataError(f"bad hours {text!r}: {exc}", path=path, row=row) from None
    if start >= end:
        raise DataError(f"bad hours {text!r}: start is not before end", path=path, row=row)
    return start, end


def _parse_override(record: dict[str, str], *, path: str, row: int) -> Override:
    try:
        day = date.fromisoformat(record["date"])
    except ValueError:
        raise DataError(f"bad date {record['date']!r}", path=path, row=row) from None
    kind = record["kind"]
    if kind not in _OVERRIDE_KINDS:
        raise DataError(
            f"unknown kind {kind!r} (one of {', '.join(_OVERRIDE_KINDS)})", path=path, row=row
        )
    if not record["name"] or not record["source"]:
        raise DataError("every row needs a name and a source", path=path, row=row)
    windows = tuple(_parse_hours(w, path=path, row=row) for w in record["windows"].split())
    pre_open = _parse_hours(record["pre_open"], path=path, row=row) if record["pre_open"] else None
    if kind in ("holiday", "regular"):
        if windows or pre_open:
            raise DataError(f"a {kind} row has no hours", path=path, row=row)
        if day.weekday() >= _SATURDAY:
            raise DataError(f"{kind} day {day} falls on a weekend", path=path, row=row)
    elif not 1 <= len(windows) <= 2:
        raise DataError(f"special session {day} needs one or two windows", path=path, row=row)
    elif len(windows) == 2 and windows[0][1] > windows[1][0]:
        raise DataError(
            f"special session {day}: windows overlap or are unsorted", path=path, row=row
        )
    return Override(day, kind, record["name"], windows, pre_open, record["source"])


def _clashes(kinds: set[str], kind: str) -> bool:
    """A day takes one holiday row and one session row (Diwali: closed, then Muhurat), but a
    holiday and a regular-session row contradict each other."""
    if kind == "holiday":
        return bool(kinds & {"holiday", "regular"})
    return bool(kinds - {"holiday"}) or (kind == "regular" and "holiday" in kinds)


def read_overrides(path: Path = OVERRIDES_CSV) -> tuple[Override, ...]:
    """Parse and validate the override table (DataError names the file and row)."""
    where = str(path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != _OVERRIDE_COLUMNS:
            raise DataError(f"expected columns {','.join(_OVERRIDE_COLUMNS)}", path=where, row=1)
        rows: list[Override] = []
        kinds: dict[date, set[str]] = {}
        for row, record in enumerate(reader, start=2):
            # A short row leaves None in the missing columns; an over-long one is rejected.
            if None in record:
                raise DataError("too many columns", path=where, row=row)
            cells = {key: (value or "").strip() for key, value in record.items()}
            override = _parse_override(cells, path=where, row=row)
            if _clashes(kinds.setdefault(override.day, set()), override.kind):
                raise DataError(f"{override.day} is listed twice", path=where, row=row)
            if not FIRST_DAY <= override.day <= LAST_DAY:
                raise DataError(
                    f"{override.day} is outside {FIRST_DAY}..{LAST_DAY}", path=where, row=row
                )
            kinds[override.day].add(override.kind)
            rows.append(override)
    return tuple(rows)


# --- assembling the calendar ------------------------------------------------------------------


def assemble(base_sessions: Iterable[date], overrides: Iterable[Override]) -> Calendar:
    """Combine XBOM's sessions with the override table (pure; the builder feeds it XBOM).

    A weekday is a holiday when the table lists it, or when XBOM has no session on it and no
    "regular" row reopens it; a special session row makes its day a session whatever XBOM or
    the holiday rows say.
    """
    base = set(base_sessions)
    named: dict[date, str] = {}
    specials: dict[date, Override] = {}
    for row in overrides:
        if row.kind == "holiday":
            named[row.day] = row.name
        elif row.kind == "regular":
            base.add(row.day)
        else:
            specials[row.day] = row
    holidays: dict[date, str] = {}
    weekdays: list[date] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        if day.weekday() < _SATURDAY:
            if day in named or day not in base:
                holidays[day] = named.get(day, UNNAMED_HOLIDAY)
            else:
                weekdays.append(day)
        day += timedelta(days=1)
    sessions = sorted({*weekdays, *specials})
    return Calendar(
        sessions=tuple(sessions),
        session_set=frozenset(sessions),
        settlement_days=tuple(weekdays),
        holidays=holidays,
        specials=specials,
    )


@functools.cache
def calendar() -> Calendar:
    """The NSE calendar, built once from XBOM and the override table."""
    return assemble(xbom_sessions(), read_overrides())


def xbom_sessions() -> list[date]:
    """XBOM's sessions from FIRST_DAY to LAST_DAY.

    exchange-calendars needs pandas and takes ~0.5-1 s to build them, so they are kept in a
    per-user cache file named by the package version and the span (a cron job's
    ``quantcli calendar is-session`` then starts in a fraction of that). The cache is only a
    copy of the package's answer: unreadable, corrupt or unwritable, it is simply rebuilt.
    """
    from importlib.metadata import version

    path = cache_dir() / f"xbom-{version('exchange-calendars')}-{FIRST_DAY}-{LAST_DAY}.txt"
    cached = _read_sessions(path)
    if cached is not None:
        return cached
    with warnings.catch_warnings():
        # exchange-calendars 4.13.2 uses a pandas API that pandas 3.1 deprecates: not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        import exchange_calendars as xcals

        xbom = xcals.get_calendar("XBOM", start=FIRST_DAY.isoformat(), end=LAST_DAY.isoformat())
        base = [ts.date() for ts in xbom.sessions]
    _write_sessions(path, base)
    return base


def cache_dir() -> Path:
    """Where quantcli keeps rebuildable caches: $QUANTCLI_CACHE_DIR, else the XDG cache."""
    given = os.environ.get("QUANTCLI_CACHE_DIR")
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "quantcli"


_END_MARK = "end"


def _read_sessions(path: Path) -> list[date] | None:
    # One ISO date a line, then the end mark (a truncated file lacks it).
    try:
        lines = path.read_text(encoding="ascii").splitlines()
        if not lines or lines[-1] != _END_MARK:
            return None
        days = [date.fromisoformat(line) for line in lines[:-1]]
    except (OSError, ValueError):
        return None
    return days if days == sorted(set(days)) else None


def _write_sessions(path: Path, days: list[date]) -> None:
    from quantcli.store.files import atomic_write_bytes

    text = "".join(f"{d.isoformat()}\n" for d in days) + _END_MARK + "\n"
    # A read-only or odd cache location means no cache, with the same answers.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("ascii"))


# --- coverage -----------------------------------------------------------------------------------


def fingerprint() -> str:
    """sha256 of every input that decides the calendar's answers: the exchange-calendars
    release (XBOM's sessions), the coverage span and the override table. A run manifest records
    it, so a changed calendar changes the run's identity."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(f"xbom {version('exchange-calendars')} {FIRST_DAY} {LAST_DAY}\n".encode())
    digest.update(OVERRIDES_CSV.read_bytes())
    return digest.hexdigest()


def coverage() -> tuple[date, date]:
    """The first and last date the calendar knows."""
    return FIRST_DAY, LAST_DAY


def _span() -> str:
    return f"the NSE calendar's coverage ({FIRST_DAY}..{LAST_DAY})"


def _not_yet(year: int) -> str:
    return f"NSE's {year} trading holidays are not in this calendar yet"


def _require(day: date) -> None:
    if day < FIRST_DAY:
        raise CoverageError(f"{day} is before {_span()}")
    if day > LAST_DAY:
        raise CoverageError(f"{day} is beyond {_span()}; {_not_yet(day.year)}")


# --- day-level queries --------------------------------------------------------------------------


def is_session(day: date) -> bool:
    """Whether the market trades on ``day`` (a regular or special session)."""
    _require(day)
    return day in calendar().session_set


def sessions(start: date, end: date) -> list[date]:
    """Sessions from ``start`` to ``end``, both inclusive, in order."""
    _require(start)
    _require(end)
    if start > end:
        raise UsageError(f"start {start} is after end {end}")
    days = calendar().sessions
    return list(days[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)])


def next_session(day: date) -> date:
    """The first session strictly after ``day``."""
    _require(day)
    days = calendar().sessions
    i = bisect.bisect_right(days, day)
    if i == len(days):
        raise CoverageError(
            f"no session after {day} within {_span()}; {_not_yet(LAST_DAY.year + 1)}"
        )
    return days[i]


def previous_session(day: date) -> date:
    """The last session strictly before ``day``."""
    _require(day)
    days = calendar().sessions
    i = bisect.bisect_left(days, day)
    if i == 0:
        raise CoverageError(f"no session before {day} within {_span()}")
    return days[i - 1]


def closure_reason(day: date) -> str | None:
    """Why ``day`` is not a session (holiday name or weekday name); None for a session."""
    if is_session(day):
        return None
    return calendar().holidays.get(day) or day.strftime("%A")


def _at(day: date, hours: Hours) -> tuple[datetime, datetime]:
    return datetime.combine(day, hours[0], IST), datetime.combine(day, hours[1], IST)


def session(day: date) -> Session:
    """The session on ``day`` with its trading windows; NotFoundError if the market is shut."""
    reason = closure_reason(day)
    if reason is not None:
        raise NotFoundError(f"{day} is not an NSE session ({reason})")
    special = calendar().specials.get(day)
    if special is None:
        return Session(day, (_at(day, REGULAR_HOURS),), "regular")
    return Session(day, tuple(_at(day, w) for w in special.windows), special.kind)


def session_open(day: date) -> datetime:
    """When the normal market opens on session ``day`` (tz-aware IST)."""
    return session(day).windows[0][0]


def session_close(day: date) -> datetime:
    """When the normal market closes on session ``day`` (tz-aware IST)."""
    return session(day).windows[-1][1]


def pre_open(day: date) -> tuple[datetime, datetime] | None:
    """The pre-open call auction before the first window; None where the table records none."""
    session(day)
    special = calendar().specials.get(day)
    hours = PRE_OPEN_HOURS if special is None else special.pre_open
    return None if hours is None else _at(day, hours)


def settlement_date(trade_date: date) -> date:
    """Equity settlement day of a trade: T+1 from 2023-01-27, T+2 before.

    Counted in weekday sessions, as clearing does not run on weekend or holiday special
    sessions (trades of Friday 2024-03-01 settled on Monday 2024-03-04, past the 03-02 drill).
    Bank-only settlement holidays are not modelled.
    """
    session(trade_date)
    lag = 1 if trade_date >= T1_SETTLEMENT_FROM else 2
    days = calendar().settlement_days
    i = bisect.bisect_right(days, trade_date) + lag - 1
    if i >= len(days):
        raise CoverageError(
            f"the settlement day of {trade_date} is beyond {_span()}; {_not_yet(LAST_DAY.year + 1)}"
        )
    return days[i]


def holidays(year: int) -> list[Holiday]:
    """NSE's trading holidays of ``year`` (weekdays only, as NSE lists them), with names."""
    if not FIRST_DAY.year <= year <= LAST_DAY.year:
        raise CoverageError(f"year {year} is outside {_span()}")
    return [
        Holiday(day, name) for day, name in sorted(calendar().holidays.items()) if day.year == year
    ]


# --- vectorised (polars) ------------------------------------------------------------------------
# Bars are checked by integer arithmetic on the timestamps plus one gather from a table with a
# row per calendar day of the coverage: windows are computed once per date, never per bar, so
# ten million bars take about 0.3 s.

_DAY_US = 86_400_000_000
# Asia/Kolkata has kept UTC+05:30, without daylight saving, since 1945.
_IST_OFFSET_US = 19_800_000_000
_EPOCH = date(1970, 1, 1)
_TO_US = {"ns": (1, 1000), "us": (1, 1), "ms": (1000, 1)}  # (multiply, floor-divide)


@functools.cache
def _day_table() -> pl.DataFrame:
    """One row per calendar day of the coverage: is_session and two windows (µs of the day).

    A missing window is the empty interval [0, 0), so the comparison needs no null handling.
    """
    import polars as pl

    cal = calendar()
    names = ("s1", "e1", "s2", "e2")
    columns: dict[str, list[object]] = {k: [] for k in ("is_session", *names)}
    day = FIRST_DAY
    while day <= LAST_DAY:
        special = cal.specials.get(day)
        windows: tuple[Hours, ...] = ()
        if day in cal.session_set:
            windows = (REGULAR_HOURS,) if special is None else special.windows
        bounds = [_micros(t) for hours in windows for t in hours]
        bounds += [0] * (4 - len(bounds))  # read_overrides allows at most two windows
        columns["is_session"].append(bool(windows))
        for name, value in zip(names, bounds, strict=True):
            columns[name].append(value)
        day += timedelta(days=1)
    return pl.DataFrame(
        columns, schema={"is_session": pl.Boolean, **dict.fromkeys(names, pl.Int64)}
    )


def _micros(moment: time) -> int:
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1_000_000


def _local_micros(ts: pl.Series) -> pl.Series:
    """IST wall-clock microseconds since 1970-01-01 (naive input is taken to be IST already)."""
    import polars as pl

    dtype = ts.dtype
    if not isinstance(dtype, pl.Datetime):
        raise DataError(f"expected a Datetime series, got {dtype}")
    multiply, divide = _TO_US[dtype.time_unit]
    micros = ts.cast(pl.Int64) * multiply // divide
    return micros if dtype.time_zone is None else micros + _IST_OFFSET_US


def _epoch_days(days: pl.Series) -> pl.Series:
    """Days since 1970-01-01 of Date or Datetime input (datetimes taken in IST)."""
    import polars as pl

    if days.dtype == pl.Date:
        return days.cast(pl.Int64)
    return _local_micros(days) // _DAY_US


def _day_index(epoch_days: pl.Series) -> pl.Series:
    """Row numbers in _day_table() for days since 1970; CoverageError outside coverage."""
    index = epoch_days - (FIRST_DAY - _EPOCH).days
    low, high = index.min(), index.max()
    if isinstance(low, int) and isinstance(high, int):  # None for an empty or all-null series
        _require(FIRST_DAY + timedelta(days=low))
        _require(FIRST_DAY + timedelta(days=high))
    return index


def session_mask(days: pl.Series) -> pl.Series:
    """Boolean series: True where the day (Date, or Datetime taken in IST) is a session."""
    return _day_table()["is_session"].gather(_day_index(_epoch_days(days))).alias(days.name)


def bars_outside_sessions(ts: pl.Series, interval: str) -> pl.Series:
    """True where a bar is not inside its day's session windows.

    Intraday bars are stamped with their open time, which must fall in a window
    ([open, close)); a daily bar (``interval="1d"``) only needs its date to be a session.
    """
    import polars as pl

    from quantcli.store.manifest import INTERVALS

    if interval not in INTERVALS:
        raise UsageError(f"unknown interval {interval!r} (one of {', '.join(INTERVALS)})")
    if interval == "1d":
        return ~session_mask(ts)
    micros = _local_micros(ts)
    epoch_days = micros // _DAY_US
    windows = (
        _day_table()
        .select(pl.exclude("is_session").gather(_day_index(epoch_days)))
        .with_columns(tod=micros - epoch_days * _DAY_US)
    )
    tod = pl.col("tod")
    inside = ((tod >= pl.col("s1")) & (tod < pl.col("e1"))) | (
        (tod >= pl.col("s2")) & (tod < pl.col("e2"))
    )
    return windows.select(outside=~inside).get_column("outside").alias(ts.name)


def missing_sessions(days: pl.Series, start: date, end: date) -> list[date]:
    """Sessions from ``start`` to ``end`` (inclusive) that have no entry in ``days``."""
    import polars as pl

    expected = sessions(start, end)
    present = set(_epoch_days(days).drop_nulls().unique().cast(pl.Date).to_list())
    return [day for day in expected if day not in present]
