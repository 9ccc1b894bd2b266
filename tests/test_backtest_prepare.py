"""prepare builds the replay arrays in (ts, symbol) order in linear passes, with the market
rules of quantcli.market: checked here against a plain numpy reference (a sort of all bars)
on ragged, intraday and sub-minute bars, full panels and chunked frames, and the lot,
square-off and split-warning rules."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.backtest import arrays
from quantcli.backtest import prepare as preparation
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import simulate
from quantcli.backtest.inputs import EOD, LAST_OF_TS, SQUARE_OFF, previous_close
from quantcli.backtest.prepare import prepare
from quantcli.backtest.replay_order import _time_positions
from quantcli.backtest.sessions import symbol_codes
from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy
from quantcli.errors import CoverageError, StrategyError
from quantcli.market.calendar import sessions
from quantcli.market.segments import MIS_SQUARE_OFF, segment_rules
from quantcli.store.schema import TS_DTYPE
from quantcli.store.validate import suspected_splits

IST_US = 19_800 * 1_000_000
DAY_US = 86_400 * 1_000_000
DAYS = sessions(date(2024, 1, 1), date(2024, 3, 31))


class Hold(SignalStrategy):
    """Target ``qty`` shares on every bar."""

    def __init__(self, qty: float = 1.0) -> None:
        super().__init__(None)
        self.qty = qty

    def targets(self) -> pl.Expr:
        return pl.lit(self.qty)


def hold(qty: float = 1.0) -> LoadedStrategy:
    return LoadedStrategy("hold", Hold(qty), "targets", "hash", {})


def bars_at(stamps: dict[str, list[int]], seed: int = 0) -> pl.DataFrame:
    """Bars at the given epoch-µs stamps per symbol (sorted by symbol, ts), prices near 100."""
    rng = np.random.default_rng(seed)
    symbols = [s for s, ts in stamps.items() for _ in ts]
    utc = np.array([t for ts in stamps.values() for t in ts], dtype=np.int64)
    close = rng.uniform(99, 101, utc.shape[0]).round(2)  # no overnight gap near a split's
    return pl.DataFrame(
        {
            "symbol": symbols,
            "ts": pl.Series(utc).cast(TS_DTYPE),
            "open": close + 1,
            "high": close + 2,
            "low": close - 2,
            "close": close,
            "volume": rng.integers(1, 10_000, utc.shape[0]),
        }
    )


def session_stamp(day: int, minute: int, second: int = 0) -> int:
    """The epoch-µs of ``minute`` minutes (and ``second`` s) after 09:15 IST on session ``day``."""
    d = DAYS[day]
    local = datetime(d.year, d.month, d.day, 9, 15) + timedelta(minutes=minute, seconds=second)
    return int((local - datetime(1970, 1, 1)).total_seconds() * 1_000_000) - IST_US


@st.composite
def ragged_bars(draw: st.DrawFn) -> pl.DataFrame:
    # Up to 150 symbols (more than one block of the scatter), each on its own subset of a grid
    # of session minutes, some with seconds (the fallback sort).
    n_symbols = draw(st.integers(1, 150))
    seconds = draw(st.sampled_from([0, 0, 30]))
    grid = [session_stamp(d, m, seconds if m % 2 else 0) for d in range(6) for m in (0, 5, 370)]
    stamps = {}
    for k in range(n_symbols):
        mine = draw(st.lists(st.sampled_from(grid), min_size=1, max_size=12, unique=True))
        stamps[f"S{k:03d}"] = sorted(mine)
    return bars_at(stamps, draw(st.integers(0, 3)))


@settings(max_examples=60)
@given(bars=ragged_bars(), segment=st.sampled_from(["delivery", "intraday"]))
def test_replay_arrays_are_the_bars_sorted_by_ts_then_symbol(
    bars: pl.DataFrame, segment: str
) -> None:
    assert_replay_order(bars, segment)


@st.composite
def panels(draw: st.DrawFn) -> pl.DataFrame:
    # Every symbol on the same stamps (the transpose, without positions), or one symbol short
    # of one stamp (the counting sort), in 1-4 chunks as a frame read from Parquet comes, with
    # or without the input's own previous close (nulls: derived).
    n_symbols = draw(st.integers(1, 150))
    grid = [session_stamp(d, m) for d in range(4) for m in (0, 5, 370)]
    mine = sorted(draw(st.lists(st.sampled_from(grid), min_size=1, max_size=12, unique=True)))
    stamps = {f"S{k:03d}": mine for k in range(n_symbols)}
    if draw(st.booleans()) and len(mine) > 1:
        stamps["S000"] = mine[1:]
    bars = bars_at(stamps, draw(st.integers(0, 3)))
    if draw(st.booleans()):
        given = pl.Series(
            draw(st.lists(st.none() | st.just(99.5), min_size=bars.height, max_size=bars.height)),
            dtype=pl.Float64,
        )
        bars = bars.with_columns(prev_close=given)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, bars.height - 1)), max_size=3)))
    edges = [0, *(c for c in cuts if c < bars.height), bars.height]
    parts = [bars.slice(a, b - a) for a, b in itertools.pairwise(edges)]
    return pl.concat(parts, rechunk=False)


@settings(max_examples=60)
@given(bars=panels(), segment=st.sampled_from(["delivery", "intraday"]))
def test_full_panels_and_chunked_frames_give_the_same_replay_arrays(
    bars: pl.DataFrame, segment: str
) -> None:
    assert_replay_order(bars, segment)


def assert_replay_order(bars: pl.DataFrame, segment: str) -> None:
    """prepare's replay arrays of ``bars`` (sorted by symbol, ts) equal a sort of all bars."""
    prep = prepare(bars, BacktestConfig(dataset="t", strategy="hold", segment=segment), hold())
    utc = bars["ts"].cast(pl.Int64).to_numpy()
    code = bars["symbol"].rle_id().to_numpy().astype(np.int64)
    order = np.lexsort((code, utc))  # the reference: one sort of all bars
    assert prep.ts.tolist() == utc[order].tolist()
    assert prep.bars.sym.tolist() == code[order].tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert getattr(prep.bars, name).tolist() == bars[name].cast(pl.Float64)[order].to_list()
    # The previous close is the input's when given, else the symbol's previous bar's, and EOD
    # marks its last bar of a day.
    prev = np.r_[np.nan, bars["close"].to_numpy()[:-1]]
    prev[np.r_[True, code[1:] != code[:-1]]] = np.nan
    if "prev_close" in bars.columns:
        given = bars["prev_close"].to_numpy()
        prev = np.where(np.isnan(given), prev, given)
    # (read as the fills read it: a full panel keeps no column of it)
    seen = [previous_close(prep.bars, i) for i in range(prep.n)]
    assert np.array_equal(seen, prev[order], equal_nan=True)
    stamps = bars.group_by("symbol", maintain_order=True).agg("ts")["ts"].to_list()
    full = all(t == stamps[0] for t in stamps) and "prev_close" not in bars.columns
    assert prep.bars.panel == (len(stamps) if full else 0)
    local = utc + IST_US
    day = local // DAY_US
    last = np.r_[(code[1:] != code[:-1]) | (day[1:] != day[:-1]), True]
    flags = prep.bars.flags
    assert ((flags & EOD) != 0).tolist() == last[order].tolist()
    ts = utc[order]
    assert ((flags & LAST_OF_TS) != 0).tolist() == np.r_[ts[1:] != ts[:-1], True].tolist()
    # The square-off time is the market model's (intraday only).
    cutoff = (MIS_SQUARE_OFF.hour * 60 + MIS_SQUARE_OFF.minute) * 60_000_000
    squared = (local % DAY_US >= cutoff) & (segment == "intraday")
    assert ((flags & SQUARE_OFF) != 0).tolist() == squared[order].tolist()
    assert prep.n_ts == np.unique(utc).shape[0]
    assert np.array_equal(prep.bars.target, np.ones(bars.height))


