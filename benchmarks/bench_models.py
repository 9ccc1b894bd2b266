"""Model kinds: batched prediction and hgb training (issue 9).

- batched prediction: the registered kinds' ``score`` on 1 M rows x 10 features (hgb fitted on
  100 k rows with its defaults, logistic on the same), rows per second, median of 5 (hgb: 7);
  for hgb, quantcli's bitvector scorer and scikit-learn's own ``predict_proba`` alternate, one
  call each for ROUNDS rounds (this shared machine drifts by tens of percent within minutes),
  with the same-run ratio, the check that both give the same bits, and the scorer's numba
  compile time on an empty cache (a fresh process);
- hgb training on 1 M rows x 10 features with its defaults (100 rounds, one fit thread), once;
- lstm (20 sessions x 10 features, 32 units, its fixed 2 intra-op threads): training on 100 k
  sequences x 5 epochs, once; batched prediction on those 100 k sequences (windowing included),
  sequences per second, median of 3; one symbol's latest prediction in the warm process, p50 of
  50 calls. ``lstm`` alone: ``bench_models.py lstm``; the others alone: ``bench_models.py sklearn``;
- predictions (issue 11, ``bench_models.py predict``): ``quantcli model predict`` of a 1 M-row
  feature set (400 symbols x 2,500 sessions x 10 features) with hgb (100 rounds, fitted on its
  first 100 k rows) as a fresh process writing a Parquet file, wall time, median of 3; in that
  process's log line, the audit log's time against the prediction's; and a warm one-row
  prediction (``Predictor``, one symbol, one day, audit batch included) for every kind, p50
  of 50 calls.
- ``model compare`` (issue 11) with 1,000 stationary-bootstrap resamples over 5 years of daily
  data for 50 symbols: two models (hgb, logistic on direction:5, basic features) trained on the
  18 months before the window of a synthetic dataset (not timed), then the command in a fresh
  process (imports, loading, features and labels, scoring, metrics, bootstrap), wall, median of
  3, and the library call in a warm process. Alone: ``bench_models.py compare``.

Usage: .venv/bin/python benchmarks/bench_models.py
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_time

from quantcli.models.kinds import make_kind

FEATURES = tuple(f"f{i}" for i in range(10))
ROWS = 1_000_000
ROUNDS = 7  # alternating quantcli / scikit-learn hgb prediction rounds, one call each
# First minus second score of a small hgb model in a fresh process: the numba compile.
COMPILE_PROBE = """
import json, time
import numpy as np
from quantcli.models.kinds import make_kind
# A batch as large as HistGradientBoosting.TABLE_ROWS: smaller ones skip the scorer.
x = np.random.default_rng(0).normal(size=(50_000, 10))
model = make_kind("hgb", {"max_iter": 5}, task="classifier", seed=0, features=tuple("abcdefghij"))
model.fit(x[:2000], (x[:2000, 0] > 0).astype(np.int64))
times = []
for _ in range(2):
    start = time.perf_counter()
    model.score(x)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


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


