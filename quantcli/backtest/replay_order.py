"""Moving bars from the store's (symbol, ts) order to the replay's (ts, symbol) order.

:func:`replay_order` says where each bar goes: a full panel's rows follow from the bar's symbol
and rank (a transpose), others' from a counting sort. :func:`scatter_frame` moves the bars'
columns there from the frame's own buffers, in one compiled walk or a full panel's transpose,
and :func:`scatter_column` and :func:`in_time` move any per-bar column (targets, per-bar inputs)
the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numba
import numpy as np
import polars as pl

from quantcli.backtest.arrays import PASS_ROWS, empty, frozen, repeats
from quantcli.backtest.inputs import EOD, Codes, Flags, Floats, Ints, helper
from quantcli.core.timezone import DAY_US, IST_OFFSET_US

_MINUTE_US = 60 * 1_000_000
_DAY_MINUTES = 1440


def _time_positions(utc: np.ndarray, day_of: np.ndarray, n_days: int) -> np.ndarray:
    """Each bar's row in (ts, symbol) order, for bars in (symbol, ts) order (``day_of``: each
    bar's session index into ``n_days`` sessions).

    Bars on whole minutes (daily and minute bars) are counting-sorted by (session, minute of
    the day), in sequential passes over the bars: linear, and without the random memory access
    of a sort of all the timestamps. Other bars fall back to a stable sort."""
    pos = empty(utc.shape[0], np.int32 if utc.shape[0] < 2**31 else np.int64)
    if not _minute_positions(utc, day_of, n_days, pos):
        order = np.argsort(utc, kind="stable")  # stable: symbols stay in order within a ts
        pos[order] = np.arange(utc.shape[0])
    return pos


@numba.njit(cache=True, nogil=True)
def _minute_positions(utc: np.ndarray, day_of: np.ndarray, n_days: int, pos: np.ndarray) -> bool:
    """Write each bar's row in (ts, symbol) order into ``pos`` by a counting sort on (session,
    minute of the day), and return True; False (``pos`` unwritten) when a bar is not on a
    whole minute or the (session, minute) table would be much larger than the bars. Bars of
    one timestamp keep their (symbol) order."""
    n = utc.shape[0]
    minute_rank = np.full(_DAY_MINUTES, -1, dtype=np.int64)
    for j in range(n):
        local = (utc[j] + IST_OFFSET_US) % DAY_US
        if local % _MINUTE_US:
            return False
        minute_rank[local // _MINUTE_US] = 0
    width = 0
    for m in range(_DAY_MINUTES):
        if minute_rank[m] == 0:
            minute_rank[m] = width
            width += 1
    # One slot per (session, minute present): bars per slot, then each slot's first row.
    if n_days * width > 4 * n + 4096:
        return False  # sparse stamps: the slot table would outgrow the bars
    # (With one minute a day, as daily bars have, the slot is the session.)
    start = np.zeros(n_days * width + 1, dtype=np.int64)
    for j in range(n):
        slot = day_of[j]
        if width > 1:
            slot = slot * width + minute_rank[(utc[j] + IST_OFFSET_US) % DAY_US // _MINUTE_US]
        start[slot + 1] += 1
    for k in range(n_days * width):
        start[k + 1] += start[k]
    for j in range(n):
        slot = day_of[j]
        if width > 1:
            slot = slot * width + minute_rank[(utc[j] + IST_OFFSET_US) % DAY_US // _MINUTE_US]
        pos[j] = start[slot]
        start[slot] += 1
    return True


class Order(NamedTuple):
    """Where each bar of the (symbol, ts)-ordered input goes in replay order."""

    code: Codes  # symbol code
    day_of: Codes  # session index
    bounds: Ints  # each symbol's first row, and the end
    # Each row's replay row; empty for a full panel (every symbol on the same timestamps),
    # where the row of a symbol's t-th bar is t * symbols + symbol.
    pos: Codes


class _Columns(NamedTuple):
    """A slice of the input's columns, views of one chunk of each (no copies)."""

    ts: Ints  # epoch-µs
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Ints
    prev_close: Floats  # the input's own previous close (NaN: unknown); empty when absent


