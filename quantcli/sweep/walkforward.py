"""Walk-forward optimisation: optimise a grid on each training window, trade the best
combination on the test window after it, and stitch the out-of-sample equity.

Windows are counted in the dataset's NSE sessions. ``--train``/``--test`` are spans: ``Ny``
years, ``Nm`` months or ``Nw`` weeks of the calendar (a boundary is the first session on or
after the date the span reaches) or ``Ns`` sessions. The first test window starts one training
span after the first session; test windows follow each other without gap or overlap to the end
of the data (the last may be shorter: it is marked ``partial``). A training window is the span
before its test window (rolling), or everything from the first session (``anchored``).

Each training window is optimised by :func:`~quantcli.sweep.runner.run_grid` (the sweep's
grid, cluster and metrics), the best combination by the metric (ties to the lowest K, as
``sweep show`` ranks) is run on the test window. A test run starts ``warmup`` bars before its
window (the strategy's ``warmup()``, the history its first target needs), flat, with the
capital carried: its cash is the stitched equity at the end of the previous test window
(``--cash`` for the first). Positions open at a window's end are valued at its last close, as a
run's equity is, and not carried into the next window, so the charges of closing them are not
counted. The run's orders must all fall in its test window (a warm-up too short for the
strategy is a StrategyError). The stitched curve is the test windows' equity one after the
other; its daily returns give the out-of-sample metrics and the deflated Sharpe ratio, deflated
by the number of combinations tried in each window (quantcli.backtest.sharpe).

With the ``model`` strategy and ``retrain``, each training window first trains a new version of
the model (``-p model=NAME@vN`` gives the kind, label, parameters and feature set) on that
window through the registry, ending early enough that the version's training window plus its
label horizon ends before the test window: the model strategy's leakage guard then refuses any
test run that would touch what its model saw. The optimisation on the training window is in
sample by definition, so it allows the overlap.

A walk-forward is saved as ``<root>/walkforwards/<id>/v1/`` (``windows.parquet``,
``equity.parquet``, ``results.parquet`` (every window's grid) and ``manifest.json``) by the
store's publish, as a sweep is; the id is a hash of the inputs, never the clock.
"""

from __future__ import annotations

import bisect
import calendar as _months
import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantcli.backtest.config import BacktestConfig
from quantcli.core.hashing import sha256_hex
from quantcli.errors import (
    ConflictError,
    DataError,
    IntegrityError,
    QuantcliError,
    StrategyError,
    UsageError,
)
from quantcli.sweep.grid import Grid, Value, combo_params, param_text
from quantcli.sweep.runner import Cluster, run_grid

if TYPE_CHECKING:
    from quantcli.backtest.engine import BacktestResult, RunInputs

WALKFORWARDS_DIR = "walkforwards"
MANIFEST = "manifest.json"
WINDOWS = "windows.parquet"
EQUITY = "equity.parquet"
RESULTS = "results.parquet"
FORMAT_VERSION = 1
_SPAN = re.compile(r"([1-9][0-9]{0,4})([ymws])")
_UNITS = {"y": "years", "m": "months", "w": "weeks", "s": "sessions"}
CAPITAL = (
    "each test window starts flat with the previous one's final equity as its cash; open "
    "positions are valued at the window's last close and not carried (no closing charges)"
)
# The in- and out-of-sample metrics each window's row keeps besides the ranking metric.
WINDOW_METRICS = ("sharpe", "total_return", "max_drawdown", "trades")


@dataclass(frozen=True)
class Span:
    """A window length: ``count`` years, months or weeks of the calendar, or sessions."""

    count: int
    unit: str  # y | m | w | s

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def shift(self, day: date, sign: int) -> date:
        """``day`` moved by this calendar span forward (sign 1) or back (-1); a month end
        that does not exist is the month's last day."""
        if self.unit == "w":
            return day + timedelta(weeks=sign * self.count)
        months = sign * self.count * (12 if self.unit == "y" else 1)
        total = day.year * 12 + day.month - 1 + months
        year, month = divmod(total, 12)
        last = _months.monthrange(year, month + 1)[1]
        return date(year, month + 1, min(day.day, last))


