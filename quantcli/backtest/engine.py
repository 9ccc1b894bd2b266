"""The backtester: prepare bars, replay them through a strategy, report typed frames.

``run_backtest`` reads the dataset and corporate actions and calls :func:`simulate`, which works
on an in-memory bar frame. Bars are replayed in one deterministic order, (ts, symbol), on NSE
sessions only. Signal strategies run through the compiled kernel (quantcli.backtest.kernel);
event strategies through a lean Python loop that shares the kernel's fill rules and book.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from quantcli.backtest import kernel
from quantcli.backtest.accounting import (
    CASH,
    E_BAR,
    E_CASH,
    E_RATIO,
    E_SEQ,
    E_SYM,
    EVENT_FLOAT_COLS,
    EVENT_INT_COLS,
    MARK,
    N_EQUITY,
    N_EVENTS,
    N_FILLS,
    N_ORDERS,
    POS,
    SQ_DAY,
    apply_action,
    holdings,
    new_state,
    round_trips,
    settle,
)
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.costs import parse_costs, rate_table
from quantcli.backtest.fills import (
    FUND_CASH,
    FUND_MARGIN,
    FUND_PREMIUM,
    execute,
    round_tick,
    trigger_price,
)
from quantcli.backtest.orders import (
    CANCELLED,
    DAY,
    EXPIRED,
    F_FLOAT_COLS,
    F_ID,
    F_INT_COLS,
    F_PRICE,
    FILLED,
    IOC,
    LIMIT,
    MARKET,
    NO_REASON,
    O_FLOAT_COLS,
    O_INT_COLS,
    PARTIAL,
    R_ACTION,
    R_LOT,
    R_SQUARED_OFF,
    R_USER,
    REASONS,
    REJECTED,
    STOP,
    STOP_LIMIT,
    TIFS,
    Fill,
    Order,
    fills_frame,
    orders_frame,
)
from quantcli.backtest.slippage import SQRT, parse_slippage
from quantcli.backtest.strategy import LoadedStrategy, load_strategy
from quantcli.errors import DataError, NotFoundError, QuantcliError, StrategyError
from quantcli.store.schema import REQUIRED, TIMEZONE, TS_DTYPE

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

FUNDING = {
    "delivery": FUND_CASH,
    "intraday": FUND_MARGIN,
    "futures": FUND_MARGIN,
    "options": FUND_PREMIUM,
}
# Intraday (MIS) positions are squared off by the broker from 15:20 (Zerodha's MIS policy).
SQUARE_OFF_US = (15 * 60 + 20) * 60 * 1_000_000
_DAY_US = 86_400 * 1_000_000
_IST_OFFSET_US = 19_800 * 1_000_000  # IST is UTC+05:30 all year (no daylight saving)
_EPOCH_DAY = date(1970, 1, 1)
_SIGMA_WINDOW = 20  # bars of returns behind the square-root impact model's volatility
_INDEX_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50", "SENSEX")

EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE,
    "cash": pl.Float64(),
    "holdings": pl.Float64(),
    "equity": pl.Float64(),
    "exposure": pl.Float64(),
}


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced; frames have fixed column order and dtypes."""

    config: BacktestConfig
    dataset_hash: str
    strategy_hash: str
    bars: int
    orders: pl.DataFrame
    fills: pl.DataFrame
    equity: pl.DataFrame
    trades: pl.DataFrame


# --------------------------------------------------------------------------- entry points


def run_backtest(
    config: BacktestConfig,
    *,
    root: Path,
    progress: Callable[[float], None] | None = None,
) -> BacktestResult:
    """Backtest ``config`` on its dataset under store ``root`` (reads only, writes nothing)."""
    from quantcli.market.corporate_actions import actions_for
    from quantcli.store.reader import open_dataset

    strategy = load_strategy(config.strategy, config.params)
    version = open_dataset(config.dataset, root)
    bars = version.lazy(symbols=config.symbols, start=config.start, end=config.end).collect()
    actions: Sequence[CorporateAction] = ()
    if config.segment in ("delivery", "intraday"):
        symbols = bars.get_column("symbol").unique().sort().to_list()
        actions = actions_for(symbols, root)
    # The store has already selected the symbols and dates.
    return _replay(bars, config, strategy, actions, version.manifest.content_hash, progress)


def simulate(
    bars: pl.DataFrame,
    config: BacktestConfig,
    *,
    strategy: LoadedStrategy | None = None,
    actions: Sequence[CorporateAction] = (),
    dataset_hash: str = "",
    progress: Callable[[float], None] | None = None,
) -> BacktestResult:
    """Replay an in-memory bar frame (the store's schema) through ``config``'s strategy, on
    ``config``'s symbols and dates."""
    strat = strategy or load_strategy(config.strategy, config.params)
    return _replay(select(bars, config), config, strat, actions, dataset_hash, progress)


