"""Bars prepared once for many strategies (a sweep's combinations): prepare_bars,
simulate_prepared and the batched target evaluation give what simulate gives for each one,
and metrics_of (from the replay's buffers) equals compute_metrics of the result's frames, bit
for bit."""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_bars

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import BacktestResult, simulate, simulate_prepared
from quantcli.backtest.metrics import compute_metrics, metrics_of, session_returns
from quantcli.backtest.prepare import prepare_bars
from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy, load_strategy
from quantcli.backtest.targets import evaluate_targets
from quantcli.errors import StrategyError
from quantcli.market.corporate_actions import CorporateAction

CONFIG = BacktestConfig(dataset="bars", strategy="sma_cross", costs="flat:0.05%")


def noisy_bars(symbols: int = 3, days: int = 260, seed: int = 7) -> pl.DataFrame:
    """A random walk a symbol: the strategies below trade often, long and short."""
    names = tuple(f"S{k:02d}" for k in range(symbols))
    bars = make_bars(names, date(2022, 1, 3), days)
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.03, bars.height))
    bars = bars.with_columns(pl.col("close") * pl.Series(noise))
    return bars.with_columns(
        pl.max_horizontal("open", "close", "high").alias("high"),
        pl.min_horizontal("open", "close", "low").alias("low"),
    )


ACTIONS = (
    CorporateAction("S00", date(2022, 4, 4), "split", 2.0, 0.0),
    CorporateAction("S01", date(2022, 6, 1), "dividend", 1.0, 3.5),
)


def runs_of(config: BacktestConfig, specs: list[tuple[str, dict[str, str]]]) -> list[Any]:
    out = []
    for name, params in specs:
        cfg = dataclasses.replace(config, strategy=name, params=params)
        out.append((cfg, load_strategy(name, params)))
    return out


def same_run(a: BacktestResult, b: BacktestResult) -> None:
    """The two results hold the same buffers, warnings and identity."""
    for name in ("order_ints", "order_floats", "fill_ints", "fill_floats", "equity"):
        assert np.array_equal(getattr(a.output, name), getattr(b.output, name), equal_nan=True)
    assert np.array_equal(a.output.equity_bar, b.output.equity_bar)
    assert np.array_equal(a.output.event_ints, b.output.event_ints)
    assert (a.config, a.strategy_hash, a.bars, a.warnings) == (
        b.config,
        b.strategy_hash,
        b.bars,
        b.warnings,
    )
    assert np.array_equal(a.ts, b.ts) and a.symbols == b.symbols


SPECS = [
    ("sma_cross", {"fast": "3", "slow": "10"}),
    ("sma_cross", {"fast": "5", "slow": "30", "short": "true"}),
    ("momentum", {"lookback": "20", "top": "1"}),  # features: a batch of its own
    ("sma_cross", {"fast": "3", "slow": "20", "weight": "0.5"}),
    ("momentum", {"lookback": "20", "top": "2"}),  # the same features: batched with the first
    ("momentum", {"lookback": "40", "top": "1"}),
    ("buy_and_hold", {}),
]


@pytest.mark.parametrize("segment", ["delivery", "intraday"])
def test_prepared_runs_are_the_runs_of_simulate(segment: str) -> None:
    bars = noisy_bars()
    config = dataclasses.replace(CONFIG, segment=segment)
    runs = runs_of(config, SPECS)
    shared = prepare_bars(bars, config, ACTIONS)
    results = list(simulate_prepared(shared, runs, dataset_hash="d" * 64))
    assert len(results) == len(runs)
    traded = 0
    for (cfg, strategy), got in zip(runs, results, strict=True):
        want = simulate(bars, cfg, strategy=strategy, actions=ACTIONS, dataset_hash="d" * 64)
        same_run(got, want)
        assert metrics_of(got) == metrics_of(want)
        traded += got.output.fill_ints.shape[0] > 0
    assert traded >= 5  # the runs trade, and differently


def test_batches_bounded_by_memory_give_the_same_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import quantcli.backtest.engine as engine

    bars = noisy_bars()
    runs = runs_of(CONFIG, SPECS)
    shared = prepare_bars(bars, CONFIG)
    whole = list(simulate_prepared(shared, runs))
    # Room for two strategies' targets a batch; replayed on the worker threads too.
    monkeypatch.setattr(engine, "_BATCH_BYTES", 2 * 8 * shared.prep.n)
    for parallel in (False, True):
        again = simulate_prepared(shared, runs, parallel=parallel)
        for a, b in zip(whole, again, strict=True):
            same_run(a, b)


class Peek(SignalStrategy):
    """Looks one bar ahead when ``ahead`` (a look-ahead the check must find)."""

    def __init__(self, ahead: bool) -> None:
        super().__init__(None)
        self.ahead = ahead

    def targets(self) -> pl.Expr:
        close = pl.col("close")
        later = close.shift(-1 if self.ahead else 1).over("symbol")
        return pl.when(later > close).then(10.0).otherwise(0.0)


