"""The look-ahead check's cheaper building blocks against their plain definitions: the strategy
view (Series replaced in a shallow copy, not a with_columns), the check's slice (timestamps
merged without a sort when the symbols share them), and the check running with the targets,
before the replay's arrays are built."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import simulate
from quantcli.backtest.prepare import strategy_view
from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy
from quantcli.backtest.targets import _check_slice
from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import NotFoundError, StrategyError
from quantcli.market.calendar import sessions
from quantcli.market.corporate_actions import PRICE_COLUMNS, VOLUME_COLUMNS


def view_by_expressions(frame: pl.DataFrame, factor: np.ndarray | None) -> pl.DataFrame:
    """strategy_view as its docstring defines it, in one with_columns."""
    prices = [c for c in PRICE_COLUMNS if c in frame.columns]
    counts = [c for c in VOLUME_COLUMNS if c in frame.columns]
    raw = [pl.col(c).alias(f"raw_{c}") for c in (*prices, *counts)]
    if factor is None:
        adjusted = [pl.col(c).cast(pl.Float64) for c in (*prices, *counts)]
    else:
        f = pl.lit(pl.Series("factor", factor, dtype=pl.Float64))
        adjusted = [(pl.col(c).cast(pl.Float64) * f).alias(c) for c in prices]
        adjusted += [(pl.col(c).cast(pl.Float64) / f).alias(c) for c in counts]
    return frame.with_columns(*raw, *adjusted)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    extra=st.sets(st.sampled_from(["vwap", "prev_close", "oi", "deliverable_volume", "raw_close"])),
    scaled=st.booleans(),
)
def test_the_strategy_view_is_its_definition(
    n: int, seed: int, extra: set[str], scaled: bool
) -> None:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "symbol": ["A"] * n,
            "ts": [datetime(2024, 1, 1) + timedelta(days=k) for k in range(n)],
            "open": rng.uniform(1, 100, n),
            "close": rng.uniform(1, 100, n),
            "volume": rng.integers(0, 1000, n),
        }
    )
    for name in sorted(extra):  # Float32 and Int32 columns, some with nulls, get cast
        values = pl.Series(name, rng.uniform(1, 100, n))
        if name in ("oi", "deliverable_volume"):
            values = values.cast(pl.Int32)
        elif name == "prev_close":
            values = values.cast(pl.Float32).shift(1)
        frame = frame.with_columns(values)
    factor = rng.uniform(0.1, 10, n) if scaled else None
    view = strategy_view(frame, factor)
    expected = view_by_expressions(frame, factor)
    assert view.columns == expected.columns  # an existing raw_close is replaced in place
    assert view.schema == expected.schema
    assert view.equals(expected)


def slice_by_sorting(
    frame: pl.DataFrame, valid: np.ndarray, run: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray | None]:
    """The check's slice as first written: the picked symbols' timestamps sorted together."""
    live = np.flatnonzero(np.bincount(run[valid]))
    spread = np.linspace(0, live.shape[0] - 1, min(live.shape[0], 8))
    picked = live[spread.round().astype(np.int64)]
    starts, ends = np.searchsorted(run, picked), np.searchsorted(run, picked, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
    utc = frame.get_column("ts").cast(pl.Int64).to_numpy()
    stamps = utc[rows]
    times = np.unique(stamps)
    count = times.shape[0]
    first = int(np.searchsorted(times, stamps[valid[rows]].min()))
    k_cut = min(count - 1, first + max(1, min(count // 10, 500)))
    horizon = times[min(count - 1, k_cut + max(1, min(count // 20, 100)))]
    sizes = [
        int(np.searchsorted(utc[a:b], horizon, side="right"))
        for a, b in zip(starts, ends, strict=True)
    ]
    head = pl.concat([frame.slice(a, size) for a, size in zip(starts, sizes, strict=True)])
    later = head.get_column("ts").cast(pl.Int64).to_numpy() >= times[k_cut]
    if picked.shape[0] < run[-1] + 1:
        return head, later, None
    prefixes = [np.arange(a, a + size) for a, size in zip(starts, sizes, strict=True)]
    return head, later, np.concatenate(prefixes)


@settings(max_examples=60, deadline=None)
@given(
    symbols=st.integers(1, 12),
    days=st.integers(2, 1_500),
    shared=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_check_slice_is_the_sorted_definition(
    symbols: int, days: int, shared: bool, seed: int
) -> None:
    # Symbols on the same sessions take the path without a sort; others (listed later,
    # suspended) the merge.
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.integers(1, 3, days)) * 86_400_000_000
    parts, run, valid = [], [], []
    for k in range(symbols):
        stamps = base if shared else np.sort(rng.choice(base, rng.integers(1, days + 1), False))
        parts.append(stamps)
        run.append(np.full(stamps.shape[0], k, dtype=np.int32))
        valid.append(rng.random(stamps.shape[0]) < rng.uniform(0.0, 1.0))
    valid[int(rng.integers(symbols))][-1] = True  # at least one value
    frame = pl.DataFrame({"ts": pl.Series(np.concatenate(parts)).cast(TS_DTYPE)})
    frame = frame.with_columns(x=pl.int_range(pl.len()))
    args = (frame, np.concatenate(valid), np.concatenate(run))
    head, later, rows = _check_slice(*args)
    want_head, want_later, want_rows = slice_by_sorting(*args)
    assert head.equals(want_head)
    assert np.array_equal(later, want_later)
    assert (rows is None) == (want_rows is None)
    assert rows is None or np.array_equal(rows, want_rows)


class Peek(SignalStrategy):
    """Trades on tomorrow's close: looks ahead."""

    def targets(self) -> pl.Expr:
        ahead = pl.col("close").shift(-1).over("symbol") > pl.col("close")
        return pl.when(ahead).then(10.0).otherwise(0.0)


def futures_bars(symbol: str, closes: list[float]) -> pl.DataFrame:
    days = sessions(date(2024, 1, 1), date(2024, 12, 31))[: len(closes)]
    return pl.DataFrame(
        {
            "symbol": [symbol] * len(closes),
            "ts": [datetime(d.year, d.month, d.day, 10) for d in days],
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": [1_000] * len(closes),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC").cast(TS_DTYPE))


def test_a_look_ahead_comes_before_the_contract_errors() -> None:
    # The check runs with the targets, before the replay arrays (the lots) are built.
    bars = futures_bars("NOSUCHFUT", [100.0, 101, 99, 102, 98, 103, 97, 104])
    config = BacktestConfig(dataset="mem", strategy="peek", segment="futures")
    peek = LoadedStrategy("peek", Peek(None), "targets", "hash", {})
    with pytest.raises(StrategyError, match="peek looks ahead"):
        simulate(bars, config, strategy=peek)
    with pytest.raises(NotFoundError, match="NOSUCHFUT"):
        simulate(bars, config, strategy=LoadedStrategy("hold", Hold(None), "targets", "h", {}))


class Hold(SignalStrategy):
    """One lot, always: no look-ahead."""

    def targets(self) -> pl.Expr:
        return pl.lit(10.0)
