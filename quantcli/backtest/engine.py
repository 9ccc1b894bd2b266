"""The backtester: prepare bars, replay them through a strategy, report typed frames.

``run_backtest`` reads the dataset and corporate actions and calls :func:`simulate`, which works
on an in-memory bar frame: quantcli.backtest.prepare validates the bars, keeps NSE sessions
(quantcli.backtest.sessions) and builds the replay's arrays in one deterministic order, (ts,
symbol) (quantcli.backtest.replay_order), and strategies see the bars split/bonus-adjusted with
the traded values beside them; signal strategies' targets are
evaluated and checked for look-ahead by quantcli.backtest.targets. Both strategy kinds then run
through the one compiled replay loop (quantcli.backtest.kernel); an event strategy's callbacks
are called from quantcli.backtest.events. :func:`simulate_prepared` runs many strategies over
bars prepared once (a sweep's). The result keeps the run's buffers; its frames are built from
them when first read.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantcli.backtest import kernel
from quantcli.backtest.accounting import C_REJECT, round_trips
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.events import EventRun
from quantcli.backtest.kernel import CHUNK, Book, Output, Prepared
from quantcli.backtest.metrics import exposure
from quantcli.backtest.orders import (
    O_BAR,
    O_ID,
    O_REASON,
    O_SYM,
    REASONS,
    fills_frame,
    orders_frame,
    timestamps,
)
from quantcli.backtest.prepare import (
    ACTION_SEGMENTS,
    PreparedBars,
    prepare_run,
    select,
    worker_pool,
)
from quantcli.backtest.strategy import LoadedStrategy, RunContext, Setup, load_strategy
from quantcli.backtest.targets import checked_targets, evaluate_targets
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.futures import completed, in_order
from quantcli.core.timezone import ist_datetime
from quantcli.errors import StrategyError

if TYPE_CHECKING:
    import pyarrow as pa

    from quantcli.market.corporate_actions import CorporateAction

EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE,
    "cash": pl.Float64(),
    "holdings": pl.Float64(),
    "equity": pl.Float64(),
    "exposure": pl.Float64(),
}


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything a run produced. The frames (fixed column order and dtypes) are built from
    the run's buffers when first read, so a parameter sweep that reads only the equity curve
    does not pay for the order, fill and trade frames."""

    config: BacktestConfig
    dataset_hash: str
    strategy_hash: str
    bars: int
    output: Output = field(repr=False)
    ts: np.ndarray = field(repr=False)  # epoch-µs of every replayed bar
    symbols: list[str] = field(repr=False)
    # One line per problem the run's numbers may carry (a suspected unadjusted split).
    warnings: tuple[str, ...] = ()
    # What the strategy read besides its bars and source (its setup's manifest inputs).
    inputs: Mapping[str, Mapping[str, object]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def orders(self) -> pl.DataFrame:
        """Every order, in the order it was placed."""
        out = self.output
        return orders_frame(out.order_ints, out.order_floats, self.ts, self.symbols)

    @functools.cached_property
    def fills(self) -> pl.DataFrame:
        """Every fill with its charge breakdown, in execution order."""
        return fills_frame(self.output.fill_ints, self.output.fill_floats, self.ts, self.symbols)

    @functools.cached_property
    def equity(self) -> pl.DataFrame:
        """Cash, holdings, equity and exposure after each timestamp."""
        return _equity_frame(self.output.equity, self.output.equity_bar, self.ts)

    @functools.cached_property
    def trades(self) -> pl.DataFrame:
        """Round trips (entry to exit per symbol), from the fills and corporate actions."""
        out = self.output
        return round_trips(out, self.ts, self.symbols)


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True, eq=False)
class RunInputs:
    """What a run reads from the store: its bars (its symbols and dates), the corporate
    actions it applies, the dataset's content hash, and the warning about actions on record
    that the prices may lack (None: none)."""

    bars: pl.DataFrame
    actions: tuple[CorporateAction, ...]
    dataset_hash: str
    unapplied: str | None

    def __reduce__(self) -> tuple[Any, ...]:
        # Shipped to a sweep's workers as Arrow, whose buffers pickle out of band without a
        # copy: polars' own pickle wrote (and each worker read) a 16 MB copy of 250,000 bars,
        # ~80 ms against ~10 ms.
        fields = (self.bars.to_arrow(), self.actions, self.dataset_hash, self.unapplied)
        return (_unpickle_inputs, fields)


def _unpickle_inputs(
    bars: pa.Table,
    actions: tuple[CorporateAction, ...],
    dataset_hash: str,
    unapplied: str | None,
) -> RunInputs:
    frame = pl.from_arrow(bars)
    assert isinstance(frame, pl.DataFrame)
    return RunInputs(frame, actions, dataset_hash, unapplied)


