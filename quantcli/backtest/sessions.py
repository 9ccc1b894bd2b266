"""Bars checked and kept to NSE sessions, in (symbol, ts) order and coded by symbol and
session (:func:`session_bars`), with where each goes in replay order
(quantcli.backtest.replay_order). The calendar's session flags are kept per calendar, so that a
run's many dates are looked up at numpy speed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl

from quantcli.backtest.arrays import PASS_ROWS, frozen, repeats
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.replay_order import Order, replay_order
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.timezone import DAY_US, IST_OFFSET_US
from quantcli.errors import DataError, QuantcliError
from quantcli.store.schema import REQUIRED

_EPOCH_DAY = date(1970, 1, 1)


class SessionBars(NamedTuple):
    """The validated bars on NSE sessions in (symbol, ts) order, what they are coded by, and
    where each goes in replay order."""

    frame: pl.DataFrame
    days: list[date]  # the sessions
    day_of: np.ndarray  # each row's session index
    symbols: list[str]
    code: np.ndarray  # each row's symbol number
    order: Order

    @property
    def n(self) -> int:
        """The number of bars."""
        return self.frame.height


def session_bars(bars: pl.DataFrame, config: BacktestConfig) -> SessionBars:
    """``bars`` checked (required columns, no null keys, no duplicates), cast, kept to NSE
    sessions and in (symbol, ts) order."""
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack required columns: {', '.join(missing)}")
    for name in ("symbol", "ts"):
        if bars.get_column(name).null_count():
            at = int(bars.get_column(name).is_null().arg_true()[0])
            raise DataError(f"bars have a null {name} in row {at}")
    wanted = {"ts": TS_DTYPE, "volume": pl.Int64()}
    wanted.update(dict.fromkeys(("open", "high", "low", "close"), pl.Float64()))
    schema = bars.schema
    # Only the casts needed: a with_columns is a noticeable part of a small run.
    casts = [pl.col(c).cast(t) for c, t in wanted.items() if schema[c] != t]
    frame = bars.with_columns(casts) if casts else bars
    # A copy when the frame is chunked (read from Parquet); the frame itself stays as it is, as
    # replacing one column with a contiguous one would make polars rechunk every column.
    # Read-only throughout, as polars' own arrays are: one numba type for the compiled passes.
    utc = frozen(frame.get_column("ts").cast(pl.Int64).to_numpy())[0]
    days, day_of, keep = _session_days(utc)
    if keep is not None:
        frame = frame.filter(pl.Series(keep))
        utc = frozen(utc[keep])[0]
    if frame.height == 0:
        span = f"{config.start or 'start'}..{config.end or 'end'}"
        raise QuantcliError(f"no bars on NSE sessions in {span} for dataset {config.dataset}")
    symbols, code = symbol_codes(frame.get_column("symbol"))
    code = frozen(code)[0]
    if not _is_sorted(code, utc):
        by_symbol = np.lexsort((utc, code))
        frame = frame[by_symbol]
        code, utc = frozen(code[by_symbol], utc[by_symbol])
        day_of = day_of[by_symbol]
        twins = np.flatnonzero((code[1:] == code[:-1]) & (utc[1:] == utc[:-1]))
        if twins.size:
            row = frame.row(int(twins[0]), named=True)
            raise DataError(f"duplicate bar ({row['symbol']}, {row['ts']}) in the input")
    # Flagged sorted, polars evaluates the strategies' .over("symbol") windows without hashing
    # (in a shallow copy, not a with_columns: a query-engine call costs a small run ~0.04 ms).
    frame = frame.clone()
    frame.replace_column(frame.get_column_index("symbol"), frame["symbol"].set_sorted())
    # From here on arrays are in (symbol, ts) order; ``order`` says where each bar goes in
    # replay order, (ts, symbol). ``utc`` is not kept: a copy when the frame is chunked, and the
    # pass that moves the columns reads the frame's own.
    order = replay_order(utc, code, day_of, len(days), len(symbols))
    return SessionBars(frame, days, day_of, symbols, code, order)


def symbol_codes(names: pl.Series) -> tuple[list[str], np.ndarray]:
    """(sorted distinct symbols, each row's index into them). Rows grouped by symbol in sorted
    order (the store's order) take the fast path: the code is the run number."""
    if names.null_count() == 0:
        # One symbol (a sweep's small runs) starts and ends the column: only then are min and
        # max worth reading (~1.2 ms for 250 k bars).
        if names.len() and names[0] == names[-1]:
            only = names.min()
            if only is not None and only == names.max():
                return [str(only)], np.zeros(names.shape[0], dtype=np.int32)
        code = names.rle_id().to_numpy().view(np.int32)  # run numbers fit: fewer than rows
        runs = names.gather(np.flatnonzero(np.r_[True, code[1:] != code[:-1]])).to_list()
        if all(a < b for a, b in itertools.pairwise(runs)):  # grouped, in sorted order
            return runs, code
    symbols = names.unique().sort().to_list()
    return symbols, names.cast(pl.Enum(symbols)).to_physical().to_numpy().astype(np.int32)


def _is_sorted(code: np.ndarray, utc: np.ndarray) -> bool:
    """True when rows are already in (symbol, ts) order (the store's order)."""
    n = code.shape[0]
    for a in range(0, n - 1, PASS_ROWS):
        b = min(n - 1, a + PASS_ROWS)  # rows a+1 .. b, each against the row before
        c0, c1, u0, u1 = code[a:b], code[a + 1 : b + 1], utc[a:b], utc[a + 1 : b + 1]
        if ((c1 < c0) | ((c1 == c0) & (u1 <= u0))).any():
            return False
    return True


def epoch_days_of(utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct IST epoch days, index of each bar's day) without sorting the bars.
    The bars of a full panel in (symbol, ts) order are its first symbol's stamps over and over:
    their days are worked out once, on those."""
    period = _period(utc)
    distinct, index = _day_ranks(utc[:period])
    if period < utc.shape[0]:
        index = np.tile(index, utc.shape[0] // period)
    return distinct, index


def _period(utc: np.ndarray) -> int:
    """The length of the first increasing run of ``utc`` when ``utc`` is that run over and
    over, else the length of ``utc``."""
    n = int(utc.shape[0])
    for a in range(0, n - 1, PASS_ROWS):
        b = min(n - 1, a + PASS_ROWS)  # rows a+1 .. b, each against the row before
        drops = np.flatnonzero(utc[a + 1 : b + 1] <= utc[a:b])
        if drops.size:
            width = a + 1 + int(drops[0])
            return width if n % width == 0 and repeats(utc, width) else n
    return n


def _day_ranks(utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`epoch_days_of` of any bars: epoch days span a small range, so a presence table
    does it in linear time."""
    n = utc.shape[0]
    # The day is monotonic in the timestamp: the first and last days are the extremes'.
    low, high = ((int(x) + IST_OFFSET_US) // DAY_US for x in (utc.min(), utc.max()))
    present = np.zeros(high - low + 1, dtype=np.bool_)
    index = np.empty(n, dtype=np.int32)  # first each bar's day from ``low``, then its rank
    shift = IST_OFFSET_US - low * DAY_US  # (utc + IST) // DAY - low, in one division
    for a in range(0, n, PASS_ROWS):
        day = utc[a : a + PASS_ROWS] + shift
        np.floor_divide(day, DAY_US, out=day)
        index[a : a + PASS_ROWS] = day
        present[day] = True  # indexing by intp: int32 indices are converted first
    rank = np.cumsum(present, dtype=np.int32) - 1
    for a in range(0, n, PASS_ROWS):
        block = index[a : a + PASS_ROWS]
        rank.take(block, out=block, mode="clip")  # in range: clip only skips the checks
    return np.flatnonzero(present).astype(np.int64) + low, index


def _session_days(utc: np.ndarray) -> tuple[list[date], np.ndarray, np.ndarray | None]:
    """(sorted NSE session dates of the bars, each kept bar's index into them, mask of the bars
    on a session or None when all are). The calendar is asked once per distinct date."""
    if utc.shape[0] == 0:
        return [], np.zeros(0, dtype=np.int32), None
    epoch_days, index = epoch_days_of(utc)
    sessions = _calendar_sessions()
    at = epoch_days - sessions.first
    if at[0] < 0 or at[-1] >= sessions.flags.shape[0]:
        from quantcli.market.calendar import session_mask

        as_dates = pl.Series(epoch_days.astype("datetime64[D]"), dtype=pl.Date)
        session_mask(as_dates)  # raises the calendar's CoverageError for the first such day
    on = sessions.flags[at]
    if on.all():
        return sessions.days_between(int(at[0]), int(at[-1]), epoch_days), index, None
    days: list[date] = epoch_days[on].astype("datetime64[D]").tolist()
    keep = on[index]
    rank = (np.cumsum(on) - 1).astype(np.int32)
    return days, rank[index[keep]], keep


@dataclass(eq=False)
class _Sessions:
    """One calendar's session flags per day of its coverage, for a run's many dates at numpy
    speed (asking the calendar's polars table cost ~0.7 ms a run), and the date lists of the
    complete session ranges runs have used (converting 5,000 dates to a list: ~0.3 ms)."""

    calendar: object  # the quantcli.market.calendar.Calendar these describe
    first: int  # epoch day of flags[0]
    flags: np.ndarray
    before: np.ndarray  # before[i]: sessions among flags[:i]
    ranges: dict[tuple[int, int], list[date]] = field(default_factory=dict)

    def days_between(self, lo: int, hi: int, epoch_days: np.ndarray) -> list[date]:
        """The dates of ``epoch_days``, all sessions, from flags[lo] to flags[hi]: shared when
        they are every session of that range (no list is changed after it is built)."""
        if int(self.before[hi + 1] - self.before[lo]) != epoch_days.shape[0]:
            listed: list[date] = epoch_days.astype("datetime64[D]").tolist()
            return listed
        found = self.ranges.get((lo, hi))
        if found is None:
            if len(self.ranges) >= _RANGES_KEPT:
                self.ranges.clear()
            found = self.ranges[(lo, hi)] = epoch_days.astype("datetime64[D]").tolist()
        return found


_RANGES_KEPT = 64
_SESSIONS: list[_Sessions] = []


def _calendar_sessions() -> _Sessions:
    """The :class:`_Sessions` of the calendar in effect. The calendar module hands out one
    object per state of the store's imports, so a ``calendar import`` (a new object) is never
    answered from an older calendar's flags."""
    from quantcli.market.calendar import FIRST_DAY, calendar

    current = calendar()
    kept = next(iter(_SESSIONS), None)  # read once: another thread may replace it
    if kept is not None and kept.calendar is current:
        return kept
    flags = current.day_table.get_column("is_session").to_numpy().astype(np.bool_)
    before = np.concatenate(([0], np.cumsum(flags)))
    made = _Sessions(current, (FIRST_DAY - _EPOCH_DAY).days, flags, before)
    _SESSIONS[:] = [made]
    return made