def _replay(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strat: LoadedStrategy,
    actions: Sequence[CorporateAction],
    dataset_hash: str,
    progress: Callable[[float], None] | None,
) -> BacktestResult:
    prep = prepare(bars, config, strat, actions)
    if strat.kind == "events":
        run = _EventRun(prep, config, strat)
        out = run.replay(progress)
    else:
        out = _run_signals(prep, config, strat, progress)
    if progress is not None:
        progress(1.0)
    return BacktestResult(
        config=config,
        dataset_hash=dataset_hash,
        strategy_hash=strat.source_hash,
        bars=prep.n,
        orders=orders_frame(out.order_ints, out.order_floats, prep.ts, prep.symbols),
        fills=fills_frame(out.fill_ints, out.fill_floats, prep.ts, prep.symbols),
        equity=_equity_frame(out.equity, out.equity_bar, prep.ts),
        trades=round_trips(
            out.fill_ints, out.fill_floats, out.event_ints, out.event_floats, prep.ts, prep.symbols
        ),
    )


# --------------------------------------------------------------------------- preparation


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


@dataclass(frozen=True)
class Prepared:
    """The replay's inputs: bar arrays sorted by (ts, symbol) and per-run tables."""

    symbols: list[str]
    days: list[date]
    n: int
    ts: np.ndarray
    sym: np.ndarray
    day: np.ndarray
    flags: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    prev_close: np.ndarray
    tick: np.ndarray
    sigma: np.ndarray
    lot: np.ndarray
    target: np.ndarray
    rates: np.ndarray
    act_bar: np.ndarray
    act_sym: np.ndarray
    act_ratio: np.ndarray
    act_amount: np.ndarray
    n_ts: int


def prepare(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strategy: LoadedStrategy,
    actions: Sequence[CorporateAction] = (),
) -> Prepared:
    """Validate and session-filter ``bars`` and build every array the replay reads.

    Bars are replayed in (ts, symbol) order; signals are evaluated in (symbol, ts) order. Both
    orders are numpy permutations of the input (the store already delivers (symbol, ts)), and
    the arrays that are constant for a run are zero-stride views, to keep 10M-bar runs small.
    """
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack required columns: {', '.join(missing)}")
    frame = bars.with_columns(
        pl.col("ts").cast(TS_DTYPE),
        pl.col("open", "high", "low", "close").cast(pl.Float64),
        pl.col("volume").cast(pl.Int64),
    )
    day_num = (frame.get_column("ts").cast(pl.Int64).to_numpy() + _IST_OFFSET_US) // _DAY_US
    keep = _on_sessions(day_num)
    if not keep.all():
        frame = frame.filter(pl.Series(keep))
    if frame.height == 0:
        span = f"{config.start or 'start'}..{config.end or 'end'}"
        raise QuantcliError(f"no bars on NSE sessions in {span} for dataset {config.dataset}")
    symbols = frame.get_column("symbol").unique().sort().to_list()
    code = frame.get_column("symbol").cast(pl.Enum(symbols)).to_physical().to_numpy()
    code = code.astype(np.int64)
    utc = frame.get_column("ts").cast(pl.Int64).to_numpy()
    if _is_sorted(code, utc):
        by_symbol = None
    else:
        by_symbol = np.lexsort((utc, code))
        frame, code, utc = frame[by_symbol], code[by_symbol], utc[by_symbol]
        twins = np.flatnonzero((code[1:] == code[:-1]) & (utc[1:] == utc[:-1]))
        if twins.size:
            row = frame.row(int(twins[0]), named=True)
            raise DataError(f"duplicate bar ({row['symbol']}, {row['ts']}) in the input")
    # Flagged sorted, polars evaluates the strategies' .over("symbol") windows without hashing.
    frame = frame.with_columns(pl.col("symbol").set_sorted())
    # From here on arrays are in (symbol, ts) order; ``to_time`` gathers them into replay order
    # (a stable sort by time keeps the symbols in order within a timestamp).
    to_time = np.argsort(utc, kind="stable")
    n = frame.height
    local = utc + _IST_OFFSET_US
    day_num = local // _DAY_US
    tod = local - day_num * _DAY_US
    del local
    days, day_of = _dense_days(day_num)
    del day_num
    daily = not tod.any()
    new_symbol = np.r_[True, code[1:] != code[:-1]]
    eod_s = np.r_[new_symbol[1:] | (day_of[1:] != day_of[:-1]), True]
    close_s = frame.get_column("close").to_numpy()
    prev_s = np.r_[np.nan, close_s[:-1]]
    prev_s[new_symbol] = np.nan
    if "prev_close" in frame.columns:
        given = frame.get_column("prev_close").cast(pl.Float64).fill_null(np.nan).to_numpy()
        prev_s = np.where(np.isnan(given), prev_s, given)
    ts = utc[to_time]
    last = np.r_[ts[1:] != ts[:-1], True]
    flags = eod_s[to_time] * kernel.EOD + last * kernel.LAST_OF_TS
    if config.segment == "intraday" and not daily:
        flags += (tod[to_time] >= SQUARE_OFF_US) * kernel.SQUARE_OFF
    del tod, eod_s
    if strategy.kind == "events":
        target = np.broadcast_to(np.nan, n)
    else:
        target = evaluate_targets(frame, strategy)[to_time]
    if parse_slippage(config.slippage).kind == SQRT:
        sigma = _sigma(close_s, new_symbol)[to_time]
    else:
        sigma = np.broadcast_to(0.0, n)
    sym = code[to_time]
    day_index = day_of[to_time]
    open_ = frame.get_column("open").to_numpy()[to_time]
    act = _action_arrays(actions, symbols, day_index, days, sym)
    return Prepared(
        symbols=symbols,
        days=days,
        n=n,
        ts=ts,
        sym=sym,
        day=day_index,
        flags=flags.astype(np.int64, copy=False),
        open=open_,
        high=frame.get_column("high").to_numpy()[to_time],
        low=frame.get_column("low").to_numpy()[to_time],
        close=close_s[to_time],
        volume=frame.get_column("volume").to_numpy()[to_time].astype(np.float64),
        prev_close=prev_s[to_time],
        tick=_ticks(open_, day_index, days, config.segment, symbols, sym),
        sigma=sigma,
        lot=_lots(symbols, sym, day_index, days, config.segment),
        target=target,
        rates=rate_table(parse_costs(config.costs), config.segment, config.broker, days),
        act_bar=act[0],
        act_sym=act[1],
        act_ratio=act[2],
        act_amount=act[3],
        n_ts=int(last.sum()),
    )


