"""Preparing bars for the replay: validate them, keep NSE sessions, and build every array the
compiled loop reads (quantcli.backtest.kernel.Prepared) in one deterministic order, (ts, symbol).

:func:`prepare` is one run's; :func:`prepare_bars` is the part every strategy on the same bars
shares (a sweep's combinations), and :class:`PreparedBars` adds a strategy's targets to it.
Strategies see the bars split/bonus-adjusted with the traded values beside them
(:func:`strategy_view`). Ticks, lots, the square-off time and the segment's funding are the
market model's (quantcli.market.instruments).
"""

from __future__ import annotations

import bisect
import ctypes
import dataclasses
import functools
import itertools
import math
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, time
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numba
import numpy as np
import polars as pl

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.costs import parse_costs, rate_table
from quantcli.backtest.inputs import (
    EOD,
    LAST_OF_TS,
    SQUARE_OFF,
    Actions,
    Bars,
    Codes,
    Flags,
    Floats,
    Ints,
    Ticks,
    helper,
)
from quantcli.backtest.kernel import Prepared
from quantcli.backtest.slippage import parse_slippage
from quantcli.backtest.strategy import LoadedStrategy
from quantcli.backtest.targets import unchecked_targets
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.futures import completed
from quantcli.core.timezone import DAY_US, IST_OFFSET_US, ist_datetime
from quantcli.errors import DataError, NotFoundError, QuantcliError, UsageError
from quantcli.market.corporate_actions import PRICE_COLUMNS, VOLUME_COLUMNS, split_ratios
from quantcli.market.instruments import (
    EQUITY_SEGMENTS,
    lot_rows,
    lot_size,
    tick_changes,
    tick_kind,
    tick_table,
)
from quantcli.market.segments import segment_rules
from quantcli.store.schema import REQUIRED

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

_EPOCH_DAY = date(1970, 1, 1)
_T = TypeVar("_T")
# The segments whose runs apply corporate actions (cash equity: derivatives are adjusted by
# the exchange), and so can tell an unexplained gap from a recorded split.
ACTION_SEGMENTS = EQUITY_SEGMENTS


def select(bars: pl.DataFrame, config: BacktestConfig) -> pl.DataFrame:
    """The bars of ``config``'s symbols and date range (as the store would read them)."""
    if config.symbols is not None:
        present = set(bars.get_column("symbol").unique().to_list())
        absent = [s for s in config.symbols if s not in present]
        if absent:
            raise NotFoundError(f"symbol {absent[0]} not in the bars of {config.dataset}")
        bars = bars.filter(pl.col("symbol").is_in(list(config.symbols)))
    day = pl.col("ts").dt.date()
    if config.start is not None:
        bars = bars.filter(day >= config.start)
    if config.end is not None:
        bars = bars.filter(day <= config.end)
    return bars


def prepare(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strategy: LoadedStrategy,
    actions: Sequence[CorporateAction] = (),
) -> Prepared:
    """Validate and session-filter ``bars`` and build every array the replay reads.

    Bars are replayed in (ts, symbol) order; signals are evaluated in (symbol, ts) order, the
    store's order (any other input is sorted once), and checked for look-ahead. Each bar's
    replay row comes from a counting sort and one compiled pass moves the (symbol, ts) columns
    there from the frame's own buffers, linear in the bars (a full panel's columns are
    transposed, in numpy, with no positions); the arrays that are constant for a run are
    zero-stride views, to keep 10M-bar runs small and fast. Ticks, lots, the square-off time
    and the segment's funding are the market model's (quantcli.market.instruments).
    """
    run = prepare_run(bars, config, strategy, actions, worker_pool())
    run.verify()
    return run.prep


_POOLS: dict[int, ThreadPoolExecutor] = {}


def worker_pool() -> ThreadPoolExecutor:
    """The process's worker threads for the work beside a run's main thread (the strategy's
    polars evaluation and look-ahead check, the split warnings): started once, as a thread
    start per run was a noticeable part of a small run's time. A forked child (whose copy has
    no threads) starts its own (the pools are by process id); one worker per core lets
    concurrent runs overlap too."""
    pool = _POOLS.get(os.getpid())
    if pool is None:
        fresh = ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="quantcli")
        pool = _POOLS.setdefault(os.getpid(), fresh)
    return pool


class PreparedRun(NamedTuple):
    """A run's arrays, with the work still running beside its replay: the look-ahead check
    of its signal strategy's targets (None: nothing to check) and its split warnings (None:
    not asked for)."""

    prep: Prepared
    checked: Future[None] | None
    warned: Future[tuple[str, ...]] | None

    def verify(self) -> None:
        """Wait for the look-ahead check; StrategyError when the strategy looks ahead. Call it
        before raising any error of the replay: a look-ahead outranks them."""
        if self.checked is not None:
            self.checked.result()