@given(
    stamps=st.one_of(
        st.lists(st.integers(0, 10**12), min_size=1, max_size=200),
        st.lists(st.integers(0, 10**6).map(lambda m: m * 60_000_000), min_size=1, max_size=200),
    ),
    n_symbols=st.integers(1, 5),
)
def test_time_positions_are_a_stable_sort_by_time(stamps: list[int], n_symbols: int) -> None:
    # Any stamps, grouped by symbol: off the minute (the fallback sort), or on whole minutes
    # (the counting sort, or the sort again when the stamps are too sparse for its table).
    utc = np.array(stamps, dtype=np.int64)
    code = np.arange(utc.shape[0]) % n_symbols
    by_symbol = np.lexsort((utc, code))
    utc, code = utc[by_symbol], code[by_symbol]
    day = (utc + IST_US) // DAY_US
    day_of = np.unique(day, return_inverse=True)[1].astype(np.int64)
    pos = _time_positions(utc, day_of, int(day_of.max()) + 1)
    expected = np.empty_like(pos)
    expected[np.argsort(utc, kind="stable")] = np.arange(utc.shape[0])
    assert pos.tolist() == expected.tolist()


def test_segment_rules_decide_the_compiled_parameters() -> None:
    from quantcli.backtest.kernel import params_for

    for segment, short, futures, intraday in (
        ("delivery", False, False, False),
        ("intraday", True, False, True),
        ("futures", True, True, False),
        ("options", True, False, False),
    ):
        params = params_for(BacktestConfig(dataset="t", strategy="x", segment=segment))
        assert params.shortable is False  # shorts only when the run allows them
        allowed = BacktestConfig(dataset="t", strategy="x", segment=segment, allow_short=True)
        assert (params_for(allowed).shortable, params.futures, params.intraday) == (
            short,
            futures,
            intraday,
        )
        assert params.intraday == (segment_rules(segment).square_off is not None)


