"""prepare's vectorised passes give, byte for byte and dtype for dtype, what the compiled loops
they replaced gave (kept here as plain Python, the reference), at any block size; and a full
panel's transpose writes the replay arrays the positional walk (``_scatter``) writes for the
same bars, chunked or not, with or without the input's own previous close."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_backtest_prepare import bars_at, hold, panels, session_stamp

from quantcli.backtest import arrays, replay_order
from quantcli.backtest import prepare as preparation
from quantcli.backtest import sessions as bar_sessions
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.inputs import EOD, LAST_OF_TS, SQUARE_OFF
from quantcli.core.timezone import DAY_US, IST_OFFSET_US

# Block sizes for the passes: one row, a few, and the module's own (one block for these inputs).
BLOCKS = st.sampled_from([1, 2, 3, 7, arrays.PASS_ROWS])
STAMPS = st.integers(-(10**15), 4 * 10**15)  # epoch-µs from 1938 to 2096


# The modules whose passes read the block size: each holds its own binding of arrays' name.
READERS = (arrays, bar_sessions, replay_order, preparation)


@contextmanager
def blocks(rows: int, symbols: int = replay_order._PANEL_SYMBOLS) -> Iterator[None]:
    """The passes with ``rows`` rows a block and the transpose with ``symbols`` a block."""
    saved = [m.PASS_ROWS for m in READERS], replay_order._PANEL_SYMBOLS
    for module in READERS:
        module.PASS_ROWS = rows
    replay_order._PANEL_SYMBOLS = symbols
    try:
        yield
    finally:
        for module, kept in zip(READERS, saved[0], strict=True):
            module.PASS_ROWS = kept
        replay_order._PANEL_SYMBOLS = saved[1]


def test_blocks_sets_every_binding_the_passes_read() -> None:
    # A module that imports the block size and is left out of READERS would keep its own.
    held = {
        n for n, m in sys.modules.items() if n.startswith("quantcli.") and hasattr(m, "PASS_ROWS")
    }
    assert held == {m.__name__ for m in READERS}


def same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


# The compiled loops as they were (numba's integer division floors, as Python's does).


def epoch_days_loop(utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = np.empty(utc.shape[0], dtype=np.int32)
    days = [(int(u) + IST_OFFSET_US) // DAY_US for u in utc]
    low, high = min(days), max(days)
    rank = np.full(high - low + 1, -1, dtype=np.int64)
    for d in days:
        rank[d - low] = 0
    distinct = np.empty(rank.shape[0], dtype=np.int64)
    m = 0
    for r in range(rank.shape[0]):
        if rank[r] == 0:
            rank[r] = m
            distinct[m] = low + r
            m += 1
    for k, d in enumerate(days):
        index[k] = rank[d - low]
    return distinct[:m], index


def is_sorted_loop(code: np.ndarray, utc: np.ndarray) -> bool:
    for k in range(1, code.shape[0]):
        if code[k] < code[k - 1] or (code[k] == code[k - 1] and utc[k] <= utc[k - 1]):
            return False
    return True


def full_panel_loop(utc: np.ndarray, bounds: np.ndarray) -> bool:
    width = bounds[1]
    for s in range(bounds.shape[0] - 1):
        if bounds[s + 1] - bounds[s] != width:
            return False
        for t in range(width):
            if utc[bounds[s] + t] != utc[t]:
                return False
    return True


def time_flags_loop(ts: np.ndarray, flags: np.ndarray, square_off_us: int) -> int:
    n, n_ts = ts.shape[0], 0
    for k in range(n):
        f = int(flags[k])
        if k == n - 1 or ts[k + 1] != ts[k]:
            f |= LAST_OF_TS
            n_ts += 1
        if square_off_us >= 0 and (int(ts[k]) + IST_OFFSET_US) % DAY_US >= square_off_us:
            f |= SQUARE_OFF
        flags[k] = f
    return n_ts


def jump_symbols_loop(
    code: np.ndarray,
    day_of: np.ndarray,
    opens: np.ndarray,
    closes: np.ndarray,
    threshold: float,
    n_symbols: int,
) -> np.ndarray:
    out = np.zeros(n_symbols, dtype=np.bool_)
    for j in range(1, code.shape[0]):
        if code[j] != code[j - 1] or day_of[j] == day_of[j - 1]:
            continue
        o, c = float(opens[j]), float(closes[j - 1])
        if o > 0.0 and c > 0.0 and abs(o / c - 1.0) > threshold:
            out[code[j]] = True
    return out


@given(
    st.lists(STAMPS, min_size=1, max_size=60),
    st.integers(1, 3),
    st.sampled_from(["as drawn", "increasing", "moved"]),
    BLOCKS,
)
def test_epoch_days_are_the_presence_tables(
    stamps: list[int], copies: int, order: str, rows: int
) -> None:
    # Spread stamps (a wide table) and repeats of a few days, unsorted; or a full panel's: an
    # increasing run over and over (its days worked out once), or so but for its last stamp.
    run = stamps if order == "as drawn" else sorted(set(stamps))
    utc = np.array(run * copies, dtype=np.int64)
    if order == "moved":
        utc[-1] += DAY_US
    with blocks(rows):
        distinct, index = bar_sessions.epoch_days_of(utc)
    expected = epoch_days_loop(utc)
    same(distinct, expected[0])
    same(index, expected[1])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), max_size=40), BLOCKS)
def test_is_sorted_is_the_loops(drawn: list[tuple[int, int]], rows: int) -> None:
    # Sorted (an odd count of draws), or as drawn: unsorted, or sorted with a duplicate.
    pairs = sorted(set(drawn)) if len(drawn) % 2 else drawn
    code = np.array([p[0] for p in pairs], dtype=np.int32)
    utc = np.array([p[1] for p in pairs], dtype=np.int64)
    with blocks(rows):
        assert bar_sessions._is_sorted(code, utc) == is_sorted_loop(code, utc)


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=8, unique=True),
    st.integers(1, 6),
    st.sampled_from(["full", "short", "moved"]),
    BLOCKS,
)
def test_full_panel_is_the_loops(stamps: list[int], n_symbols: int, change: str, rows: int) -> None:
    # Every symbol on the first one's stamps, or one symbol with a stamp fewer or moved.
    mine = [sorted(stamps)] * n_symbols
    last = mine[-1]
    if change == "short" and len(last) > 1:
        mine[-1] = last[:-1]
    elif change == "moved":
        mine[-1] = [*last[:-1], last[-1] + 10]
    utc = np.array([t for ts in mine for t in ts], dtype=np.int64)
    bounds = np.array([0, *itertools.accumulate(len(ts) for ts in mine)], dtype=np.int64)
    with blocks(rows):
        assert replay_order._full_panel(utc, bounds) == full_panel_loop(utc, bounds)


@given(
    st.lists(st.integers(0, 3 * 10**11), min_size=1, max_size=40),
    st.lists(st.sampled_from([0, EOD]), min_size=40, max_size=40),
    st.sampled_from([-1, 0, 10**9, 35_400 * 10**6]),
    BLOCKS,
)
def test_time_flags_are_the_loops(
    stamps: list[int], eod: list[int], square_off: int, rows: int
) -> None:
    # Replay-order stamps (sorted, repeats for the symbols of one timestamp), EOD set or not.
    ts = np.sort(np.array(stamps, dtype=np.int64)) - IST_OFFSET_US
    flags = np.array(eod[: ts.shape[0]], dtype=np.uint8)
    expected = flags.copy()
    n_ts = time_flags_loop(ts, expected, square_off)
    with blocks(rows):
        assert preparation._time_flags(ts, flags, square_off) == n_ts
    same(flags, expected)


PRICES = st.sampled_from([100.0, 64.0, 50.0, 131.0, 0.0, -5.0, math.nan, math.inf])


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), PRICES, PRICES), max_size=40),
    BLOCKS,
)
def test_jump_symbols_are_the_loops(bars: list[tuple[int, int, float, float]], rows: int) -> None:
    # Prices from gaps of -50%..+31% to zero, negative, NaN and infinite ones.
    bars = sorted(bars, key=lambda b: b[:2])
    code = np.array([b[0] for b in bars], dtype=np.int32)
    day_of = np.array([b[1] for b in bars], dtype=np.int32)
    opens, closes = (np.array([b[k] for b in bars], dtype=np.float64) for k in (2, 3))
    args = (code, day_of, opens, closes, 0.3, 3)
    with blocks(rows):
        got = preparation._jump_symbols(*args)
    same(got, jump_symbols_loop(*args))


def positional(order: replay_order.Order, frame: pl.DataFrame) -> replay_order.Order:
    """``order`` with each row's replay row spelled out (a stable sort by time), so that
    ``_scatter`` walks it instead of the transpose."""
    utc = frame.get_column("ts").cast(pl.Int64).to_numpy()
    n_days = int(order.day_of.max()) + 1
    pos = replay_order._time_positions(utc, order.day_of, n_days)
    return order._replace(pos=arrays.frozen(pos)[0])


def replay(n: int, rows: int) -> replay_order.Replay:
    return replay_order.Replay(
        ts=np.full(n, -1, dtype=np.int64),
        sym=np.full(n, -1, dtype=np.int32),
        day=np.full(n, -1, dtype=np.int32),
        flags=np.full(n, 255, dtype=np.uint8),
        prices=np.full((rows, n), -1.0),
    )


@settings(max_examples=80)
@given(
    bars=panels(),
    rows=BLOCKS,
    symbols=st.sampled_from([1, 3, replay_order._PANEL_SYMBOLS]),
    seed=st.integers(0, 3),
)
def test_a_full_panels_transpose_writes_what_the_walk_writes(
    bars: pl.DataFrame, rows: int, symbols: int, seed: int
) -> None:
    # The same sessions and order, moved by the transpose (no positions) and by _scatter (the
    # positions the counting sort gives): bars, then a column, as _with_targets moves targets.
    config = BacktestConfig(dataset="t", strategy="hold")
    sessions = bar_sessions.session_bars(bars, config)
    order = sessions.order
    if order.pos.shape[0]:
        return  # not a full panel: only the walk applies
    walked = positional(order, sessions.frame)
    assert walked.pos.shape[0] == bars.height
    width = 6 if "prev_close" in bars.columns else 5
    moved, expected = replay(bars.height, width), replay(bars.height, width)
    with blocks(rows, symbols):
        replay_order.scatter_frame(sessions.frame, order, moved)
    replay_order.scatter_frame(sessions.frame, walked, expected)
    for field in replay_order.Replay._fields:
        same(getattr(moved, field), getattr(expected, field))
    values = arrays.frozen(np.random.default_rng(seed).normal(size=bars.height))[0]
    column, expected_column = np.full(bars.height, -1.0), np.full(bars.height, -1.0)
    with blocks(rows, symbols):
        replay_order.scatter_column(order, values, column)
    replay_order.scatter_column(walked, values, expected_column)
    same(column, expected_column)


def test_a_full_panel_run_never_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The transpose moves a full panel's bars, targets and per-bar inputs: the positional walk
    # (and its compile) is not needed, while a ragged panel still takes it.
    grid = [session_stamp(d, 0) for d in range(6)]
    config = BacktestConfig(dataset="t", strategy="hold", slippage="sqrt:0.5")
    walks: list[int] = []
    walk = replay_order._scatter

    def counted(*args: object) -> None:
        walks.append(1)
        walk(*args)

    monkeypatch.setattr(replay_order, "_scatter", counted)
    full = preparation.prepare(bars_at({f"S{k}": grid for k in range(3)}), config, hold())
    assert walks == [] and full.bars.panel == 3
    ragged = bars_at({"S0": grid, "S1": grid[1:]})
    assert preparation.prepare(ragged, config, hold()).bars.panel == 0
    assert walks
