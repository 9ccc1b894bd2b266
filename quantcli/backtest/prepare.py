"""Preparing bars for the replay: validate them, keep NSE sessions, and build every array the
compiled loop reads (quantcli.backtest.kernel.Prepared) in one deterministic order, (ts, symbol).

:func:`prepare` is one run's; :func:`prepare_bars` is the part every strategy on the same bars
shares (a sweep's combinations), and :class:`PreparedBars` adds a strategy's targets to it.
quantcli.backtest.sessions keeps the bars to NSE sessions and codes them by symbol and session;
quantcli.backtest.replay_order moves them to replay order. Strategies see the bars
split/bonus-adjusted with the traded values beside them (:func:`strategy_view`). Ticks, lots,
the square-off time and the segment's funding are the market model's
(quantcli.market.instruments).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, time
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np
import polars as pl

from quantcli.backtest.arrays import PASS_ROWS, empty, frozen
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.costs import parse_costs, rate_table
from quantcli.backtest.inputs import LAST_OF_TS, SQUARE_OFF, Actions, Bars, Ticks
from quantcli.backtest.kernel import Prepared
from quantcli.backtest.replay_order import (
    Order,
    Replay,
    chunk_slices,
    in_time,
    scatter_column,
    scatter_frame,
)
from quantcli.backtest.sessions import SessionBars, epoch_days_of, session_bars, symbol_codes
from quantcli.backtest.slippage import parse_slippage
from quantcli.backtest.strategy import LoadedStrategy
from quantcli.backtest.targets import unchecked_targets
from quantcli.core.futures import completed
from quantcli.core.timezone import DAY_US, IST_OFFSET_US, ist_datetime
from quantcli.errors import NotFoundError, UsageError
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

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

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
    sessions = session_bars(bars, config)
    s = sessions
    adjust = _split_factors(actions, s.symbols, s.code, s.day_of, s.days)
    # Polars evaluates a signal strategy and its look-ahead check without the GIL (on one core
    # for per-symbol windows) while this thread builds the replay arrays: the two overlap, up
    # to _OVERLAP_BARS bars. Above that the evaluation comes first and its working memory
    # (~0.6 GB for an SMA cross at 10M bars) is freed before the arrays (as much again) are
    # written: overlapped, the two made a 10M-bar run's peak. The look-ahead check then runs
    # on the pool beside the replay (a small run's at once after the evaluation, which was
    # faster there than after the arrays). An event strategy reads its bars from the arrays,
    # so only signal runs build the view.
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
    sessions: SessionBars
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
    sessions = session_bars(bars, config)
    s = sessions
    adjust = _split_factors(actions, s.symbols, s.code, s.day_of, s.days)
    view = strategy_view(s.frame, adjust)
    prep = _replay_arrays(sessions, config, actions, adjust)
    return PreparedBars(prep, bars, sessions, view, tuple(actions))


def _with_targets(
    prep: Prepared,
    order: Order,
    targets: np.ndarray,
    config: BacktestConfig,
    strategy: LoadedStrategy,
) -> Prepared:
    """``prep`` with a signal strategy's ``targets`` (in (symbol, ts) order) moved to replay
    order by ``order``, after the lot check (UsageError)."""
    target = empty(prep.n, np.float64)
    scatter_column(order, frozen(targets)[0], target)
    prep = dataclasses.replace(prep, bars=prep.bars._replace(target=target))
    _check_lots(prep, config, strategy)
    return prep


def _replay_arrays(
    sessions: SessionBars,
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
    replay = Replay(
        ts=empty(n, np.int64),
        sym=empty(n, np.int32),
        day=empty(n, np.int32),
        flags=empty(n, np.uint8),
        prices=empty((5 if panel else 6, n), np.float64),
    )
    scatter_frame(frame, order, replay)
    n_ts = _time_flags(replay.ts, replay.flags, square_off)
    ts, sym, day_index, flags = replay.ts, replay.sym, replay.day, replay.flags
    open_, high, low, close, volume = replay.prices[:5]
    prev_close = np.broadcast_to(np.nan, n) if panel else replay.prices[5]
    lot = _lots(symbols, sym, day_index, days, config.segment)
    rates = rate_table(parse_costs(config.costs), config.segment, config.broker, days)
    actions_in = _action_arrays(actions, symbols, day_index, days, sym)
    slip_input = parse_slippage(config.slippage).prepare(frame)
    slip_input = np.broadcast_to(0.0, n) if slip_input is None else in_time(slip_input, order)
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
        adjust=np.broadcast_to(1.0, n) if adjust is None else in_time(adjust, order),
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


def _time_us(at: time) -> int:
    """Microseconds from midnight to ``at``."""
    return ((at.hour * 60 + at.minute) * 60 + at.second) * 1_000_000 + at.microsecond


def _time_flags(ts: np.ndarray, flags: np.ndarray, square_off_us: int) -> int:
    """Add LAST_OF_TS and (``square_off_us`` >= 0: from that time of day on) SQUARE_OFF to the
    replay-order ``flags``; returns the number of distinct timestamps ``ts``."""
    n = ts.shape[0]
    n_ts = 0
    for a in range(0, n, PASS_ROWS):
        b = min(n, a + PASS_ROWS)
        last = np.ones(b - a, dtype=np.bool_)  # the run's last bar ends its timestamp
        after = ts[a + 1 : b + 1]
        np.not_equal(after, ts[a : a + after.shape[0]], out=last[: after.shape[0]])
        n_ts += int(np.count_nonzero(last))
        flags[a:b] |= last.view(np.uint8) * np.uint8(LAST_OF_TS)
        if square_off_us >= 0:
            late = (ts[a:b] + IST_OFFSET_US) % DAY_US >= square_off_us
            flags[a:b] |= late.view(np.uint8) * np.uint8(SQUARE_OFF)
    return n_ts


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
    for a, b in chunk_slices(columns):
        lo = max(0, a - 1)
        opens, closes = frozen(*(c.slice(lo, b - lo).to_numpy() for c in columns))
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
    for a in range(1, n, PASS_ROWS):
        b = min(n, a + PASS_ROWS)  # rows a .. b-1, each against the row before
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
    epoch_days, day_of = epoch_days_of(utc)
    days: list[date] = epoch_days.astype("datetime64[D]").tolist()
    symbols, code = symbol_codes(frame.get_column("symbol"))
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