def prepare_run(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strategy: LoadedStrategy,
    actions: Sequence[CorporateAction],
    pool: ThreadPoolExecutor,
    *,
    warn: bool = False,
) -> PreparedRun:
    """:func:`prepare` with the look-ahead check and (``warn``) the split warnings left
    running on ``pool``."""
    sessions = _session_bars(bars, config)
    s = sessions
    adjust = _split_factors(actions, s.symbols, s.code, s.day_of, s.days)
    # Polars evaluates a signal strategy and its look-ahead check without the GIL (on one core
    # for per-symbol windows) while this thread builds the replay arrays: the two overlap, up
    # to _OVERLAP_BARS bars. Above that the evaluation comes first and its working memory
    # (~0.6 GB for an SMA cross at 10M bars) is freed before the arrays (as much again) are
    # written: overlapped, the two made a 10M-bar run's peak. An event strategy reads its bars
    # from the arrays, so only signal runs build the view.
    # The look-ahead check then runs on the pool beside the replay (for a small run, at once
    # after the evaluation, which was faster there than after the arrays).
    targets = checked = None
    if strategy.kind != "events":
        job = (_targets, pool, s.n, strategy_view(s.frame, adjust), s.code, strategy)
        targets = completed(*job) if s.n > _OVERLAP_BARS else _submit(pool, s.n, *job)
        del job  # the view, which the arrays need not wait beside
    try:
        prep = _replay_arrays(sessions, config, actions, adjust)
        if targets is not None:
            full, checked = targets.result()
            prep = _with_targets(prep, s.order, full, config, strategy)
    except Exception:
        # The strategy's own error comes first (as when sequential), then a look-ahead.
        if targets is not None:
            targets.result()[1].result()
        raise
    warned = None
    if warn and config.segment in ACTION_SEGMENTS:
        args = (s.frame, actions, s.code, s.day_of, len(s.symbols))
        warned = _submit(pool, s.n, _split_warnings, *args)
    return PreparedRun(prep, checked, warned)


def _targets(
    pool: ThreadPoolExecutor, n: int, view: pl.DataFrame, code: np.ndarray, strategy: LoadedStrategy
) -> tuple[np.ndarray, Future[None]]:
    """The signal strategy's targets over ``view`` and the future of their look-ahead check
    (on ``pool`` for a run of ``n`` bars, see :func:`_submit`)."""
    full, check = unchecked_targets(view, code, strategy)
    return full, _submit(pool, n, check)


@dataclass(frozen=True, eq=False)
class PreparedBars:
    """What :func:`prepare` builds from the bars and the options that are not a strategy's
    (sessions, symbol codes, replay order and arrays, ticks, lots, charge rates, corporate
    actions), built once by :func:`prepare_bars` for every strategy run on those bars (a
    sweep's combinations), and what those strategies see of the bars."""

    prep: Prepared  # the replay's arrays, targets all NaN
    source: pl.DataFrame  # the bars given (a strategy's setup reads their span)
    sessions: _SessionBars
    view: pl.DataFrame  # what a signal strategy sees (strategy_view), in (symbol, ts) order
    actions: tuple[CorporateAction, ...]

    def with_targets(
        self, targets: np.ndarray, config: BacktestConfig, strategy: LoadedStrategy
    ) -> Prepared:
        """The replay's arrays with a signal strategy's ``targets`` (one per row of the view,
        from :func:`evaluate_targets`), after the lot check (UsageError)."""
        return _with_targets(self.prep, self.sessions.order, targets, config, strategy)

    def split_warnings(self) -> tuple[str, ...]:
        """The run's suspected-split warning lines (see :func:`_split_warnings`)."""
        s = self.sessions
        return _split_warnings(s.frame, self.actions, s.code, s.day_of, len(s.symbols))


def prepare_bars(
    bars: pl.DataFrame, config: BacktestConfig, actions: Sequence[CorporateAction] = ()
) -> PreparedBars:
    """The part of :func:`prepare` that depends on the bars and ``config``'s options but not
    on its strategy or parameters (see :class:`PreparedBars`)."""
    sessions = _session_bars(bars, config)
    s = sessions
    adjust = _split_factors(actions, s.symbols, s.code, s.day_of, s.days)
    view = strategy_view(s.frame, adjust)
    prep = _replay_arrays(sessions, config, actions, adjust)
    return PreparedBars(prep, bars, sessions, view, tuple(actions))


