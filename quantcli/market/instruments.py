"""NSE instruments: lot sizes, tick sizes, derivative expiry dates and how each segment trades.

Lot sizes come from an effective-dated master (``data/instruments.csv``, sources per row). A
master row covers the monthly contracts expiring in ``[valid_from, valid_to]``; the windows run
from the day after one month's expiry to the next month's, so the same window is the set of
trade days on which that contract is the near month. ``lot_size(symbol, day)`` therefore answers
both "lot of the near-month contract traded on ``day``" and "lot of the monthly contract expiring
on ``day``". Weekly and long-dated contracts can differ during a transition (after 2024-11-20 new
NIFTY weeklies traded in 75 while the monthlies up to 2025-01-30 kept 25); that is not modelled.

Expiries follow one simple rule (facts doc; NSE circulars): the expiry weekday is Thursday, and
Tuesday for expiries from 2025-09-01; the monthly expiry is the last such weekday of the month; a
holiday moves an expiry to the previous session (``quantcli.market.calendar``). Known departures
that are NOT modelled: NIFTYNXT50 monthlies expired on the last Friday from their 2024-04-24
launch; in 2024 FINNIFTY monthlies expired on Tuesday (2024-07-30) and MIDCPNIFTY on Monday
(2024-07-29); BANKNIFTY monthlies expired on Wednesday around 2025-01/02 (2025-01-29,
2025-02-26). Weekly expiries are produced only for NIFTY; the other indices' weeklies (with their
own weekdays) ended on 2024-11-20 (SEBI circular 2024-10-01: one weekly index per exchange) and
asking for them before that date raises ``CoverageError`` rather than return wrong dates.

The schedules' change dates (:func:`tick_changes`, :func:`lot_rows`) are here too, so a
backtest splits a run into eras on the dates the schedules themselves name; how each segment
trades (funding, shorts, square-off) is quantcli.market.segments.
"""

from __future__ import annotations

import csv
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numba
import numpy as np

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError

if TYPE_CHECKING:
    from numpy.typing import NDArray

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
MASTER_FILE: Final = DATA_DIR / "instruments.csv"

EQUITY_SEGMENTS: Final = frozenset({"equity", "delivery", "intraday"})
DERIVATIVE_SEGMENTS: Final = frozenset({"derivatives", "futures", "options"})
DERIVATIVES: Final = "derivatives"

# The row that opens the stock section of fo_mktlots.csv.
STOCK_SECTION: Final = "derivatives on individual securities"

# NSE's index derivatives (their expiries are NSE's); INDEX_UNDERLYINGS adds BSE's SENSEX, for
# rules that hold for any index underlying (the index futures tick schedule).
NSE_INDEX_UNDERLYINGS: Final = frozenset(
    {"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50"}
)
INDEX_UNDERLYINGS: Final = NSE_INDEX_UNDERLYINGS | {"SENSEX"}

THURSDAY: Final = 3
TUESDAY: Final = 1
# NSE moved every derivative expiry to Tuesday for contracts expiring from 2025-09-01 (facts doc).
TUESDAY_FROM: Final = date(2025, 9, 1)

# NIFTY weekly options: SEBI approval 2018-12-18, trading from 2019-02-11, expiring every
# Thursday (previous session on a holiday); the one NSE weekly kept after 2024-11-20.
NIFTY_WEEKLY_FROM: Final = date(2019, 2, 11)
# SEBI circular 2024-10-01: one weekly index contract per exchange from 2024-11-20; NSE's
# last BANKNIFTY, MIDCPNIFTY and FINNIFTY weeklies expired 2024-11-13, -18 and -19.
OTHER_WEEKLIES_END: Final = date(2024, 11, 20)