def compile_seconds() -> float:
    """The hgb scorer's numba compile time: a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", COMPILE_PROBE], env=env, capture_output=True, check=True
        )
    first, warm = json.loads(out.stdout)
    return float(first - warm)


def hgb_prediction(
    x_small: np.ndarray, y_small: np.ndarray, x: np.ndarray
) -> list[dict[str, object]]:
    """quantcli's hgb score against scikit-learn's predict_proba on the same fitted model."""
    model = fitted("hgb", x_small, y_small)
    estimator = model.model  # type: ignore[attr-defined]
    same = np.array_equal(model.score(x), estimator.predict_proba(x)[:, 1])  # type: ignore[attr-defined]
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(ROUNDS):
        ours.append(median_time(lambda: model.score(x), repeat=1))  # type: ignore[attr-defined]
        theirs.append(median_time(lambda: estimator.predict_proba(x), repeat=1))
    ratios = sorted(t / o for o, t in zip(ours, theirs, strict=True))
    return [
        {
            "benchmark": f"hgb batched prediction, 1 M rows x 10 features (median of {ROUNDS})",
            "value": ROWS / statistics.median(ours) / 1e6,
            "unit": "M rows/s",
            "goal": ">= 1 M rows/s",
        },
        {
            "benchmark": "  scikit-learn predict_proba, same model, alternating rounds",
            "value": ROWS / statistics.median(theirs) / 1e6,
            "unit": "M rows/s",
            "goal": "",
        },
        {
            "benchmark": "  quantcli / scikit-learn speed, per-round ratios lowest .. highest",
            "value": f"{ratios[0]:.1f} .. {ratios[-1]:.1f}",
            "unit": "x",
            "goal": "",
        },
        {
            "benchmark": "  the same bits as predict_proba",
            "value": same,
            "unit": "",
            "goal": "True",
        },
        {
            "benchmark": "  numba compile of the scorer, empty cache, fresh process",
            "value": compile_seconds(),
            "unit": "s",
            "goal": "",
        },
    ]


def run() -> list[dict[str, object]]:
    x_small, y_small = data(100_000)
    x, y = data(ROWS, seed=1)
    rows = [{"benchmark": "load average (1, 5, 15 min) at start", "value": os.getloadavg()}]
    rows += hgb_prediction(x_small, y_small, x)
    model = fitted("logistic", x_small, y_small)
    seconds = median_time(lambda: model.score(x))  # type: ignore[attr-defined]
    rows.append(
        {
            "benchmark": "logistic batched prediction, 1 M rows x 10 features",
            "value": ROWS / seconds / 1e6,
            "unit": "M rows/s",
            "goal": ">= 5 M rows/s",
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


COMPARE_SYMBOLS, COMPARE_DAYS, COMPARE_END = 50, 1700, "2021-12-31"
COMPARE_WINDOW = ("2017-01-02", "2021-12-31")  # 5 years, after what both models have seen


def run_compare() -> list[dict[str, object]]:
    """``model compare`` over 5 years x 50 symbols with 1,000 resamples (see the docstring)."""
    from datetime import date
    from pathlib import Path

    from quantcli.models.compare import Comparison, compare

    def cli(root: str, *args: str) -> None:
        command = [sys.executable, "-c", "from quantcli.cli import main; main()", "--root", root]
        subprocess.run([*command, "-q", *args], check=True, capture_output=True)

    def timed_cli(root: str, *args: str) -> tuple[float, float]:
        """Wall and CPU seconds of one quantcli process."""
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        cli(root, *args)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return wall, cpu

    start, end = COMPARE_WINDOW
    window = ["--features", "feats@v1", "--from", start, "--to", end, "--resamples", "1000"]
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as root:
        cli(root, "data", "ingest", "bench", "--source", "synthetic", "--symbols",
            str(COMPARE_SYMBOLS), "--days", str(COMPARE_DAYS), "--seed", "11", "--end",
            COMPARE_END)  # fmt: skip
        cli(root, "features", "build", "feats", "--dataset", "bench", "--spec", "basic")
        for kind in ("hgb", "logistic"):
            cli(root, "model", "train", "m", "--features", "feats@v1", "--label", "direction:5",
                "--model", kind, "--train-from", "2015-01-01", "--train-to", "2016-06-30",
                "--seed", "1")  # fmt: skip
        load = os.getloadavg()
        timed = [timed_cli(root, "model", "compare", "m@v1", "m@v2", *window) for _ in range(3)]
        first, last = date.fromisoformat(start), date.fromisoformat(end)

        def in_process() -> Comparison:
            return compare(
                Path(root), "m@v1", "m@v2", features="feats@v1", start=first, end=last,
                resamples=1000,
            )  # fmt: skip

        result = in_process()
        warm = median_time(in_process, repeat=3)
    shape = f"{result.dates:,} dates x {COMPARE_SYMBOLS} symbols ({result.rows:,} rows)"
    return [
        {
            "benchmark": f"model compare, 1,000 resamples, {shape}, a fresh CLI process, wall",
            "value": statistics.median(w for w, _ in timed),
            "unit": "s",
            "goal": "< 10 s",
        },
        {
            "benchmark": "  the same process's CPU time (user + sys; the load inflates it less)",
            "value": statistics.median(c for _, c in timed),
            "unit": "s",
            "goal": "",
        },
        {
            "benchmark": "  load average (1 min) before, after",
            "value": f"{load[0]:.1f}, {os.getloadavg()[0]:.1f}",
            "unit": "",
            "goal": "",
        },
        {
            "benchmark": "  the same comparison in a warm process (library call, median of 3)",
            "value": warm,
            "unit": "s",
            "goal": "",
        },
    ]


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


PREDICT_SYMBOLS = 400
PREDICT_SESSIONS = 2_500
TRAIN_ROWS = 100_000


def feature_store(root: Path) -> None:
    """Feature set ``feats@v1`` (1 M rows, :data:`FEATURES`) and hgb model ``hgb@v1`` fitted
    on its first TRAIN_ROWS rows (session order) with one walk-forward fold, plus one model
    of every other kind on the same rows (lstm: 5 epochs)."""
    import polars as pl

    from quantcli.models import TrainSpec, train_on_frames
    from quantcli.store.manifest import SourceInfo
    from quantcli.store.publish import publish
    from quantcli.store.schema import FEATURES_KIND

    days = pl.date_range(dt.date(2010, 1, 1), dt.date(2030, 1, 1), eager=True)
    days = days.filter(days.dt.weekday() < 6).head(PREDICT_SESSIONS)
    x, y = data(PREDICT_SYMBOLS * PREDICT_SESSIONS, seed=3)
    keys = pl.DataFrame(
        {
            "symbol": np.repeat([f"S{i:03d}" for i in range(PREDICT_SYMBOLS)], PREDICT_SESSIONS),
            "ts": np.tile(days.to_numpy(), PREDICT_SYMBOLS),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("Asia/Kolkata"))
    frame = pl.concat([keys, pl.DataFrame(x, schema=list(FEATURES))], how="horizontal")
    options = {"dataset": "none@v1", "dataset_hash": "0" * 64, "spec": "bench"}
    source = SourceInfo(kind=FEATURES_KIND, options={**options, "spec_sha256": "0" * 64})
    publish(root, "feats", frame, interval="1d", source=source)
    labels = keys.with_columns(
        label=pl.Series(y).cast(pl.Int8), forward_return=pl.Series(x[:, 0] * 0.01)
    )
    first = frame.sort("ts", "symbol").head(TRAIN_ROWS)
    sessions = first["ts"].dt.date().unique().sort().to_list()
    spec = {
        "label": "direction:1",
        "seed": 0,
        "folds": 1,
        "train_from": sessions[0],
        "train_to": sessions[len(sessions) * 7 // 10],
        "test_to": sessions[-1],
    }
    for kind, params in KIND_PARAMS.items():
        train_on_frames(
            root,
            kind,
            first,
            labels.join(first.select("symbol", "ts"), on=["symbol", "ts"]),
            TrainSpec(kind=kind, params=params, **spec),
            source={"features_ref": "feats@v1"},
        )


KIND_PARAMS: dict[str, dict[str, str]] = {
    "baseline": {"feature": "f0"},
    "logistic": {},
    "hgb": {},
    "rf": {},
    "lstm": {"epochs": "5"},
}
PREDICT_CODE = (
    "from quantcli.cli import app; import sys; "
    "app(['--root', sys.argv[1], 'model', 'predict', 'hgb@v1', '--features', 'feats@v1', "
    "'--output', sys.argv[2]])"
)


def import_seconds(module: str) -> float:
    """Wall time of importing ``module`` in a fresh interpreter, median of 3."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
        for _ in range(3)
    ]
    return statistics.median(runs)


