"""Signal strategies' targets: evaluated over the strategy view (alone, or a sweep's batch
in one query) and checked for look-ahead (:func:`check_lookahead`, :func:`find_lookahead`):
the one truncation-invariance check strategies and feature sets share. Expressions that
quantcli.backtest.causal proves point-in-time from their plan skip the check's evaluations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Literal, NamedTuple, Protocol

import numpy as np
import polars as pl

from quantcli.backtest import causal, partitions
from quantcli.backtest.strategy import LoadedStrategy
from quantcli.core.futures import completed
from quantcli.errors import QuantcliError, StrategyError
from quantcli.market.corporate_actions import PRICE_COLUMNS


def checked_targets(view: pl.DataFrame, code: np.ndarray, strategy: LoadedStrategy) -> np.ndarray:
    """The signal strategy's target per bar of ``view`` (NaN = no opinion; ``code``: each bar's
    symbol number), after checking them for look-ahead (StrategyError)."""
    full, check = unchecked_targets(view, code, strategy)
    check()
    return full


def unchecked_targets(
    view: pl.DataFrame, code: np.ndarray, strategy: LoadedStrategy
) -> tuple[np.ndarray, Callable[[], None]]:
    """The targets of :func:`checked_targets` and their look-ahead check, still to be run (it
    raises StrategyError), so that a large run can check while it replays."""
    signal = _signal_targets(strategy)
    full = signal.evaluate(view, code=code)
    if causal.proven(signal.exprs):
        return full, _proven  # point-in-time by construction: nothing to distort
    return full, functools.partial(_check_targets, view, code, full, strategy, signal.evaluate)


def _proven() -> None:
    """The look-ahead check of targets whose expressions are proven point-in-time."""


def _check_targets(
    view: pl.DataFrame,
    code: np.ndarray,
    full: np.ndarray,
    strategy: LoadedStrategy,
    evaluate: Callable[[pl.DataFrame], np.ndarray],
) -> None:
    valid = ~np.isnan(full)
    if valid.any():
        head, later, rows = _check_slice(view, valid, code)
        check_lookahead(head, later, None if rows is None else full[rows], strategy, evaluate)


class _Evaluate(Protocol):
    """A signal strategy's targets over bars (and each bar's symbol number, when known)."""

    def __call__(self, frame: pl.DataFrame, code: np.ndarray | None = None) -> np.ndarray: ...


class _Signal(NamedTuple):
    """A signal strategy's target per bar (NaN = no opinion) as a function of the bars, with
    the expressions it evaluates (for quantcli.backtest.causal)."""

    evaluate: _Evaluate
    exprs: list[pl.Expr]


def _signal_targets(strategy: LoadedStrategy) -> _Signal:
    """The signal strategy's targets as :class:`_Signal`. Its expressions are built once
    (~0.07 ms of Python a time) for the run's bars and the look-ahead check's."""
    features = strategy.features()
    target = _target_expression(strategy, "_target")
    evaluate = functools.partial(_targets_of, features=features, target=target, strategy=strategy)
    return _Signal(evaluate, [*features, target])


def _target_expression(strategy: LoadedStrategy, name: str) -> pl.Expr:
    """The signal strategy's target expression as Float64 column ``name``."""
    # with_columns broadcasts a scalar expression to every bar.
    return strategy.expression().cast(pl.Float64).alias(name)


def check_lookahead(
    head: pl.DataFrame,
    later: np.ndarray,
    baseline: np.ndarray | None,
    strategy: LoadedStrategy,
    evaluate: Callable[[pl.DataFrame], np.ndarray],
) -> None:
    """Raise StrategyError when the strategy's targets (``evaluate``: the ``.evaluate`` of
    :func:`_signal_targets`) over the check's slice ``head`` of the run's bars (from
    :func:`_check_slice`; ``later``: its bars after the cut; ``baseline``: the targets over
    it, when at hand) depend on later bars; see :func:`find_lookahead`."""
    row = _first_distorted(head, later, evaluate, baseline)
    if row is not None:
        raise StrategyError(
            f"strategy {strategy.name} looks ahead: its {strategy.kind} at "
            f"{row['symbol']} {row['ts']} depend on later bars"
        )