# Tick schedules: (effective from, inclusive upper bounds, ticks); tick i applies to
# bounds[i-1] < price <= bounds[i]. NSE's tables read "below 250: 0.01; 250-1,000: 0.05;
# >1,000-5,000: 0.10; >5,000-10,000: 0.50; >10,000-20,000: 1.00; >20,000: 5.00" (stocks and
# stock futures) and "0-15,000: 0.05; >15,000-30,000: 0.10; >30,000: 0.20" (index futures), so
# 250 itself is in the 0.05 band while 1,000, 15,000 etc. stay in the lower band.
# Sources (facts doc; NSE circulars as summarised by broker notices): 0.05 for everything before;
# cash stocks below Rs 250 tick 0.01 from 2024-06-10 (circular 2024-05-24; not ETFs, which are
# not modelled), stock futures from 2024-07-08; all the bands from 2025-04-15 (first review
# 2025-04-11 EOD on 2025-03-28 closes). Options stay at 0.05.
_BELOW_250: Final = math.nextafter(250.0, 0.0)  # "below 250" as an inclusive bound
_PRICE_BANDS: Final = (_BELOW_250, 1_000.0, 5_000.0, 10_000.0, 20_000.0)
_PRICE_BAND_TICKS: Final = (0.01, 0.05, 0.10, 0.50, 1.00, 5.00)
_TickEra = tuple[date, tuple[float, ...], tuple[float, ...]]
TICK_SCHEDULES: Final[dict[str, tuple[_TickEra, ...]]] = {
    "equity": (
        (date.min, (), (0.05,)),
        (date(2024, 6, 10), (_BELOW_250,), (0.01, 0.05)),
        (date(2025, 4, 15), _PRICE_BANDS, _PRICE_BAND_TICKS),
    ),
    "stock_futures": (
        (date.min, (), (0.05,)),
        (date(2024, 7, 8), (_BELOW_250,), (0.01, 0.05)),
        (date(2025, 4, 15), _PRICE_BANDS, _PRICE_BAND_TICKS),
    ),
    "index_futures": (
        (date.min, (), (0.05,)),
        (date(2025, 4, 15), (15_000.0, 30_000.0), (0.05, 0.10, 0.20)),
    ),
    "options": ((date.min, (), (0.05,)),),
}

_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
_MONTH_LABEL: Final = re.compile(rf"^({'|'.join(_MONTHS)})-(\d{{2}})$")
_MASTER_COLUMNS: Final = (
    "symbol",
    "segment",
    "lot_size",
    "tick_size",
    "price_band",
    "valid_from",
    "valid_to",
    "source",
)


@dataclass(frozen=True)
class Instrument:
    """One effective-dated row of the instrument master.

    ``tick_size`` None means the price-dependent ``tick_size`` rule applies; ``valid_to`` None
    means still in force as of the latest source; ``price_band`` is a daily band in percent when
    known (none is shipped: no figure could be verified).
    """

    symbol: str
    segment: str
    lot_size: int
    tick_size: float | None
    valid_from: date
    valid_to: date | None
    source: str
    price_band: float | None = None

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls inside this row's validity window."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


# --------------------------------------------------------------------------- the master


def load_master_csv(path: Path) -> list[Instrument]:
    """Read an instrument master in quantcli's format (the bundled ``instruments.csv``).

    Lines starting with ``#`` are comments. Raises ``DataError`` naming the file and row for a
    missing column, a bad number or date, or two overlapping rows for one symbol and segment.
    """
    lines = _read_lines(path)
    rows = [(n, line) for n, line in enumerate(lines, start=1) if not line.startswith("#")]
    if not rows:
        raise DataError("empty instrument master", path=str(path))
    header_row, header_line = rows[0]
    header = [c.strip() for c in next(csv.reader([header_line]))]
    missing = [c for c in _MASTER_COLUMNS if c not in header]
    if missing:
        raise DataError(f"missing columns {', '.join(missing)}", path=str(path), row=header_row)
    out: list[Instrument] = []
    for row_no, line in rows[1:]:
        if not line.strip():
            continue
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            raise DataError(
                f"expected {len(header)} fields, found {len(cells)}", path=str(path), row=row_no
            )
        rec = dict(zip(header, (c.strip() for c in cells), strict=True))
        try:
            inst = Instrument(
                symbol=_required(rec["symbol"], "symbol").upper(),
                segment=_required(rec["segment"], "segment").lower(),
                lot_size=_positive_int(rec["lot_size"], "lot_size"),
                tick_size=_optional_float(rec["tick_size"], "tick_size"),
                valid_from=_iso_date(rec["valid_from"], "valid_from"),
                valid_to=_iso_date(rec["valid_to"], "valid_to") if rec["valid_to"] else None,
                source=rec["source"],
                price_band=_optional_float(rec["price_band"], "price_band"),
            )
        except ValueError as exc:
            raise DataError(str(exc), path=str(path), row=row_no) from None
        if inst.valid_to is not None and inst.valid_to < inst.valid_from:
            raise DataError("valid_to is before valid_from", path=str(path), row=row_no)
        out.append(inst)
    _check_no_overlap(out, path)
    return out


