"""run_grid: one row per combination, the same in this process, on 1 or 2 local workers and
through a real `dask scheduler` with two `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from store_helpers import make_bars

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import simulate
from quantcli.backtest.metrics import metrics_of
from quantcli.errors import (
    CoverageError,
    QuantcliError,
    StrategyError,
    UnavailableError,
    UsageError,
)
from quantcli.market.calendar import import_year, sessions, using_store
from quantcli.sweep.grid import combo_params, parse_grid
from quantcli.sweep.runner import Cluster, chunks, output_hashes, run_grid

# A loaded 2-core CI box can take long to start processes: wait generously, time nothing.
START_TIMEOUT = 120.0
CONFIG = BacktestConfig(dataset="bars", strategy="sma_cross")


def noisy_bars() -> pl.DataFrame:
    """Two symbols, 300 days of a random walk: the grid's combinations trade differently."""
    bars = make_bars(("AAA", "BBB"), date(2022, 1, 3), 300)
    noise = np.exp(np.random.default_rng(7).normal(0, 0.02, bars.height))
    bars = bars.with_columns(pl.col("close") * pl.Series(noise))
    return bars.with_columns(
        pl.max_horizontal("open", "close", "high").alias("high"),
        pl.min_horizontal("open", "close", "low").alias("low"),
    )


GRID = parse_grid(["fast=3:9:3", "slow=10:30:10", "qty=10,20"], "fast < slow")


def parquet_bytes(frame: pl.DataFrame, tmp: Path) -> bytes:
    path = tmp / "r.parquet"
    frame.write_parquet(path)
    return path.read_bytes()


def test_rows_are_the_runs_of_each_combination() -> None:
    bars = noisy_bars()
    seen: list[int] = []
    frame = run_grid(bars, "sma_cross", GRID, CONFIG, progress=seen.append)
    assert sum(seen) == frame.height == len(GRID.combos) == 18
    assert frame.get_column("K").to_list() == list(range(18))
    assert frame.columns[:4] == ["K", "fast", "qty", "slow"]
    assert frame.schema["fast"] == pl.Int64
    assert frame.get_column("trades").n_unique() > 2  # the combinations differ
    for k in (0, 11, 17):
        combo = GRID.combos[k]
        config = BacktestConfig(dataset="bars", strategy="sma_cross", params=combo_params(combo))
        result = simulate(bars, config)
        row = frame.row(k, named=True)
        assert {name: row[name] for name in combo} == dict(combo)
        expected = {**metrics_of(result), **output_hashes(result)}
        assert {name: row[name] for name in expected} == expected


def test_a_combination_the_strategy_refuses_is_one_line_before_any_run() -> None:
    grid = parse_grid(["fast=5,20", "slow=10"], None)
    with pytest.raises(StrategyError) as err:
        run_grid(noisy_bars(), "sma_cross", grid, CONFIG)
    assert "combination 1 (fast=20 slow=10)" in err.value.message
    assert "leave it out with --where" in err.value.message
    with pytest.raises(QuantcliError) as unknown:
        run_grid(noisy_bars(), "sma_cross", parse_grid(["speed=1,2"], None), CONFIG)
    assert "combination 0 (speed=1)" in unknown.value.message
    assert "--where" not in unknown.value.message  # every combination fails alike


def test_chunks_cover_every_combination_in_order() -> None:
    items = list(range(1234))
    for workers in (1, 2, 7):
        pieces = chunks(items, workers)
        assert [x for piece in pieces for x in piece] == items
        assert len(pieces) >= min(len(items), 2 * workers)
        assert max(map(len, pieces)) <= 500