class Replay(NamedTuple):
    """The replay-order arrays the pass over the bars writes."""

    ts: Ints
    sym: Codes
    day: Codes
    flags: Flags
    prices: Floats  # rows: open, high, low, close, volume, previous close (when it has a row)


def replay_order(
    utc: np.ndarray, code: np.ndarray, day_of: np.ndarray, n_days: int, n_symbols: int
) -> Order:
    """The :class:`Order` of bars in (symbol, ts) order: a full panel's replay rows follow
    from the bar's symbol and rank (a transpose, no positions needed), others' from a
    counting sort (:func:`_time_positions`)."""
    code, day_of = (np.asarray(a, dtype=np.int32) for a in (code, day_of))
    # Needles of the codes' own dtype: numpy would otherwise convert all of ``code``.
    bounds = np.searchsorted(code, np.arange(n_symbols + 1, dtype=np.int32))
    utc, code, day_of, bounds = frozen(utc, code, day_of, bounds)
    full = _full_panel(utc, bounds)
    pos = np.empty(0, dtype=np.int32) if full else _time_positions(utc, day_of, n_days)
    return Order(code, day_of, bounds, *frozen(pos))


def _full_panel(utc: np.ndarray, bounds: np.ndarray) -> bool:
    """True when every symbol has the first symbol's timestamps (bars in (symbol, ts) order;
    ``bounds``: each symbol's first row and the end)."""
    width = int(bounds[1])
    return not (np.diff(bounds) != width).any() and repeats(utc, width)


# The passes below visit the symbols in blocks and each block's bars in windows of replay rows,
# so that their reads (a block's symbols, each sequentially) and writes (a window's rows) stay
# on a few hundred memory pages: a plain gather over 2,000 symbols touched a new page on nearly
# every read, which made it the slowest step of a 10M-bar run.
_BLOCK_SYMBOLS = 64
_WINDOW_ROWS = 1 << 15
# A full panel's transpose moves this many whole symbols at a time: their reads (one stream
# per symbol) stay in cache while the writes go row by row (256 measured fastest of 8-512).
_PANEL_SYMBOLS = 256


@helper
def _first_row(order: Order, cursor: np.ndarray, stop: np.ndarray, b0: int, b1: int) -> int:
    # The lowest replay row left among symbols b0..b1 (each at its ``cursor``, up to ``stop``).
    low: int = order.bounds[-1]
    for s in range(b0, b1):
        if cursor[s] < stop[s]:
            low = min(low, int(order.pos[cursor[s]]))
    return low


class _Moves(NamedTuple):
    """What one walk of :func:`_scatter` moves to replay order: the bars of a slice of the
    input (``cols``; ``carry``: the close of the row before them, NaN for none) into ``out``,
    or, when ``values`` is not empty, ``values`` into ``column``."""

    cols: _Columns
    carry: float
    out: Replay
    values: Floats
    column: Floats


