"""The point-in-time proof read off an expression's plan (quantcli.backtest.causal): what it
proves, what it leaves to the distortion check, and that nothing it proves looks ahead."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quantcli.backtest import targets
from quantcli.backtest.causal import proven
from quantcli.backtest.engine import simulate
from quantcli.backtest.strategy import SignalStrategy, load_strategy
from tests.test_backtest_engine import cfg, loaded, make_bars

CLOSE, OPEN = pl.col("close"), pl.col("open")

POINT_IN_TIME = {
    "arithmetic": (CLOSE / OPEN - 1.0) * 2,
    "comparison": (CLOSE > OPEN).cast(pl.Float64),
    "when": pl.when(CLOSE > OPEN).then(1.0).otherwise(0.0),
    "functions": CLOSE.log().abs().round(2).clip(0, 10).sqrt(),
    "booleans": (~CLOSE.is_null() & CLOSE.is_finite()).cast(pl.Float64),
    "calendar": pl.col("ts").dt.weekday() + pl.col("ts").dt.truncate("1mo").dt.month(),
    "epoch": pl.col("ts").dt.timestamp() // 86_400_000_000 % 7,
    "fill": CLOSE.fill_null(0.0).fill_nan(0.0),
    "horizontal": pl.max_horizontal(CLOSE, OPEN) + pl.sum_horizontal(CLOSE, 1),
    "lag": CLOSE.shift(1).over("symbol"),
    "rolling": CLOSE.rolling_mean(5).over("symbol") - CLOSE.rolling_std(5).over("symbol"),
    "ordered window": CLOSE.shift(2).over("symbol", order_by="ts"),
    "diff": CLOSE.diff(3).over("symbol") + CLOSE.pct_change(2).over("symbol"),
    "cumulative": CLOSE.cum_sum().over("symbol") / CLOSE.cum_count().over("symbol"),
    "ewm": CLOSE.ewm_mean(span=10).over("symbol"),
    "forward fill": CLOSE.fill_null(strategy="forward").over("symbol"),
    "cross-section rank": CLOSE.rank().over("ts"),
    "cross-section mean": CLOSE / CLOSE.mean().over("ts") + pl.len().over("ts"),
}

LEFT_TO_THE_CHECK = {
    "lead": CLOSE.shift(-1).over("symbol"),
    "lead by expression": CLOSE.shift(pl.col("volume")).over("symbol"),
    "lag outside a symbol": CLOSE.shift(1),
    "window outside a symbol": CLOSE.rolling_mean(3),
    "centred window": CLOSE.rolling_mean(3, center=True).over("symbol"),
    "reverse cumulative": CLOSE.cum_max(reverse=True).over("symbol"),
    "backward fill": CLOSE.fill_null(strategy="backward").over("symbol"),
    "whole-column mean": CLOSE - CLOSE.mean(),
    "a symbol's whole history": CLOSE.mean().over("symbol"),
    "whole-column rank": CLOSE.rank(),
    "other partition": CLOSE.shift(1).over("volume"),
    "descending order": CLOSE.shift(1).over("symbol", order_by=pl.col("ts").sort(descending=True)),
    "order by a price": CLOSE.shift(1).over("symbol", order_by="close"),
    "literal series": pl.lit(pl.Series([1.0])),
    "python function": CLOSE.map_batches(lambda s: s),
    "interpolate": CLOSE.interpolate().over("symbol"),
    "symbol size": pl.int_range(pl.len()).over("symbol"),
    "window nested in a cross-section": CLOSE.shift(1).over("ts"),
    "diff that drops rows": CLOSE.diff(1, null_behavior="drop").over("symbol"),
    "time-zone inference": pl.col("ts").dt.replace_time_zone(None).dt.hour(),
}


@pytest.mark.parametrize("expr", POINT_IN_TIME.values(), ids=POINT_IN_TIME.keys())
def test_point_in_time_shapes_are_proven(expr: pl.Expr) -> None:
    assert proven([expr])


@pytest.mark.parametrize("expr", LEFT_TO_THE_CHECK.values(), ids=LEFT_TO_THE_CHECK.keys())
def test_other_shapes_are_left_to_the_distortion_check(expr: pl.Expr) -> None:
    assert not proven([expr])
    assert not proven([POINT_IN_TIME["lag"], expr])  # one unproven expression is enough


def test_a_plan_polars_cannot_write_proves_nothing() -> None:
    opaque = pl.lit(object(), allow_object=True)
    with pytest.raises(pl.exceptions.ComputeError):
        opaque.meta.serialize(format="json")
    assert not proven([opaque])


def test_the_builtin_signal_strategies_are_proven() -> None:
    for name in ("sma_cross", "momentum"):
        strategy = load_strategy(name, {})
        assert proven([*strategy.features(), strategy.expression()])


class Wrapped(SignalStrategy):
    """An SMA cross with its signal passed through an identity Python function: the same
    targets, which the proof cannot see through."""

    def targets(self) -> pl.Expr:
        fast, slow = (CLOSE.rolling_mean(n).over("symbol") for n in (3, 8))
        return ((fast > slow).cast(pl.Float64) * 100.0).map_batches(lambda s: s)


def test_a_proven_strategy_is_evaluated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    heights: list[int] = []
    real = targets._batch_targets

    def counting(frame: pl.DataFrame, *args: Any) -> list[np.ndarray]:
        heights.append(frame.height)
        return real(frame, *args)

    monkeypatch.setattr(targets, "_batch_targets", counting)
    prices = [100 + 5 * math.sin(k / 4) for k in range(80)]
    bars = make_bars({"AAA": [(p, p + 1, p - 1, p, 10_000) for p in prices]})
    proven_run = simulate(bars, cfg(strategy="sma_cross", params={"fast": "3", "slow": "8"}))
    assert heights == [bars.height]  # the run's own evaluation, nothing distorted
    heights.clear()
    twin = simulate(bars, cfg(), strategy=loaded(Wrapped(None), "targets"))
    assert len(heights) == 3 and heights[0] == bars.height  # the run's, then two distortions
    assert twin.fills.equals(proven_run.fills)


# ----------------------------------------------------------------- soundness, by truncation

_LEAVES = st.sampled_from([CLOSE, OPEN, pl.col("volume").cast(pl.Float64), pl.lit(1.5)])
_WINDOWS = [
    lambda e: e.shift(1),
    lambda e: e.shift(-1),
    lambda e: e.diff(2),
    lambda e: e.rolling_mean(3),
    lambda e: e.rolling_max(3, center=True),
    lambda e: e.cum_sum(),
    lambda e: e.cum_min(reverse=True),
    lambda e: e.ewm_mean(alpha=0.5),
    lambda e: e.fill_null(strategy="forward"),
    lambda e: e.fill_null(strategy="backward"),
    lambda e: e.rank(),
    lambda e: e.mean(),
    lambda e: e - e.max(),
]
# Each window over the whole frame, a symbol's bars and a cross-section, and the functions of
# a bar's own values.
_UNARY = [
    *_WINDOWS,
    *(lambda e, w=w: w(e).over("symbol") for w in _WINDOWS),
    *(lambda e, w=w: w(e).over("ts") for w in _WINDOWS),
    lambda e: e.abs(),
    lambda e: -e,
    lambda e: e.fill_null(0.0),
    lambda e: e.is_null().cast(pl.Float64),
]
_BINARY = [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: (a > b).cast(pl.Float64),
    lambda a, b: pl.when(a > b).then(a).otherwise(b),
]


def _exprs() -> st.SearchStrategy[pl.Expr]:
    def extend(children: st.SearchStrategy[pl.Expr]) -> st.SearchStrategy[pl.Expr]:
        unary = st.tuples(st.sampled_from(_UNARY), children).map(lambda p: p[0](p[1]))
        pairs = st.tuples(st.sampled_from(_BINARY), children, children)
        return unary | pairs.map(lambda p: p[0](p[1], p[2]))

    return st.recursive(_LEAVES, extend, max_leaves=6)


def _panel(seed: int) -> pl.DataFrame:
    """Three symbols on 40 shared timestamps, with a missing bar and a null close."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, 3, 45, tzinfo=UTC)
    rows = [
        (s, start + timedelta(days=d), *rng.uniform(50, 150, 2), int(rng.integers(1, 9)))
        for s in ("AAA", "BBB", "CCC")
        for d in range(40)
        if (s, d) != ("BBB", 17)
    ]
    frame = pl.DataFrame(
        rows, schema=["symbol", "ts", "open", "close", "volume"], orient="row"
    ).with_columns(pl.when(pl.int_range(pl.len()) == 50).then(None).otherwise(CLOSE).alias("close"))
    return frame.sort("symbol", "ts").with_columns(pl.col("symbol").set_sorted())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_exprs(), seed=st.integers(0, 2**16), cut=st.integers(1, 39))