def _is_sorted(code: np.ndarray, utc: np.ndarray) -> bool:
    """True when rows are already in (symbol, ts) order (the store's order)."""
    if code.shape[0] < 2:
        return True
    step = code[1:] - code[:-1]
    return bool((step >= 0).all() and ((step > 0) | (utc[1:] > utc[:-1])).all())


def _dense_days(day_num: np.ndarray) -> tuple[list[date], np.ndarray]:
    """(sorted distinct dates, index of each bar's date) without sorting the bars: epoch days
    span a small range, so a presence table does it in linear time."""
    low = int(day_num.min())
    offset = day_num - low
    present = np.zeros(int(offset.max()) + 1, dtype=bool)
    present[offset] = True
    rank = np.cumsum(present) - 1
    days = [_EPOCH_DAY + timedelta(days=low + int(k)) for k in np.flatnonzero(present)]
    return days, rank[offset].astype(np.int64)


def _on_sessions(day_num: np.ndarray) -> np.ndarray:
    """True where the epoch day is an NSE session (the calendar is asked once per date)."""
    from quantcli.market.calendar import session_mask

    if day_num.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    days, index = _dense_days(day_num)
    mask: np.ndarray = session_mask(pl.Series(days, dtype=pl.Date)).to_numpy()
    return np.asarray(mask[index], dtype=bool)


def _sigma(close: np.ndarray, new_symbol: np.ndarray) -> np.ndarray:
    # Volatility of the returns before each bar (shifted: a bar's own move is not known when
    # its fills are priced at the open), in (symbol, ts) order.
    group = np.cumsum(new_symbol)
    frame = pl.DataFrame({"g": group, "c": close})
    returns = pl.col("c").pct_change().over("g")
    vol = returns.rolling_std(_SIGMA_WINDOW, min_samples=2).shift(1).over("g")
    return frame.select(vol.fill_null(0.0).fill_nan(0.0)).to_series().to_numpy()


def _tick_kind(segment: str, symbol: str) -> str:
    if segment == "options":
        return "options"
    if segment == "futures" and symbol.upper() in _INDEX_UNDERLYINGS:
        return "index_futures"
    return "equity"


def _ticks(
    prices: np.ndarray,
    day_index: np.ndarray,
    days: list[date],
    segment: str,
    symbols: list[str],
    sym: np.ndarray,
) -> np.ndarray:
    """Tick size per bar, by the bar's open price and session date (bars in time order, so a
    run of sessions is a slice)."""
    from quantcli.market.instruments import tick_sizes

    kinds = [_tick_kind(segment, s) for s in symbols]
    out = np.empty(prices.shape[0], dtype=np.float64)
    safe = np.where(np.isfinite(prices) & (prices >= 0), prices, 0.0)
    for kind in sorted(set(kinds)):
        mixed = len(set(kinds)) > 1
        of_kind = (
            np.isin(sym, [k for k, name in enumerate(kinds) if name == kind]) if mixed else None
        )
        # Tick schedules change on a handful of dates: tabulate per era, not per session.
        for lo, hi in _eras(days, functools.partial(_tick_probe, kind=kind)):
            a, b = np.searchsorted(day_index, [lo, hi])
            ticks = tick_sizes(safe[a:b], days[lo], kind)
            if of_kind is None:
                out[a:b] = ticks
            else:
                out[a:b] = np.where(of_kind[a:b], ticks, out[a:b])
    return out


_PROBE = np.array([1.0, 100.0, 249.0, 500.0, 2000.0, 7000.0, 15000.0, 25000.0, 40000.0])


def _tick_probe(day: date, kind: str) -> tuple[float, ...]:
    from quantcli.market.instruments import tick_sizes

    return tuple(tick_sizes(_PROBE, day, kind).tolist())