@cache
def instrument_master() -> tuple[Instrument, ...]:
    """The bundled instrument master (read once per process)."""
    return tuple(load_master_csv(MASTER_FILE))


def lot_size(
    symbol: str,
    day: date,
    segment: str = "equity",
    *,
    master: Sequence[Instrument] | None = None,
) -> int:
    """The lot size of ``symbol`` on ``day``.

    Equity cash (``equity``/``delivery``/``intraday``) trades in single shares: 1. For
    ``futures``/``options``/``derivatives`` the lot of the monthly contract whose window holds
    ``day`` (the near month on that trade day; see the module notes). ``NotFoundError`` for a
    symbol the master does not list, ``CoverageError`` for a day no row covers.
    """
    rows = lot_rows(symbol, segment, master=master)
    if not rows:
        return 1
    for inst in rows:
        if inst.covers(day):
            return inst.lot_size
    spans = "; ".join(f"{i.valid_from}..{i.valid_to or 'open'}" for i in rows)
    raise CoverageError(
        f"no lot size for {symbol.upper()} on {day.isoformat()} (master covers {spans})"
    )


def lot_rows(
    symbol: str, segment: str, *, master: Sequence[Instrument] | None = None
) -> tuple[Instrument, ...]:
    """The effective-dated master rows that give ``symbol``'s lot in ``segment``, in date
    order: empty for equity cash (one share), else each row's ``lot_size`` holds from its
    ``valid_from`` to its ``valid_to`` (a run's lot eras are these windows). ``UsageError`` for
    an unknown segment, ``NotFoundError`` for a derivative symbol the master does not list."""
    seg = segment.lower()
    if seg in EQUITY_SEGMENTS:
        return ()
    if seg not in DERIVATIVE_SEGMENTS:
        known = ", ".join(sorted(EQUITY_SEGMENTS | DERIVATIVE_SEGMENTS))
        raise UsageError(f"unknown segment {segment!r} (expected one of {known})")
    sym = symbol.upper()
    if master is None:
        rows = _derivative_rows().get(sym, ())
    else:
        rows = tuple(i for i in master if i.symbol == sym and i.segment == DERIVATIVES)
    if not rows:
        raise NotFoundError(f"no derivative lot size known for {sym}")
    return tuple(sorted(rows, key=lambda i: i.valid_from))


@cache
def _derivative_rows() -> dict[str, tuple[Instrument, ...]]:
    # The bundled master's derivative rows by symbol: a lookup, not a scan, per symbol.
    out: dict[str, list[Instrument]] = {}
    for inst in instrument_master():
        if inst.segment == DERIVATIVES:
            out.setdefault(inst.symbol, []).append(inst)
    return {sym: tuple(rows) for sym, rows in out.items()}