def test_cluster_flags_exclude_each_other_and_are_checked() -> None:
    with pytest.raises(UsageError, match="exclude each other"):
        Cluster.resolve(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(UsageError, match="1 or more"):
        Cluster(workers=0)
    with pytest.raises(UsageError, match="tcp://HOST:PORT"):
        Cluster(scheduler="127.0.0.1:8786")


def test_cluster_comes_from_quantcli_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quantcli.toml").write_text('[cluster]\nscheduler = "tcp://10.0.0.5:8786"\n')
    assert Cluster.resolve(workers=None, scheduler=None) == Cluster(scheduler="tcp://10.0.0.5:8786")
    assert Cluster.resolve(workers=3, scheduler=None) == Cluster(workers=3)
    (tmp_path / "quantcli.toml").write_text("[cluster]\nworkers = 0\n")
    with pytest.raises(UsageError, match=r"\[cluster\] workers"):
        Cluster.resolve(workers=None, scheduler=None)


@pytest.mark.dask
def test_one_and_two_local_workers_give_the_bytes_of_the_local_run(tmp_path: Path) -> None:
    bars = noisy_bars()
    local = parquet_bytes(run_grid(bars, "sma_cross", GRID, CONFIG), tmp_path)
    for workers in (1, 2):
        frame = run_grid(bars, "sma_cross", GRID, CONFIG, cluster=Cluster(workers=workers))
        assert parquet_bytes(frame, tmp_path) == local


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dask_command(*args: str) -> list[str]:
    """The `dask` command of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("dask")), *args]


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (random free
    ports), torn down after the test."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    logs = [open(tmp_path / f"dask-{i}.log", "w") for i in range(3)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            dask_command(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
                "--no-show",
            ),
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    try:
        for i in (1, 2):
            procs.append(
                subprocess.Popen(
                    dask_command(
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--dashboard-address",
                        ":0",
                    ),
                    stdout=logs[i],
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=tmp_path,
                )
            )
        from distributed import Client

        with Client(address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        deadline = time.monotonic() + 60
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


@pytest.mark.dask
def test_a_real_scheduler_and_two_workers_give_the_bytes_of_the_local_run(
    scheduler: str, tmp_path: Path
) -> None:
    bars = noisy_bars()
    local = parquet_bytes(run_grid(bars, "sma_cross", GRID, CONFIG), tmp_path)
    remote = run_grid(bars, "sma_cross", GRID, CONFIG, cluster=Cluster(scheduler=scheduler))
    assert parquet_bytes(remote, tmp_path) == local


@pytest.mark.dask
def test_an_unreachable_scheduler_is_one_line() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(UnavailableError) as err:
        run_grid(noisy_bars(), "sma_cross", GRID, CONFIG, cluster=Cluster(scheduler=address))
    assert err.value.message.startswith(f"--scheduler {address}: cannot connect")
    assert "\n" not in err.value.message


def test_a_job_prepares_once_and_ships_without_its_prepared_bars() -> None:
    from quantcli.backtest.engine import RunInputs
    from quantcli.sweep.runner import _Job

    job = _Job.of(RunInputs(noisy_bars(), (), "", None), CONFIG, None)
    combos = list(enumerate(GRID.combos))
    first = job.run_chunk(combos[:3])
    assert job.shared is job.shared  # prepared once, kept for the next chunks
    shipped = pickle.loads(pickle.dumps(job))
    assert "shared" not in shipped.__dict__
    assert pickle.dumps(job) == pickle.dumps(dataclasses.replace(job))  # as if never prepared
    assert shipped.run_chunk(combos[:3]) == first


def test_a_shipped_job_keeps_the_calendar_of_the_store_it_began_in(
    store: Path, tmp_path: Path
) -> None:
    # 2027 is past the bundled calendar: only the store's import covers it. A worker on
    # another machine has no such store (removed here), and still runs the same sessions.
    from quantcli.backtest.engine import RunInputs
    from quantcli.sweep.runner import _Job

    table = tmp_path / "2027.csv"
    table.write_text("Sr. No,Date,Day,Description\n1,26-Jan-2027,Tuesday,Republic Day\n")
    import_year(store, table)
    with using_store(store):
        days = sessions(date(2027, 1, 1), date(2027, 6, 30))
    bars = make_bars(("AAA", "BBB"), days[0], (days[-1] - days[0]).days + 1)
    bars = bars.filter(pl.col("ts").dt.date().is_in(days))
    job = _Job.of(RunInputs(bars, (), "", None), CONFIG, store)
    combos = list(enumerate(GRID.combos))[:4]
    here = job.run_chunk(combos)
    shipped = pickle.loads(pickle.dumps(job))
    shutil.rmtree(store)
    assert shipped.run_chunk(combos) == here
    with pytest.raises(CoverageError):
        _Job.of(RunInputs(bars, (), "", None), CONFIG, store).run_chunk(combos)


def worker_threads() -> tuple[str | None, int, str | None, bool]:
    import dask

    environ = os.environ.get
    profiling = bool(dask.config.get("distributed.worker.profile.enabled"))
    return (
        environ("POLARS_MAX_THREADS"),
        pl.thread_pool_size(),
        environ("MALLOC_TRIM_THRESHOLD_"),
        profiling,
    )


@pytest.mark.dask
def test_local_workers_run_polars_on_one_thread_malloc_adapts_and_no_profiler() -> None:
    # Dask sets MALLOC_TRIM_THRESHOLD_ for its workers and profiles them; a sweep's workers
    # start without either (glibc then keeps adapting its mmap threshold to the replay's
    # buffers, and no thread samples their stacks).
    import dask

    from quantcli.sweep.runner import _client

    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    assert dask.config.get("distributed.worker.profile.enabled") is True  # Dask's default
    with _client(Cluster(workers=2)) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT)
        seen = client.run(worker_threads)
    assert sorted(seen.values()) == [("1", 1, None, False), ("1", 1, None, False)]
