"""The NSE trading calendar (equity and F&O segments).

Built from exchange-calendars' ``XBOM`` calendar (BSE keeps the same trading holidays as NSE)
plus the override table ``data/calendar_overrides.csv`` for what the package lacks or gets wrong:
holiday names (XBOM records none), holidays it misses, misplaces or learns of late, and special
sessions (Muhurat trading, budget-day weekends, disaster-recovery drills), none of which XBOM
4.13.2 reports as sessions.
Every row of the table cites its NSE circular or source.

Sources (docs/india-market-facts.md): normal market 09:15-15:30 IST, pre-open 09:00-09:08;
equity settlement T+1 fully in force from 2023-01-27, T+2 before.

The bundled coverage ends on 2026-12-31, where XBOM and NSE's published lists stop. A store
extends it a year at a time with NSE's holiday list for the next year (``import_year``, kept in
``<root>/_meta/calendar/<year>.csv``): past XBOM's end a weekday is a session unless listed as a
holiday, a weekend day is not unless listed as a special session. The calendar in effect is the
bundled one plus the imports of the store activated with ``using_store(root)`` (the CLI activates
``--root`` for every command; ``run_backtest``, ``ingest`` and ``validate_frame`` their root).
Dates beyond coverage raise CoverageError rather than guess; dates within ``WARN_DAYS`` of its
end emit a ``CoverageWarning``.

The calendar is built once per set of imports, on first use; importing this module loads neither
exchange_calendars nor pandas nor polars, so the CLI starts fast.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import dataclasses
import functools
import io
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from quantcli.core.files import atomic_write_bytes
from quantcli.core.intervals import INTERVALS
from quantcli.core.lock import dataset_lock
from quantcli.core.timezone import DAY_US, IST, IST_OFFSET_US
from quantcli.errors import (
    ConflictError,
    CoverageError,
    DataError,
    NotFoundError,
    QuantcliError,
    UsageError,
)

if TYPE_CHECKING:
    import polars as pl

# XBOM must be built from 1997 (its default start is 20 years back, which silently drops older
# data), and cannot be built past 2026: its holidays, like NSE's published lists, stop there.
# LAST_DAY is the end of the bundled coverage; a store's imports carry it further.
FIRST_DAY = date(1997, 1, 1)
LAST_DAY = date(2026, 12, 31)
WARN_DAYS = 30
IMPORTS_DIR = ("_meta", "calendar")
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


class CoverageWarning(UserWarning):
    """A date asked about lies within ``WARN_DAYS`` of the end of the calendar's coverage."""


@dataclass(frozen=True)
class Calendar:
    """The assembled calendar: every session, holiday and special session within coverage."""

    sessions: tuple[date, ...]  # sorted
    session_set: frozenset[date]
    settlement_days: tuple[date, ...]  # clearing runs on neither weekends nor holidays
    holidays: Mapping[date, str]
    specials: Mapping[date, Override]
    last: date = LAST_DAY
    # (year, canonical CSV bytes) of each store import, in year order
    imports: tuple[tuple[int, bytes], ...] = field(default=(), repr=False)

    @functools.cached_property
    def day_table(self) -> pl.DataFrame:
        """One row per calendar day of the coverage: is_session and two windows (µs of the day).

        A missing window is the empty interval [0, 0), so the comparison needs no null handling.
        """
        import polars as pl

        names = ("s1", "e1", "s2", "e2")
        columns: dict[str, list[object]] = {k: [] for k in ("is_session", *names)}
        day = FIRST_DAY
        while day <= self.last:
            special = self.specials.get(day)
            windows: tuple[Hours, ...] = ()
            if day in self.session_set:
                windows = (REGULAR_HOURS,) if special is None else special.windows
            bounds = [_micros(t) for hours in windows for t in hours]
            bounds += [0] * (4 - len(bounds))  # override rows have at most two windows
            columns["is_session"].append(bool(windows))
            for name, value in zip(names, bounds, strict=True):
                columns[name].append(value)
            day += timedelta(days=1)
        return pl.DataFrame(
            columns, schema={"is_session": pl.Boolean, **dict.fromkeys(names, pl.Int64)}
        )


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


def read_overrides(
    path: Path = OVERRIDES_CSV, span: tuple[date, date] = (FIRST_DAY, LAST_DAY)
) -> tuple[Override, ...]:
    """Parse and validate an override table whose days lie in ``span`` (the bundled table, or
    a store's import of one year); DataError names the file and row."""
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
            if not span[0] <= override.day <= span[1]:
                raise DataError(
                    f"{override.day} is outside {span[0]}..{span[1]}", path=where, row=row
                )
            kinds[override.day].add(override.kind)
            rows.append(override)
    return tuple(rows)