def _with_targets(
    prep: Prepared,
    order: _Order,
    targets: np.ndarray,
    config: BacktestConfig,
    strategy: LoadedStrategy,
) -> Prepared:
    """``prep`` with a signal strategy's ``targets`` (in (symbol, ts) order) moved to replay
    order by ``order``, after the lot check (UsageError)."""
    target = _empty(prep.n, np.float64)
    _scatter_column(order, _frozen(targets)[0], target)
    prep = dataclasses.replace(prep, bars=prep.bars._replace(target=target))
    _check_lots(prep, config, strategy)
    return prep


class _SessionBars(NamedTuple):
    """The validated bars on NSE sessions in (symbol, ts) order, what they are coded by, and
    where each goes in replay order."""

    frame: pl.DataFrame
    days: list[date]  # the sessions
    day_of: np.ndarray  # each row's session index
    symbols: list[str]
    code: np.ndarray  # each row's symbol number
    order: _Order

    @property
    def n(self) -> int:
        """The number of bars."""
        return self.frame.height


def _session_bars(bars: pl.DataFrame, config: BacktestConfig) -> _SessionBars:
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
    utc = _frozen(frame.get_column("ts").cast(pl.Int64).to_numpy())[0]
    days, day_of, keep = _session_days(utc)
    if keep is not None:
        frame = frame.filter(pl.Series(keep))
        utc = _frozen(utc[keep])[0]
    if frame.height == 0:
        span = f"{config.start or 'start'}..{config.end or 'end'}"
        raise QuantcliError(f"no bars on NSE sessions in {span} for dataset {config.dataset}")
    symbols, code = _symbol_codes(frame.get_column("symbol"))
    code = _frozen(code)[0]
    if not _is_sorted(code, utc):
        by_symbol = np.lexsort((utc, code))
        frame = frame[by_symbol]
        code, utc = _frozen(code[by_symbol], utc[by_symbol])
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
    order = _replay_order(utc, code, day_of, len(days), len(symbols))
    return _SessionBars(frame, days, day_of, symbols, code, order)


def _replay_arrays(
    sessions: _SessionBars,
    config: BacktestConfig,
    actions: Sequence[CorporateAction],
    adjust: np.ndarray | None,
) -> Prepared:
    """The replay's arrays of ``sessions`` (targets all NaN), in (ts, symbol) order."""
    frame, days, symbols, order = sessions.frame, sessions.days, sessions.symbols, sessions.order
    n = frame.height
    rules = segment_rules(config.segment)
    square_off = -1 if rules.square_off is None else _time_us(rules.square_off)
    # A full panel without the input's own previous close needs no column of it: a bar's is
    # the close one timestamp earlier (Bars.panel), 80 MB less at 10M bars.
    panel = len(symbols) if order.pos.shape[0] == 0 and "prev_close" not in frame.columns else 0
    replay = _Replay(
        ts=_empty(n, np.int64),
        sym=_empty(n, np.int32),
        day=_empty(n, np.int32),
        flags=_empty(n, np.uint8),
        prices=_empty((5 if panel else 6, n), np.float64),
    )
    _scatter_frame(frame, order, replay)
    n_ts = _time_flags(replay.ts, replay.flags, square_off)
    ts, sym, day_index, flags = replay.ts, replay.sym, replay.day, replay.flags
    open_, high, low, close, volume = replay.prices[:5]
    prev_close = np.broadcast_to(np.nan, n) if panel else replay.prices[5]
    lot = _lots(symbols, sym, day_index, days, config.segment)
    rates = rate_table(parse_costs(config.costs), config.segment, config.broker, days)
    actions_in = _action_arrays(actions, symbols, day_index, days, sym)
    slip_input = parse_slippage(config.slippage).prepare(frame)
    slip_input = np.broadcast_to(0.0, n) if slip_input is None else _in_time(slip_input, order)
    return Prepared(
        symbols=symbols,
        days=days,
        n=n,
        ts=ts,
        bars=Bars(
            sym=sym,
            day=day_index,
            flags=flags,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            prev_close=prev_close,
            panel=panel,
            slip_input=slip_input,
            lot=lot,
            target=np.broadcast_to(np.nan, n),
            rates=rates,
        ),
        actions=actions_in,
        adjust=np.broadcast_to(1.0, n) if adjust is None else _in_time(adjust, order),
        n_ts=n_ts,
        ticks=_tick_table(symbols, days, config.segment),
    )


# Below this many bars the work beside the main thread runs on it instead: handing it to a
# worker cost more than the overlap saved (the threads trade the GIL in polars' Python layer,
# ~2 ms a run on 5,000 bars, more than the whole evaluation).
_INLINE_BARS = 50_000
# Above this many bars a signal strategy's evaluation and the replay arrays do not overlap
# (see prepare_run): at 10M bars their working memory together took the run past 2 GiB.
_OVERLAP_BARS = 2_000_000