def run_predict() -> list[dict[str, object]]:
    # Each call's JSON log line would bury the results.
    with contextlib.redirect_stderr(io.StringIO()):
        return _run_predict()


def _run_predict() -> list[dict[str, object]]:
    from quantcli.models import Predictor

    rows: list[dict[str, object]] = [
        {"benchmark": "load average (1, 5, 15 min) at start", "value": os.getloadavg()}
    ]
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp) / "store"
        feature_store(root)
        walls, ratios = [], []
        for i in range(3):
            out = Path(tmp) / f"out{i}.parquet"
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", PREDICT_CODE, str(root), str(out)],
                capture_output=True,
                text=True,
                check=True,
            )
            walls.append(time.perf_counter() - start)
            line = json.loads(next(x for x in done.stderr.splitlines() if x.startswith("{")))
            ratios.append(line["audit_ms"] / line["latency_ms"])
        rows += [
            {
                "benchmark": "model predict hgb, 1 M rows, a new process, --output parquet",
                "value": statistics.median(walls),
                "unit": "s",
                "goal": "< 5 s",
            },
            {
                "benchmark": "  importing skops (so scikit-learn), a new process: off this path",
                "value": import_seconds("skops.io"),
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "  the audit log's time / the prediction's (in that process)",
                "value": statistics.median(ratios) * 100,
                "unit": "%",
                "goal": "< 25 %",
            },
        ]
        predictor = Predictor("hgb@v1", features="feats@v1", root=root)
        warm = [predictor() for _ in range(3)]
        rows.append(
            {
                "benchmark": "  the same with the model already loaded (Predictor), median of 3",
                "value": statistics.median(p.audit_ms / p.latency_ms for p in warm) * 100,
                "unit": "%",
                "goal": "",
            }
        )
        day = dt.date(2015, 6, 1)
        for kind in KIND_PARAMS:
            predictor = Predictor(f"{kind}@v1", features="feats@v1", root=root)
            calls = []
            for _ in range(51):
                start = time.perf_counter()
                predictor(start=day, end=day, symbols=["S007"])
                calls.append(time.perf_counter() - start)
            rows.append(
                {
                    "benchmark": f"{kind} one-row prediction, warm Predictor, p50 of 50",
                    "value": float(np.median(calls[1:])) * 1e3,
                    "unit": "ms",
                    "goal": "< 50 ms",
                }
            )
    return rows


if __name__ == "__main__":
    runs = {"lstm": run_lstm, "sklearn": run, "compare": run_compare, "predict": run_predict}
    only = runs.get(sys.argv[1] if sys.argv[1:] else "")
    for row in only() if only else [*run(), *run_compare(), *run_lstm(), *run_predict()]:
        print(row)
