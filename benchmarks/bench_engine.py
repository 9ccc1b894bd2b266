"""Backtest engine throughput and memory.

- signal path: 50 symbols x 5,000 five-minute bars, SMA 10/30 cross, 100 shares, next-open fills,
  statutory charges, 5 bps slippage, lot and tick rounding: end-to-end (preparation, signal
  evaluation with the look-ahead check, replay, result frames) and the compiled replay alone.
  The first backtest of a fresh process is timed separately, with an empty numba cache
  (compilation) and with the on-disk cache warm.
- event path: a trivial ``on_bar`` over the same bars.
- 10M bars (200 symbols x 50,000 five-minute bars) through the signal path, peak RSS of a fresh
  process.

Usage: .venv/bin/python benchmarks/bench_engine.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import _run_signals, simulate
from quantcli.backtest.prepare import prepare
from quantcli.backtest.strategy import EventStrategy, LoadedStrategy, load_strategy
from quantcli.market.calendar import sessions

SIGNAL = {"fast": "10", "slow": "30", "qty": "100"}


def daily_bars(n_symbols: int, n_bars: int, seed: int = 0) -> pl.DataFrame:
    """Random-walk daily bars on the last ``n_bars`` NSE sessions up to 2026."""
    days = sessions(date(1997, 1, 1), date(2026, 12, 31))[-n_bars:]
    ts = pl.Series([datetime(d.year, d.month, d.day) for d in days]).dt.replace_time_zone(
        "Asia/Kolkata"
    )
    return _walk(n_symbols, ts, seed)


def intraday_bars(n_symbols: int, n_bars: int, seed: int = 0) -> pl.DataFrame:
    """Random-walk 5-minute bars (75 a session) covering ``n_bars`` bars per symbol."""
    days = sessions(date(2018, 1, 1), date(2026, 12, 31))[: n_bars // 75 + 1]
    base = np.array([np.datetime64(d, "us") for d in days]) + np.timedelta64(
        (9 * 60 + 15) * 60_000_000, "us"
    )
    grid = (base[:, None] + np.arange(75) * np.timedelta64(300_000_000, "us")).ravel()[:n_bars]
    ts = pl.Series(grid).dt.replace_time_zone("Asia/Kolkata")
    return _walk(n_symbols, ts, seed)


def _walk(n_symbols: int, ts: pl.Series, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = ts.len()
    steps = rng.normal(0, 0.01, (n_symbols, n))
    close = 100 * np.exp(np.cumsum(steps, axis=1))
    open_ = close * (1 + rng.normal(0, 0.002, close.shape))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    return pl.DataFrame(
        {
            "symbol": np.repeat([f"S{k:03d}" for k in range(n_symbols)], n),
            "ts": pl.concat([ts] * n_symbols),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": rng.integers(10_000, 1_000_000, n_symbols * n),
        }
    )


def signal_config(**kw: Any) -> BacktestConfig:
    return BacktestConfig(
        dataset="bench",
        strategy="sma_cross",
        params=SIGNAL,
        costs="statutory",
        slippage="bps:5",
        **kw,
    )


class Trivial(EventStrategy):
    def on_bar(self, ctx: Any, bar: Any) -> None:
        pass


def best(fn: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _first_call() -> None:
    # Runs in a fresh process: prints the seconds of the first (compiling) backtest.
    config = signal_config()
    strategy = load_strategy("sma_cross", SIGNAL)
    start = time.perf_counter()
    simulate(daily_bars(1, 40), config, strategy=strategy)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def first_call_seconds(cold: bool) -> float:
    """The first backtest of a fresh process: with an empty numba cache (compile) or warm."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        out = subprocess.run(
            [sys.executable, __file__, "--first-call"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def signal_rows() -> list[dict[str, object]]:
    bars = intraday_bars(50, 5000)
    config = signal_config()
    strategy = load_strategy("sma_cross", SIGNAL)
    simulate(daily_bars(1, 40), config, strategy=strategy)
    end_to_end = best(lambda: simulate(bars, config, strategy=strategy))
    prep = prepare(bars, config, strategy)
    replay = best(lambda: _run_signals(prep, config, strategy, None))
    result = simulate(bars, config, strategy=strategy)
    n = bars.height
    return [
        {
            "benchmark": "engine: first backtest, empty numba cache (compile)",
            "value": first_call_seconds(cold=True),
            "unit": "s",
            "goal": "reported",
        },
        {
            "benchmark": "engine: first backtest, numba cache warm",
            "value": first_call_seconds(cold=False),
            "unit": "s",
            "goal": "reported",
        },
        {
            "benchmark": f"engine: signal end-to-end, {n:,} bars ({result.fills.height:,} fills)",
            "value": n / end_to_end,
            "unit": "bar-events/s",
            "goal": ">= 5M/s",
        },
        {
            "benchmark": "engine: signal compiled replay only",
            "value": n / replay,
            "unit": "bar-events/s",
            "goal": ">= 5M/s",
        },
    ]


def event_rows() -> list[dict[str, object]]:
    bars = intraday_bars(50, 5000)
    config = BacktestConfig(dataset="bench", strategy="trivial", params={})
    strategy = LoadedStrategy("trivial", Trivial(None), "events", "", {})
    simulate(daily_bars(1, 40), config, strategy=strategy)
    seconds = best(lambda: simulate(bars, config, strategy=strategy), repeat=2)
    return [
        {
            "benchmark": f"engine: event trivial on_bar, {bars.height:,} bars",
            "value": bars.height / seconds,
            "unit": "bar-events/s",
            "goal": ">= 200k/s",
        }
    ]


def _ten_million() -> None:
    # Runs in a fresh process: prints {"seconds", "bars", "peak_rss_gib"}.
    bars = intraday_bars(200, 50_000)
    config = signal_config()
    strategy = load_strategy("sma_cross", SIGNAL)
    simulate(daily_bars(1, 40), config, strategy=strategy)
    start = time.perf_counter()
    result = simulate(bars, config, strategy=strategy)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "bars": result.bars, "peak_rss_gib": peak}))


def memory_rows() -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, __file__, "--ten-million"], capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return [
        {
            "benchmark": f"engine: {figures['bars']:,} 5m bars, signal path, peak RSS",
            "value": figures["peak_rss_gib"],
            "unit": "GiB",
            "goal": "< 3 GiB",
        },
        {
            "benchmark": f"engine: {figures['bars']:,} 5m bars, signal path, wall time",
            "value": figures["seconds"],
            "unit": "s",
            "goal": "reported",
        },
    ]


def run() -> list[dict[str, object]]:
    return signal_rows() + event_rows() + memory_rows()


if __name__ == "__main__":
    if sys.argv[1:] == ["--ten-million"]:
        _ten_million()
        sys.exit(0)
    if sys.argv[1:] == ["--first-call"]:
        _first_call()
        sys.exit(0)
    for row in run():
        value = row["value"]
        text = f"{value:,.0f}" if isinstance(value, float) and value > 1000 else f"{value:.3f}"
        print(f"{row['benchmark']:<62} {text:>14} {row['unit']}  (goal {row['goal']})")