def _submit(pool: ThreadPoolExecutor, n: int, fn: Callable[..., _T], *args: object) -> Future[_T]:
    """``fn(*args)`` on ``pool``, or done now when the run has fewer than ``_INLINE_BARS``
    bars; either way its result or error is read from the future, so the order in which the
    errors are raised is the same."""
    if n >= _INLINE_BARS:
        return pool.submit(fn, *args)
    return completed(fn, *args)


# Rows a vectorised pass over the bars takes at a time: its temporaries stay in cache, and
# small beside a 10M-bar run's arrays (a whole-column temporary is 10-80 MB there).
_PASS_ROWS = 1 << 16


def _time_us(at: time) -> int:
    """Microseconds from midnight to ``at``."""
    return ((at.hour * 60 + at.minute) * 60 + at.second) * 1_000_000 + at.microsecond


_MINUTE_US = 60 * 1_000_000
_DAY_MINUTES = 1440


def _time_positions(utc: np.ndarray, day_of: np.ndarray, n_days: int) -> np.ndarray:
    """Each bar's row in (ts, symbol) order, for bars in (symbol, ts) order (``day_of``: each
    bar's session index into ``n_days`` sessions).

    Bars on whole minutes (daily and minute bars) are counting-sorted by (session, minute of
    the day), in sequential passes over the bars: linear, and without the random memory access
    of a sort of all the timestamps. Other bars fall back to a stable sort."""
    pos = _empty(utc.shape[0], np.int32 if utc.shape[0] < 2**31 else np.int64)
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


class _Order(NamedTuple):
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


class _Replay(NamedTuple):
    """The replay-order arrays the pass over the bars writes."""

    ts: Ints
    sym: Codes
    day: Codes
    flags: Flags
    prices: Floats  # rows: open, high, low, close, volume, previous close (when it has a row)


def _replay_order(
    utc: np.ndarray, code: np.ndarray, day_of: np.ndarray, n_days: int, n_symbols: int
) -> _Order:
    """The :class:`_Order` of bars in (symbol, ts) order: a full panel's replay rows follow
    from the bar's symbol and rank (a transpose, no positions needed), others' from a
    counting sort (:func:`_time_positions`)."""
    code, day_of = (np.asarray(a, dtype=np.int32) for a in (code, day_of))
    # Needles of the codes' own dtype: numpy would otherwise convert all of ``code``.
    bounds = np.searchsorted(code, np.arange(n_symbols + 1, dtype=np.int32))
    utc, code, day_of, bounds = _frozen(utc, code, day_of, bounds)
    full = _full_panel(utc, bounds)
    pos = np.empty(0, dtype=np.int32) if full else _time_positions(utc, day_of, n_days)
    return _Order(code, day_of, bounds, *_frozen(pos))


def _full_panel(utc: np.ndarray, bounds: np.ndarray) -> bool:
    """True when every symbol has the first symbol's timestamps (bars in (symbol, ts) order;
    ``bounds``: each symbol's first row and the end)."""
    width = int(bounds[1])
    return not (np.diff(bounds) != width).any() and _repeats(utc, width)


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
def _first_row(order: _Order, cursor: np.ndarray, stop: np.ndarray, b0: int, b1: int) -> int:
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
    out: _Replay
    values: Floats
    column: Floats


@numba.njit(cache=True, nogil=True)
def _scatter(order: _Order, start: int, end: int, moves: _Moves) -> None:
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


def _scatter_column(order: _Order, values: np.ndarray, out: np.ndarray) -> None:
    """``out[row] = values[j]`` (``values`` read-only, as :func:`_frozen` makes them) for each
    input row ``j`` and its replay row."""
    if not order.pos.shape[0]:
        _transpose(values, 0, int(order.bounds[1]), out)
    elif values.shape[0]:
        moves = _Moves(_NO_COLUMNS, math.nan, _NO_REPLAY, values, out)
        _scatter(order, 0, values.shape[0], moves)


def _scatter_frame(frame: pl.DataFrame, order: _Order, out: _Replay) -> None:
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
    for a, b in _chunk_slices(columns):
        views = [column.slice(a, b - a).to_numpy() for column in columns]
        if len(views) == len(_Columns._fields) - 1:
            views.append(_NO_PRICES)
        cols = _Columns(*_frozen(*views))
        _scatter(order, a, b, _Moves(cols, carry, out, _NO_PRICES, _NO_COLUMN))
        carry = float(cols.close[-1])