def _eras(days: list[date], key: Callable[[date], object]) -> list[tuple[int, int]]:
    """Split the sorted ``days`` into maximal runs with the same ``key`` (by bisection: rate
    and tick schedules change on few dates, so this calls ``key`` O(changes x log n) times)."""
    bounds: list[int] = [0]

    def split(lo: int, hi: int, klo: object, khi: object) -> None:
        # Invariant: key(days[lo]) == klo, key(days[hi]) == khi, and they differ.
        if hi - lo == 1:
            bounds.append(hi)
            return
        mid = (lo + hi) // 2
        kmid = key(days[mid])
        if kmid != klo:
            split(lo, mid, klo, kmid)
        if kmid != khi:
            split(mid, hi, kmid, khi)

    if days:
        last = len(days) - 1
        kfirst, klast = key(days[0]), key(days[last])
        if kfirst != klast:
            split(0, last, kfirst, klast)
    bounds.append(len(days))
    return list(itertools.pairwise(bounds))


def _lots(
    symbols: list[str], sym: np.ndarray, day_index: np.ndarray, days: list[date], segment: str
) -> np.ndarray:
    """Lot size per bar (1 for equity cash; the contract's lot for derivatives)."""
    if segment not in ("futures", "options"):
        return np.broadcast_to(1.0, sym.shape[0])
    out = np.ones(sym.shape[0], dtype=np.float64)
    from quantcli.market.instruments import lot_size

    for k, name in enumerate(symbols):
        mine = sym == k
        for lo, hi in _eras(days, functools.partial(lot_size, name, segment=segment)):
            out[mine & (day_index >= lo) & (day_index < hi)] = lot_size(name, days[lo], segment)
    return out


