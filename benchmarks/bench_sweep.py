"""Sweeps (issue 13): 100 SMA-cross combinations on 50 x 5,000 daily bars.

- quantcli ``run_grid`` against vectorbt's broadcast ``Portfolio.from_signals`` over the same
  grid (every combination's signals as columns of one call, vectorbt's way of running a
  grid), in its own venv (bench_backtest's), alternating rounds in the same run (goal >= 5x);
- 2 local Dask workers against 1 on the same grid (goal >= 1.8x), on new clusters and
  on running clusters (the processes' start and stop reported apart);
- the scheduling overhead per combination: a sweep through an already-running 1-worker
  cluster minus the same work as that worker does it (its own process, polars on one thread),
  over the combinations (goal < 1 ms);
- the worker speed-up again on a grid four times as large (400 combinations), where the fixed
  part of a cluster sweep (the first combination here, shipping the job) weighs less;
- what two processes get from this machine's two cores, alternating with the cluster rounds:
  a pure-interpreter loop, and the sweep's own work (as one worker runs it) without Dask, each
  run twice at once against once alone. The workers' speed-up cannot exceed these.

Figures are wall times on a shared machine: record the load beside them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bench_backtest import (
    CASH,
    COMMISSION,
    QTY,
    WORK,
    bars,
    ensure_peers_venv,
    row,
    sma_config,
    subprocess_json,
    wide,
)

FASTS = tuple(range(2, 21, 2))  # 10 values
SLOWS = tuple(range(30, 211, 20))  # 10 values: 100 combinations, every fast < slow
# A grid four times as large, for how the worker speed-up grows as the fixed part shrinks.
BIG_FASTS = tuple(range(2, 41, 2))  # 20 values
BIG_SLOWS = tuple(range(50, 431, 20))  # 20 values: 400 combinations, every fast < slow
ROUNDS = 3
RUNNING_ROUNDS = 5  # the running-cluster rows: differences of ~0.1 s need more rounds
# A pure-interpreter loop (no memory traffic beyond the caches): ~1 s in one process.
SPIN = """
import json, sys, time
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
s = 0
for i in range(6_000_000):
    s += i & 7
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

VECTORBT_GRID = """
import json, sys, time
import numpy as np, pandas as pd
import vectorbt as vbt

data = np.load(sys.argv[1])
open_, close = data["open"], data["close"]
fasts, slows = json.loads(sys.argv[2]), json.loads(sys.argv[3])
qty, fees, cash = (float(x) for x in sys.argv[4:7])
combos = [(f, s) for f in fasts for s in slows]


def run():
    frame = pd.DataFrame(close)
    means = {w: frame.rolling(w).mean().to_numpy() for w in sorted({*fasts, *slows})}
    long = np.concatenate([means[f] > means[s] for f, s in combos], axis=1)
    ready = np.concatenate([~np.isnan(means[s]) for _, s in combos], axis=1)
    # quantcli acts on a bar's signal at the next bar's open: shift one bar, price at the open.
    entries = np.zeros_like(long)
    exits = np.zeros_like(long)
    entries[1:] = long[:-1]
    exits[1:] = (~long & ready)[:-1]
    n = len(combos)
    return vbt.Portfolio.from_signals(
        np.tile(close, n), entries, exits, price=np.tile(open_, n), size=qty,
        size_type="amount", fees=fees, init_cash=cash, freq="1D",
    )


start = time.perf_counter()
pf = run()
first = time.perf_counter() - start
start = time.perf_counter()
pf = run()
print(json.dumps({
    "version": vbt.__version__,
    "first_call_s": first,
    "seconds": time.perf_counter() - start,
    "orders": int(len(pf.order_records)),
    "columns": int(pf.wrapper.shape[1]),
}))
"""


def grid(fasts: tuple[int, ...] = FASTS, slows: tuple[int, ...] = SLOWS) -> Any:
    from quantcli.sweep.grid import parse_grid

    fast = ",".join(map(str, fasts))
    slow = ",".join(map(str, slows))
    return parse_grid([f"fast={fast}", f"slow={slow}", f"qty={QTY}"], None)


