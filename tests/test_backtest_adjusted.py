"""Strategies see split/bonus-adjusted bars: a split on record changes no signal.

The reference for "no change" is the same history adjusted by hand (no action on record): a run
on the raw bars with the split on record must fill on the same dates and sides.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_backtest_engine import Script, loaded, make_bars

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import simulate
from quantcli.backtest.prepare import prepare
from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy, load_strategy
from quantcli.errors import UsageError
from quantcli.market.calendar import sessions
from quantcli.market.corporate_actions import CorporateAction, actions_for

REPO = Path(__file__).resolve().parents[1]
BREAKOUT = f"{REPO / 'examples' / 'breakout.py'}:Breakout"
DAYS = sessions(date(2023, 1, 2), date(2024, 12, 31))


def cfg(strategy: str, **params: str) -> BacktestConfig:
    return BacktestConfig(dataset="t", strategy=strategy, params=params, costs="flat:0%")


def wave_bars(symbol: str, n: int, *, split_at: int | None, ratio: float) -> pl.DataFrame:
    """Daily bars whose close swings slowly (so SMA crosses and channel breakouts happen),
    traded prices divided by ``ratio`` from bar ``split_at`` on (an unadjusted split)."""
    k = np.arange(n, dtype=np.float64)
    close = 500.0 + 120.0 * np.sin(k / 9.0) + 40.0 * np.sin(k / 3.1) + k
    scale = np.where(k >= split_at, 1.0 / ratio, 1.0) if split_at is not None else np.ones(n)
    opens = np.r_[close[0], close[:-1]] * (1.0 + 0.004 * np.cos(k))
    frame = pl.DataFrame(
        {
            "symbol": symbol,
            "ts": [datetime(d.year, d.month, d.day) for d in DAYS[:n]],
            "open": np.round(opens * scale, 2),
            "high": np.round(np.maximum(opens, close) * 1.01 * scale, 2),
            "low": np.round(np.minimum(opens, close) * 0.99 * scale, 2),
            "close": np.round(close * scale, 2),
            "volume": np.round(1_000_000 / scale).astype(np.int64),
        }
    )
    return frame.with_columns(pl.col("ts").dt.replace_time_zone("Asia/Kolkata"))


def by_hand(bars: pl.DataFrame, ex: date, ratio: float) -> pl.DataFrame:
    """Back-adjust by hand: prices before the ex-date divided by the ratio, volumes times it."""
    before = pl.col("ts").dt.date() < ex
    prices = [
        pl.when(before).then(pl.col(c) / ratio).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    ]
    volume = pl.when(before).then(pl.col("volume") * ratio).otherwise(pl.col("volume"))
    return bars.with_columns(*prices, volume.round(0).cast(pl.Int64).alias("volume"))


def dates_and_sides(result: Any) -> list[tuple[date, str]]:
    fills = result.fills
    return list(zip(fills["ts"].dt.date().to_list(), fills["side"].to_list(), strict=True))


SIGNALS = [
    ("sma_cross", {"fast": "5", "slow": "20", "qty": "100"}),
    ("sma_cross", {"fast": "5", "slow": "20", "weight": "0.5"}),
    (BREAKOUT, {"lookback": "10", "exit_lookback": "5", "qty": "100"}),
]


@pytest.mark.parametrize(("spec", "params"), SIGNALS)
def test_split_on_record_fills_as_the_hand_adjusted_history(
    spec: str, params: dict[str, str]
) -> None:
    split_at, ratio = 150, 5.0
    raw = wave_bars("AAA", 300, split_at=split_at, ratio=ratio)
    ex = raw["ts"][split_at].date()
    split = [CorporateAction("AAA", ex, "split", ratio, 0.0)]
    config = cfg(spec, **params)
    on_record = simulate(raw, config, actions=split)
    hand = simulate(by_hand(raw, ex, ratio), config)
    expected = dates_and_sides(hand)
    assert dates_and_sides(on_record) == expected
    assert any(d >= ex for d, _ in expected)  # trades after the split too
    # Without the split on record the traded prices drop 80% and the signals change.
    assert dates_and_sides(simulate(raw, config)) != expected


def jswsteel(shared_data: Path) -> pl.DataFrame:
    """JSWSTEEL's real daily bars 2015-2018 (raw: the 10:1 split ex 2017-01-04 is a gap)."""
    frame = pl.read_csv(shared_data / "nse_daily" / "JSWSTEEL.csv")
    return (
        frame.select(
            pl.lit("JSWSTEEL").alias("symbol"),
            pl.col("Date").str.to_datetime("%d-%m-%Y").dt.replace_time_zone("Asia/Kolkata"),
            pl.col("Open").alias("open"),
            pl.col("High").alias("high"),
            pl.col("Low").alias("low"),
            pl.col("Close").alias("close"),
            pl.col("Volume").cast(pl.Int64).alias("volume"),
        )
        .rename({"Date": "ts"})
        .filter(pl.col("ts").dt.year().is_between(2015, 2018))
    )