def parse_span(text: str, flag: str) -> Span:
    """The span ``text`` spells (``3y``, ``6m``, ``8w``, ``120s``), else UsageError naming
    ``flag``."""
    match = _SPAN.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"{flag} {text!r}: expected a span such as 3y, 6m, 8w (calendar) or 120s (sessions)"
        )
    return Span(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class Window:
    """One walk-forward step over session indices (half-open): train ``[train_lo, train_hi)``,
    then test ``[test_lo, test_hi)``; ``partial`` when the data ends before the test span."""

    index: int
    train_lo: int
    train_hi: int
    test_lo: int
    test_hi: int
    partial: bool


def _forward(sessions: Sequence[date], i: int, span: Span) -> tuple[int, date | None]:
    """The index one span after session ``i`` (may be ``len(sessions)``) and, for a calendar
    span, the date it reaches."""
    if span.unit == "s":
        return i + span.count, None
    reached = span.shift(sessions[i], 1)
    return bisect.bisect_left(sessions, reached), reached


def _back(sessions: Sequence[date], i: int, span: Span) -> int:
    if span.unit == "s":
        return max(0, i - span.count)
    return bisect.bisect_left(sessions, span.shift(sessions[i], -1))


def plan_windows(
    sessions: Sequence[date], train: Span, test: Span, *, anchored: bool, after: date
) -> list[Window]:
    """The walk-forward windows over ``sessions`` (sorted, distinct), ``after`` the first
    session after the data (it tells a complete last window from a cut one). UsageError when
    the training span leaves no test window, or the first test window is cut short."""
    n = len(sessions)
    if n == 0:
        raise DataError("no sessions in the data to walk forward over")
    first_test, _ = _forward(sessions, 0, train)
    if first_test >= n:
        raise UsageError(
            f"--train {train} covers all {n} sessions of the data ({sessions[0]}.."
            f"{sessions[-1]}): no test window is left; shorten --train"
        )
    windows: list[Window] = []
    lo = first_test
    while lo < n:
        hi, reached = _forward(sessions, lo, test)
        partial = hi > n if reached is None else hi == n and reached > after
        if partial and not windows:
            raise UsageError(
                f"--test {test} is longer than the data after the first training window "
                f"({sessions[lo]}..{sessions[-1]}, {n - lo} sessions); shorten --test or --train"
            )
        train_lo = 0 if anchored else _back(sessions, lo, train)
        windows.append(Window(len(windows), train_lo, lo, lo, min(hi, n), partial))
        lo = hi
    return windows


@dataclass(frozen=True)
class WalkForward:
    """A saved walk-forward: its id, directory, manifest, per-window rows, stitched
    out-of-sample equity and every window's grid results."""

    wf_id: str
    path: Path
    manifest: Mapping[str, Any]
    windows: pl.DataFrame
    equity: pl.DataFrame
    results: pl.DataFrame
    unchanged: bool = False  # the same walk-forward was already saved


@dataclass(frozen=True)
class _Plan:
    """What every window reads: the inputs, their sessions and bar timestamps."""

    inputs: RunInputs
    sessions: list[date]
    stamps: np.ndarray  # every distinct bar timestamp (epoch-µs), sorted
    stamp_days: list[date]  # the IST session date of each


def walkforwards_root(root: Path) -> Path:
    """Where a store keeps its walk-forwards."""
    return root / WALKFORWARDS_DIR


def execute_walkforward(
    config: BacktestConfig,
    grid: Grid,
    *,
    train: Span,
    test: Span,
    anchored: bool,
    metric: str,
    retrain: bool = False,
    root: Path,
    cluster: Cluster | None,
    progress: Callable[[int], None] | None = None,
    planned: Callable[[int], None] | None = None,
) -> WalkForward:
    """Walk ``grid`` forward over ``config``'s dataset and save it: the library behind
    ``quantcli backtest walkforward``. Nothing is written unless every window ran.

    ``progress(n)`` is called as ``n`` more combinations finish, after ``planned(total)``
    has said how many there are (windows times combinations)."""
    from quantcli.backtest.engine import read_inputs
    from quantcli.sweep.results import check_metric

    check_metric(metric)
    base = _model_base(config, grid, root) if retrain else None
    if base is not None:
        grid = _without(grid, "model")
    inputs = read_inputs(config, root)
    plan = _plan(inputs, root)
    windows = plan_windows(
        plan.sessions, train, test, anchored=anchored, after=_after(plan.sessions[-1], root)
    )
    warmups = _warmups(config, grid) if base is None else [0] * len(grid.combos)
    _check_warmup(config, grid, warmups, windows, plan, train)
    if planned is not None:
        planned(len(windows) * len(grid.combos))
    steps = _walk(config, grid, windows, plan, metric, base, cluster, progress, root)
    options = {
        "train": str(train),
        "test": str(test),
        "anchored": anchored,
        "metric": metric,
        "retrain": retrain,
    }
    return _save(config, grid, windows, plan, steps, options, root)


# --------------------------------------------------------------------------- preparation


def _plan(inputs: RunInputs, root: Path) -> _Plan:
    from quantcli.core.dtypes import TS_DTYPE
    from quantcli.market import calendar

    if inputs.bars.height == 0:
        raise DataError("the dataset has no bars in the chosen symbols and dates")
    stamps = inputs.bars.select(pl.col("ts").cast(TS_DTYPE).unique().sort())
    days = stamps.get_column("ts").dt.date().to_list()
    with calendar.using_store(root):
        open_days = set(calendar.sessions(days[0], days[-1]))
    keep = [d in open_days for d in days]
    ts = stamps.get_column("ts").dt.epoch("us").to_numpy()[np.asarray(keep, dtype=bool)]
    kept = [d for d, k in zip(days, keep, strict=True) if k]
    return _Plan(inputs, sorted(set(kept)), ts, kept)


def _after(last: date, root: Path) -> date:
    from quantcli.errors import CoverageError
    from quantcli.market import calendar

    with calendar.using_store(root):
        try:
            return calendar.next_session(last)
        except CoverageError:  # past the calendar: the next weekday is the best guess
            return last + timedelta(days=1)


def _warmups(config: BacktestConfig, grid: Grid) -> list[int]:
    """Each combination's warm-up; 0 for one the strategy refuses, which run_grid names (with
    the grid's own hint) before any run."""
    from quantcli.backtest.strategy import load_strategy

    out = []
    for combo in grid.combos:
        try:
            strategy = load_strategy(config.strategy, {**config.params, **combo_params(combo)})
        except QuantcliError:
            out.append(0)
            continue
        out.append(strategy.warmup())
    return out


def _check_warmup(
    config: BacktestConfig,
    grid: Grid,
    warmups: Sequence[int],
    windows: Sequence[Window],
    plan: _Plan,
    train: Span,
) -> None:
    """UsageError when a training window has no more bars than a combination's warm-up (its
    strategy would never trade there)."""
    k = int(np.argmax(warmups))
    need = warmups[k]
    for w in windows:
        bars = _bars_between(plan, plan.sessions[w.train_lo], plan.sessions[w.train_hi - 1])
        if bars <= need:
            shown = " ".join(f"{n}={v}" for n, v in combo_params(grid.combos[k]).items())
            raise UsageError(
                f"--train {train}: training window {w.index} ({plan.sessions[w.train_lo]}.."
                f"{plan.sessions[w.train_hi - 1]}) has {bars} bars, not more than "
                f"{config.strategy}'s warm-up of {need} bars at combination {k} ({shown}); "
                "lengthen --train or narrow the grid"
            )


def _bars_between(plan: _Plan, first: date, last: date) -> int:
    return bisect.bisect_right(plan.stamp_days, last) - bisect.bisect_left(plan.stamp_days, first)


def _bars(plan: _Plan, start_us: int, last: date) -> RunInputs:
    """The plan's inputs cut to bars from ``start_us`` (epoch-µs) to session ``last``."""
    from quantcli.core.dtypes import TS_DTYPE

    ts = pl.col("ts").cast(TS_DTYPE)
    bars = plan.inputs.bars.filter((ts.dt.epoch("us") >= start_us) & (ts.dt.date() <= last))
    return dataclasses.replace(plan.inputs, bars=bars)


def _without(grid: Grid, name: str) -> Grid:
    params = tuple((n, v) for n, v in grid.params if n != name)
    combos = tuple({n: v for n, v in c.items() if n != name} for c in grid.combos)
    return Grid(params, grid.where, tuple({tuple(c.items()): c for c in combos}.values()))


# --------------------------------------------------------------------------- the windows


@dataclass(frozen=True)
class _Step:
    """One window's outcome."""

    results: pl.DataFrame  # the grid on the training window
    best: Mapping[str, Any]  # its best row
    result: BacktestResult  # the test run (warm-up bars included)
    equity: pl.DataFrame  # its test window's equity
    metrics: Mapping[str, Any]  # out of sample, over the test window
    cash: float  # the capital it started with
    model: Mapping[str, Any] | None  # the version retrained for it


@dataclass(frozen=True)
class _Base:
    """The model version a retraining copies (kind, label, parameters, features)."""

    name: str
    meta: Mapping[str, Any]
    features: str


def _model_base(config: BacktestConfig, grid: Grid, root: Path) -> _Base:
    from quantcli.models import registry
    from quantcli.models.strategy import pinned_name

    if config.strategy != "model":
        raise UsageError("--retrain retrains a model: it needs --strategy model")
    values = dict(grid.params).get("model")
    ref = config.params.get("model") if values is None else None
    if values is not None and len(values) == 1:
        ref = str(values[0])
    if ref is None:
        raise UsageError("--retrain needs one -p model=NAME@vN: the version to retrain")
    meta = registry.metadata(root, ref)
    source = meta.get("source") or {}
    if "features_ref" not in source:
        raise UsageError(
            f"--retrain: {meta['ref']} was trained on frames, not on a feature set: "
            "there is nothing to retrain it on"
        )
    features = pinned_name(str(source["features_ref"]), str(source["features_hash"]))
    return _Base(str(meta["name"]), meta, features)


def _retrain(base: _Base, plan: _Plan, window: Window, root: Path) -> Mapping[str, Any]:
    """A new version of the base model trained on ``window``'s training sessions, ending the
    label horizon before its test window (so the version never saw the test window)."""
    from quantcli.features.labels import LabelSpec
    from quantcli.market import calendar
    from quantcli.models.train import TrainSpec, train

    horizon = LabelSpec.parse(str(base.meta["label"])).horizon
    first, test_from = plan.sessions[window.train_lo], plan.sessions[window.test_lo]
    with calendar.using_store(root):
        days = calendar.calendar().sessions
    i = bisect.bisect_left(days, test_from) - 1 - horizon
    if i < 0 or days[i] < first:
        raise UsageError(
            f"--retrain: training window {window.index} ({first}.."
            f"{plan.sessions[window.train_hi - 1]}) is not longer than {base.meta['ref']}'s "
            f"label horizon of {horizon} sessions; "
            "lengthen --train"
        )
    spec = dataclasses.replace(
        TrainSpec.from_metadata(base.meta), train_from=first, train_to=days[i], test_to=None
    )
    try:
        return train(base.name, spec, features=base.features, root=root).metadata
    except QuantcliError as exc:
        raise type(exc)(
            f"--retrain, training window {window.index} ({first}..{days[i]}): {exc.message}"
        ) from None


@contextmanager
def _shared(cluster: Cluster | None) -> Iterator[Cluster | None]:
    """``cluster`` for every window's grid: a local cluster is started once, not per window
    (its start and shutdown cost seconds), and the windows reach it by its address."""
    if cluster is None or cluster.scheduler is not None:
        yield cluster
        return
    from quantcli.sweep.runner import _client

    with _client(cluster) as client:
        yield Cluster(scheduler=str(client.scheduler_info()["address"]))


def _step(
    config: BacktestConfig,
    grid: Grid,
    window: Window,
    plan: _Plan,
    metric: str,
    base: _Base | None,
    cash: float,
    cluster: Cluster | None,
    progress: Callable[[int], None] | None,
    root: Path,
) -> _Step:
    """One window: (retrain,) optimise the grid on the training window, run the best
    combination on the test window with ``cash``."""
    from quantcli.sweep.results import ranked

    model = _retrain(base, plan, window, root) if base is not None else None
    params = dict(config.params)
    if model is not None:
        params["model"] = str(model["ref"])
    fixed = dataclasses.replace(config, params=params)
    first, last = plan.sessions[window.train_lo], plan.sessions[window.train_hi - 1]
    first_us = int(plan.stamps[bisect.bisect_left(plan.stamp_days, first)])
    results = run_grid(
        _bars(plan, first_us, last),
        config.strategy,
        grid,
        # In sample by definition: a model may trade the window it was trained on here.
        dataclasses.replace(fixed, allow_overlap=True),
        cluster=cluster,
        progress=progress,
        root=root,
    )
    best = ranked(results, metric).row(0, named=True)
    combo = {name: best[name] for name in grid.names}
    result, equity, metrics = _test_run(fixed, combo, window, plan, cash, root)
    return _Step(results, best, result, equity, metrics, cash, model)


def _test_run(
    config: BacktestConfig,
    combo: Mapping[str, Value],
    window: Window,
    plan: _Plan,
    cash: float,
    root: Path,
) -> tuple[BacktestResult, pl.DataFrame, dict[str, Any]]:
    """``combo`` on ``window``'s test window, from its warm-up bars, flat, with ``cash``: the
    run, its test window's equity and its metrics there."""
    from quantcli.backtest.engine import simulate
    from quantcli.backtest.metrics import compute_metrics
    from quantcli.backtest.strategy import load_strategy
    from quantcli.market.calendar import using_store

    run_config = dataclasses.replace(
        config, params={**config.params, **combo_params(combo)}, cash=cash
    )
    strategy = load_strategy(run_config.strategy, run_config.params)
    test_from, test_to = plan.sessions[window.test_lo], plan.sessions[window.test_hi - 1]
    j = bisect.bisect_left(plan.stamp_days, test_from)
    start_us = int(plan.stamps[j])
    inputs = _bars(plan, int(plan.stamps[max(0, j - strategy.warmup())]), test_to)
    with using_store(root):
        result = simulate(
            inputs.bars,
            run_config,
            strategy=strategy,
            actions=inputs.actions,
            dataset_hash=inputs.dataset_hash,
            root=root,
        )
    epoch = pl.col("ts").dt.epoch("us")
    before = result.equity.filter(epoch < start_us)
    if before.filter((pl.col("cash") != cash) | (pl.col("holdings") != 0)).height:
        raise StrategyError(
            f"strategy {config.strategy} traded before test window {window.index} "
            f"({test_from}), inside its warm-up of {strategy.warmup()} bars: its warmup() is "
            "shorter than the history its first target needs"
        )
    equity = result.equity.filter(epoch >= start_us)
    metrics = compute_metrics(
        equity=equity,
        trades=result.trades,
        fills=result.fills,
        orders=result.orders.height,
        bars=inputs.bars.filter(pl.col("ts").dt.date() >= test_from).height,
        initial_cash=cash,
        risk_free=config.risk_free,
    )
    return result, equity, metrics


def _walk(
    config: BacktestConfig,
    grid: Grid,
    windows: Sequence[Window],
    plan: _Plan,
    metric: str,
    base: _Base | None,
    cluster: Cluster | None,
    progress: Callable[[int], None] | None,
    root: Path,
) -> list[_Step]:
    """Every window in order, the capital carried from each test window to the next."""
    steps: list[_Step] = []
    cash = config.cash
    with _shared(cluster) as shared:
        for window in windows:
            step = _step(config, grid, window, plan, metric, base, cash, shared, progress, root)
            steps.append(step)
            if step.equity.height:
                cash = float(step.equity.get_column("equity")[-1])
            if not cash > 0:
                raise DataError(
                    f"the out-of-sample equity is {cash:,.2f} at the end of test window "
                    f"{window.index}: nothing is left to carry into the next"
                )
    return steps


# --------------------------------------------------------------------------- the report


def stability(grid: Grid, best: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How stable the windows' best combinations are: how often the best combination changes
    from one window to the next, how many distinct ones there were, and per varied parameter
    its distinct values, the most common one and its share, and (numbers) min, max and
    spread (max - min)."""
    ks = [int(row["K"]) for row in best]
    changes = sum(1 for a, b in itertools.pairwise(ks) if a != b)
    params: dict[str, Any] = {}
    for name in grid.varied:
        values = [row[name] for row in best]
        counts: dict[str, int] = {}
        for v in values:
            counts[param_text(v)] = counts.get(param_text(v), 0) + 1
        common = min(counts, key=lambda t: (-counts[t], t))
        entry: dict[str, Any] = {
            "distinct": len(counts),
            "most_common": common,
            "share": counts[common] / len(values),
        }
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            entry.update(min=min(values), max=max(values), spread=max(values) - min(values))
        params[name] = entry
    return {
        "windows": len(ks),
        "changes": changes,
        "change_rate": changes / (len(ks) - 1) if len(ks) > 1 else 0.0,
        "distinct_combos": len(set(ks)),
        "params": params,
    }


def _summary(
    config: BacktestConfig, grid: Grid, steps: Sequence[_Step]
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The stitched out-of-sample equity and its metrics, with the probabilistic and deflated
    Sharpe ratios of its daily returns."""
    from quantcli.backtest.metrics import compute_metrics, daily_equity, daily_returns
    from quantcli.backtest.sharpe import deflated_sharpe, probabilistic_sharpe

    equity = pl.concat(
        [s.equity.with_columns(pl.lit(i, pl.Int64).alias("window")) for i, s in enumerate(steps)]
    )
    trades = pl.concat([s.result.trades for s in steps], how="vertical_relaxed")
    fills = pl.concat([s.result.fills for s in steps], how="vertical_relaxed")
    metrics = compute_metrics(
        equity=equity,
        trades=trades,
        fills=fills,
        orders=sum(int(s.metrics["orders"]) for s in steps),
        bars=sum(int(s.metrics["bars"]) for s in steps),
        initial_cash=config.cash,
        risk_free=config.risk_free,
    )
    values = daily_equity(equity).get_column("equity").to_numpy().astype(np.float64)
    returns = daily_returns(values, config.cash)
    metrics["probabilistic_sharpe"] = probabilistic_sharpe(returns)
    metrics["deflated_sharpe"] = deflated_sharpe(returns, len(grid.combos))
    metrics["combinations"] = len(grid.combos)
    return equity, metrics


def _windows_frame(
    grid: Grid, windows: Sequence[Window], plan: _Plan, steps: Sequence[_Step], metric: str
) -> pl.DataFrame:
    """One row per window: its dates, the best combination (K and its parameters, typed as
    the grid's), its in-sample metrics (from the grid) and its out-of-sample metrics."""
    day = plan.sessions
    shown = tuple(dict.fromkeys((metric, *WINDOW_METRICS)))
    rows: list[dict[str, Any]] = []
    for w, s in zip(windows, steps, strict=True):
        row: dict[str, Any] = {
            "window": w.index,
            "train_from": day[w.train_lo],
            "train_to": day[w.train_hi - 1],
            "test_from": day[w.test_lo],
            "test_to": day[w.test_hi - 1],
            "partial": w.partial,
            "K": int(s.best["K"]),
            **{f"is_{name}": _number(s.best[name]) for name in shown},
            "oos_start_cash": s.cash,
            "oos_final_equity": _number(s.metrics["final_equity"]),
            **{f"oos_{name}": _number(s.metrics[name]) for name in shown},
            "retrained": None if s.model is None else str(s.model["ref"]),
        }
        rows.append(row)
    schema = {
        "window": pl.Int64(),
        "train_from": pl.Date(),
        "train_to": pl.Date(),
        "test_from": pl.Date(),
        "test_to": pl.Date(),
        "partial": pl.Boolean(),
        "K": pl.Int64(),
        **{name: pl.Float64() for name in rows[0] if name.startswith(("is_", "oos_"))},
        "retrained": pl.String(),
    }
    frame = pl.DataFrame(rows, schema=schema)
    best = pl.concat(
        [s.results.filter(pl.col("K") == int(s.best["K"])).select(grid.names) for s in steps]
    )
    position = frame.columns.index("K") + 1
    columns = [*frame.columns[:position], *grid.names, *frame.columns[position:]]
    return pl.concat([frame, best], how="horizontal").select(columns)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _save(
    config: BacktestConfig,
    grid: Grid,
    windows: Sequence[Window],
    plan: _Plan,
    steps: Sequence[_Step],
    options: Mapping[str, Any],
    root: Path,
) -> WalkForward:
    """Publish the walk-forward as ``walkforwards/<id>/v1``: kept (``unchanged``) when that
    walk-forward exists with the same files, ConflictError when with others."""
    from quantcli.output import to_json
    from quantcli.store.manifest import version_dir
    from quantcli.store.publish import publish_files
    from quantcli.sweep.results import results_bytes

    frame = _windows_frame(grid, windows, plan, steps, str(options["metric"]))
    equity, oos = _summary(config, grid, steps)
    results = pl.concat(
        [
            s.results.select(pl.lit(i, pl.Int64).alias("window"), pl.all())
            for i, s in enumerate(steps)
        ],
        how="vertical_relaxed",
    )
    data = {
        WINDOWS: results_bytes(frame),
        EQUITY: results_bytes(equity),
        RESULTS: results_bytes(results),
    }
    digests = {name: sha256_hex(body) for name, body in data.items()}
    manifest = {**_manifest(config, grid, frame, plan, steps, options, oos, root), "files": digests}
    wf_id = str(manifest["walkforward_id"])

    def files(_: int) -> dict[str, bytes]:
        return {**data, MANIFEST: (to_json(manifest) + "\n").encode("utf-8")}

    def existing(folder: Path) -> bool:
        theirs = _read_manifest(folder).get("files")
        if theirs != digests:
            raise ConflictError(
                f"walk-forward {wf_id} is saved in {folder} with other results: not replacing "
                "it (move it away to run it again)"
            )
        return True

    version, created = publish_files(
        walkforwards_root(root),
        wf_id,
        files,
        marker=MANIFEST,
        existing=existing,
        what="walk-forward",
    )
    path = version_dir(walkforwards_root(root), wf_id, version)
    saved = manifest if created else _read_manifest(path)
    return WalkForward(wf_id, path, saved, frame, equity, results, not created)


def _manifest(
    config: BacktestConfig,
    grid: Grid,
    frame: pl.DataFrame,
    plan: _Plan,
    steps: Sequence[_Step],
    options: Mapping[str, Any],
    oos: Mapping[str, Any],
    root: Path,
) -> dict[str, Any]:
    """Every input that decides the walk-forward's numbers, hashed into its id, and the
    report (windows' best combinations, stability, out-of-sample metrics)."""
    from quantcli.backtest.metrics import fixed_float
    from quantcli.backtest.runs import (
        charges_inputs,
        dataset_info,
        run_id_for,
        run_inputs,
        versions,
    )

    recorded = config.to_dict()
    last = steps[-1].result
    entries = run_inputs(last, config=recorded, root=root)
    # The charge rates of the whole span (training windows too), not only the last run's.
    entries.update(charges_inputs(config, (plan.sessions[0], plan.sessions[-1])))
    entries["params"] = {"sha256": _digest(grid.to_dict()), "grid": True}
    entries["walkforward"] = {"sha256": _digest(options), **options}
    per_window = [
        {"K": int(s.best["K"]), "inputs": {k: v.get("sha256") for k, v in s.result.inputs.items()}}
        for s in steps
    ]
    entries["windows"] = {"sha256": _digest(per_window), "count": len(steps)}
    best = frame.select("K", *grid.names).to_dicts()
    models = [
        {
            "window": i,
            "ref": s.model["ref"],
            "identity": s.model["identity"],
            "artifact_sha256": s.model["artifact_sha256"],
            "train_from": s.model["window"]["train_from"],
            "train_to": s.model["window"]["train_to"],
        }
        for i, s in enumerate(steps)
        if s.model is not None
    ]
    warnings = [w for w in (plan.inputs.unapplied,) if w is not None]
    for s in steps:
        warnings.extend(w for w in s.result.warnings if w not in warnings)
    return {
        "format": FORMAT_VERSION,
        "walkforward_id": run_id_for(recorded, entries),
        "config": recorded,
        "dataset": dataset_info(config.dataset, plan.inputs.dataset_hash, root),
        "strategy": {"spec": config.strategy, "source_hash": last.strategy_hash},
        "grid": grid.to_dict(),
        "walkforward": {
            **options,
            "windows": len(steps),
            "capital": CAPITAL,
        },
        "stability": stability(grid, best),
        "oos": {k: fixed_float(v) for k, v in oos.items()},
        "models": models,
        "inputs": entries,
        "versions": versions(),
        "warnings": warnings,
    }


def _digest(payload: object) -> str:
    return sha256_hex(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc["files"], dict):
            raise ValueError("not a walk-forward manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: unreadable walk-forward manifest: {exc}") from None
    return doc