def test_lots_come_from_the_master_and_a_bar_it_does_not_cover_is_an_error() -> None:
    days = sessions(date(2024, 1, 1), date(2024, 12, 31))
    stamps = [
        int((datetime(d.year, d.month, d.day) - datetime(1970, 1, 1)).total_seconds() * 1e6)
        - IST_US
        for d in days
    ]
    bars = bars_at({"NIFTY": stamps})
    config = BacktestConfig(dataset="t", strategy="hold", segment="futures", costs="flat:0%")
    prep = prepare(bars, config, hold(75.0))
    from quantcli.market.instruments import lot_size

    assert prep.bars.lot.tolist() == [float(lot_size("NIFTY", d, "futures")) for d in days]
    early = bars_at({"NIFTY": [s - 6 * 365 * DAY_US for s in stamps[:3]]})
    with pytest.raises(CoverageError, match="no lot size for NIFTY on 2018-"):
        prepare(early, config, hold(75.0))


def test_split_warnings_equal_the_validators_on_the_whole_frame() -> None:
    # One symbol of five gaps 50% overnight, one gaps just past the threshold: the backtest's
    # warnings (checked on the suspect symbols only) are the validator's on every bar.
    grid = [session_stamp(d, 0) for d in range(6)]
    bars = bars_at({f"S{k}": grid for k in range(5)}).sort("symbol", "ts")
    close = bars["close"].to_numpy().copy()
    opens = bars["open"].to_numpy().copy()
    opens[3] = close[2] * 0.5  # S0 on session 3
    opens[6 * 2 + 4] = close[6 * 2 + 3] * 1.351  # S2 on session 4: a 35.1% move
    bars = bars.with_columns(open=pl.Series(opens), high=pl.Series(np.maximum(opens, close) + 2))
    found, count = suspected_splits(bars.with_columns(pl.col("symbol").set_sorted()), [])
    assert count == 2
    warnings = simulate(
        bars, BacktestConfig(dataset="t", strategy="hold"), strategy=hold()
    ).warnings
    assert [w.split(" If so")[0] for w in warnings] == [
        f"suspected_split: {f.message}" for f in found
    ]


@pytest.mark.parametrize("cut", [1, 3, 4, 9, 15])
def test_split_warnings_see_a_gap_across_a_chunk_boundary(cut: int) -> None:
    # S0 gaps 50% on session 3 (row 3) and S1 on session 2 (row 8): each compares a bar's open
    # with the previous row's close, which a chunk cut at ``cut`` may put in another chunk.
    grid = [session_stamp(d, 0) for d in range(6)]
    bars = bars_at({"S0": grid, "S1": grid, "S2": grid}).sort("symbol", "ts")
    close = bars["close"].to_numpy()
    opens = bars["open"].to_numpy().copy()
    opens[3], opens[8] = close[2] * 0.5, close[7] * 2.0
    bars = bars.with_columns(open=pl.Series(opens), high=pl.Series(np.maximum(opens, close) + 2))
    chunked = pl.concat([bars.slice(0, cut), bars.slice(cut)], rechunk=False)
    assert chunked.n_chunks() == 2
    config = BacktestConfig(dataset="t", strategy="hold")
    whole = simulate(bars, config, strategy=hold()).warnings
    assert len(whole) == 2
    assert simulate(chunked, config, strategy=hold()).warnings == whole