def sweep(
    frame: pl.DataFrame, cluster: Any = None, combos: Any = None
) -> tuple[float, pl.DataFrame]:
    """Seconds and results of the benchmark grid (or ``combos``) through ``run_grid``."""
    from quantcli.sweep.runner import run_grid

    config = dataclasses.replace(sma_config(), params={})
    start = time.perf_counter()
    out = run_grid(frame, "sma_cross", combos or grid(), config, cluster=cluster)
    return time.perf_counter() - start, out


def vectorbt_grid(frame: pl.DataFrame) -> dict[str, Any]:
    python = ensure_peers_venv()
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / "bench_sweep_bars.npz"
    np.savez(data, open=wide(frame, "open"), close=wide(frame, "close"))
    script = WORK / "peer_vectorbt_grid.py"
    script.write_text(VECTORBT_GRID)
    args = [json.dumps(FASTS), json.dumps(SLOWS), *(str(x) for x in (QTY, COMMISSION, CASH))]
    return subprocess_json([str(python), str(script), str(data), *args])


ONE_WORKER = """
import dataclasses, json, sys, time
sys.path.insert(0, sys.argv[1])
import bench_sweep as bs
from bench_backtest import bars, sma_config
from quantcli.backtest.engine import RunInputs
from quantcli.sweep.runner import _Job, chunks

frame = bars()
config = dataclasses.replace(sma_config(), params={}, strategy="sma_cross")
combos = list(enumerate(bs.grid().combos))
list(_Job.of(RunInputs(bars(2, 300), (), "", None), config, None).rows(combos[:2]))  # kernels
print("ready", flush=True)
sys.stdin.readline()  # the go of together(): every process times the same minutes
start = time.perf_counter()
job = _Job.of(RunInputs(frame, (), "", None), config, None)
# The pieces a 1-worker cluster sweep runs: the first combination, then the worker's chunks.
for piece in [combos[:1], *chunks(combos[1:], 1)]:
    list(job.rows(piece, parallel=False))
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def one_worker_argv() -> list[str]:
    """The command of the benchmark grid as a 1-worker cluster sweep runs it, without the
    cluster: in a process of its own with polars on one thread (as run_grid's workers),
    prepared once, the same pieces (the first combination, then the worker's chunks: each
    chunk's targets are one batch) replayed on one thread (an in-process sweep uses every core
    and one batch, so it is not what a worker does). Run it through :func:`together`."""
    return [sys.executable, "-c", ONE_WORKER, str(Path(__file__).resolve().parent)]


def spin_argv() -> list[str]:
    """The command of a pure-interpreter loop (~1 s), for :func:`together`."""
    return [sys.executable, "-c", SPIN]


def together(argv: list[str], count: int) -> list[float]:
    """The seconds each of ``count`` processes of ``argv`` (polars and numba on one thread)
    reports for its timed part. Each prints ``ready`` once set up (imports, bars, kernels) and
    starts its clock when told to, at the same moment as the others, so only the timed parts
    overlap."""
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen(argv, stdin=pipe, stdout=pipe, text=True, env=env) for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{argv[0]} failed before its timed part")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        seconds = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{argv[0]} failed")
            seconds.append(float(json.loads(out.strip().splitlines()[-1])["seconds"]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return seconds


def two_over_one(argv: list[str]) -> float:
    """How much more two processes of ``argv`` at once get done than one alone (2.0: two
    independent cores), alone first."""
    alone = together(argv, 1)[0]
    return 2 * alone / max(together(argv, 2))


@contextmanager
def running(workers: int) -> Iterator[Any]:
    """The Cluster of a running local cluster of ``workers`` one-thread workers (as run_grid
    starts them), warmed up by one sweep."""
    import dask
    from distributed import LocalCluster

    from quantcli.sweep.runner import Cluster, worker_settings

    with (
        dask.config.set(worker_settings()),
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as local,
    ):
        cluster = Cluster(scheduler=local.scheduler_address)
        sweep(bars(2, 300), cluster)  # workers import quantcli and load the kernels
        yield cluster


def run() -> list[dict[str, object]]:
    from quantcli.sweep.runner import Cluster

    rows: list[dict[str, object]] = []

    def add(name: str, value: object, unit: str, goal: str = "") -> None:
        rows.append(row(name, value, unit, goal))

    add("1-minute load average at the start", os.getloadavg()[0], "")
    frame = bars()
    n = len(grid().combos)
    sweep(bars(2, 300))  # the kernels from numba's cache
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(ROUNDS):
        ours.append(sweep(frame)[0])
        peer = vectorbt_grid(frame)
        theirs.append(float(peer["seconds"]))
    qc_s, vb_s = statistics.median(ours), statistics.median(theirs)
    add(f"quantcli run_grid, {n} SMA combinations on 50x5000 bars, in-process", qc_s, "s")
    add("  per combination", qc_s / n * 1000, "ms")
    add(f"vectorbt {peer['version']} broadcast from_signals, {peer['columns']} columns", vb_s, "s")
    add(f"quantcli / vectorbt (median of {ROUNDS} alternating rounds)", vb_s / qc_s, "x", ">= 5x")
    ratios = sorted(v / q for q, v in zip(ours, theirs, strict=True))
    add("  per-round ratios, lowest .. highest", f"{ratios[0]:.2f} .. {ratios[-1]:.2f}", "x")

    one: list[float] = []
    two: list[float] = []
    for _ in range(ROUNDS):
        one.append(sweep(frame, Cluster(workers=1))[0])
        two.append(sweep(frame, Cluster(workers=2))[0])
    one_s, two_s = statistics.median(one), statistics.median(two)
    add("run_grid on a new local cluster, 1 worker (start and stop included)", one_s, "s")
    add("run_grid on a new local cluster, 2 workers (start and stop included)", two_s, "s")
    add("  new-cluster 2 workers / 1 worker", one_s / two_s, "x")

    # The speed-up and the overhead on running clusters (alternating rounds): what the workers
    # and the scheduling cost, without the processes' start and stop.
    alone: list[float] = []
    pair: list[float] = []
    spins: list[float] = []
    same = True
    local = sweep(frame)[1]
    with running(1) as cluster_1, running(2) as cluster_2:
        one, two = [], []
        for _ in range(RUNNING_ROUNDS):
            alone.append(together(one_worker_argv(), 1)[0])
            seconds, out = sweep(frame, cluster_1)
            one.append(seconds)
            same = same and out.equals(local)
            seconds, out = sweep(frame, cluster_2)
            two.append(seconds)
            same = same and out.equals(local)
            pair.append(max(together(one_worker_argv(), 2)))
            spins.append(two_over_one(spin_argv()))
    one_s, two_s = statistics.median(one), statistics.median(two)
    alone_s = statistics.median(alone)
    add("sweep through a running 1-worker cluster", one_s, "s")
    add("sweep through a running 2-worker cluster", two_s, "s")
    add("2 workers / 1 worker (running clusters)", one_s / two_s, "x", ">= 1.8x")
    speedups = sorted(o / w for o, w in zip(one, two, strict=True))
    add("  per-round ratios, lowest .. highest", f"{speedups[0]:.2f} .. {speedups[-1]:.2f}", "x")
    ceiling = statistics.median(2 * a / p for a, p in zip(alone, pair, strict=True))
    add("  ceiling: the same work in 2 processes at once / 1 alone, no Dask", ceiling, "x")
    spin = statistics.median(spins)
    add("  ceiling: a pure-interpreter loop in 2 processes / 1", spin, "x")
    add("the same grid as one worker runs it, in a process of its own (one thread)", alone_s, "s")
    # Paired by round: the cluster sweep and the work it wraps ran in the same minute.
    per = statistics.median(o - a for o, a in zip(one, alone, strict=True)) / n * 1000
    add("scheduling overhead per combination (1-worker cluster minus that)", per, "ms", "< 1 ms")
    add("cluster results byte-identical to in-process", same, "")

    big = grid(BIG_FASTS, BIG_SLOWS)
    with running(1) as cluster_1, running(2) as cluster_2:
        one, two = [], []
        for _ in range(ROUNDS):
            one.append(sweep(frame, cluster_1, big)[0])
            two.append(sweep(frame, cluster_2, big)[0])
    one_s, two_s = statistics.median(one), statistics.median(two)
    add(f"{len(big.combos)} combinations: sweep through a running 1-worker cluster", one_s, "s")
    add(f"{len(big.combos)} combinations: sweep through a running 2-worker cluster", two_s, "s")
    add(f"{len(big.combos)} combinations: 2 workers / 1 worker", one_s / two_s, "x")
    add("1-minute load average at the end", os.getloadavg()[0], "")
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