@pytest.mark.parametrize(("spec", "params"), SIGNALS)
def test_real_jswsteel_split_fills_as_the_hand_adjusted_history(
    shared_data: Path, spec: str, params: dict[str, str]
) -> None:
    raw = jswsteel(shared_data)
    split = actions_for(["JSWSTEEL"])  # the bundled table has the 10:1 split ex 2017-01-04
    assert [(a.ex_date, a.ratio) for a in split] == [(date(2017, 1, 4), 10.0)]
    config = cfg(spec, **params)
    on_record = simulate(raw, config, actions=split)
    hand = simulate(by_hand(raw, date(2017, 1, 4), 10.0), config)
    expected = dates_and_sides(hand)
    assert len(expected) > 10 and any(d >= date(2017, 1, 4) for d, _ in expected)
    assert dates_and_sides(on_record) == expected


@pytest.mark.parametrize("name", ["sma_cross", "momentum", "buy_and_hold"])
def test_look_ahead_check_passes_for_builtins_on_split_data(name: str) -> None:
    bars = pl.concat(
        [
            wave_bars("AAA", 200, split_at=90, ratio=5.0),
            wave_bars("BBB", 200, split_at=None, ratio=1.0),
            wave_bars("CCC", 200, split_at=40, ratio=2.0),
        ]
    )
    actions = [
        CorporateAction("AAA", bars["ts"][90].date(), "split", 5.0, 0.0),
        CorporateAction("CCC", bars["ts"][40].date(), "bonus", 2.0, 0.0),
    ]
    params = {"lookback": "20", "top": "1"} if name == "momentum" else {}
    result = simulate(bars, cfg(name, **params), actions=actions)  # raises on a look-ahead
    assert result.fills.height > 0


class Echo(SignalStrategy):
    """Targets one column of the strategy's view, to read what a strategy sees."""

    def __init__(self, column: str) -> None:
        super().__init__(None)
        self.column = column

    def targets(self) -> pl.Expr:
        return pl.col(self.column).cast(pl.Float64)


def seen(bars: pl.DataFrame, column: str, actions: list[CorporateAction]) -> list[float]:
    """``column`` as the strategy sees it, per bar in (ts, symbol) order."""
    strategy: LoadedStrategy = loaded(Echo(column), "targets")
    return prepare(bars, cfg("x"), strategy, actions).target.tolist()


