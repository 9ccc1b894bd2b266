"""Store benchmarks on a synthetic 2,000 symbols x 5,000 daily bars frame (10M rows).

- publish: wall time and peak RSS of a fresh process that builds the frame and publishes it
  (goal < 20 s, < 4 GiB).
- data query: mean daily return per symbol over the 10M rows, in-process (goal < 1 s) and as a
  `quantcli data query` command (process start included): as the aggregate of
  close / prev_close - 1 (daily datasets carry prev_close), and as the window over lag(close).
- one symbol: open_dataset(ref).lazy(symbols=[X]).collect() (goal < 50 ms).
- layout: data files in the version, and how many a re-publish with one symbol changed
  rewrites (the rest are hard-linked from the parent).

Usage: .venv/bin/python benchmarks/bench_store.py [SYMBOLS DAYS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYMBOLS = 2_000
DAYS = 5_000
QUERY = (
    "SELECT symbol, avg(ret) AS mean_daily_return FROM ("
    " SELECT symbol, close / lag(close) OVER (PARTITION BY symbol ORDER BY ts) - 1 AS ret"
    " FROM bars) GROUP BY symbol ORDER BY symbol"
)

# The same aggregate over the prev_close every daily dataset carries: no window needed.
PREV_CLOSE_QUERY = (
    "SELECT symbol, avg(close / prev_close - 1) AS mean_daily_return FROM bars"
    " GROUP BY symbol ORDER BY symbol"
)

# A scan plus group-by without the window sort, to show where the query time goes.
SCAN_QUERY = "SELECT symbol, avg(close) AS mean_close FROM bars GROUP BY symbol ORDER BY symbol"

# Runs in a fresh interpreter so ru_maxrss is the publish's own peak.
PUBLISH_CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from bench_store import synthetic_frame
from quantcli.store.ingest import fill_prev_close
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish

t0 = time.perf_counter()
frame = synthetic_frame(int(sys.argv[2]), int(sys.argv[3]))
t_derive = time.perf_counter()
frame, _ = fill_prev_close(frame, None)  # as ingest does for daily bars
t1 = time.perf_counter()
res = publish(Path(sys.argv[1]), "bench", frame, interval="1d", source=SourceInfo("synthetic"))
t2 = time.perf_counter()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import polars as pl
one = res.manifest.symbols[len(res.manifest.symbols) // 2]
changed = frame.with_columns(
    pl.when(pl.col("symbol") == one).then(pl.col("close") * 1.01).otherwise(pl.col("close"))
)
again = publish(Path(sys.argv[1]), "bench", changed, interval="1d", source=SourceInfo("synthetic"))
folder = Path(sys.argv[1]) / "bench" / f"v{again.manifest.version}"
rewritten = sum((folder / rel).stat().st_nlink == 1 for rel in again.manifest.files)
print(json.dumps({
    "build": t_derive - t0, "derive": t1 - t_derive, "publish": t2 - t1,
    "rows": res.manifest.rows, "maxrss_kib": maxrss,
    "files": len(res.manifest.files), "rewritten": rewritten,
}))
"""