def find_lookahead(
    frame: pl.DataFrame,
    valid: np.ndarray,
    evaluate: Callable[[pl.DataFrame], np.ndarray],
    *,
    full: np.ndarray | None = None,
    distort: Sequence[str] | None = None,
    exprs: Sequence[pl.Expr] = (),
) -> dict[str, object] | None:
    """The first bar (as a named row) whose values depend on later bars, or None: the one
    look-ahead check of strategies and feature sets.

    ``evaluate`` computes the values (one per bar, or a row of them) over bars sorted by
    (symbol, ts); ``valid`` marks the bars of ``frame`` with a value, ``full`` holds the values
    over all of ``frame`` when they are at hand (saving an evaluation); ``distort`` names the
    columns to distort (default: every price). When ``exprs`` are all that ``evaluate``
    computes and quantcli.backtest.causal proves them point-in-time, nothing is evaluated.

    The values are computed up to three more times on a small slice of the bars (up to 8
    symbols with values, their bars up to a horizon): as is, and with the prices from a cut-off
    timestamp on distorted (doubled, then halved); a value before the cut-off that changes
    depends on later bars. The cut-off lies 10% of the timestamps (at most 500) after the first
    value, so warm-up periods do not make the check vacuous and long histories or many
    symbols do not make it expensive.
    """
    if not valid.any() or (exprs and causal.proven(exprs)):
        return None
    code = frame.get_column("symbol").rle_id().to_numpy()
    head, later, rows = _check_slice(frame, valid, code)
    # With every symbol in the slice, the full run's values are the undistorted ones.
    baseline = full[rows] if rows is not None and full is not None else None
    return _first_distorted(head, later, evaluate, baseline, distort)