def test_strategies_see_adjusted_prices_beside_raw_ones() -> None:
    bars = wave_bars("AAA", 6, split_at=3, ratio=5.0).with_columns(
        prev_close=pl.col("close").shift(1)
    )
    ex = bars["ts"][3].date()
    split = [CorporateAction("AAA", ex, "split", 5.0, 0.0)]
    raw_close = bars["close"].to_list()
    assert seen(bars, "raw_close", split) == raw_close
    assert seen(bars, "close", split) == pytest.approx(
        raw_close[:3] + [c * 5 for c in raw_close[3:]]
    )
    assert seen(bars, "volume", split) == pytest.approx([1e6] * 6)
    assert seen(bars, "raw_volume", split) == [1e6] * 3 + [5e6] * 3
    assert seen(bars, "raw_prev_close", split)[1:] == raw_close[:-1]
    # No action on record (or one before the first bar, already in the prices): raw values.
    assert seen(bars, "close", []) == raw_close
    early = [CorporateAction("AAA", date(2022, 6, 1), "split", 5.0, 0.0)]
    assert seen(bars, "close", early) == raw_close
    # A dividend adjusts nothing (not a split or bonus).
    dividend = [CorporateAction("AAA", ex, "dividend", 1.0, 3.0)]
    assert seen(bars, "close", dividend) == raw_close


def test_event_bars_fills_and_order_prices_use_adjusted_units() -> None:
    bars = wave_bars("AAA", 8, split_at=3, ratio=5.0)
    ex = bars["ts"][3].date()
    split = [CorporateAction("AAA", ex, "split", 5.0, 0.0)]
    closes: list[tuple[float, float]] = []

    def look(ctx: Any, bar: Any) -> None:
        closes.append((bar.close, bar.raw_close))

    def buy_limit(ctx: Any, bar: Any) -> None:
        look(ctx, bar)
        # A limit at the adjusted high: a traded limit 5x too high would fill at the open too,
        # so the order frame's traded limit price is what proves the conversion.
        ctx.buy("AAA", 10, limit=bar.high)

    script = Script({k: look for k in range(8)} | {4: buy_limit})
    result = simulate(bars, cfg("x"), strategy=loaded(script, "events"), actions=split)
    raw = bars["close"].to_list()
    assert closes == [(c * (5.0 if k >= 3 else 1.0), c) for k, c in enumerate(raw)]
    order = result.orders.row(0, named=True)
    assert order["limit_price"] == pytest.approx(bars["high"][4], abs=0.05)
    fill = script.fills[0]
    assert fill.raw_price == result.fills["price"][0]
    assert fill.price == pytest.approx(fill.raw_price * 5.0)


@st.composite
def split_histories(draw: Any) -> tuple[pl.DataFrame, list[CorporateAction], int]:
    n = draw(st.integers(3, 40))
    frames, actions = [], []
    for symbol in draw(st.sampled_from([["AAA"], ["AAA", "BBB"]])):
        closes = draw(st.lists(st.floats(10, 1000), min_size=n, max_size=n))
        first = draw(st.integers(0, 5))  # symbols start on different days
        days = DAYS[first : first + n]
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": pl.Series([datetime(d.year, d.month, d.day) for d in days]),
                    "open": closes,
                    "high": [c * 1.01 for c in closes],
                    "low": [c * 0.99 for c in closes],
                    "close": closes,
                    "volume": 1000,
                }
            ).with_columns(pl.col("ts").dt.replace_time_zone("Asia/Kolkata"))
        )
        for _ in range(draw(st.integers(0, 3))):
            day = DAYS[draw(st.integers(0, n + 8))]
            ratio = draw(st.sampled_from([1.5, 2.0, 5.0, 10.0]))
            kind = draw(st.sampled_from(["split", "bonus"]))
            actions.append(CorporateAction(symbol, day, kind, ratio, 0.0))
    cut = draw(st.integers(1, n - 1))
    return pl.concat(frames), actions, cut


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_histories())
def test_adjusted_values_do_not_depend_on_later_bars(
    case: tuple[pl.DataFrame, list[CorporateAction], int],
) -> None:
    bars, actions, cut = case
    last = bars.sort("ts")["ts"].unique()[cut]
    truncated = bars.filter(pl.col("ts") <= last)
    for column in ("close", "volume", "raw_close"):
        full = seen(bars, column, actions)
        part = seen(truncated, column, actions)
        assert full[: len(part)] == part