def load_lot_file(path: Path) -> list[Instrument]:
    """Read NSE's market-lots file (``fo_mktlots.csv``) into effective-dated master rows.

    Layout: a header ``UNDERLYING,SYMBOL,<MON-YY>,...`` (cells may be space-padded), index rows,
    then a section row ``Derivatives on Individual Securities,Symbol,<MON-YY>...`` and the stock
    rows. Only the serial monthly cycle is used: the leading run of consecutive months (usually
    near, next and far). Later columns are long-dated index options whose lots NSE revises before
    they become near month. Each month ``M`` becomes the window from the day after the previous
    month's expiry to ``M``'s expiry (nominal weekday dates: a holiday roll-back only ever moves
    an expiry across non-sessions, so lookups on sessions are unaffected); equal consecutive lots
    merge into one row. ``DataError`` with file and row for anything malformed.
    """
    lines = _read_lines(path)
    records = [(n, [c.strip() for c in cells]) for n, cells in _csv_rows(lines)]
    if not records:
        raise DataError("empty market-lots file", path=str(path))
    row_no, header = records[0]
    if len(header) < 3 or header[0].upper() != "UNDERLYING" or header[1].upper() != "SYMBOL":
        raise DataError(
            "not an NSE market-lots file: expected header UNDERLYING,SYMBOL,<MON-YY>,...",
            path=str(path),
            row=row_no,
        )
    months = _serial_months(header[2:], path, row_no)
    out: list[Instrument] = []
    for row_no, cells in records[1:]:
        if not any(cells):
            continue
        if cells[0].lower().startswith(STOCK_SECTION) or (
            len(cells) > 1 and cells[1].upper() == "SYMBOL"
        ):
            labels = [c for c in cells[2:] if c]
            if labels:
                months = _serial_months(cells[2:], path, row_no)
            continue
        symbol = cells[1].upper() if len(cells) > 1 else ""
        if not symbol:
            raise DataError("missing SYMBOL", path=str(path), row=row_no)
        lots: list[tuple[int, int, int]] = []
        for (year, month), cell in zip(months, cells[2:], strict=False):
            if not cell:
                continue
            try:
                lot = _positive_int(cell, "lot size")
            except ValueError as exc:
                raise DataError(f"{symbol}: {exc}", path=str(path), row=row_no) from None
            lots.append((year, month, lot))
        out.extend(_merge_month_lots(symbol, lots, path.name))
    return out


# --------------------------------------------------------------------------- ticks


def tick_kind(segment: str, symbol: str) -> str:
    """The tick schedule (a key of ``TICK_SCHEDULES``) of ``symbol`` traded in ``segment``:
    cash stocks (``equity``, ``delivery``, ``intraday``) tick as ``equity``; futures on an index
    as ``index_futures``, other futures as ``stock_futures`` (their own schedule: 0.05 until
    2024-07-08, a month after cash stocks); ``options`` on the premium. The backtester takes
    its ticks from here alone."""
    seg = segment.lower()
    if seg in EQUITY_SEGMENTS:
        return "equity"
    if seg == "futures":
        return "index_futures" if symbol.upper() in INDEX_UNDERLYINGS else "stock_futures"
    if seg == "options":
        return "options"
    known = ", ".join(sorted(EQUITY_SEGMENTS | {"futures", "options"}))
    raise UsageError(f"unknown segment {segment!r} for a tick size (expected one of {known})")


def tick_size(price: float, day: date, kind: str = "equity") -> float:
    """The tick (minimum price step) for ``price`` on ``day``.

    ``kind``: ``equity`` (cash stocks), ``stock_futures``, ``index_futures`` (by index level) or
    ``options`` (0.05 on the premium). NSE sets a security's tick monthly from its close on the
    last trading day of the previous month (kept through splits until the next review), so pass
    that reference price for exact ticks; a current price gives the tick its band implies.
    """
    _check_price(price)
    bounds, ticks = _tick_era(day, kind)
    return ticks[bisect_left(bounds, price)]