def _transpose_frame(columns: list[pl.Series], order: _Order, out: _Replay) -> None:
    """:func:`_scatter_frame` of a full panel (``columns``: ts, the prices and volume, and
    the input's previous close when given): every symbol has the first one's timestamps, so
    the timestamp, session and EOD flag of a replay row are its timestamp's and the symbol
    its column's; the prices are transposed a chunk slice at a time, and a previous close
    the input leaves NaN is the symbol's previous bar's close, one replay row of timestamps
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
    for a, b in _chunk_slices(moved):
        for column, row in zip(moved, out.prices, strict=True):
            _transpose(column.slice(a, b - a).to_numpy(), a, width, row)
    if len(moved) == out.prices.shape[0] == 6:
        prev, close = _grid(out.prices[5], width), _grid(out.prices[3], width)
        step = max(1, _PASS_ROWS // prev.shape[1])
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


def _chunk_slices(columns: Sequence[pl.Series]) -> Iterator[tuple[int, int]]:
    """The (start, end) row slices of ``columns`` (of one length) that lie within one chunk
    of each: a slice of each is a view of its buffer, where ``to_numpy`` of a chunked column
    copies all of it."""
    edges = {0, len(columns[0])}
    for column in columns:
        edges.update(itertools.accumulate(column.chunk_lengths()))
    return itertools.pairwise(sorted(edges))


# From this size on, numpy asks the kernel for transparent huge pages (numpy's own threshold).
_HUGE_BYTES = 1 << 22


def _empty(shape: int | tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """``np.empty(shape, dtype)`` for the replay's big arrays, on ordinary pages. numpy has the
    kernel back arrays of 4 MiB and more with transparent huge pages, and on a busy machine
    with fragmented memory the kernel compacts memory to find them on first touch: filling
    880 MB measured 1.2-10 s of wall time that way, against 0.5-0.6 s on ordinary pages. The
    advice is taken back before the array is touched; the memory itself is malloc's, which
    hands a run the pages an earlier run freed (below its 32 MiB ceiling): a fresh mapping's
    first touch cost a 250 k-bar run ~6 ms of page faults."""
    out = np.empty(shape, dtype=dtype)
    if out.nbytes >= _HUGE_BYTES:
        _ordinary_pages(out)
    return out


def _ordinary_pages(array: np.ndarray) -> None:
    """Undo numpy's huge-page advice on ``array``'s whole pages (Linux; elsewhere numpy gives
    none)."""
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is None:
        return
    start = -array.ctypes.data % mmap.PAGESIZE  # the first page boundary, as numpy advises
    _libc().madvise(ctypes.c_void_p(array.ctypes.data + start), array.nbytes - start, advice)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only contiguous views of ``arrays``: the compiled passes see one numba type for
    each (arrays from polars are read-only, numpy's are not)."""
    out = []
    for a in arrays:
        view = np.ascontiguousarray(a).view()
        view.flags.writeable = False
        out.append(view)
    return tuple(out)


# Empty stand-ins of the types a walk's other moves take (so that both moves share one
# compiled walk).
_NO_PRICES, _NO_INTS = _frozen(np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64))
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
_NO_REPLAY = _Replay(
    ts=np.empty(0, dtype=np.int64),
    sym=np.empty(0, dtype=np.int32),
    day=np.empty(0, dtype=np.int32),
    flags=np.empty(0, dtype=np.uint8),
    prices=np.empty((6, 0), dtype=np.float64),
)


def _in_time(values: np.ndarray, order: _Order) -> np.ndarray:
    """``values`` (one per bar in (symbol, ts) order) in replay order, as float64."""
    out = _empty(values.shape[0], np.float64)
    _scatter_column(order, _frozen(np.asarray(values, dtype=np.float64))[0], out)
    return out


def _time_flags(ts: np.ndarray, flags: np.ndarray, square_off_us: int) -> int:
    """Add LAST_OF_TS and (``square_off_us`` >= 0: from that time of day on) SQUARE_OFF to the
    replay-order ``flags``; returns the number of distinct timestamps ``ts``."""
    n = ts.shape[0]
    n_ts = 0
    for a in range(0, n, _PASS_ROWS):
        b = min(n, a + _PASS_ROWS)
        last = np.ones(b - a, dtype=np.bool_)  # the run's last bar ends its timestamp
        after = ts[a + 1 : b + 1]
        np.not_equal(after, ts[a : a + after.shape[0]], out=last[: after.shape[0]])
        n_ts += int(np.count_nonzero(last))
        flags[a:b] |= last.view(np.uint8) * np.uint8(LAST_OF_TS)
        if square_off_us >= 0:
            late = (ts[a:b] + IST_OFFSET_US) % DAY_US >= square_off_us
            flags[a:b] |= late.view(np.uint8) * np.uint8(SQUARE_OFF)
    return n_ts