def test_working_orders_are_converted_on_the_ex_date() -> None:
    # Flat at 100 until a 1:5 split (traded 20 after it), then a dip to 19 (adjusted 95).
    rows = [(100.0, 101.0, 99.0, 100.0, 10**6)] * 3 + [(20.0, 20.2, 19.8, 20.0, 5 * 10**6)] * 2
    rows += [(20.0, 20.0, 19.0, 19.5, 5 * 10**6)]
    bars = make_bars({"AAA": rows}, start=date(2023, 1, 2))
    split = [CorporateAction("AAA", bars["ts"][3].date(), "split", 5.0, 0.0)]
    script = Script({1: lambda c, b: c.buy("AAA", 10, limit=95.0, tif="GTC")})
    result = simulate(bars, cfg("x"), strategy=loaded(script, "events"), actions=split)
    order = result.orders.row(0, named=True)
    assert (order["quantity"], order["limit_price"], order["status"]) == (50, 19.0, "filled")
    assert result.fills["price"].to_list() == [19.0]
    assert result.fills["ts"][0] == bars["ts"][5]
    # The same order on the hand-adjusted history fills on the same bar.
    hand = simulate(
        by_hand(bars, bars["ts"][3].date(), 5.0),
        cfg("x"),
        strategy=loaded(
            Script({1: lambda c, b: c.buy("AAA", 10, limit=95.0 / 5, tif="GTC")}), "events"
        ),
    )
    assert hand.fills["ts"].to_list() == result.fills["ts"].to_list()


def test_backtest_warns_about_suspected_unadjusted_splits() -> None:
    raw = wave_bars("AAA", 200, split_at=150, ratio=5.0)
    ex = raw["ts"][150].date()
    warned = simulate(raw, cfg("sma_cross"))
    assert len(warned.warnings) == 1
    assert warned.warnings[0].startswith(f"suspected_split: (AAA, {ex.isoformat()}) opens -")
    split = [CorporateAction("AAA", ex, "split", 5.0, 0.0)]
    assert simulate(raw, cfg("sma_cross"), actions=split).warnings == ()
    # Any action on record that day explains the gap to data validate; the backtest reuses
    # its rule.
    dividend = [CorporateAction("AAA", ex, "dividend", 1.0, 2.0)]
    assert simulate(raw, cfg("sma_cross"), actions=dividend).warnings == ()
    # Futures runs apply no corporate actions, so there is no "on record" to compare with.
    nifty = raw.with_columns(symbol=pl.lit("NIFTY"))
    futures = BacktestConfig(dataset="t", strategy="buy_and_hold", segment="futures")
    assert simulate(nifty, futures).warnings == ()


def test_many_suspected_splits_end_with_a_count() -> None:
    bars = pl.concat([wave_bars(f"S{k:02d}", 60, split_at=30, ratio=2.0) for k in range(25)])
    warnings = simulate(bars, cfg("buy_and_hold")).warnings
    assert len(warnings) == 21
    assert warnings[-1] == "suspected_split: 5 more (quantcli data validate lists them)"


def test_qty_with_weight_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="-p qty and -p weight are alternatives"):
        load_strategy("sma_cross", {"qty": "5", "weight": "0.5"})
    assert load_strategy("sma_cross", {"weight": "0.5"}).kind == "weights"


def test_share_targets_below_a_lot_are_refused_but_whole_lots_trade() -> None:
    bars = wave_bars("NIFTY", 80, split_at=None, ratio=1.0)
    futures = BacktestConfig(
        dataset="t", strategy="sma_cross", params={"qty": "49"}, segment="futures"
    )
    with pytest.raises(UsageError, match=r"targets 49 NIFTY on 2023-\S+, below the futures lot"):
        simulate(bars, futures)
    whole = BacktestConfig(
        dataset="t", strategy="sma_cross", params={"qty": "75"}, segment="futures"
    )
    assert set(simulate(bars, whole).fills["quantity"].to_list()) == {50}