# --- assembling the calendar ------------------------------------------------------------------


def assemble(
    base_sessions: Iterable[date], overrides: Iterable[Override], last: date = LAST_DAY
) -> Calendar:
    """Combine XBOM's sessions with the override table (pure; the builder feeds it XBOM, and
    every weekday of the imported years past XBOM's end) up to ``last``.

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
    while day <= last:
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
        last=last,
    )


# The store whose imports are in effect, or a calendar assembled in another process.
_ACTIVE: ContextVar[Path | Calendar | None] = ContextVar("quantcli_calendar", default=None)


def using_store(root: Path | None) -> contextlib.AbstractContextManager[None]:
    """Within the block, the calendar includes the holiday lists imported into store ``root``
    (None: the bundled calendar only)."""
    return _active(root)


def using_calendar(assembled: Calendar) -> contextlib.AbstractContextManager[None]:
    """Within the block, the calendar is ``assembled``: one built where a job was made (a
    sweep's), so a worker whose machine holds other imports, or no store, answers alike."""
    return _active(assembled)


@contextlib.contextmanager
def _active(value: Path | Calendar | None) -> Iterator[None]:
    token = _ACTIVE.set(value)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def calendar() -> Calendar:
    """The NSE calendar in effect: XBOM, the override table and the active store's imports."""
    root = _ACTIVE.get()
    if isinstance(root, Calendar):
        return root
    if root is None:
        return _built(None)
    folder = imports_dir(root)
    try:
        stat = folder.stat()
    except OSError:
        return _built(None)
    # A new or replaced import renames a file into the folder, which changes its mtime.
    return _built((folder, stat.st_ino, stat.st_mtime_ns))


@functools.cache
def _bundled() -> tuple[tuple[date, ...], tuple[Override, ...]]:
    return tuple(xbom_sessions()), read_overrides()


@functools.lru_cache(maxsize=8)
def _built(key: tuple[Path, int, int] | None) -> Calendar:
    base, overrides = _bundled()
    imports = () if key is None else read_imports(key[0])
    if not imports:
        return assemble(base, overrides)
    last = date(imports[-1].year, 12, 31)
    weekdays = [
        day
        for day in (LAST_DAY + timedelta(days=n) for n in range(1, (last - LAST_DAY).days + 1))
        if day.weekday() < _SATURDAY
    ]
    rows = [row for year in imports for row in year.rows]
    built = assemble([*base, *weekdays], [*overrides, *rows], last)
    return dataclasses.replace(built, imports=tuple((y.year, y.content) for y in imports))


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
    text = "".join(f"{d.isoformat()}\n" for d in days) + _END_MARK + "\n"
    # A read-only or odd cache location means no cache, with the same answers.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("ascii"))


# --- a store's imported years ------------------------------------------------------------------
# NSE publishes next year's holiday list in December. `import_year` checks it strictly and keeps
# it, in the override table's own format, as <root>/_meta/calendar/<year>.csv.

IMPORT_SOURCE = "NSE holiday list, imported with quantcli calendar import"
_IMPORT_KINDS = ("holiday", *(k for k in SESSION_KINDS if k != "regular"))
_IMPORT_COLUMNS = {
    "date": "date",
    "description": "name",
    "name": "name",
    "holiday": "name",
    "day": "day",
    "weekday": "day",
    "kind": "kind",
    "windows": "windows",
    "pre_open": "pre_open",
    "source": "source",
}
_SERIAL_COLUMN = re.compile(r"^(?:sr|s)\.?\s*no\.?$")
_YEAR_FILE = re.compile(r"^(\d{4})\.csv$")
_IMPORT_LOCK = "_meta"  # the store's metadata lock, which corporate-action imports take too


@dataclass(frozen=True)
class ImportedYear:
    """One year imported into a store: its canonical table's bytes and rows."""

    year: int
    path: Path
    content: bytes
    rows: tuple[Override, ...]


@dataclass(frozen=True)
class HolidayList:
    """A parsed holiday list: its year, its rows and what was noted but not kept."""

    path: Path
    year: int
    rows: tuple[Override, ...]
    notes: tuple[str, ...]  # e.g. a holiday listed on a weekend (the market is shut anyway)
    first_row: int  # the line of the first date, which set the year

    def content(self) -> bytes:
        """The canonical table (the override table's columns, sorted): equal lists, equal
        bytes, whatever the spelling of the file they came from."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_OVERRIDE_COLUMNS)
        order = {kind: i for i, kind in enumerate(_OVERRIDE_KINDS)}
        for row in sorted(self.rows, key=lambda r: (r.day, order[r.kind])):
            hours = " ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in row.windows)
            pre = "" if row.pre_open is None else f"{row.pre_open[0]:%H:%M}-{row.pre_open[1]:%H:%M}"
            writer.writerow([row.day.isoformat(), row.kind, row.name, hours, pre, row.source])
        return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class CalendarImport:
    """What ``import_year`` did: the year, where it is kept, and whether anything changed."""

    year: int
    table: Path
    created: bool  # False: this very list was already imported
    replaced: bool
    holidays: int
    special_sessions: int
    notes: tuple[str, ...]
    coverage: tuple[date, date]

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "year": self.year,
            "table": str(self.table),
            "created": self.created,
            "replaced": self.replaced,
            "holidays": self.holidays,
            "special_sessions": self.special_sessions,
            "notes": list(self.notes),
            "coverage": {
                "first": self.coverage[0].isoformat(),
                "last": self.coverage[1].isoformat(),
            },
        }


def imports_dir(root: Path) -> Path:
    """Where store ``root`` keeps its imported years."""
    return root.joinpath(*IMPORTS_DIR)


def _import_header(names: list[str], where: str) -> list[str | None]:
    fields: list[str | None] = []  # None: a serial-number column, ignored
    for raw in names:
        name = raw.strip().lower()
        if _SERIAL_COLUMN.match(name):
            fields.append(None)
        elif name in _IMPORT_COLUMNS:
            fields.append(_IMPORT_COLUMNS[name])
        else:
            raise DataError(
                f"unknown column {raw!r} (expected date and description, optionally day, "
                "kind, windows, pre_open, source)",
                path=where,
                row=1,
            )
    for needed in ("date", "name"):
        if needed not in fields:
            column = "description" if needed == "name" else needed
            raise DataError(f"missing column {column!r}", path=where, row=1)
    named = [f for f in fields if f]
    if len(set(named)) != len(named):
        raise DataError("a column is given twice", path=where, row=1)
    return fields


_ISO_DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
_NSE_DAY = re.compile(r"^\d\d-[A-Za-z]{3}-\d{4}$")


def _import_day(text: str, where: str, row: int) -> date:
    """``2027-01-26`` or NSE's ``26-Jan-2027``, exactly (``2027-1-26`` is refused)."""
    with contextlib.suppress(ValueError):
        if _ISO_DAY.match(text):
            return date.fromisoformat(text)
        if _NSE_DAY.match(text):
            return datetime.strptime(text, "%d-%b-%Y").date()
    raise DataError(f"bad date {text!r}: expected YYYY-MM-DD or 26-Jan-2027", path=where, row=row)


def parse_holiday_list(path: Path) -> HolidayList:
    """Read NSE's holiday list for one year: columns date and description (also accepted:
    NSE's Sr. No and Day columns, and kind, windows and pre_open for special sessions).

    Strict: DataError naming the file and line for a bad date, a day that contradicts the date,
    dates of more than one year, a day listed twice, or bad hours. A holiday on a weekend is
    noted and dropped (the market is shut anyway).
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except IsADirectoryError:
        raise DataError("is a directory, not a holiday list", path=where) from None
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read as UTF-8 text: {exc}", path=where) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError("empty file (expected columns date,description)", path=where)
    fields = _import_header(header, where)
    rows: list[Override] = []
    notes: list[str] = []
    kinds: dict[date, set[str]] = {}
    year: int | None = None
    first_row = 0
    for cells in reader:
        row = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(fields):
            raise DataError(
                f"expected {len(fields)} fields, found {len(cells)}", path=where, row=row
            )
        record = {f: c.strip() for f, c in zip(fields, cells, strict=True) if f}
        day = _import_day(record["date"], where, row)
        if year is None:
            year, first_row = day.year, row
        elif day.year != year:
            raise DataError(
                f"{day} is not in {year}: a holiday list covers one year", path=where, row=row
            )
        weekday = record.get("day", "")
        if weekday and weekday.lower() not in (f"{day:%A}".lower(), f"{day:%a}".lower()):
            raise DataError(f"{day} is a {day:%A}, not {weekday!r}", path=where, row=row)
        kind = record.get("kind") or "holiday"
        if kind not in _IMPORT_KINDS:
            raise DataError(
                f"unknown kind {kind!r} (one of {', '.join(_IMPORT_KINDS)}; past XBOM's end "
                "every weekday not listed is a regular session)",
                path=where,
                row=row,
            )
        if kind == "holiday" and day.weekday() >= _SATURDAY and not record.get("windows"):
            notes.append(f"{where}:{row}: {day} ({day:%a}) is a weekend day, closed anyway")
            continue
        cells_of = {
            "date": day.isoformat(),
            "kind": kind,
            "name": record["name"],
            "windows": record.get("windows", ""),
            "pre_open": record.get("pre_open", ""),
            "source": record.get("source") or IMPORT_SOURCE,
        }
        override = _parse_override(cells_of, path=where, row=row)
        if _clashes(kinds.setdefault(day, set()), kind):
            raise DataError(f"{day} is listed twice", path=where, row=row)
        kinds[day].add(kind)
        rows.append(override)
    if year is None:
        raise DataError("no holidays listed", path=where)
    return HolidayList(path, year, tuple(rows), tuple(notes), first_row)


def read_imports(folder: Path) -> tuple[ImportedYear, ...]:
    """The years imported into a store's calendar folder, in order; DataError for a damaged
    table or a gap (each year must follow the one before, from the bundled end)."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return ()
    found = sorted(
        (int(m.group(1)), folder / m.group(0)) for m in map(_YEAR_FILE.match, names) if m
    )
    out: list[ImportedYear] = []
    for expected, (year, path) in enumerate(found, start=LAST_DAY.year + 1):
        if year != expected:
            raise DataError(
                f"imported calendar years do not follow on from {expected - 1}: "
                f"{expected} is missing; import it with `quantcli calendar import FILE`",
                path=str(path),
            )
        rows = read_overrides(path, (date(year, 1, 1), date(year, 12, 31)))
        out.append(ImportedYear(year, path, path.read_bytes(), rows))
    return tuple(out)


def _import_action(
    parsed: HolidayList,
    content: bytes,
    table: Path,
    imported: tuple[ImportedYear, ...],
    replace: bool,
) -> str:
    """``unchanged``, ``new`` or ``replace``: what importing ``parsed`` does to the store's
    ``imported`` years; DataError or ConflictError when it may not."""
    last_year = imported[-1].year if imported else LAST_DAY.year
    if table.is_file():
        if table.read_bytes() == content:
            return "unchanged"
        if not replace:
            raise ConflictError(
                f"{parsed.path}: {parsed.year} is already imported with a different list "
                f"({table}); pass --replace to replace it"
            )
        return "replace"
    if parsed.year <= LAST_DAY.year:
        problem = f"{parsed.year} is in the bundled calendar (through {LAST_DAY})"
        hint = f"a holiday list extends it from {last_year + 1}"
    elif parsed.year != last_year + 1:
        problem = (
            f"{parsed.year} does not follow the calendar's coverage, which ends {last_year}-12-31"
        )
        hint = f"import {last_year + 1} first"
    else:
        return "new"
    raise DataError(f"{problem}: {hint}", path=str(parsed.path), row=parsed.first_row)


def import_year(root: Path, path: Path, *, replace: bool = False) -> CalendarImport:
    """Validate NSE's holiday list ``path`` and keep it in store ``root``, extending the
    calendar's coverage through its year.

    The year must follow the coverage end (or be an imported year). Re-importing the same list
    changes nothing; a different list for an imported year is a ConflictError unless
    ``replace``. The table is written atomically under the store's metadata lock.
    """
    parsed = parse_holiday_list(path)
    content = parsed.content()
    folder = imports_dir(root)
    table = folder / f"{parsed.year}.csv"
    try:
        with dataset_lock(root, _IMPORT_LOCK):
            action = _import_action(parsed, content, table, read_imports(folder), replace)
            if action != "unchanged":
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(table, content)
    except OSError as exc:
        raise QuantcliError(
            f"cannot write {table}: {exc.strerror or exc} (is --root {root} a writable store "
            "directory?)"
        ) from None
    _built.cache_clear()
    with using_store(root):
        span = coverage()
    return CalendarImport(
        year=parsed.year,
        table=table,
        created=action != "unchanged",
        replaced=action == "replace",
        holidays=sum(r.kind == "holiday" for r in parsed.rows),
        special_sessions=sum(r.kind != "holiday" for r in parsed.rows),
        notes=parsed.notes,
        coverage=span,
    )


# --- coverage -----------------------------------------------------------------------------------


def fingerprint() -> str:
    """sha256 of every input that decides the calendar's answers: the exchange-calendars
    release (XBOM's sessions), the bundled span, the override table and the active store's
    imported years. A run manifest records it, so a changed calendar changes the run's
    identity."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(f"xbom {version('exchange-calendars')} {FIRST_DAY} {LAST_DAY}\n".encode())
    digest.update(OVERRIDES_CSV.read_bytes())
    for year, content in calendar().imports:
        digest.update(f"\nimport {year} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def coverage() -> tuple[date, date]:
    """The first and last date the calendar in effect knows."""
    return FIRST_DAY, calendar().last


def _span() -> str:
    return f"the NSE calendar's coverage ({FIRST_DAY}..{calendar().last})"


def _not_yet(year: int) -> str:
    return (
        f"NSE's {year} trading holidays are not in this calendar yet "
        "(import them with `quantcli calendar import FILE`)"
    )


def _coverage_warning(last: date) -> str:
    return (
        f"NSE calendar coverage ends {last}; import next year's holidays with "
        "`quantcli calendar import FILE`"
    )


def _require(day: date) -> None:
    last = calendar().last
    if day < FIRST_DAY:
        raise CoverageError(f"{day} is before {_span()}")
    if day > last:
        raise CoverageError(f"{day} is beyond {_span()}; {_not_yet(day.year)}")
    if day >= last - timedelta(days=WARN_DAYS):
        # One fixed call site: Python's default filter then shows it once per process.
        warnings.warn(_coverage_warning(last), CoverageWarning, stacklevel=1)


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
            f"no session after {day} within {_span()}; {_not_yet(calendar().last.year + 1)}"
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
            f"the settlement day of {trade_date} is beyond {_span()}; "
            f"{_not_yet(calendar().last.year + 1)}"
        )
    return days[i]


def holidays(year: int) -> list[Holiday]:
    """NSE's trading holidays of ``year`` (weekdays only, as NSE lists them), with names."""
    if not FIRST_DAY.year <= year <= calendar().last.year:
        raise CoverageError(f"year {year} is outside {_span()}")
    return [
        Holiday(day, name) for day, name in sorted(calendar().holidays.items()) if day.year == year
    ]


# --- vectorised (polars) ------------------------------------------------------------------------
# Bars are checked by integer arithmetic on the timestamps plus one gather from a table with a
# row per calendar day of the coverage: windows are computed once per date, never per bar, so
# ten million bars take about 0.3 s.

_EPOCH = date(1970, 1, 1)
_TO_US = {"ns": (1, 1000), "us": (1, 1), "ms": (1000, 1)}  # (multiply, floor-divide)


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
    return micros if dtype.time_zone is None else micros + IST_OFFSET_US


def _epoch_days(days: pl.Series) -> pl.Series:
    """Days since 1970-01-01 of Date or Datetime input (datetimes taken in IST)."""
    import polars as pl

    if days.dtype == pl.Date:
        return days.cast(pl.Int64)
    return _local_micros(days) // DAY_US


def _day_index(epoch_days: pl.Series) -> pl.Series:
    """Row numbers in calendar().day_table for days since 1970; CoverageError outside coverage."""
    index = epoch_days - (FIRST_DAY - _EPOCH).days
    low, high = index.min(), index.max()
    if isinstance(low, int) and isinstance(high, int):  # None for an empty or all-null series
        _require(FIRST_DAY + timedelta(days=low))
        _require(FIRST_DAY + timedelta(days=high))
    return index


def session_mask(days: pl.Series) -> pl.Series:
    """Boolean series: True where the day (Date, or Datetime taken in IST) is a session."""
    return calendar().day_table["is_session"].gather(_day_index(_epoch_days(days))).alias(days.name)


def bars_outside_sessions(ts: pl.Series, interval: str) -> pl.Series:
    """True where a bar is not inside its day's session windows.

    Intraday bars are stamped with their open time, which must fall in a window
    ([open, close)); a daily bar (``interval="1d"``) only needs its date to be a session.
    """
    import polars as pl

    if interval not in INTERVALS:
        raise UsageError(f"unknown interval {interval!r} (one of {', '.join(INTERVALS)})")
    if interval == "1d":
        return ~session_mask(ts)
    micros = _local_micros(ts)
    epoch_days = micros // DAY_US
    windows = (
        calendar()
        .day_table.select(pl.exclude("is_session").gather(_day_index(epoch_days)))
        .with_columns(tod=micros - epoch_days * DAY_US)
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