class Broken(SignalStrategy):
    """Reads a column the bars do not have."""

    def targets(self) -> pl.Expr:
        return pl.col("no_such_column") * 2.0


def loaded(name: str, instance: object) -> LoadedStrategy:
    return LoadedStrategy(name, instance, "targets", "hash", {})


def test_each_strategy_of_a_batch_gets_its_own_verdict() -> None:
    bars = noisy_bars()
    shared = prepare_bars(bars, CONFIG)
    strategies = [
        loaded("honest", Peek(ahead=False)),
        loaded("peek", Peek(ahead=True)),
        loaded("broken", Broken(None)),
        load_strategy("sma_cross", {"fast": "3", "slow": "10"}),
    ]
    futures = evaluate_targets(shared.view, shared.sessions.code, strategies)
    honest, peek, broken, sma = (f.exception() for f in futures)
    assert honest is None and sma is None
    assert isinstance(peek, StrategyError) and "peek looks ahead" in peek.message
    assert isinstance(broken, StrategyError) and "broken: its targets expression failed" in (
        broken.message
    )
    for strategy, future in zip(strategies, futures, strict=True):
        if future.exception() is None:
            config = dataclasses.replace(CONFIG, strategy=strategy.name)
            want = simulate(bars, config, strategy=strategy).output.fill_ints
            got = simulate_prepared(shared, [(config, strategy)])
            assert np.array_equal(next(got).output.fill_ints, want)
    # A run of the batch raises its strategy's error when its turn comes, after the ones before.
    runs = [(dataclasses.replace(CONFIG, strategy=s.name), s) for s in strategies]
    for parallel in (False, True):
        done = simulate_prepared(shared, runs, parallel=parallel)
        assert next(done).config.strategy == "honest"
        with pytest.raises(StrategyError, match="peek looks ahead"):
            next(done)


def test_event_strategies_run_on_prepared_bars(tmp_path: Any) -> None:
    source = tmp_path / "ev.py"
    source.write_text(
        "from quantcli.backtest.strategy import EventStrategy\n"
        "class Every(EventStrategy):\n"
        "    n: int = 5\n"
        "    def on_bar(self, ctx, bar):\n"
        "        if bar.index % self.params.n == 0:\n"
        "            ctx.buy(bar.symbol, 1)\n"
    )
    spec = f"{source}:Every"
    bars = noisy_bars()
    runs = runs_of(CONFIG, [(spec, {"n": "5"}), ("sma_cross", {"fast": "3", "slow": "10"})])
    shared = prepare_bars(bars, CONFIG)
    for (cfg, strategy), got in zip(runs, simulate_prepared(shared, runs), strict=True):
        same_run(got, simulate(bars, cfg, strategy=strategy))


def assert_same_metrics(result: BacktestResult) -> None:
    frames = compute_metrics(
        equity=result.equity,
        trades=result.trades,
        fills=result.fills,
        orders=result.orders.height,
        bars=result.bars,
        initial_cash=result.config.cash,
        risk_free=result.config.risk_free,
    )
    buffers = metrics_of(result)
    assert list(buffers) == list(frames)
    for name, value in frames.items():
        got = buffers[name]
        assert type(got) is type(value), name
        # Bit for bit: floats compared by their bytes (NaN and inf included).
        if isinstance(value, float):
            assert np.float64(got).tobytes() == np.float64(value).tobytes(), name
        else:
            assert got == value, name
    dates, returns = session_returns(result)
    daily = result.equity.group_by(pl.col("ts").dt.date(), maintain_order=True).len()
    assert dates == daily.get_column("ts").to_list()
    assert returns.size == len(dates)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fast=st.integers(2, 8),
    gap=st.integers(1, 30),
    short=st.booleans(),
    segment=st.sampled_from(["delivery", "intraday"]),
    seed=st.integers(0, 1_000),
    risk_free=st.sampled_from([0.0, 0.065]),
)
def test_metrics_from_buffers_are_the_metrics_of_the_frames(
    fast: int, gap: int, short: bool, segment: str, seed: int, risk_free: float
) -> None:
    bars = noisy_bars(2, 120, seed)
    params = {"fast": str(fast), "slow": str(fast + gap), "short": str(short).lower()}
    config = dataclasses.replace(
        CONFIG, params=params, segment=segment, risk_free=risk_free, costs="statutory"
    )
    assert_same_metrics(simulate(bars, config, actions=ACTIONS))


def test_metrics_of_a_run_that_never_trades_and_of_bars_before_any_signal() -> None:
    bars = noisy_bars(1, 40)
    flat = simulate(bars, dataclasses.replace(CONFIG, params={"fast": "50", "slow": "60"}))
    assert flat.output.fill_ints.shape[0] == 0
    assert_same_metrics(flat)
    assert metrics_of(flat)["profit_factor"] is None
    assert math.isclose(float(metrics_of(flat)["final_equity"] or 0), CONFIG.cash)