def read_inputs(config: BacktestConfig, root: Path) -> RunInputs:
    """The :class:`RunInputs` of ``config`` from store ``root``: read once, a parameter sweep
    replays them for every combination."""
    from quantcli.market.corporate_actions import actions_for
    from quantcli.store.manifest import partition_actions
    from quantcli.store.reader import open_dataset

    version = open_dataset(config.dataset, root)
    manifest = version.manifest
    bars = version.frame(symbols=config.symbols, start=config.start, end=config.end)
    actions: Sequence[CorporateAction] = ()
    unapplied = None
    if config.segment in ACTION_SEGMENTS:
        symbols = bars.get_column("symbol").unique().sort().to_list()
        on_record = actions_for(symbols, root)
        # None the vendor already applied to the prices (a split in Yahoo's Close) again.
        actions, _ = partition_actions(on_record, manifest.prices)
        ts = bars.get_column("ts")
        unapplied = manifest.unapplied_warning(on_record, ts.min(), ts.max())
    return RunInputs(bars, tuple(actions), manifest.content_hash, unapplied)


def run_backtest(
    config: BacktestConfig,
    *,
    root: Path,
    progress: Callable[[float], None] | None = None,
) -> BacktestResult:
    """Backtest ``config`` on its dataset under store ``root`` (reads only, writes nothing)."""
    from quantcli.market.calendar import using_store

    strategy = load_strategy(config.strategy, config.params)
    inputs = read_inputs(config, root)
    bars, actions, digest = inputs.bars, inputs.actions, inputs.dataset_hash
    # The store has already selected the symbols and dates; its calendar imports decide them.
    with using_store(root):
        setup = _setup(bars, config, strategy, digest, root)
        result = _replay(bars, config, strategy, actions, digest, progress)
    result = _with_setup(result, setup)
    if inputs.unapplied is None:
        return result
    return dataclasses.replace(result, warnings=(inputs.unapplied, *result.warnings))


def simulate(  # noqa: PLR0913 - keyword-only: every input is named where it is passed
    bars: pl.DataFrame,
    config: BacktestConfig,
    *,
    strategy: LoadedStrategy | None = None,
    actions: Sequence[CorporateAction] = (),
    dataset_hash: str = "",
    progress: Callable[[float], None] | None = None,
    root: Path | None = None,
) -> BacktestResult:
    """Replay an in-memory bar frame (the store's schema) through ``config``'s strategy, on
    ``config``'s symbols and dates (``root``: the store a strategy's setup reads, such as the
    model strategy's registry)."""
    strat = strategy or load_strategy(config.strategy, config.params)
    bars = select(bars, config)
    setup = _setup(bars, config, strat, dataset_hash, root)
    return _with_setup(_replay(bars, config, strat, actions, dataset_hash, progress), setup)


def _setup(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strat: LoadedStrategy,
    dataset_hash: str,
    root: Path | None,
) -> Setup | None:
    """The strategy's setup over the run's bars (None for a strategy without one, or no bars:
    prepare_run names that problem)."""
    if not strat.has_setup or bars.height == 0:
        return None
    day = pl.col("ts").cast(TS_DTYPE).dt.date()  # as prepare_run casts them: IST dates
    first, last = bars.select(day.min(), day.max().alias("last")).row(0)
    run = RunContext(
        root=root,
        config=config,
        dataset_hash=dataset_hash,
        first=first,
        last=last,
        symbols=tuple(bars.get_column("symbol").unique().sort().to_list()),
    )
    return strat.setup(run)


def _with_setup(result: BacktestResult, setup: Setup | None) -> BacktestResult:
    """``result`` with the inputs and warnings of the strategy's setup."""
    if setup is None:
        return result
    warnings = (*setup.warnings, *result.warnings)
    return dataclasses.replace(result, warnings=warnings, inputs=setup.inputs)


def _replay(
    bars: pl.DataFrame,
    config: BacktestConfig,
    strat: LoadedStrategy,
    actions: Sequence[CorporateAction],
    dataset_hash: str,
    progress: Callable[[float], None] | None,
) -> BacktestResult:
    # The look-ahead check and the split warnings run beside the replay (the kernel releases
    # the GIL).
    run = prepare_run(bars, config, strat, actions, worker_pool(), warn=True)
    prep, warned = run.prep, run.warned
    try:
        out = _replay_prepared(prep, config, strat, progress)
    finally:
        run.verify()  # a look-ahead outranks the replay's error
    warnings = () if warned is None else warned.result()
    if progress is not None:
        progress(1.0)
    return _result(prep, out, config, strat, dataset_hash, warnings)


def _replay_prepared(
    prep: Prepared,
    config: BacktestConfig,
    strat: LoadedStrategy,
    progress: Callable[[float], None] | None,
) -> Output:
    if strat.kind == "events":
        return EventRun(prep, config, strat).replay(progress)
    return _run_signals(prep, config, strat, progress)