def _first_distorted(
    head: pl.DataFrame,
    later: np.ndarray,
    evaluate: Callable[[pl.DataFrame], np.ndarray],
    baseline: np.ndarray | None,
    distort: Sequence[str] | None = None,
) -> dict[str, object] | None:
    """The first bar of the check's slice ``head`` before the cut (``later``: the bars after
    it) whose values change when the prices after the cut are distorted, or None
    (``baseline``: the values over ``head`` when at hand); see :func:`find_lookahead`."""
    before = ~later
    expected = (evaluate(head) if baseline is None else baseline)[before]
    present = set(head.columns)  # read once: each read builds the list of names
    prices = [c for c in (_PRICE_COLUMNS if distort is None else distort) if c in present]
    for factor in (2.0, 0.5):
        # One factor (1.0 before the cut, exact) for every price, multiplied as Series into a
        # shallow copy: half the cost of a with_columns, which on small runs is as much as
        # the evaluation.
        scale = pl.Series(np.where(later, factor, 1.0))
        distorted = head.clone()
        for name in prices:
            distorted.replace_column(head.get_column_index(name), head.get_column(name) * scale)
        part = evaluate(distorted)[before]
        if np.array_equal(part, expected, equal_nan=True):
            continue  # the usual verdict, without isclose's cost
        same = np.isclose(part, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
        same = same.all(axis=tuple(range(1, same.ndim)))  # a row of values: all of it
        if not same.all():
            return head.filter(pl.Series(before)).row(int(np.flatnonzero(~same)[0]), named=True)
    return None


# What the look-ahead check distorts: every price a strategy sees, adjusted and traded.
_PRICE_COLUMNS = (*PRICE_COLUMNS, *(f"raw_{c}" for c in PRICE_COLUMNS))
_CHECK_BARS = 500
_CHECK_SYMBOLS = 8


def _check_slice(
    frame: pl.DataFrame, valid: np.ndarray, run: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray | None]:
    """The look-ahead check's bars (see check_lookahead), which of them are after the cut, and
    their rows in ``frame`` when they are every symbol's first bars, else None (``run``: each
    row's symbol number, rows grouped by symbol)."""
    utc = frame.get_column("ts").cast(pl.Int64).to_numpy()
    return _slice_of(frame, utc, _slice_plan(utc, valid, run))


class _SlicePlan(NamedTuple):
    """Which bars the look-ahead check reads: the picked symbols' first rows and how many of
    each, the cut (a timestamp), and whether every symbol is picked."""

    starts: np.ndarray
    sizes: np.ndarray
    cut: int
    every_symbol: bool

    @property
    def key(self) -> tuple[bytes, bytes, int]:
        """Equal for plans that read the same bars with the same cut."""
        return self.starts.tobytes(), self.sizes.tobytes(), self.cut


def _slice_plan(utc: np.ndarray, valid: np.ndarray, run: np.ndarray) -> _SlicePlan:
    """The :class:`_SlicePlan` of bars whose timestamps are ``utc`` (see :func:`_check_slice`)."""
    # Each symbol's first row and the end (``run`` numbers the symbols 0, 1, ... in order).
    bounds = np.searchsorted(run, np.arange(int(run[-1]) + 2, dtype=run.dtype))
    live = np.flatnonzero(np.logical_or.reduceat(valid, bounds[:-1]))
    picked = live
    if live.shape[0] > _CHECK_SYMBOLS:
        spread = np.linspace(0, live.shape[0] - 1, _CHECK_SYMBOLS)
        picked = live[spread.round().astype(np.int64)]
    starts, ends = bounds[picked], bounds[picked + 1]
    # Rows are grouped by symbol and sorted by time: each picked symbol's bars up to the
    # horizon are a slice.
    stamps = [utc[a:b] for a, b in zip(starts, ends, strict=True)]
    times = _union(stamps)
    count = times.shape[0]
    # Each picked symbol's first value (it has one) is its first True in ``valid``.
    firsts = [int(s[np.argmax(valid[a:b])]) for s, a, b in zip(stamps, starts, ends, strict=True)]
    first = int(np.searchsorted(times, min(firsts)))
    k_cut = min(count - 1, first + max(1, min(count // 10, _CHECK_BARS)))
    horizon = times[min(count - 1, k_cut + max(1, min(count // 20, _CHECK_BARS // 5)))]
    sizes = np.array([int(np.searchsorted(s, horizon, side="right")) for s in stamps])
    return _SlicePlan(starts, sizes, int(times[k_cut]), picked.shape[0] == run[-1] + 1)


def _slice_of(
    frame: pl.DataFrame, utc: np.ndarray, plan: _SlicePlan
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray | None]:
    """The bars of ``plan`` (``utc``: the timestamps of ``frame``), as :func:`_check_slice`."""
    pairs = list(zip(plan.starts.tolist(), plan.sizes.tolist(), strict=True))
    head = pl.concat([frame.slice(a, size) for a, size in pairs])
    later = np.concatenate([utc[a : a + size] for a, size in pairs]) >= plan.cut
    if not plan.every_symbol:
        return head, later, None
    return head, later, np.concatenate([np.arange(a, a + size) for a, size in pairs])


def _union(stamps: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct timestamps of the symbols' sorted ``stamps``: without a sort when
    they are one strictly increasing series (symbols on the same sessions, or one symbol)."""
    one = stamps[0]
    if bool(np.all(one[1:] > one[:-1])) and all(np.array_equal(s, one) for s in stamps[1:]):
        return one
    return np.unique(np.concatenate(stamps))


def _targets_of(
    frame: pl.DataFrame,
    features: list[pl.Expr],
    target: pl.Expr,
    strategy: LoadedStrategy,
    code: np.ndarray | None = None,
) -> np.ndarray:
    try:
        return _batch_targets(frame, features, [target], code)[0]
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise StrategyError(
            f"strategy {strategy.name}: its {strategy.kind} expression failed: "
            f"{type(exc).__name__}: {text}"
        ) from exc


def evaluate_targets(
    view: pl.DataFrame, code: np.ndarray, strategies: Sequence[LoadedStrategy]
) -> list[Future[np.ndarray]]:
    """Each signal strategy's targets over ``view`` as :func:`checked_targets` computes them
    (checked for look-ahead), each in a future holding them or the strategy's error: a caller
    reads the errors in the strategies' order.

    Strategies with the same ``features`` are evaluated in one polars query, and their
    look-ahead checks over the same slice of bars in one query a distortion: polars'
    common-subexpression elimination then computes each distinct window once (a sweep's
    combinations share most of theirs). A query that fails or finds a look-ahead is done again
    a strategy at a time, for each one's own verdict."""
    futures: list[Future[np.ndarray]] = [Future() for _ in strategies]
    groups: list[tuple[list[pl.Expr], dict[int, pl.Expr]]] = []
    for k, strategy in enumerate(strategies):
        try:
            features = strategy.features()
            target = _target_expression(strategy, f"_target{k}")
        except QuantcliError as exc:
            futures[k].set_exception(exc)
            continue
        group = next((g for g in groups if _same_exprs(g[0], features)), None)
        if group is None:
            groups.append((features, {k: target}))
        else:
            group[1][k] = target
    utc = view.get_column("ts").cast(pl.Int64).to_numpy()
    for features, targets in groups:
        try:
            full = _batch_targets(view, features, list(targets.values()), code)
        except Exception:
            for k in targets:
                futures[k] = completed(checked_targets, view, code, strategies[k])
            continue
        columns = dict(zip(targets, full, strict=True))
        batch = {k: (targets[k], columns[k], strategies[k]) for k in targets}
        refused = _batch_lookahead(view, utc, code, features, batch)
        for k, error in refused.items():
            futures[k].set_exception(error)
        for k, values in columns.items():
            if not futures[k].done():
                futures[k].set_result(values)
    return futures


def _batch_lookahead(
    view: pl.DataFrame,
    utc: np.ndarray,
    code: np.ndarray,
    features: list[pl.Expr],
    batch: Mapping[int, tuple[pl.Expr, np.ndarray, LoadedStrategy]],
) -> dict[int, BaseException]:
    """The look-ahead errors of a batch of strategies with the same ``features`` (by number:
    each one's target expression, its targets over ``view`` and itself):
    :func:`check_lookahead` over each one's slice of bars, those with the same slice at once;
    a batch that finds a look-ahead (or fails) checks its strategies again one at a time."""
    columns = {k: values for k, (_, values, _) in batch.items()}
    checks: dict[tuple[bytes, bytes, int], tuple[_SlicePlan, list[int]]] = {}
    shared = causal.proven(features)
    for k, values in columns.items():
        if shared and causal.proven([batch[k][0]]):
            continue  # point-in-time by construction
        valid = ~np.isnan(values)
        if valid.any():
            plan = _slice_plan(utc, valid, code)
            checks.setdefault(plan.key, (plan, []))[1].append(k)
    refused: dict[int, BaseException] = {}
    for plan, members in checks.values():
        head, later, rows = _slice_of(view, utc, plan)
        baseline = None
        if rows is not None:  # every symbol in the slice: the targets over it are at hand
            baseline = np.column_stack([columns[k][rows] for k in members])
        evaluate = functools.partial(
            _batch_matrix, features=features, targets=[batch[k][0] for k in members]
        )
        try:
            if _first_distorted(head, later, evaluate, baseline) is None:
                continue
        except Exception:
            pass  # each strategy alone gives its own verdict, below
        for k in members:
            strategy = batch[k][2]
            alone = None if rows is None else columns[k][rows]
            one = _signal_targets(strategy).evaluate
            error = completed(check_lookahead, head, later, alone, strategy, one).exception()
            if error is not None:
                refused[k] = error
    return refused


def _same_exprs(a: Sequence[pl.Expr], b: Sequence[pl.Expr]) -> bool:
    """Whether two lists of expressions are the same, expression by expression."""
    return len(a) == len(b) and all(x.meta.eq(y) for x, y in zip(a, b, strict=True))


def _batch_targets(
    frame: pl.DataFrame,
    features: list[pl.Expr],
    targets: list[pl.Expr],
    code: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The values of ``targets`` (after ``features``) over ``frame``, NaN for null. Several
    targets, or features, are one lazy query, so that polars shares their common
    subexpressions; a single target alone (a run's own, and its look-ahead check's) is an
    eager with_columns, which skips the optimiser's passes: ~0.07 ms less a query on 5,000
    bars, with nothing to share. One target after features runs on the in-memory engine
    (polars' default, streaming, cost a small run ~0.4 ms more a query and a 250 k-bar run
    ~10 ms more, for the same values); a sweep's batch of targets on the default, which
    evaluated the benchmark's 50-combination chunks 1.3-1.4x faster than in-memory (its
    shared rolling windows). with_columns broadcasts a scalar target to every bar. Given each
    row's symbol number ``code`` and more than one symbol, proven expressions run their
    per-symbol windows by number (quantcli.backtest.partitions)."""
    if code is not None and code.shape[0] and code[0] != code[-1]:
        numbered = partitions.by_number([*features, *targets])
        if numbered is not None:
            frame = partitions.with_numbers(frame, code)
            features, targets = numbered[: len(features)], numbered[len(features) :]
    names = [t.meta.output_name() for t in targets]
    # Nulls are no opinion, like the expressions' own NaNs; without them to_numpy is a view
    # (turning them into NaN there cost more than the query).
    filled = [t.fill_null(math.nan) for t in targets]
    if len(targets) == 1 and not features:
        out = frame.with_columns(filled)
    else:
        query = frame.lazy().with_columns(features) if features else frame.lazy()
        engine: Literal["auto", "in-memory"] = "in-memory" if len(targets) == 1 else "auto"
        out = query.with_columns(filled).select(names).collect(engine=engine)
    return [np.asarray(out.get_column(name).to_numpy(), dtype=np.float64) for name in names]


def _batch_matrix(
    frame: pl.DataFrame, features: list[pl.Expr], targets: list[pl.Expr]
) -> np.ndarray:
    """:func:`_batch_targets` as one column a target (for :func:`_first_distorted`)."""
    return np.column_stack(_batch_targets(frame, features, targets))
