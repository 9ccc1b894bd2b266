"""Per-symbol windows partitioned by symbol number (quantcli.backtest.partitions): the same
values as by name, applied only to proven expressions, and used by a run's evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.backtest import partitions, targets
from quantcli.backtest.sessions import symbol_codes
from quantcli.backtest.strategy import load_strategy

CLOSE = pl.col("close")


def _bars(lengths: list[int], seed: int, descending: bool = False) -> pl.DataFrame:
    """Bars grouped by symbol in sorted order, as a run's view has them (or in the reverse
    order: numbers not ascending)."""
    rng = np.random.default_rng(seed)
    names = [f"S{k:03d}" for k in range(len(lengths))][:: -1 if descending else 1]
    return pl.DataFrame(
        {
            "symbol": np.repeat(names, lengths),
            "ts": np.concatenate([np.arange(n) for n in lengths]),
            "close": rng.normal(100, 5, sum(lengths)).round(2),
        }
    )


def _values(frame: pl.DataFrame, exprs: list[pl.Expr]) -> list[np.ndarray]:
    out = frame.with_columns(exprs)
    return [out.get_column(e.meta.output_name()).to_numpy() for e in exprs]


_WINDOWS = st.sampled_from(
    [
        lambda n: CLOSE.rolling_mean(n).over("symbol"),
        lambda n: CLOSE.shift(n).over("symbol"),
        lambda n: (CLOSE - CLOSE.rolling_max(n)).over(["symbol"]),
        lambda n: CLOSE.pct_change(n).over("symbol") * CLOSE,
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=2, max_size=6),
    windows=st.lists(st.tuples(_WINDOWS, st.integers(1, 6)), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
    descending=st.booleans(),
)
def test_windows_by_number_equal_windows_by_name(
    lengths: list[int], windows: list[tuple[Any, int]], seed: int, descending: bool
) -> None:
    frame = _bars(lengths, seed, descending)
    _, code = symbol_codes(frame.get_column("symbol"))
    exprs = [make(n).alias(f"w{k}") for k, (make, n) in enumerate(windows)]
    numbered = partitions.by_number(exprs)
    assert numbered is not None
    by_name = _values(frame, exprs)
    by_number = _values(partitions.with_numbers(frame, code), numbered)
    for a, b in zip(by_name, by_number, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_rewrite_replaces_only_window_keys() -> None:
    expr = (CLOSE.rolling_mean(3).over("symbol") + (pl.col("symbol") == "A")).alias("t")
    (numbered,) = partitions.by_number([expr]) or [None]
    assert numbered is not None
    plan = numbered.meta.serialize(format="json")
    assert f'"partition_by":[{{"Column":"{partitions.NUMBER}"}}]' in plan
    assert '{"Column":"symbol"}' in plan  # the comparison still reads the name
    assert numbered.meta.output_name() == "t"


@pytest.mark.parametrize(
    "exprs",
    [
        [CLOSE.rolling_mean(3).over("symbol").map_batches(lambda s: s)],  # a Python function
        [CLOSE.shift(-1).over("symbol")],  # a look-ahead: not proven
        [CLOSE * 2.0],  # no symbol to rewrite
        [CLOSE.rolling_mean(3).over("symbol"), CLOSE.shift(-1)],  # one unproven member
    ],
)
def test_unproven_or_symbol_free_expressions_are_left_alone(exprs: list[pl.Expr]) -> None:
    assert partitions.by_number(exprs) is None


def test_a_run_evaluates_by_number_with_the_same_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _bars([40, 35, 50], 7).with_columns(
        pl.col("close").alias(c) for c in ("open", "high", "low")
    )
    _, code = symbol_codes(frame.get_column("symbol"))
    strategy = load_strategy("sma_cross", {"fast": "3", "slow": "8"})
    seen: list[list[str]] = []
    real = partitions.with_numbers

    def spying(frame: pl.DataFrame, code: np.ndarray) -> pl.DataFrame:
        out = real(frame, code)
        seen.append(out.columns)
        return out

    monkeypatch.setattr(partitions, "with_numbers", spying)
    by_number, _ = targets.unchecked_targets(frame, code, strategy)
    assert seen and partitions.NUMBER in seen[0]
    seen.clear()
    by_name = targets._signal_targets(strategy).evaluate(frame)
    assert not seen
    np.testing.assert_array_equal(by_number, by_name)
    # A sweep's batch takes the same path.
    (future,) = targets.evaluate_targets(frame, code, [strategy])
    assert seen
    np.testing.assert_array_equal(future.result(), by_name)


def test_one_symbol_keeps_its_name_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _bars([60], 3)
    _, code = symbol_codes(frame.get_column("symbol"))
    monkeypatch.setattr(partitions, "with_numbers", None)  # would fail if called
    strategy = load_strategy("sma_cross", {"fast": "3", "slow": "8"})
    values, _ = targets.unchecked_targets(frame, code, strategy)
    assert np.isfinite(values[7:]).all() and np.isnan(values[:7]).all()