def _result(
    prep: Prepared,
    out: Output,
    config: BacktestConfig,
    strat: LoadedStrategy,
    dataset_hash: str,
    warnings: tuple[str, ...],
) -> BacktestResult:
    return BacktestResult(
        config=config,
        dataset_hash=dataset_hash,
        strategy_hash=strat.source_hash,
        bars=prep.n,
        output=out,
        ts=prep.ts,
        symbols=prep.symbols,
        warnings=warnings,
    )


# Targets evaluated together take up to this many bytes (8 a bar and strategy).
_BATCH_BYTES = 1 << 27


def simulate_prepared(
    shared: PreparedBars,
    runs: Sequence[tuple[BacktestConfig, LoadedStrategy]],
    *,
    dataset_hash: str = "",
    root: Path | None = None,
    parallel: bool = False,
) -> Iterator[BacktestResult]:
    """The :func:`simulate` result of each (config, strategy) of ``runs`` over the bars
    ``shared`` was prepared from (by :func:`prepare_bars`, with the configs' options: runs
    differ only in their strategy and parameters), in order, as a sweep runs its
    combinations: signal strategies' targets are evaluated together in batches
    (:func:`evaluate_targets`), then each run replays alone, on the process's worker threads
    when ``parallel`` (the replay releases the GIL). A strategy with a ``setup`` is evaluated
    alone, after its setup. A run's error is raised when its result is due."""
    if not runs:
        return
    segment = runs[0][0].segment
    warnings = shared.split_warnings() if segment in ACTION_SEGMENTS else ()
    size = max(1, _BATCH_BYTES // (8 * max(1, shared.prep.n)))
    for first in range(0, len(runs), size):
        part = runs[first : first + size]
        batched = [k for k, (_, s) in enumerate(part) if s.kind != "events" and not s.has_setup]
        found = evaluate_targets(shared.view, shared.sessions.code, [part[k][1] for k in batched])
        targets = dict(zip(batched, found, strict=True))
        jobs = [
            functools.partial(
                _prepared_run,
                shared,
                config,
                strat,
                targets=targets.get(k),
                dataset_hash=dataset_hash,
                root=root,
                warnings=warnings,
            )
            for k, (config, strat) in enumerate(part)
        ]
        if not parallel:
            yield from (job() for job in jobs)
            continue
        # Each run in a copy of this thread's context: the store whose calendar it reads.
        pool = worker_pool()
        yield from in_order([pool.submit(contextvars.copy_context().run, job) for job in jobs])


def _prepared_run(  # noqa: PLR0913 - keyword-only: every input is named where it is passed
    shared: PreparedBars,
    config: BacktestConfig,
    strat: LoadedStrategy,
    *,
    targets: Future[np.ndarray] | None,
    dataset_hash: str,
    root: Path | None,
    warnings: tuple[str, ...],
) -> BacktestResult:
    """One run of :func:`simulate_prepared` (``targets``: its batch's, None if evaluated
    alone, after its setup)."""
    setup = _setup(shared.source, config, strat, dataset_hash, root)
    prep = shared.prep
    if strat.kind != "events":
        if targets is None:
            targets = completed(checked_targets, shared.view, shared.sessions.code, strat)
        prep = shared.with_targets(targets.result(), config, strat)
    out = _replay_prepared(prep, config, strat, None)
    return _with_setup(_result(prep, out, config, strat, dataset_hash, warnings), setup)


# --------------------------------------------------------------------------- signal path


def _run_signals(
    prep: Prepared,
    config: BacktestConfig,
    strategy: LoadedStrategy,
    progress: Callable[[float], None] | None,
) -> Output:
    book = Book(prep, config, weights=strategy.kind == "weights")
    stop = 0
    while stop < prep.n:
        stop = min(prep.n, stop + CHUNK)
        code = book.advance(stop)
        while code == kernel.AT_ROOM:
            book.ensure_room(16)
            code = book.advance(stop)
        if code == kernel.AT_REJECT:
            raise _reject_error(book, int(book.ledger.counters[C_REJECT]), prep)
        if progress is not None:
            progress(stop / prep.n)
    return book.output()


def _reject_error(book: Book, row: int, prep: Prepared) -> StrategyError:
    ints = book.ledger.order_ints[row]
    return StrategyError(
        f"order {ints[O_ID]} for {prep.symbols[ints[O_SYM]]} at "
        f"{ist_datetime(prep.ts[ints[O_BAR]])} rejected: {REASONS[ints[O_REASON]]} "
        "(on_reject=error)"
    )


# --------------------------------------------------------------------------- result frames


def _equity_frame(equity: np.ndarray, bars: np.ndarray, ts: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": timestamps(ts[bars]),
            "cash": equity[:, 0],
            "holdings": equity[:, 1],
            "equity": equity[:, 2],
            "exposure": exposure(equity),
        },
        schema=EQUITY_SCHEMA,
    )


__all__ = [
    "BacktestResult",
    "Prepared",
    "RunInputs",
    "read_inputs",
    "run_backtest",
    "simulate",
]