def tick_sizes(prices: NDArray[np.float64], day: date, kind: str = "equity") -> NDArray[np.float64]:
    """Vectorised ``tick_size`` over a float array (same schedule, same bands)."""
    arr = np.asarray(prices, dtype=np.float64)
    if arr.size and not (np.isfinite(arr).all() and (arr >= 0).all()):
        raise DataError("prices must be finite and non-negative")
    bounds, ticks = _tick_era(day, kind)
    idx = np.searchsorted(np.asarray(bounds, dtype=np.float64), arr, side="left")
    return np.asarray(ticks, dtype=np.float64)[idx]


def tick_changes(kind: str) -> tuple[date, ...]:
    """The dates on which the ``kind`` tick schedule changes (each new table applies from its
    date on), ascending: sessions between two of them share one table, so a run's tick eras
    come from these dates, not from probing prices."""
    return tuple(era[0] for era in _tick_schedule(kind)[1:])


def tick_table(day: date, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``kind`` tick table in force on ``day``: (inclusive upper price bounds, ticks), one
    more tick than bounds; tick ``i`` applies to ``bounds[i-1] < price <= bounds[i]`` (a single
    tick and no bounds: every price)."""
    return _tick_era(day, kind)


def round_to_tick(price: float, tick: float, mode: str = "nearest") -> float:
    """Round ``price`` to a multiple of ``tick``: ``nearest`` (halves away from zero), ``up`` or
    ``down``.

    Binary noise is not a tick (see :func:`round_to_tick_kernel`): 0.05-ticks give 100.15, not
    100.15000000000001, 100.15 counts as 2003 ticks (not 2002.9999999999998), and rounding an
    already-rounded price returns it unchanged.
    """
    code = ROUNDING_MODES.get(mode)
    if code is None:
        raise UsageError(
            f"unknown rounding mode {mode!r} (expected one of {', '.join(ROUNDING_MODES)})"
        )
    if not (math.isfinite(tick) and tick > 0):
        raise UsageError(f"tick must be a positive number, got {tick!r}")
    if not math.isfinite(price):
        raise DataError(f"price must be finite, got {price!r}")
    return float(round_to_tick_kernel(float(price), float(tick), code))


# Rounding modes of round_to_tick_kernel.
ROUND_NEAREST, ROUND_UP, ROUND_DOWN = 0, 1, 2
ROUNDING_MODES: Final = {"nearest": ROUND_NEAREST, "up": ROUND_UP, "down": ROUND_DOWN}


# A price within this many ticks of a whole (or half) number of ticks is on it: the rest is
# binary noise (100.15 / 0.05 is 2002.9999999999998, 100 * 1.0005 is 100.05000000000001).
_TICK_SNAP: Final = 1e-9


@numba.njit(cache=True)
def round_to_tick_kernel(price: float, tick: float, mode: int) -> float:
    """The one tick-rounding rule (``round_to_tick`` and the backtester's fills use it):
    ``price`` to a multiple of ``tick`` by ``mode`` (ROUND_NEAREST: halves away from zero,
    ROUND_UP, ROUND_DOWN); returns ``price`` unchanged for a missing (NaN or non-positive) tick.

    Float noise does not move a price by a tick (see _TICK_SNAP), and the result is the float
    nearest to the decimal multiple (100.15, never 100.15000000000001): the tick as an integer
    count of 10**-d units for its fewest decimals d, times the steps, divided by 10**d in one
    correctly rounded division.
    """
    if not (tick > 0.0 and math.isfinite(tick) and math.isfinite(price)):
        return price
    units, scale = _tick_units(tick)
    q = price / tick
    if not math.isfinite(q):  # a tick too small to count in
        return price
    near = float(math.floor(q + 0.5))
    below = float(math.floor(q))
    steps: float
    # On a multiple: within the snap, or (for quotients too large for it) the price is the float
    # of that decimal multiple.
    if abs(q - near) <= _TICK_SNAP or near * units / scale == price:
        steps = near
    elif mode == ROUND_UP:
        steps = below + 1.0
    elif mode == ROUND_DOWN:
        steps = below
    elif abs(q - below - 0.5) <= _TICK_SNAP or (2.0 * below + 1.0) * units / (2.0 * scale) == price:
        steps = below + 1.0 if below >= 0.0 else below  # a half: away from zero
    else:
        steps = below + 1.0 if q - below > 0.5 else below
    out = steps * units / scale
    # A zero keeps the sign of the price (as a decimal quotient's does).
    return math.copysign(0.0, price) if out == 0.0 else out


@numba.njit(cache=True)
def _tick_units(tick: float) -> tuple[float, float]:
    # (units, 10**d) with units / 10**d == tick for the fewest decimals d (the tick's shortest
    # repr); a tick no short decimal gives counts as one unit of itself.
    scale = 1.0
    for _ in range(16):
        units = float(math.floor(tick * scale + 0.5))
        if units / scale == tick:
            return units, scale
        scale *= 10.0
    return tick, 1.0


def round_to_lot(quantity: int, lot: int) -> int:
    """Round ``quantity`` to a whole number of lots, toward zero (never trade more than asked)."""
    if lot <= 0:
        raise UsageError(f"lot must be a positive integer, got {lot!r}")
    whole = abs(quantity) // lot * lot
    return whole if quantity >= 0 else -whole


# --------------------------------------------------------------------------- expiries


def expiries(underlying: str, start: date, end: date, *, weekly: bool = False) -> list[date]:
    """Derivative expiry dates of ``underlying`` in ``[start, end]``, ascending.

    Monthly expiries for every underlying (index or stock); with ``weekly`` also the weekly
    expiries where they exist (NIFTY from 2019-02; none for stocks). Each date is rolled back to
    the previous session when it falls on a holiday. Raises ``CoverageError`` for weeklies the
    simple rule cannot give (other indices before 2024-11-20) and, through the calendar, for
    dates outside its coverage.
    """
    sym = underlying.upper()
    if end < start:
        return []
    from quantcli.market import calendar

    # A holiday expiry rolls back, so one nominally just after ``end`` may land inside the range;
    # look a week ahead, but never past what the calendar knows.
    horizon = min(end + timedelta(days=7), max(end, calendar.coverage()[1]))
    nominal = set(_monthly_nominal(start, horizon))
    if weekly and sym in NSE_INDEX_UNDERLYINGS and sym != "NIFTY" and start < OTHER_WEEKLIES_END:
        raise CoverageError(
            f"weekly expiries of {sym} before {OTHER_WEEKLIES_END.isoformat()} are not modelled "
            "(their own weekdays); ask for monthly expiries or a later start"
        )
    if weekly and sym == "NIFTY":
        day = max(start, NIFTY_WEEKLY_FROM)
        while day <= horizon:
            if day.weekday() == expiry_weekday(day):
                nominal.add(day)
            day += timedelta(days=1)
    rolled = {_roll_back(d) for d in nominal if start <= d <= horizon}
    return sorted(d for d in rolled if start <= d <= end)


def expiry_weekday(day: date) -> int:
    """The nominal expiry weekday (Monday = 0) for an expiry on ``day``: Thursday, Tuesday from
    2025-09-01."""
    return TUESDAY if day >= TUESDAY_FROM else THURSDAY


def monthly_expiry_nominal(year: int, month: int) -> date:
    """The last expiry weekday of the month, before any holiday roll-back."""
    last = _month_end(year, month)
    for weekday in (TUESDAY, THURSDAY):
        candidate = last - timedelta(days=(last.weekday() - weekday) % 7)
        if expiry_weekday(candidate) == weekday:
            return candidate
    raise AssertionError("unreachable: one of the two weekdays always matches")  # pragma: no cover


# --------------------------------------------------------------------------- helpers


def _roll_back(day: date) -> date:
    from quantcli.market import calendar

    return day if calendar.is_session(day) else calendar.previous_session(day)


def _monthly_nominal(start: date, end: date) -> Iterable[date]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield monthly_expiry_nominal(year, month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _month_end(year: int, month: int) -> date:
    first_next = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first_next - timedelta(days=1)


def _month_window(year: int, month: int) -> tuple[date, date]:
    prev_year, prev_month = (year - 1, 12) if month == 1 else (year, month - 1)
    begin = monthly_expiry_nominal(prev_year, prev_month) + timedelta(days=1)
    return begin, monthly_expiry_nominal(year, month)


def _serial_months(labels: Sequence[str], path: Path, row: int) -> list[tuple[int, int]]:
    months: list[tuple[int, int]] = []
    for label in labels:
        if not label:
            break
        match = _MONTH_LABEL.match(label.upper())
        if match is None:
            raise DataError(
                f"bad expiry month {label!r} (expected MON-YY)", path=str(path), row=row
            )
        ym = (2000 + int(match.group(2)), _MONTHS.index(match.group(1)) + 1)
        if months and ym != _next_month(months[-1]):
            break
        months.append(ym)
    if not months:
        raise DataError("no expiry month columns", path=str(path), row=row)
    return months


def _next_month(ym: tuple[int, int]) -> tuple[int, int]:
    year, month = ym
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _merge_month_lots(
    symbol: str, lots: Sequence[tuple[int, int, int]], source_name: str
) -> list[Instrument]:
    out: list[Instrument] = []
    run: list[tuple[int, int, int]] = []
    for item in [*lots, (0, 0, 0)]:  # sentinel flushes the last run
        prev = run[-1] if run else None
        if prev and (item[2] != prev[2] or (item[0], item[1]) != _next_month((prev[0], prev[1]))):
            first, last = run[0], run[-1]
            out.append(
                Instrument(
                    symbol=symbol,
                    segment=DERIVATIVES,
                    lot_size=first[2],
                    tick_size=None,
                    valid_from=_month_window(first[0], first[1])[0],
                    valid_to=_month_window(last[0], last[1])[1],
                    source=f"{source_name} {_label(first)}..{_label(last)}",
                )
            )
            run = []
        run.append(item)
    return out


def _label(item: tuple[int, int, int]) -> str:
    return f"{_MONTHS[item[1] - 1]}-{item[0] % 100:02d}"


def _tick_era(day: date, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    schedule = _tick_schedule(kind)
    era = schedule[bisect_right([e[0] for e in schedule], day) - 1]
    return era[1], era[2]


def _tick_schedule(kind: str) -> tuple[_TickEra, ...]:
    schedule = TICK_SCHEDULES.get(kind)
    if schedule is None:
        known = ", ".join(TICK_SCHEDULES)
        raise UsageError(f"unknown tick kind {kind!r} (expected one of {known})")
    return schedule


def _check_price(price: float) -> None:
    if not (math.isfinite(price) and price >= 0):
        raise DataError(f"price must be finite and non-negative, got {price!r}")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(f"cannot read as UTF-8 text: {exc}", path=str(path)) from None


def _csv_rows(lines: Sequence[str]) -> Iterable[tuple[int, list[str]]]:
    for n, line in enumerate(lines, start=1):
        if line.strip():
            yield n, next(csv.reader([line]))


def _check_no_overlap(rows: Sequence[Instrument], path: Path) -> None:
    by_key: dict[tuple[str, str], list[Instrument]] = {}
    for inst in rows:
        by_key.setdefault((inst.symbol, inst.segment), []).append(inst)
    for (symbol, segment), group in by_key.items():
        group.sort(key=lambda i: i.valid_from)
        for before, after in pairwise(group):
            if before.valid_to is None or before.valid_to >= after.valid_from:
                raise DataError(
                    f"overlapping {segment} rows for {symbol} from {after.valid_from.isoformat()}",
                    path=str(path),
                )


def _required(value: str, name: str) -> str:
    if not value:
        raise ValueError(f"{name} is empty")
    return value


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value.replace(",", ""))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an integer") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def _optional_float(value: str, name: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def _iso_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a YYYY-MM-DD date") from None
