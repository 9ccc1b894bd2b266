"""Running a grid through the backtest core: in this process, or on Dask distributed.

:func:`run_grid` replays the same bars (read once, :class:`~quantcli.backtest.engine.RunInputs`)
for every combination of a :class:`~quantcli.sweep.grid.Grid` and returns one row per
combination: its index K, its parameters, every metric of the run and the sha256 of its
equity curve and fills. Rows are sorted by K and every number is computed the same way in any
process, so the frame is the same whatever the number of workers, the order in which they
finish, or where they run.

On a cluster the combinations go in chunks (a Dask task costs ~2-3 ms, a combination ~10-30 ms),
the inputs are scattered to every worker once (or each reads them from a dataset remote:
quantcli.sweep.source), and meanwhile the first combination runs in this process: it compiles
the numba kernels into their cache before any worker runs, as parallel first writes to that
cache can crash (numba#4807). Dask is imported only here, inside the functions that use it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantcli.backtest.config import BacktestConfig
from quantcli.core.hashing import sha256_hex
from quantcli.errors import QuantcliError, UnavailableError, UsageError
from quantcli.sweep.grid import Grid, Value, combo_params

if TYPE_CHECKING:
    from distributed import Client

    from quantcli.backtest.engine import BacktestResult, RunInputs
    from quantcli.backtest.metrics import Metric
    from quantcli.backtest.prepare import PreparedBars
    from quantcli.market.calendar import Calendar
    from quantcli.sweep.source import RemoteInputs

# Combinations per task: enough that Dask's per-task cost is well under 1 ms a combination,
# few enough that every worker gets work and the progress bar moves.
MAX_CHUNK = 500
CHUNKS_PER_WORKER = 2
OUTPUT_HASHES = ("equity_sha256", "fills_sha256")
CONNECT_TIMEOUT = "10s"  # to an existing scheduler
# The thread-count variables a local worker process starts with (each set to 1).
_THREAD_VARS = ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class Cluster:
    """Where a sweep runs: a local Dask cluster of ``workers`` processes (None: one per core),
    or the existing cluster whose scheduler is at ``scheduler`` (``tcp://HOST:PORT``); with
    ``remote``, the name of the dataset remote its workers read the bars from."""

    workers: int | None = None
    scheduler: str | None = None
    remote: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise UsageError("--workers and --scheduler exclude each other: give one")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be 1 or more, got {self.workers}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise UsageError(
                f"--scheduler {self.scheduler!r}: expected an address such as tcp://HOST:PORT"
            )

    @classmethod
    def resolve(
        cls, *, workers: int | None, scheduler: str | None, remote: str | None = None
    ) -> Cluster:
        """The cluster of ``--workers``/``--scheduler``, else quantcli.toml's ``[cluster]``
        (``scheduler`` or ``workers``; or ``QUANTCLI_CLUSTER_*``), else a local cluster sized
        to the cores; its workers read from ``--remote``, else ``[cluster] remote``."""
        from quantcli.settings import setting

        remote = setting("cluster", "remote", flag=("--remote", remote))
        if workers is not None or scheduler is not None:
            return cls(workers=workers, scheduler=scheduler, remote=remote)
        address = setting("cluster", "scheduler")
        if address is not None:
            return cls(scheduler=address, remote=remote)
        return cls(workers=setting("cluster", "workers"), remote=remote)

    @property
    def size(self) -> int:
        """The local cluster's worker count (for a remote scheduler: unknown, 0)."""
        if self.scheduler is not None:
            return 0
        return self.workers or os.cpu_count() or 1


def run_grid(
    data: pl.DataFrame | RunInputs,
    strategy: str,
    grid: Grid,
    config: BacktestConfig,
    *,
    cluster: Cluster | None = None,
    progress: Callable[[int], None] | None = None,
    root: Path | None = None,
) -> pl.DataFrame:
    """Backtest every combination of ``grid`` over ``data`` (bars in the store's schema, or a
    run's inputs read by :func:`~quantcli.backtest.engine.read_inputs`) with ``strategy``
    (a spec) and ``config``'s options and fixed parameters; one row per combination, by K.

    ``cluster`` None runs in this process; ``progress(n)`` is called as ``n`` more
    combinations finish; ``root`` is the store whose calendar and strategy inputs the runs
    read. StrategyError names the first combination the strategy refuses, before any runs.
    """
    from quantcli.backtest.engine import RunInputs

    inputs = data if isinstance(data, RunInputs) else RunInputs(data, (), "", None)
    base = dataclasses.replace(config, strategy=strategy)
    job = _Job.of(inputs, base, root)
    _check_combos(base, grid)
    combos = list(enumerate(grid.combos))
    if cluster is None or len(combos) == 1:
        # In this process the replays use every core.
        rows = list(_reported(job.rows(combos, parallel=True), progress))
    else:
        rows = _on_cluster(job, combos, cluster, progress)
    return results_frame(grid, sorted(rows, key=lambda r: int(r["K"])))


def _check_combos(config: BacktestConfig, grid: Grid) -> None:
    """The error (one line, naming the combination) of the first combination the strategy's
    parameters refuse: an unknown name, a bad value, a rule such as fast < slow; when others
    pass, it says how to leave it out."""
    from quantcli.backtest.strategy import load_strategy

    first: tuple[int, QuantcliError] | None = None
    passed = False
    for k, combo in enumerate(grid.combos):
        try:
            load_strategy(config.strategy, {**config.params, **combo_params(combo)})
            passed = True
        except QuantcliError as exc:
            first = first or (k, exc)
        if first is not None and passed:
            break
    if first is None:
        return
    k, refused = first
    shown = " ".join(f"{name}={value}" for name, value in combo_params(grid.combos[k]).items())
    hint = " (narrow the grid, or leave it out with --where)" if passed else ""
    raise type(refused)(f"combination {k} ({shown}): {refused.message}{hint}") from None


@dataclass(frozen=True)
class _Job:
    """What every combination of a sweep shares: shipped to each worker once, where its bars
    are prepared once (:attr:`shared`, never shipped) for all the chunks it runs. The
    calendar travels with it (the one in effect for store ``root`` where the sweep began), so
    a worker on a machine whose store holds other imports, or none, finds the same sessions."""

    inputs: RunInputs | RemoteInputs
    config: BacktestConfig
    root: str | None
    calendar: Calendar

    @classmethod
    def of(
        cls, inputs: RunInputs | RemoteInputs, config: BacktestConfig, root: Path | None
    ) -> _Job:
        """The job of a sweep of ``inputs`` with ``config`` begun in store ``root`` (None: none),
        with the calendar in effect there."""
        from quantcli.market.calendar import calendar, using_store

        with using_store(root):
            assembled = calendar()
        return cls(inputs, config, str(root) if root is not None else None, assembled)

    @functools.cached_property
    def shared(self) -> PreparedBars:
        """The sweep's bars prepared for the replay, once per process
        (:func:`~quantcli.backtest.prepare.prepare_bars`)."""
        from quantcli.backtest.prepare import prepare_bars, select
        from quantcli.market.calendar import using_calendar

        with using_calendar(self.calendar):
            bars = select(self.inputs.bars, self.config)
            return prepare_bars(bars, self.config, self.inputs.actions)

    @property
    def _root(self) -> Path | None:
        return Path(self.root) if self.root is not None else None

    def __getstate__(self) -> dict[str, Any]:
        # A worker prepares the bars itself: the prepared arrays are larger than the bars.
        return {k: v for k, v in self.__dict__.items() if k != "shared"}

    def run_chunk(self, chunk: Sequence[tuple[int, Mapping[str, Value]]]) -> list[dict[str, Any]]:
        """The rows of a chunk of combinations (one Dask task)."""
        return list(self.rows(chunk))

    def rows(
        self, chunk: Sequence[tuple[int, Mapping[str, Value]]], *, parallel: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The result rows of ``chunk``'s combinations, in order, each as it is done: their
        targets evaluated together in batches, each replayed alone, on every core when
        ``parallel`` (:func:`~quantcli.backtest.engine.simulate_prepared`)."""
        from quantcli.backtest.engine import simulate_prepared
        from quantcli.backtest.metrics import metrics_of
        from quantcli.backtest.strategy import load_strategy
        from quantcli.market.calendar import using_calendar

        runs = []
        for _, combo in chunk:
            params = {**self.config.params, **combo_params(combo)}
            config = dataclasses.replace(self.config, params=params)
            runs.append((config, load_strategy(config.strategy, params)))
        shared = self.shared
        with using_calendar(self.calendar):
            results = simulate_prepared(
                shared,
                runs,
                dataset_hash=self.inputs.dataset_hash,
                root=self._root,
                parallel=parallel,
            )
            for (k, combo), result in zip(chunk, results, strict=True):
                yield {"K": k, **combo, **metrics_of(result), **output_hashes(result)}


def output_hashes(result: BacktestResult) -> dict[str, str]:
    """The sha256 of a run's equity curve and of its fills (their buffers' bytes): two runs
    with equal hashes have the same numbers."""
    out = result.output
    equity = _buffers(out.equity, out.equity_bar)
    fills = _buffers(out.fill_ints, out.fill_floats)
    return {"equity_sha256": sha256_hex(*equity), "fills_sha256": sha256_hex(*fills)}


def _buffers(*arrays: np.ndarray) -> list[memoryview]:
    # In place where contiguous (a replay's buffers are): ~0.5 ms a combination of copies.
    return [np.ascontiguousarray(a).data for a in arrays]


def _run_chunk(job: _Job, chunk: Sequence[tuple[int, Mapping[str, Value]]]) -> list[dict[str, Any]]:
    return job.run_chunk(chunk)


def chunks(items: Sequence[Any], workers: int) -> list[Sequence[Any]]:
    """``items`` cut into about ``CHUNKS_PER_WORKER`` pieces per worker, none over
    ``MAX_CHUNK``, in order."""
    count = max(1, workers * CHUNKS_PER_WORKER, math.ceil(len(items) / MAX_CHUNK))
    size = max(1, math.ceil(len(items) / count))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _reported(
    rows: Iterable[dict[str, Any]], progress: Callable[[int], None] | None
) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield row
        if progress is not None:
            progress(1)


def _on_cluster(
    job: _Job,
    combos: Sequence[tuple[int, Mapping[str, Value]]],
    cluster: Cluster,
    progress: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    from distributed import as_completed

    shipped = job
    if cluster.remote is not None:
        from quantcli.sweep.source import remote_inputs

        inputs = remote_inputs(job.inputs, job.config, job.root, cluster.remote)
        shipped = dataclasses.replace(job, inputs=inputs)
    with _client(cluster) as client, ThreadPoolExecutor(1) as sender:
        # While the job travels to every worker (not hashed: tokenizing the bars took as long
        # as shipping them), the first combination runs here: it checks the inputs, and
        # compiles (and caches) the kernels before any worker loads them.
        scattering = sender.submit(client.scatter, shipped, broadcast=True, hash=False)
        rows = list(_reported(job.rows(combos[:1]), progress))
        shared = scattering.result()
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        pieces = chunks(combos[1:], workers)
        futures = [client.submit(_run_chunk, shared, piece, pure=False) for piece in pieces]
        try:
            for future in as_completed(futures):
                part = future.result()
                rows.extend(part)
                if progress is not None:
                    progress(len(part))
        finally:
            client.cancel(futures)
    return rows


def worker_settings() -> dict[str, object]:
    """The Dask settings a local worker process starts with (its environment is set before it
    starts).

    A worker runs one combination at a time on one thread of polars and numba too (Dask
    already pins BLAS), so N workers on N cores do not fight over them. Dask's default
    ``MALLOC_TRIM_THRESHOLD_`` is unset: setting it stops glibc from raising its mmap
    threshold, so each replay's megabyte buffers were fresh pages, faulted in on every
    combination (a worker ran a chunk ~25% slower than the same work outside Dask). Dask's
    statistical profiler (a thread sampling every worker's stack every 10 ms, for a dashboard
    a sweep does not start) is off: with it, running sweeps took ~10-20% longer.
    """
    key = "distributed.nanny.pre-spawn-environ"
    settings: dict[str, object] = {f"{key}.{name}": "1" for name in _THREAD_VARS}
    settings[f"{key}.MALLOC_TRIM_THRESHOLD_"] = None
    settings["distributed.worker.profile.enabled"] = False
    return settings


@contextmanager
def _client(cluster: Cluster) -> Iterator[Client]:
    """A Dask client of ``cluster``: its scheduler's, or a new local cluster's (shut down
    after)."""
    import dask
    from distributed import Client, LocalCluster

    # Dask's own log lines (connections, worker start and stop) are not quantcli's narration:
    # only its errors reach stderr.
    with dask.config.set({"logging.distributed": "error", **worker_settings()}):
        if cluster.scheduler is not None:
            try:
                client = Client(cluster.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise UnavailableError(
                    f"--scheduler {cluster.scheduler}: cannot connect ({exc}); is the scheduler "
                    "running?"
                ) from None
            with client:
                yield client
            return
        local = LocalCluster(
            n_workers=cluster.size,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        )
        with local, Client(local) as client:
            yield client


def results_frame(grid: Grid, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The sweep's results: K, the parameters (typed as the grid's values), every metric and
    the output hashes, one row per combination in K order; column types fixed by the grid, not
    by the values (a metric that is None in every row is still a Float64)."""
    columns: dict[str, pl.Series] = {"K": pl.Series("K", [r["K"] for r in rows], pl.Int64)}
    for name, values in grid.params:
        columns[name] = pl.Series(name, [r[name] for r in rows], _dtype(values))
    metric_names = [k for k in rows[0] if k != "K" and k not in columns and k not in OUTPUT_HASHES]
    for name in metric_names:
        columns[name] = _metric_series(name, [r[name] for r in rows])
    for name in OUTPUT_HASHES:
        columns[name] = pl.Series(name, [r[name] for r in rows], pl.String)
    return pl.DataFrame(list(columns.values()))


def _dtype(values: Sequence[Value]) -> pl.DataType:
    if all(isinstance(v, bool) for v in values):
        return pl.Boolean()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.Int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pl.Float64()
    return pl.String()


def _metric_series(name: str, values: list[Metric]) -> pl.Series:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return pl.Series(name, values, pl.String)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pl.Series(name, values, pl.Int64)
    return pl.Series(name, [None if v is None else float(v) for v in values], pl.Float64)