@numba.njit(cache=True, nogil=True)
def _scatter(order: Order, start: int, end: int, moves: _Moves) -> None:
    """Move input rows ``start`` .. ``end`` to their replay rows (``order.pos``: not a full
    panel, whose rows :func:`_transpose` moves), one window at a time (see above): a
    column's values (``moves.values``), or a slice's bars: the timestamp, symbol, session and
    EOD flag, the prices and volume, and the previous close (the input's when given, else the
    symbol's previous bar's close). One walk serves both, so it is written and compiled
    once."""
    code, day_of, bounds = order.code, order.day_of, order.bounds
    cols, out, values, column = moves.cols, moves.out, moves.values, moves.column
    bars = values.shape[0] == 0
    n = code.shape[0]
    if end <= start:
        return
    lo, hi = code[start], code[end - 1] + 1
    # Each symbol's next row and end within this slice.
    cursor, stop = bounds[: hi + 1].copy(), bounds[1 : hi + 1].copy()
    cursor[lo], stop[hi - 1] = max(cursor[lo], start), min(stop[hi - 1], end)
    given = cols.prev_close.shape[0] > 0
    prices = out.prices
    with_prev = prices.shape[0] > 5  # the previous close has a row (see Bars.panel)
    for b0 in range(lo, hi, _BLOCK_SYMBOLS):
        b1 = min(hi, b0 + _BLOCK_SYMBOLS)
        low = _first_row(order, cursor, stop, b0, b1)
        while low < n:
            high = low + _WINDOW_ROWS
            low = n
            for s in range(b0, b1):
                j = cursor[s]
                while j < stop[s]:
                    p = int(order.pos[j])
                    if p >= high:
                        low = min(low, p)
                        break
                    if not bars:
                        column[p] = values[j]
                        j += 1
                        continue
                    k = j - start
                    d = day_of[j]
                    out.ts[p] = cols.ts[k]
                    out.sym[p] = s
                    out.day[p] = d
                    last = j + 1 == n or code[j + 1] != s or day_of[j + 1] != d
                    out.flags[p] = EOD if last else 0
                    prices[0, p] = cols.open[k]
                    prices[1, p] = cols.high[k]
                    prices[2, p] = cols.low[k]
                    prices[3, p] = cols.close[k]
                    prices[4, p] = cols.volume[k]
                    if with_prev:
                        prev = cols.prev_close[k] if given else math.nan
                        if math.isnan(prev) and j > bounds[s]:
                            prev = cols.close[k - 1] if k else moves.carry
                        prices[5, p] = prev
                    j += 1
                cursor[s] = j


def scatter_column(order: Order, values: np.ndarray, out: np.ndarray) -> None:
    """``out[row] = values[j]`` (``values`` read-only, as :func:`frozen` makes them) for each
    input row ``j`` and its replay row."""
    if not order.pos.shape[0]:
        _transpose(values, 0, int(order.bounds[1]), out)
    elif values.shape[0]:
        moves = _Moves(_NO_COLUMNS, math.nan, _NO_REPLAY, values, out)
        _scatter(order, 0, values.shape[0], moves)


def scatter_frame(frame: pl.DataFrame, order: Order, out: Replay) -> None:
    """The bars of ``frame`` (in (symbol, ts) order) moved to replay order into ``out``, a
    slice at a time (by :func:`_scatter`, or for a full panel :func:`_transpose_frame`): each
    slice lies within one chunk of every column, so its columns are views of the frame's
    buffers (a frame read from Parquet comes in chunks, and making each column contiguous
    would copy it)."""
    # Series, not a with_columns: a query-engine call costs a small run ~0.1 ms.
    columns = [frame.get_column(name) for name in ("ts", "open", "high", "low", "close", "volume")]
    columns[0] = columns[0].cast(pl.Int64)
    if "prev_close" in frame.columns:
        columns.append(frame.get_column("prev_close").cast(pl.Float64).fill_null(np.nan))
    if not order.pos.shape[0]:
        _transpose_frame(columns, order, out)
        return
    carry = math.nan
    for a, b in chunk_slices(columns):
        views = [column.slice(a, b - a).to_numpy() for column in columns]
        if len(views) == len(_Columns._fields) - 1:
            views.append(_NO_PRICES)
        cols = _Columns(*frozen(*views))
        _scatter(order, a, b, _Moves(cols, carry, out, _NO_PRICES, _NO_COLUMN))
        carry = float(cols.close[-1])