class Peek(SignalStrategy):
    """Long when tomorrow's close is higher: a look-ahead."""

    def __init__(self) -> None:
        super().__init__(None)

    def targets(self) -> pl.Expr:
        ahead = pl.col("close").shift(-1).over("symbol") > pl.col("close")
        return ahead.cast(pl.Float64) * 10


@pytest.mark.parametrize(("inline", "overlap"), [(0, 0), (0, 10**9), (10**9, 0)])
def test_evaluating_before_or_beside_the_arrays_gives_the_same_run(
    monkeypatch: pytest.MonkeyPatch, inline: int, overlap: int
) -> None:
    # Above _OVERLAP_BARS the strategy is evaluated (and checked) before the replay arrays are
    # built, below it beside them on a worker (at or above _INLINE_BARS): same fills, same
    # equity, and a look-ahead is still the error raised.
    grid = [session_stamp(d, 0) for d in range(len(DAYS))]
    bars = bars_at({f"S{k}": grid for k in range(3)})
    config = BacktestConfig(dataset="t", strategy="sma_cross", params={"fast": "2", "slow": "5"})
    expected = simulate(bars, config)
    monkeypatch.setattr(preparation, "_INLINE_BARS", inline)
    monkeypatch.setattr(preparation, "_OVERLAP_BARS", overlap)
    got = simulate(bars, config)
    assert expected.fills.height > 0
    assert got.fills.equals(expected.fills) and got.equity.equals(expected.equity)
    peek = LoadedStrategy("peek", Peek(), "targets", "hash", {})
    with pytest.raises(StrategyError, match="strategy peek looks ahead"):
        simulate(bars, config, strategy=peek)


@pytest.mark.parametrize("inline", [0, 10**9])
def test_a_lookahead_outranks_the_replays_error(
    monkeypatch: pytest.MonkeyPatch, inline: int
) -> None:
    # The look-ahead check runs beside the replay on a worker (at or above _INLINE_BARS):
    # a replay that fails first (an order rejected under on_reject=error) still reports the
    # look-ahead, as when the check ran before it.
    grid = [session_stamp(d, 0) for d in range(len(DAYS))]
    bars = bars_at({f"S{k}": grid for k in range(3)})
    monkeypatch.setattr(preparation, "_INLINE_BARS", inline)
    config = BacktestConfig(dataset="t", strategy="x", cash=1.0, on_reject="error")
    with pytest.raises(StrategyError, match=r"rejected: .*on_reject=error"):
        simulate(bars, config, strategy=hold(10.0))
    peek = LoadedStrategy("peek", Peek(), "targets", "hash", {})
    with pytest.raises(StrategyError, match="strategy peek looks ahead"):
        simulate(bars, config, strategy=peek)


@given(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=30), st.booleans())
def test_symbol_codes_are_each_rows_index_into_the_sorted_symbols(
    names: list[str], grouped: bool
) -> None:
    # Grouped in sorted order (the run-number path, one symbol included), or any order (the
    # Enum path; a column that starts and ends with one symbol need not hold only it).
    names = sorted(names) if grouped else names
    symbols, code = symbol_codes(pl.Series(names, dtype=pl.String))
    assert symbols == sorted(set(names))
    assert [symbols[c] for c in code.tolist()] == names


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux's smaps needed")
def test_big_replay_arrays_are_not_on_huge_pages() -> None:
    # numpy advises huge pages from 4 MiB on; on a busy machine their first touch waits for
    # the kernel to compact memory. The advice is taken back before the array is written.
    array = arrays.empty((3, 1 << 20), np.float64)
    array[:] = 1.0
    assert array.shape == (3, 1 << 20) and array.flags.writeable
    start = array.ctypes.data + 4096  # a whole page inside the array
    flags, inside = "", False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            low, high = (int(x, 16) for x in fields[0].split("-"))
            inside = low <= start < high
        elif inside and fields[0] == "VmFlags:":
            flags = line
    assert " nh" in flags and " hg" not in flags
