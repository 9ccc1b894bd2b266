"""Model kinds: batched prediction and hgb training (issue 9).

- batched prediction: the registered kinds' ``score`` on 1 M rows x 10 features (hgb fitted on
  100 k rows with its defaults, logistic on the same), rows per second, median of 5;
- hgb training on 1 M rows x 10 features with its defaults (100 rounds, one fit thread), once;
- lstm (20 sessions x 10 features, 32 units, its fixed 2 intra-op threads): training on 100 k
  sequences x 5 epochs, once; batched prediction on those 100 k sequences (windowing included),
  sequences per second, median of 3; one symbol's latest prediction in the warm process, p50 of
  50 calls. ``lstm`` alone: ``bench_models.py lstm``.

Usage: .venv/bin/python benchmarks/bench_models.py
"""

from __future__ import annotations

import sys
import time

import numpy as np
from timing import median_time

from quantcli.models.kinds import make_kind

FEATURES = tuple(f"f{i}" for i in range(10))
ROWS = 1_000_000


def data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features and a label that depends on two of them, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=rows) > 0).astype(np.int64)
    return x, y


def fitted(kind: str, x: np.ndarray, y: np.ndarray) -> object:
    # No parameters: the kind's defaults.
    model = make_kind(kind, {}, task="classifier", seed=0, features=FEATURES)
    model.fit(x, y)
    return model


def run() -> list[dict[str, object]]:
    x_small, y_small = data(100_000)
    x, y = data(ROWS, seed=1)
    rows: list[dict[str, object]] = []
    for kind, goal in (("hgb", ">= 1 M rows/s"), ("logistic", ">= 5 M rows/s")):
        model = fitted(kind, x_small, y_small)
        seconds = median_time(lambda m=model: m.score(x))  # type: ignore[attr-defined]
        rows.append(
            {
                "benchmark": f"{kind} batched prediction, 1 M rows x 10 features",
                "value": ROWS / seconds / 1e6,
                "unit": "M rows/s",
                "goal": goal,
            }
        )
    start = time.perf_counter()
    fitted("hgb", x, y)
    rows.append(
        {
            "benchmark": "hgb training, 1 M rows x 10 features, 100 rounds",
            "value": time.perf_counter() - start,
            "unit": "s",
            "goal": "< 30 s",
        }
    )
    return rows


def run_lstm() -> list[dict[str, object]]:
    symbols, lookback = 50, 20
    per_symbol = 100_000 // symbols + lookback - 1
    x, y = data(symbols * per_symbol, seed=2)
    groups = np.tile(np.arange(symbols), per_symbol)
    params = {"lookback": lookback, "units": 32, "epochs": 5, "batch_size": 256}
    model = make_kind("lstm", params, task="classifier", seed=0, features=FEATURES)
    start = time.perf_counter()
    model.fit(x, y, groups)
    train_s = time.perf_counter() - start
    batched = median_time(lambda: model.score(x, groups), repeat=3)
    one_x, one_groups = x[-lookback * symbols :], groups[-lookback * symbols :]
    last = one_groups == one_groups[-1]
    calls = []
    for _ in range(50):
        start = time.perf_counter()
        model.score(one_x[last], one_groups[last])
        calls.append(time.perf_counter() - start)
    return [
        {
            "benchmark": "lstm training, 100 k sequences x 5 epochs (20 x 10, 32 units)",
            "value": train_s,
            "unit": "s",
            "goal": "< 120 s",
        },
        {
            "benchmark": "lstm batched prediction, 100 k sequences (20 x 10, 32 units)",
            "value": 100_000 / batched / 1e3,
            "unit": "k sequences/s",
            "goal": ">= 20 k sequences/s",
        },
        {
            "benchmark": "lstm one prediction in a warm process, p50 of 50",
            "value": float(np.median(calls)) * 1e3,
            "unit": "ms",
            "goal": "< 50 ms",
        },
    ]


if __name__ == "__main__":
    for row in run_lstm() if sys.argv[1:] == ["lstm"] else [*run(), *run_lstm()]:
        print(row)