def _transpose_frame(columns: list[pl.Series], order: Order, out: Replay) -> None:
    """:func:`scatter_frame` of a full panel (``columns``: ts, the prices and volume, and
    the input's previous close when given): every symbol has the first one's timestamps, so
    the timestamp, session and EOD flag of a replay row are its timestamp's and the symbol
    its column's; the prices are transposed a block of symbols at a time, and a previous
    close the input leaves NaN is the symbol's previous bar's close, one replay row of timestamps
    earlier."""
    width = int(order.bounds[1])
    day = order.day_of[:width]
    eod = np.ones(width, dtype=np.bool_)  # a symbol's last bar ends its session
    np.not_equal(day[1:], day[:-1], out=eod[:-1])
    stamps = columns[0].slice(0, width).to_numpy()
    _grid(out.ts, width)[:] = stamps[:, np.newaxis]
    _grid(out.sym, width)[:] = np.arange(order.bounds.shape[0] - 1, dtype=np.int32)
    _grid(out.day, width)[:] = day[:, np.newaxis]
    _grid(out.flags, width)[:] = (eod.view(np.uint8) * np.uint8(EOD))[:, np.newaxis]
    moved = columns[1:]
    # Whole blocks of symbols, not the chunks' slices: a symbol split between two chunks
    # moved a column at a time, each write on a new page, which took a 10M-bar run's five
    # columns ~0.1 s more. A block across a chunk edge is copied (up to 10 MB) to move.
    block = _PANEL_SYMBOLS * width
    for a in range(0, len(columns[0]), block):
        for column, row in zip(moved, out.prices, strict=True):
            _transpose(column.slice(a, block).to_numpy(), a, width, row)
    if len(moved) == out.prices.shape[0] == 6:
        prev, close = _grid(out.prices[5], width), _grid(out.prices[3], width)
        step = max(1, PASS_ROWS // prev.shape[1])
        for t in range(1, width, step):
            after = prev[t : t + step]
            np.copyto(after, close[t - 1 : t - 1 + after.shape[0]], where=np.isnan(after))


def _transpose(values: np.ndarray, start: int, width: int, out: np.ndarray) -> None:
    """Move input rows ``start`` .. (``values``) of a full panel of ``width`` bars a symbol to
    their replay rows in ``out``: row ``s * width + t`` to ``t * symbols + s``, so that each
    symbol's bars are a column of ``out`` viewed as (width, symbols). Whole symbols move in
    blocks, the partial ones at a slice's ends a column at a time."""
    grid = _grid(out, width)
    j, end = start, start + values.shape[0]
    while j < end:
        s, t = divmod(j, width)
        if t == 0 and end - j >= width:
            m = min((end - j) // width, _PANEL_SYMBOLS)
            grid[:, s : s + m] = values[j - start : j - start + m * width].reshape(m, width).T
            j += m * width
        else:
            k = min(width - t, end - j)
            grid[t : t + k, s] = values[j - start : j - start + k]
            j += k


def _grid(column: np.ndarray, width: int) -> np.ndarray:
    """A full panel's replay-order ``column`` as (timestamps, symbols): a view, never a copy
    (numpy raises rather than copy), so writes to it land in ``column``."""
    return column.reshape(width, -1, copy=False)


def chunk_slices(columns: Sequence[pl.Series]) -> Iterator[tuple[int, int]]:
    """The (start, end) row slices of ``columns`` (of one length) that lie within one chunk
    of each: a slice of each is a view of its buffer, where ``to_numpy`` of a chunked column
    copies all of it."""
    edges = {0, len(columns[0])}
    for column in columns:
        edges.update(itertools.accumulate(column.chunk_lengths()))
    return itertools.pairwise(sorted(edges))


# Empty stand-ins of the types a walk's other moves take (so that both moves share one
# compiled walk).
_NO_PRICES, _NO_INTS = frozen(np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64))
_NO_COLUMN = np.empty(0, dtype=np.float64)
_NO_COLUMNS = _Columns(
    ts=_NO_INTS,
    open=_NO_PRICES,
    high=_NO_PRICES,
    low=_NO_PRICES,
    close=_NO_PRICES,
    volume=_NO_INTS,
    prev_close=_NO_PRICES,
)
_NO_REPLAY = Replay(
    ts=np.empty(0, dtype=np.int64),
    sym=np.empty(0, dtype=np.int32),
    day=np.empty(0, dtype=np.int32),
    flags=np.empty(0, dtype=np.uint8),
    prices=np.empty((6, 0), dtype=np.float64),
)


def in_time(values: np.ndarray, order: Order) -> np.ndarray:
    """``values`` (one per bar in (symbol, ts) order) in replay order, as float64."""
    out = empty(values.shape[0], np.float64)
    scatter_column(order, frozen(np.asarray(values, dtype=np.float64))[0], out)
    return out