def test_what_is_proven_never_changes_when_later_bars_go(
    expr: pl.Expr, seed: int, cut: int
) -> None:
    """Truncation invariance, the definition: a proven expression gives every bar before a cut
    the same value over the bars up to the cut as over all of them."""
    assume(proven([expr]))
    frame = _panel(seed)
    try:
        full = frame.select(expr.cast(pl.Float64).alias("v")).to_series()
    except pl.exceptions.PolarsError:
        assume(False)  # a plan polars refuses (a window in a window)
    assume(full.len() == frame.height)  # a scalar broadcast is another shape
    cutoff = frame.get_column("ts").unique().sort()[cut]
    early = frame.get_column("ts") < cutoff
    head = frame.filter(early).select(expr.cast(pl.Float64).alias("v")).to_series()
    before = full.filter(early)
    assert head.len() == before.len()
    assert np.allclose(head.to_numpy(), before.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_the_truncation_oracle_catches_a_lead() -> None:
    """The property above can fail: a lead changes when later bars go."""
    frame = _panel(1)
    expr = CLOSE.shift(-1).over("symbol")
    full = frame.select(expr).to_series()
    early = frame.get_column("ts") < frame.get_column("ts").unique().sort()[20]
    head = frame.filter(early).select(expr).to_series()
    assert not np.allclose(head.to_numpy(), full.filter(early).to_numpy(), equal_nan=True)