def synthetic_frame(symbols: int, days: int, seed: int = 7) -> object:
    """A canonical-schema frame of random-walk daily bars on weekdays (numpy-generated)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    dates = np.busday_offset("2006-01-02", np.arange(days), roll="forward")
    ts = pl.Series("ts", dates.astype("datetime64[us]")).dt.replace_time_zone("Asia/Kolkata")
    steps = rng.normal(0.0003, 0.015, size=(symbols, days))
    close = (100.0 * np.exp(np.cumsum(steps, axis=1))).ravel()
    spread = np.abs(rng.normal(0, 0.01, size=close.size))
    names = np.array([f"SYM{i:04d}" for i in range(symbols)])
    return pl.DataFrame(
        {
            "symbol": np.repeat(names, days),
            "ts": pl.concat([ts] * symbols),
            "open": close * (1 + rng.normal(0, 0.005, size=close.size)),
            "high": close * (1 + spread),
            "low": close * (1 - spread),
            "close": close,
            "volume": rng.integers(1_000, 5_000_000, size=close.size),
        }
    )


def _publish(root: Path, symbols: int, days: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PUBLISH_CHILD,
            str(root),
            str(symbols),
            str(days),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median(fn: object, repeat: int) -> float:
    return _median_wall_cpu(fn, repeat)[0]


def _median_wall_cpu(fn: object, repeat: int) -> tuple[float, float]:
    """Median wall and process CPU seconds (all threads): CPU shows the work itself when other
    jobs share the cores and stretch the wall time."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def run(symbols: int = SYMBOLS, days: int = DAYS) -> list[dict[str, object]]:
    from quantcli.store.query import run_query
    from quantcli.store.reader import open_dataset

    work = Path(tempfile.mkdtemp(prefix="quantcli-bench-store-"))
    try:
        root = work / "store"
        load = os.getloadavg()[0]
        pub = _publish(root, symbols, days)
        query_s, query_cpu = _median_wall_cpu(lambda: run_query(root, QUERY, ["bench"]), 5)
        prev_s = _median(lambda: run_query(root, PREV_CLOSE_QUERY, ["bench"]), 5)
        scan_s = _median(lambda: run_query(root, SCAN_QUERY, ["bench"]), 5)
        cli = Path(sys.executable).with_name("quantcli")

        def command(sql: str, fmt: str = "csv") -> None:
            argv = [str(cli), "--root", str(root), "data", "query", sql, "-d", "bench", "-f", fmt]
            subprocess.run(argv, capture_output=True, check=True)

        cli_s = _median(lambda: command(QUERY), 3)
        cli_prev_s = _median(lambda: command(PREV_CLOSE_QUERY), 5)
        cli_table_s = _median(lambda: command(PREV_CLOSE_QUERY, "table"), 5)
        cli_start_s = _median(lambda: command("SELECT 1 AS one", "table"), 5)
        symbol = f"SYM{symbols // 2:04d}"
        one_s = _median(lambda: open_dataset("bench", root).lazy([symbol]).collect(), 20)
        version = open_dataset("bench", root)
        lazy_s = _median(lambda: version.lazy([symbol]).collect(), 20)
        rows = f"{pub['rows']:,} rows"
        return [
            {
                "benchmark": "load average (1 min) when the benchmark started",
                "value": load,
                "unit": "",
                "goal": "< 1.5 for clean figures",
            },
            {
                "benchmark": f"publish {rows} (fresh process)",
                "value": pub["publish"],
                "unit": "s",
                "goal": "< 20 s",
            },
            {
                "benchmark": "  derive prev_close before it (as ingest does for daily bars)",
                "value": pub["derive"],
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "publish peak RSS (incl. building the frame)",
                "value": pub["maxrss_kib"] / 2**20,
                "unit": "GiB",
                "goal": "< 4 GiB",
            },
            {
                "benchmark": "data files in the version",
                "value": pub["files"],
                "unit": "",
                "goal": "",
            },
            {
                "benchmark": "files rewritten by a re-publish with one symbol changed",
                "value": pub["rewritten"],
                "unit": "",
                "goal": "1",
            },
            {
                "benchmark": f"query mean daily return per symbol, {rows}, prev_close (in-process)",
                "value": prev_s,
                "unit": "s",
                "goal": "< 1 s",
            },
            {
                "benchmark": "  the same as `quantcli data query -f csv` (new process)",
                "value": cli_prev_s,
                "unit": "s",
                "goal": "< 1 s",
            },
            {
                "benchmark": "  the same, the default table output (no polars import)",
                "value": cli_table_s,
                "unit": "s",
                "goal": "< 1 s",
            },
            {
                "benchmark": "  `quantcli data query 'SELECT 1'` (process start, no scan)",
                "value": cli_start_s,
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "mean daily return with lag() OVER (PARTITION BY symbol) (in-process)",
                "value": query_s,
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "  the same query's CPU time (both cores)",
                "value": query_cpu,
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": f"query mean close per symbol, {rows} (no window; in-process)",
                "value": scan_s,
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "  the window form as `quantcli data query -f csv` (new process)",
                "value": cli_s,
                "unit": "s",
                "goal": "",
            },
            {
                "benchmark": "open_dataset + lazy(symbols=[X]).collect()",
                "value": one_s * 1000,
                "unit": "ms",
                "goal": "< 50 ms",
            },
            {
                "benchmark": "lazy(symbols=[X]).collect() on an open version",
                "value": lazy_s * 1000,
                "unit": "ms",
                "goal": "< 50 ms",
            },
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    for row in run(*args):
        print(f"{row['benchmark']:<62} {row['value']:>10.3f} {row['unit']:<4} (goal {row['goal']})")