def _symbol_codes(names: pl.Series) -> tuple[list[str], np.ndarray]:
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
    for a in range(0, n - 1, _PASS_ROWS):
        b = min(n - 1, a + _PASS_ROWS)  # rows a+1 .. b, each against the row before
        c0, c1, u0, u1 = code[a:b], code[a + 1 : b + 1], utc[a:b], utc[a + 1 : b + 1]
        if ((c1 < c0) | ((c1 == c0) & (u1 <= u0))).any():
            return False
    return True


def _epoch_days(utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    for a in range(0, n - 1, _PASS_ROWS):
        b = min(n - 1, a + _PASS_ROWS)  # rows a+1 .. b, each against the row before
        drops = np.flatnonzero(utc[a + 1 : b + 1] <= utc[a:b])
        if drops.size:
            width = a + 1 + int(drops[0])
            return width if n % width == 0 and _repeats(utc, width) else n
    return n


def _repeats(values: np.ndarray, width: int) -> bool:
    """True when ``values`` is its first ``width`` values over and over (``width`` divides its
    length)."""
    grid = values.reshape(-1, width)
    step = max(1, _PASS_ROWS // width)
    return all((grid[r : r + step] == grid[0]).all() for r in range(0, grid.shape[0], step))


def _day_ranks(utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_epoch_days` of any bars: epoch days span a small range, so a presence table
    does it in linear time."""
    n = utc.shape[0]
    # The day is monotonic in the timestamp: the first and last days are the extremes'.
    low, high = ((int(x) + IST_OFFSET_US) // DAY_US for x in (utc.min(), utc.max()))
    present = np.zeros(high - low + 1, dtype=np.bool_)
    index = np.empty(n, dtype=np.int32)  # first each bar's day from ``low``, then its rank
    shift = IST_OFFSET_US - low * DAY_US  # (utc + IST) // DAY - low, in one division
    for a in range(0, n, _PASS_ROWS):
        day = utc[a : a + _PASS_ROWS] + shift
        np.floor_divide(day, DAY_US, out=day)
        index[a : a + _PASS_ROWS] = day
        present[day] = True  # indexing by intp: int32 indices are converted first
    rank = np.cumsum(present, dtype=np.int32) - 1
    for a in range(0, n, _PASS_ROWS):
        block = index[a : a + _PASS_ROWS]
        rank.take(block, out=block, mode="clip")  # in range: clip only skips the checks
    return np.flatnonzero(present).astype(np.int64) + low, index


def _session_days(utc: np.ndarray) -> tuple[list[date], np.ndarray, np.ndarray | None]:
    """(sorted NSE session dates of the bars, each kept bar's index into them, mask of the bars
    on a session or None when all are). The calendar is asked once per distinct date."""
    if utc.shape[0] == 0:
        return [], np.zeros(0, dtype=np.int32), None
    epoch_days, index = _epoch_days(utc)
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


def _tick_table(symbols: list[str], days: list[date], segment: str) -> Ticks:
    """The :class:`Ticks` table of ``symbols`` over sessions ``days`` in ``segment``: one row
    per era of each symbol's schedule, the eras split at the market model's change dates
    (quantcli.market.instruments.tick_changes) and each era's table the model's
    (``tick_table``). The fills look a bar's tick up in it at its open price."""
    kinds = [tick_kind(segment, s) for s in symbols]
    distinct = sorted(set(kinds))
    era = np.zeros((len(distinct), len(days)), dtype=np.int64)
    rows: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for k, kind in enumerate(distinct):
        changes = [bisect.bisect_left(days, d) for d in tick_changes(kind)]
        edges = sorted({0, len(days), *(c for c in changes if 0 < c < len(days))})
        for lo, hi in itertools.pairwise(edges):
            era[k, lo:hi] = len(rows)
            rows.append(tick_table(days[lo], kind))
    width = max(len(bounds) for bounds, _ in rows)
    bounds_table = np.full((len(rows), width), np.inf)
    ticks_table = np.zeros((len(rows), width + 1))
    for r, (bounds, ticks) in enumerate(rows):
        bounds_table[r, : len(bounds)] = bounds
        ticks_table[r, : len(ticks)] = ticks
    return Ticks(
        kind=np.array([distinct.index(k) for k in kinds], dtype=np.int64),
        era=era,
        bounds=bounds_table,
        ticks=ticks_table,
    )


def _lots(
    symbols: list[str], sym: np.ndarray, day_index: np.ndarray, days: list[date], segment: str
) -> np.ndarray:
    """Lot size per bar (1 for equity cash; the contract's lot for derivatives): the master's
    effective-dated rows tabulated per (symbol, session), then looked up per bar.
    ``CoverageError`` (the market model's) for the first bar no row covers."""
    schedules = [lot_rows(name, segment) for name in symbols]
    if not any(schedules):
        return np.broadcast_to(1.0, sym.shape[0])
    table = np.full((len(symbols), len(days)), np.nan)
    for k, rows in enumerate(schedules):
        for inst in rows:
            lo = bisect.bisect_left(days, inst.valid_from)
            hi = len(days) if inst.valid_to is None else bisect.bisect_right(days, inst.valid_to)
            table[k, lo:hi] = inst.lot_size
    out: np.ndarray = table[sym, day_index]
    missing = np.flatnonzero(np.isnan(out))
    if missing.size:
        k = int(missing[0])
        lot_size(symbols[int(sym[k])], days[int(day_index[k])], segment)  # raises CoverageError
    return out


def _action_arrays(
    actions: Sequence[CorporateAction],
    symbols: list[str],
    day_index: np.ndarray,
    days: list[date],
    sym: np.ndarray,
) -> Actions:
    """Each action's bar: the symbol's first bar on or after the ex-date, if it traded before."""
    code = {s: k for k, s in enumerate(symbols)}
    rows: list[tuple[int, int, float, float]] = []
    for seq, action in enumerate(actions):
        k = code.get(action.symbol)
        if k is None:
            continue
        mine = np.flatnonzero(sym == k)
        ex = bisect.bisect_left(days, action.ex_date)
        after = mine[day_index[mine] >= ex]
        if after.size == 0 or after[0] == mine[0]:
            continue
        rows.append((int(after[0]), seq, action.ratio, action.amount))
    rows.sort()
    return Actions(
        bar=np.array([r[0] for r in rows], dtype=np.int64),
        sym=np.array([int(sym[r[0]]) for r in rows], dtype=np.int64),
        ratio=np.array([r[2] for r in rows], dtype=np.float64),
        amount=np.array([r[3] for r in rows], dtype=np.float64),
    )


def _split_factors(
    actions: Sequence[CorporateAction],
    symbols: list[str],
    code: np.ndarray,
    day_of: np.ndarray,
    days: list[date],
) -> np.ndarray | None:
    """Each bar's forward-adjustment factor, in (symbol, ts) order: the product of the split
    and bonus ratios of its symbol's actions with an ex-date after the symbol's first bar and on
    or before the bar's date (None when no bar has one). Only past actions count, so a bar's
    adjusted values never depend on later bars, and the bars before the run's first action of a
    symbol keep their traded values."""
    ratios = split_ratios(actions)
    factor: np.ndarray | None = None
    for k, name in enumerate(symbols):
        steps = ratios.get(name)
        if not steps:
            continue
        # Needles of the codes' own dtype, else numpy converts all of them for each symbol.
        a, b = (int(x) for x in np.searchsorted(code, np.array([k, k + 1], dtype=code.dtype)))
        mine = day_of[a:b]
        for ex_date, ratio in steps.items():
            ex = bisect.bisect_left(days, ex_date)
            after = mine >= ex
            if after[0] or not after[-1]:
                continue  # already in the first bar's prices, or after the last bar
            if factor is None:
                factor = np.ones(code.shape[0], dtype=np.float64)
            factor[a:b][after] *= ratio
    return factor


def _split_warnings(
    frame: pl.DataFrame,
    actions: Sequence[CorporateAction],
    code: np.ndarray,
    day_of: np.ndarray,
    n_symbols: int,
) -> tuple[str, ...]:
    """The ``data validate`` suspected-split findings on the run's bars (sorted by symbol and
    ts; ``code`` and ``day_of``: each bar's symbol and session index), with the run's actions
    as the ones on record: one line each (the first few). The check runs only on the symbols
    with an overnight move near its threshold, found in one pass over the bars: most runs have
    none, and the check's polars expressions over every bar cost more than the replay."""
    from quantcli.store.validate import DEFAULT_SPLIT_THRESHOLD, suspected_splits

    # Below the check's threshold, so that float rounding can never drop a symbol it flags.
    near = 0.99 * DEFAULT_SPLIT_THRESHOLD
    columns = [frame.get_column(c) for c in ("open", "close")]
    jumps = np.zeros(n_symbols, dtype=np.bool_)
    # A slice of each chunk and the row before it (whose close the first open is compared
    # with): a copy of one chunk at most, not of both columns.
    for a, b in _chunk_slices(columns):
        lo = max(0, a - 1)
        opens, closes = _frozen(*(c.slice(lo, b - lo).to_numpy() for c in columns))
        jumps |= _jump_symbols(code[lo:b], day_of[lo:b], opens, closes, near, n_symbols)
    if not jumps.any():
        return ()
    if not jumps.all():
        frame = frame.filter(pl.Series(jumps[code]))
    found, count = suspected_splits(frame, actions)
    fix = " If so, record it with quantcli actions import FILE."
    lines = [f"suspected_split: {f.message}{fix}" for f in found]
    if count > len(found):
        lines.append(
            f"suspected_split: {count - len(found):,} more (quantcli data validate lists them)"
        )
    return tuple(lines)


def _jump_symbols(
    code: np.ndarray,
    day_of: np.ndarray,
    opens: np.ndarray,
    closes: np.ndarray,
    threshold: float,
    n_symbols: int,
) -> np.ndarray:
    """Which symbols open a session more than ``threshold`` (a fraction) away from their
    previous bar's close, both prices positive (bars in (symbol, ts) order)."""
    out = np.zeros(n_symbols, dtype=np.bool_)
    n = code.shape[0]
    for a in range(1, n, _PASS_ROWS):
        b = min(n, a + _PASS_ROWS)  # rows a .. b-1, each against the row before
        # The move first, in place: few rows move that far, and only those are checked for a
        # new session of the same symbol and positive prices.
        with np.errstate(divide="ignore", invalid="ignore"):  # the ratios the checks leave out
            move = np.divide(opens[a:b], closes[a - 1 : b - 1])
        move -= 1.0
        np.abs(move, out=move)
        j = np.flatnonzero(move > threshold) + a
        gap = (code[j] == code[j - 1]) & (day_of[j] != day_of[j - 1])
        gap &= (opens[j] > 0.0) & (closes[j - 1] > 0.0)
        out[code[j[gap]]] = True
    return out


def strategy_view(frame: pl.DataFrame, factor: np.ndarray | None) -> pl.DataFrame:
    """The bars a strategy sees: prices (open, high, low, close, vwap, prev_close, those
    present) multiplied by ``factor`` (from :func:`_split_factors`; None: all 1) and share
    counts (volume, deliverable_volume, oi) divided by it, as Float64, with the traded values
    beside them as ``raw_<column>``. Scale-invariant signals on these are the same as on the
    hand back-adjusted history, and a bar's values depend on no later bar."""
    prices = [c for c in PRICE_COLUMNS if c in frame.columns]
    counts = [c for c in VOLUME_COLUMNS if c in frame.columns]
    scale = None if factor is None else pl.Series("factor", factor, dtype=pl.Float64)
    # Series operations on a shallow copy, not a with_columns: the same columns in the same
    # order, without the query engine's ~0.1 ms a call (a sweep's small runs pay it each).
    view = frame.clone()
    added = []
    for name in (*prices, *counts):
        column = frame.get_column(name)
        raw = column.alias(f"raw_{name}")
        if raw.name in frame.columns:  # replaced in place, as with_columns would
            view.replace_column(frame.get_column_index(raw.name), raw)
        else:
            added.append(raw)
        if column.dtype != pl.Float64:
            column = column.cast(pl.Float64)
        if scale is not None:
            column = column * scale if name in prices else column / scale
        view.replace_column(frame.get_column_index(name), column.alias(name))
    return view.hstack(added, in_place=True)


def adjusted_view(frame: pl.DataFrame, actions: Sequence[CorporateAction]) -> pl.DataFrame:
    """The :func:`strategy_view` of bars sorted by (symbol, ts), with ``actions`` as the run's
    splits and bonuses: what a strategy would see of them (for feature sets)."""
    if frame.height == 0:
        return strategy_view(frame, None)
    utc = frame.get_column("ts").cast(pl.Int64).to_numpy()
    epoch_days, day_of = _epoch_days(utc)
    days: list[date] = epoch_days.astype("datetime64[D]").tolist()
    symbols, code = _symbol_codes(frame.get_column("symbol"))
    return strategy_view(frame, _split_factors(actions, symbols, code, day_of, days))


def _check_lots(prep: Prepared, config: BacktestConfig, strategy: LoadedStrategy) -> None:
    """UsageError when a share target (in time order) is below its contract's lot: it could
    never trade, and the run would silently place no order for it."""
    if strategy.kind != "targets" or config.segment in EQUITY_SEGMENTS:  # one-share lots
        return
    target, lot, sym, ts, symbols = (
        prep.bars.target,
        prep.bars.lot,
        prep.bars.sym,
        prep.ts,
        prep.symbols,
    )
    small = np.flatnonzero((np.abs(target) < lot) & (target != 0))  # NaN compares False
    if small.size == 0:
        return
    k = int(small[0])
    size = int(lot[k])
    hint = f"-p qty={size}" if "qty" in strategy.params else f"a multiple of {size}"
    raise UsageError(
        f"strategy {strategy.name} targets {target[k]:g} {symbols[int(sym[k])]} on "
        f"{ist_datetime(ts[k]).date().isoformat()}, below the {config.segment} lot size of {size}: "
        f"it can never trade; target whole lots (e.g. {hint})"
    )