def _action_arrays(
    actions: Sequence[CorporateAction],
    symbols: list[str],
    day_index: np.ndarray,
    days: list[date],
    sym: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each action's bar: the symbol's first bar on or after the ex-date, if it traded before."""
    code = {s: k for k, s in enumerate(symbols)}
    day_arr = np.array(days, dtype="datetime64[D]")
    rows: list[tuple[int, int, float, float]] = []
    for seq, action in enumerate(actions):
        k = code.get(action.symbol)
        if k is None:
            continue
        mine = np.flatnonzero(sym == k)
        ex = int(np.searchsorted(day_arr, np.datetime64(action.ex_date, "D")))
        after = mine[day_index[mine] >= ex]
        if after.size == 0 or after[0] == mine[0]:
            continue
        rows.append((int(after[0]), seq, action.ratio, action.amount))
    rows.sort()
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([int(sym[r[0]]) for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.float64),
    )


def evaluate_targets(frame: pl.DataFrame, strategy: LoadedStrategy) -> np.ndarray:
    """The strategy's target per bar (NaN = no opinion) over ``frame`` sorted by (symbol, ts).

    To enforce "no look-ahead" the expression runs twice more on a prefix of the bars: from a
    cut-off timestamp on, the prefix's prices are distorted (doubled, then halved); a target
    before the cut-off that changes depends on later bars. The cut-off lies 10% of the
    timestamps (at most 500) after the first target, so warm-up periods do not make the check
    vacuous and long histories do not make it expensive.
    """
    expr = strategy.expression()
    features = strategy.features()
    full = _targets_of(frame, features, expr, strategy)
    valid = ~np.isnan(full)
    if not valid.any():
        return full
    stamps = frame.get_column("ts").cast(pl.Int64).to_numpy()
    times = np.unique(stamps)
    count = times.shape[0]
    first = int(np.searchsorted(times, stamps[valid].min()))
    k_cut = min(count - 1, first + max(1, min(count // 10, _CHECK_BARS)))
    horizon = times[min(count - 1, k_cut + max(1, min(count // 20, _CHECK_BARS // 5)))]
    in_head = stamps <= horizon
    head = frame.filter(pl.Series(in_head))
    later = pl.Series(stamps[in_head] >= times[k_cut])
    before = ~later.to_numpy()
    expected = full[in_head][before]
    prices = [c for c in _PRICE_COLUMNS if c in frame.columns]
    for factor in (2.0, 0.5):
        distorted = head.with_columns(
            pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in prices
        )
        part = _targets_of(distorted, features, expr, strategy)[before]
        same = np.isclose(part, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
        if not same.all():
            row = head.filter(pl.Series(before)).row(int(np.flatnonzero(~same)[0]), named=True)
            raise StrategyError(
                f"strategy {strategy.name} looks ahead: its {strategy.kind} at "
                f"{row['symbol']} {row['ts']} depend on later bars"
            )
    return full


_PRICE_COLUMNS = ("open", "high", "low", "close", "vwap", "prev_close")
_CHECK_BARS = 500


def _targets_of(
    frame: pl.DataFrame, features: list[pl.Expr], expr: pl.Expr, strategy: LoadedStrategy
) -> np.ndarray:
    try:
        if features:
            frame = frame.with_columns(features)
        # with_columns broadcasts a scalar expression to every bar.
        values = frame.with_columns(
            expr.cast(pl.Float64).fill_nan(None).fill_null(float("nan")).alias("_target")
        ).get_column("_target")
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise StrategyError(
            f"strategy {strategy.name}: its {strategy.kind} expression failed: "
            f"{type(exc).__name__}: {text}"
        ) from exc
    return values.to_numpy().astype(np.float64, copy=False)


# --------------------------------------------------------------------------- run state


@dataclass
class _Output:
    order_ints: np.ndarray
    order_floats: np.ndarray
    fill_ints: np.ndarray
    fill_floats: np.ndarray
    equity: np.ndarray
    equity_bar: np.ndarray
    event_ints: np.ndarray
    event_floats: np.ndarray


class _Book:
    """The mutable arrays of one run (state, account, counters and the growable buffers)."""

    def __init__(self, prep: Prepared, config: BacktestConfig) -> None:
        self.state, self.acct, self.counters = new_state(len(prep.symbols), config.cash)
        cap = 256
        self.order_ints = np.zeros((cap, O_INT_COLS), dtype=np.int64)
        self.order_floats = np.zeros((cap, O_FLOAT_COLS), dtype=np.float64)
        self.fill_ints = np.zeros((cap, F_INT_COLS), dtype=np.int64)
        self.fill_floats = np.zeros((cap, F_FLOAT_COLS), dtype=np.float64)
        self.equity = np.zeros((prep.n_ts, 4), dtype=np.float64)
        self.equity_bar = np.zeros(prep.n_ts, dtype=np.int64)
        n_act = prep.act_bar.shape[0]
        self.event_ints = np.zeros((n_act, EVENT_INT_COLS), dtype=np.int64)
        self.event_floats = np.zeros((n_act, EVENT_FLOAT_COLS), dtype=np.float64)
        costs = parse_costs(config.costs)
        slip = parse_slippage(config.slippage)
        self.fprm = np.zeros(kernel.N_FPRM, dtype=np.float64)
        self.fprm[kernel.P_PARTICIPATION] = config.participation
        self.fprm[kernel.P_SLIP] = slip.param
        self.fprm[kernel.P_FLAT_RATE] = costs.flat_rate
        self.fprm[kernel.P_MARGIN] = config.margin
        self.iprm = np.zeros(kernel.N_IPRM, dtype=np.int64)
        self.iprm[kernel.I_SLIP_KIND] = slip.kind
        self.iprm[kernel.I_COST_KIND] = costs.kind
        self.iprm[kernel.I_FILL_CLOSE] = config.fill == "close"
        self.iprm[kernel.I_INTRADAY] = config.segment == "intraday"
        self.iprm[kernel.I_SHORTABLE] = config.allow_short and config.segment != "delivery"
        self.iprm[kernel.I_FUNDING] = FUNDING[config.segment]
        self.iprm[kernel.I_FUTURES] = config.segment == "futures"
        self.iprm[kernel.I_REJECT_ERROR] = config.on_reject == "error"

    def ensure_room(self, extra: int = 8) -> None:
        """Double the order and fill buffers when fewer than ``extra`` rows are left."""
        if self.counters[N_ORDERS] + extra > self.order_ints.shape[0]:
            self.order_ints = _grow(self.order_ints)
            self.order_floats = _grow(self.order_floats)
        if self.counters[N_FILLS] + extra > self.fill_ints.shape[0]:
            self.fill_ints = _grow(self.fill_ints)
            self.fill_floats = _grow(self.fill_floats)

    def output(self) -> _Output:
        """Trimmed copies of the buffers."""
        n_o, n_f = int(self.counters[N_ORDERS]), int(self.counters[N_FILLS])
        n_e, n_ev = int(self.counters[N_EQUITY]), int(self.counters[N_EVENTS])
        return _Output(
            order_ints=self.order_ints[:n_o],
            order_floats=self.order_floats[:n_o],
            fill_ints=self.fill_ints[:n_f],
            fill_floats=self.fill_floats[:n_f],
            equity=self.equity[:n_e],
            equity_bar=self.equity_bar[:n_e],
            event_ints=self.event_ints[:n_ev],
            event_floats=self.event_floats[:n_ev],
        )


def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.zeros((buffer.shape[0] * 2, buffer.shape[1]), dtype=buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger


def _reject_error(book: _Book, row: int, prep: Prepared) -> StrategyError:
    ints = book.order_ints[row]
    return StrategyError(
        f"order {ints[0]} for {prep.symbols[ints[2]]} at {_ts(prep.ts[ints[1]])} rejected: "
        f"{REASONS[ints[9]]} (on_reject=error)"
    )


# --------------------------------------------------------------------------- signal path


_CHUNK = 1 << 20


def _run_signals(
    prep: Prepared,
    config: BacktestConfig,
    strategy: LoadedStrategy,
    progress: Callable[[float], None] | None,
) -> _Output:
    book = _Book(prep, config)
    book.iprm[kernel.I_WEIGHTS] = int(strategy.kind == "weights")
    i = 0
    while i < prep.n:
        book.ensure_room(16)
        stop_at = min(prep.n, i + _CHUNK)
        i, err = kernel.replay(
            i, prep.sym, prep.day, prep.flags, prep.open, prep.high, prep.low, prep.close,
            prep.volume, prep.prev_close, prep.tick, prep.sigma, prep.lot, prep.target,
            prep.rates, prep.act_bar, prep.act_sym, prep.act_ratio, prep.act_amount, book.fprm,
            book.iprm, book.state, book.acct, book.counters, book.order_ints, book.order_floats,
            book.fill_ints, book.fill_floats, book.equity, book.equity_bar, book.event_ints,
            book.event_floats, stop_at,
        )  # fmt: skip
        if err >= 0:
            raise _reject_error(book, err, prep)
        if progress is not None:
            progress(i / prep.n)
    return book.output()


# --------------------------------------------------------------------------- event path


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IST = ZoneInfo(TIMEZONE)


def _ts(micros: int | np.integer[Any]) -> datetime:
    return (_EPOCH + timedelta(microseconds=int(micros))).astimezone(_IST)


class Bar:
    """The bar an event strategy sees (plain Python values; ``ts`` built on first access)."""

    __slots__ = ("close", "high", "index", "low", "open", "symbol", "ts_us", "volume")

    def __init__(
        self,
        index: int,
        symbol: str,
        ts_us: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> None:
        self.index = index
        self.symbol = symbol
        self.ts_us = ts_us
        self.open = open_
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    @property
    def ts(self) -> datetime:
        """The bar's timestamp (IST)."""
        return _ts(self.ts_us)

    def __repr__(self) -> str:
        return (
            f"Bar({self.symbol} {self.ts:%Y-%m-%d %H:%M} o={self.open} h={self.high} "
            f"l={self.low} c={self.close} v={self.volume})"
        )


class Context:
    """What an event strategy can do: read the book, place and cancel orders."""

    def __init__(self, run: _EventRun) -> None:
        self._run = run
        self.params = (
            run.strategy.instance.params if hasattr(run.strategy.instance, "params") else None
        )
        self.symbols: tuple[str, ...] = tuple(run.prep.symbols)

    @property
    def ts(self) -> datetime:
        """Timestamp of the bar being processed."""
        return _ts(self._run.prep.ts[self._run.i])

    @property
    def cash(self) -> float:
        """Cash now."""
        return float(self._run.book.acct[CASH])

    @property
    def equity(self) -> float:
        """Cash plus holdings at the last prices."""
        value, _ = holdings(self._run.book.state, self._run.futures)
        return float(self._run.book.acct[CASH] + value)

    def position(self, symbol: str) -> int:
        """Signed position in ``symbol`` (0 when flat)."""
        return int(self._run.book.state[self._run.code(symbol), POS])

    @property
    def positions(self) -> dict[str, int]:
        """Non-zero positions by symbol."""
        pos = self._run.book.state[:, POS]
        return {self.symbols[k]: int(pos[k]) for k in np.flatnonzero(pos)}

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Working orders (of one symbol, or all), oldest first."""
        run = self._run
        if symbol is not None:
            return list(run.working[run.code(symbol)])
        return sorted((o for w in run.working for o in w), key=lambda o: o.order_id)

    def buy(
        self,
        symbol: str,
        quantity: int,
        *,
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "DAY",
    ) -> int:
        """Place a buy order (market, or limit/stop/stop-limit by the prices given)."""
        return self._run.place(symbol, True, quantity, limit, stop, tif)

    def sell(
        self,
        symbol: str,
        quantity: int,
        *,
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "DAY",
    ) -> int:
        """Place a sell order (market, or limit/stop/stop-limit by the prices given)."""
        return self._run.place(symbol, False, quantity, limit, stop, tif)

    def order_target(self, symbol: str, target: int, *, tif: str = "DAY") -> int | None:
        """Market order for the difference between ``target`` and the position (None if 0)."""
        delta = int(target) - self.position(symbol)
        if delta == 0:
            return None
        return self._run.place(symbol, delta > 0, abs(delta), None, None, tif)

    def cancel(self, order_id: int) -> bool:
        """Cancel a working order; False when it is not working."""
        return self._run.cancel(order_id)


class _EventRun:
    """The Python replay loop for event strategies."""

    def __init__(self, prep: Prepared, config: BacktestConfig, strategy: LoadedStrategy) -> None:
        self.prep = prep
        self.config = config
        self.strategy = strategy
        self.book = _Book(prep, config)
        self.orders: list[Order] = []
        self.working: list[list[Order]] = [[] for _ in prep.symbols]
        self.codes = {s: k for k, s in enumerate(prep.symbols)}
        self.futures = config.segment == "futures"
        self.intraday = config.segment == "intraday"
        self.fill_close = config.fill == "close"
        self.i = 0
        self.scratch = np.zeros(7, dtype=np.float64)
        self.ctx = Context(self)
        self.kind = "options" if config.segment == "options" else "equity"

    def code(self, symbol: str) -> int:
        k = self.codes.get(symbol)
        if k is None:
            raise StrategyError(f"strategy {self.strategy.name}: unknown symbol {symbol!r}")
        return k

    # -- orders

    def place(
        self,
        symbol: str,
        is_buy: bool,
        quantity: int,
        limit: float | None,
        stop: float | None,
        tif: str,
    ) -> int:
        s = self.code(symbol)
        tif_code = TIFS.index(tif.upper()) if tif.upper() in TIFS else -1
        if tif_code < 0:
            raise StrategyError(
                f"strategy {self.strategy.name}: unknown tif {tif!r} (DAY, IOC, GTC)"
            )
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int | np.integer)
            or quantity <= 0
        ):
            raise StrategyError(
                f"strategy {self.strategy.name}: order quantity must be a positive integer, "
                f"got {quantity!r}"
            )
        kind = MARKET
        if limit is not None and stop is not None:
            kind = STOP_LIMIT
        elif limit is not None:
            kind = LIMIT
        elif stop is not None:
            kind = STOP
        i = self.i
        # Rounded to the tick against the trader: a buy limit down, a buy stop up.
        lim = math.nan if limit is None else self._on_tick(symbol, limit, up=not is_buy)
        stp = math.nan if stop is None else self._on_tick(symbol, stop, up=is_buy)
        lot = int(self.prep.lot[i]) if self.prep.sym[i] == s else self._lot_of(s)
        qty = int(quantity) // lot * lot
        order = Order(
            order_id=len(self.orders) + 1,
            bar=i,
            symbol=symbol,
            sym=s,
            is_buy=is_buy,
            type=kind,
            tif=tif_code,
            quantity=qty,
            limit_price=lim,
            stop_price=stp,
            at_close=kind == MARKET and self.fill_close,
        )
        self.orders.append(order)
        if qty == 0:
            self._finish(order, REJECTED, R_LOT)
        elif self.intraday and self.book.state[s, SQ_DAY] == self.prep.day[i]:
            self._finish(order, REJECTED, R_SQUARED_OFF)
        else:
            self.working[s].append(order)
        return order.order_id

    def _on_tick(self, symbol: str, price: float, *, up: bool) -> float:
        from quantcli.market.instruments import tick_size

        if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
            raise StrategyError(
                f"strategy {self.strategy.name}: order price must be a positive number, "
                f"got {price!r}"
            )
        day = self.prep.days[int(self.prep.day[self.i])]
        tick = tick_size(float(price), day, _tick_kind(self.config.segment, symbol))
        return float(round_tick(float(price), tick, up))

    def _lot_of(self, s: int) -> int:
        # The symbol's lot on its latest bar so far (its first bar when it has not traded yet).
        mine = np.flatnonzero(self.prep.sym[: self.i + 1] == s)
        at = int(mine[-1]) if mine.size else int(np.flatnonzero(self.prep.sym == s)[0])
        return int(self.prep.lot[at])

    def cancel(self, order_id: int) -> bool:
        if not 1 <= order_id <= len(self.orders):
            return False
        order = self.orders[order_id - 1]
        if not order.is_open:
            return False
        self.working[order.sym].remove(order)
        self._finish(order, CANCELLED, R_USER)
        return True

    def _finish(self, order: Order, status: int, reason: int) -> None:
        order.status = PARTIAL if order.filled > 0 else status
        order.reason = reason
        if status == REJECTED and self.config.on_reject == "error":
            raise StrategyError(
                f"order {order.order_id} for {order.symbol} at {_ts(self.prep.ts[self.i])} "
                f"rejected: {REASONS[reason]} (on_reject=error)"
            )

    def _fill(self, order: Order, price: float, forced: bool = False) -> None:
        prep, book, i = self.prep, self.book, self.i
        book.ensure_room()
        q, reason = execute(
            book.state, book.acct, book.counters, book.fill_ints, book.fill_floats, self.scratch,
            order.sym, i, order.order_id, order.is_buy, float(order.remaining), price,
            prep.volume[i], prep.high[i], prep.low[i], prep.prev_close[i], prep.lot[i],
            prep.tick[i], prep.sigma[i], book.fprm[kernel.P_PARTICIPATION],
            book.iprm[kernel.I_SLIP_KIND], book.fprm[kernel.P_SLIP], book.iprm[kernel.I_COST_KIND],
            book.fprm[kernel.P_FLAT_RATE],
            prep.rates[prep.day[i]], bool(forced or book.iprm[kernel.I_SHORTABLE] == 1),
            book.iprm[kernel.I_FUNDING], self.futures, book.fprm[kernel.P_MARGIN], forced,
        )  # fmt: skip
        if q > 0:
            order.filled += int(q)
        if reason != NO_REASON:
            self.working[order.sym].remove(order)
            self._finish(order, REJECTED, reason)
        elif order.filled == order.quantity:
            order.status = FILLED
            self.working[order.sym].remove(order)
        if q > 0:
            self._on_fill(order, q)

    def _on_fill(self, order: Order, q: float) -> None:
        n = int(self.book.counters[N_FILLS]) - 1
        fill = Fill(
            fill_id=int(self.book.fill_ints[n, F_ID]),
            order_id=order.order_id,
            ts=_ts(self.prep.ts[self.i]),
            symbol=order.symbol,
            side="buy" if order.is_buy else "sell",
            quantity=int(q),
            price=float(self.book.fill_floats[n, F_PRICE]),
            charges=float(self.book.fill_floats[n, -1]),
        )
        self._call(self.strategy.instance.on_fill, fill)

    def _call(self, fn: Callable[[Context, Any], None], arg: Any) -> None:
        try:
            fn(self.ctx, arg)
        except QuantcliError:
            raise
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            raise StrategyError(
                f"strategy {self.strategy.name} raised at {_ts(self.prep.ts[self.i])}: "
                f"{type(exc).__name__}: {text}"
            ) from exc

    def _match(self, s: int, at_close: bool) -> None:
        prep, i = self.prep, self.i
        d = int(prep.day[i])
        for order in list(self.working[s]):
            if order.at_close != at_close or not order.is_open:
                continue
            if order.tif == DAY:
                if order.day < 0:
                    order.day = d
                elif order.day != d:
                    self.working[s].remove(order)
                    self._finish(order, EXPIRED, NO_REASON)
                    continue
            if order.type == MARKET:
                price = prep.close[i] if at_close else prep.open[i]
            else:
                price, order.triggered = trigger_price(
                    order.type, order.is_buy, order.limit_price, order.stop_price,
                    order.triggered, prep.open[i], prep.high[i], prep.low[i],
                )  # fmt: skip
            if not math.isnan(price):
                self._fill(order, float(price))
            if order.tif == IOC and order.is_open:
                self.working[s].remove(order)
                self._finish(order, EXPIRED, NO_REASON)

    def _square_off(self, s: int, price: float) -> None:
        book, i = self.book, self.i
        book.state[s, SQ_DAY] = self.prep.day[i]
        for order in list(self.working[s]):
            self.working[s].remove(order)
            self._finish(order, CANCELLED, R_SQUARED_OFF)
        pos = int(book.state[s, POS])
        if pos == 0:
            return
        order = Order(
            len(self.orders) + 1, i, self.prep.symbols[s], s, pos < 0, MARKET, DAY, abs(pos)
        )
        order.reason = R_SQUARED_OFF
        self.orders.append(order)
        self.working[s].append(order)
        self._fill(order, price, forced=True)

    # -- the loop

    def replay(self, progress: Callable[[float], None] | None) -> _Output:
        prep, book = self.prep, self.book
        on_bar = self.strategy.instance.on_bar
        names = prep.symbols
        state = book.state
        working = self.working
        act_bar = prep.act_bar.tolist()
        ap = 0
        n_act = len(act_bar)
        futures, intraday, fill_close = self.futures, self.intraday, self.fill_close
        step = max(1, prep.n // 100)
        for lo in range(0, prep.n, _CHUNK):
            hi = min(prep.n, lo + _CHUNK)
            cols = [
                a[lo:hi].tolist()
                for a in (
                    prep.sym, prep.ts, prep.open, prep.high, prep.low, prep.close, prep.volume,
                    prep.flags,
                )
            ]  # fmt: skip
            for j, (s, t, o, h, lw, c, v, f) in enumerate(zip(*cols, strict=True)):
                i = lo + j
                self.i = i
                while ap < n_act and act_bar[ap] == i:
                    self._action(ap)
                    ap += 1
                if intraday and f & kernel.SQUARE_OFF and state[s, SQ_DAY] != prep.day[i]:
                    self._square_off(s, o)
                if working[s]:
                    self._match(s, False)
                state[s, MARK] = c
                self._call(on_bar, Bar(i, names[s], t, o, h, lw, c, v))
                if fill_close and working[s]:
                    self._match(s, True)
                if f & kernel.EOD:
                    if intraday and state[s, SQ_DAY] != prep.day[i]:
                        self._square_off(s, c)
                    if futures:
                        settle(state, book.acct, s)
                if f & kernel.LAST_OF_TS:
                    kernel.snapshot(
                        state, book.acct, book.counters, book.equity, book.equity_bar, i, futures
                    )
                if progress is not None and i % step == 0:
                    progress(i / prep.n)
        return self._output()

    def _action(self, ap: int) -> None:
        prep, book = self.prep, self.book
        s = int(prep.act_sym[ap])
        ratio, cash = apply_action(
            book.state, book.acct, s, prep.act_ratio[ap], prep.act_amount[ap]
        )
        if ratio != 1.0:
            for order in list(self.working[s]):
                self.working[s].remove(order)
                self._finish(order, CANCELLED, R_ACTION)
        book.event_ints[ap, E_BAR] = self.i
        book.event_ints[ap, E_SYM] = s
        book.event_ints[ap, E_SEQ] = book.counters[N_FILLS]
        book.event_floats[ap, E_RATIO] = ratio
        book.event_floats[ap, E_CASH] = cash
        book.counters[N_EVENTS] = ap + 1

    def _output(self) -> _Output:
        n = len(self.orders)
        ints = np.zeros((n, O_INT_COLS), dtype=np.int64)
        floats = np.zeros((n, O_FLOAT_COLS), dtype=np.float64)
        for k, o in enumerate(self.orders):
            ints[k] = (
                o.order_id, o.bar, o.sym, 1 if o.is_buy else -1, o.type, o.tif, o.quantity,
                o.status, o.filled, o.reason,
            )  # fmt: skip
            floats[k] = (o.limit_price, o.stop_price)
        out = self.book.output()
        out.order_ints = ints
        out.order_floats = floats
        return out


# --------------------------------------------------------------------------- result frames


def _equity_frame(equity: np.ndarray, bars: np.ndarray, ts: np.ndarray) -> pl.DataFrame:
    total = equity[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.where(total != 0, equity[:, 3] / total, 0.0)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts[bars], dtype=pl.Int64).cast(TS_DTYPE),
            "cash": equity[:, 0],
            "holdings": equity[:, 1],
            "equity": total,
            "exposure": exposure,
        },
        schema=EQUITY_SCHEMA,
    )


__all__ = [
    "BacktestResult",
    "Bar",
    "Context",
    "Prepared",
    "prepare",
    "run_backtest",
    "simulate",
]
