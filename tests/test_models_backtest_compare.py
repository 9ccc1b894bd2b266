"""Comparing two models by backtesting them: the paired bootstrap of daily returns, the count of
candidates the deflated Sharpe ratio uses, and compare_backtests' bad input (the probabilistic
Sharpe ratio itself is tested in test_backtest_sharpe)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_store
from test_models import train_on_set

from quantcli.errors import DataError, NotFoundError, QuantcliError, UsageError
from quantcli.models import registry
from quantcli.models.backtest_compare import candidates, compare_backtests, paired_bootstrap

START, END = dt.date(2023, 8, 1), dt.date(2024, 2, 23)


@pytest.fixture(scope="module")
def template(model_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model store (fs@v1, m@v1 with seed 7) and m@v2 (seed 8)."""
    root = copy_store(model_template, tmp_path_factory.mktemp("compare"))
    train_on_set(root, seed=8)
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    return copy_store(template, tmp_path)


def compare(store: Path, a: str = "m@v1", b: str = "m@v2", **kw):
    args = {"features": "fs", "start": START, "end": END, "seed": 3, "resamples": 200, **kw}
    return compare_backtests(store, a, b, params={"long": "0.5"}, **args)


# --- the paired bootstrap ----------------------------------------------------------------------


def test_a_constant_shift_is_certain_and_a_copy_is_no_difference() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.01, 300)
    tests = paired_bootstrap(a, a + 0.001, seed=1, resamples=200, block=5)
    mean = tests["mean_return"]
    # Paired: every resample sees the same sessions for both, so the mean difference is exact.
    assert mean.improvement == pytest.approx(0.001) and mean.dates == 300
    assert mean.ci == pytest.approx((0.001, 0.001))
    assert mean.p_value == 1 / 201  # the smallest p-value 200 resamples can show
    sharpe = tests["sharpe"]
    assert sharpe.improvement is not None and sharpe.improvement > 0
    assert sharpe.p_value is not None and sharpe.p_value < 0.05
    worse = paired_bootstrap(a + 0.001, a, seed=1, resamples=200, block=5)["mean_return"]
    assert worse.improvement == pytest.approx(-0.001) and worse.p_value == 1.0
    same = paired_bootstrap(a, a, seed=1, resamples=50, block=5)
    assert same["mean_return"].improvement == 0.0 and same["mean_return"].p_value == 1.0
    assert same["sharpe"].improvement == 0.0 and same["sharpe"].p_value == 1.0


def test_the_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 0.01, 200), rng.normal(0.001, 0.01, 200)
    one = paired_bootstrap(a, b, seed=9, resamples=100, block=4)
    assert paired_bootstrap(a, b, seed=9, resamples=100, block=4) == one
    assert paired_bootstrap(a, b, seed=10, resamples=100, block=4) != one


def test_a_flat_series_has_no_sharpe_difference() -> None:
    flat, moving = np.zeros(50), np.random.default_rng(3).normal(0, 0.01, 50)
    tests = paired_bootstrap(flat, moving, seed=0, resamples=50, block=3)
    assert tests["sharpe"].improvement is None and tests["sharpe"].p_value is None
    assert tests["mean_return"].improvement is not None


# --- the count of candidates -------------------------------------------------------------------


def test_candidates_is_the_registry_count(store: Path) -> None:
    assert candidates(store, "m@v1") == (2, "the registry's count of candidates trained as m")
    registry.remove(store, "m@v2", force=True)
    assert candidates(store, "m@v1")[0] == 2  # a removed version was still tried, once
    train_on_set(store)  # the same training again is no new candidate
    assert candidates(store, "m@v1")[0] == 2


# --- compare_backtests -------------------------------------------------------------------------


def test_compare_backtests_runs_both_net_of_charges(store: Path, tmp_path: Path) -> None:
    result = compare(store, runs_dir=tmp_path / "runs")
    doc = result.to_dict()
    assert (doc["a"]["ref"], doc["b"]["ref"]) == ("m@v1", "m@v2")
    assert doc["features"] == "fs@v1" and doc["dataset"] == "bars@v1"
    assert doc["window"]["from"] == "2023-08-01"
    assert doc["bootstrap"] == {
        "method": "stationary",
        "seed": 3,
        "resamples": 200,
        "block": max(5, math.ceil(result.sessions ** (1 / 3))),
        "confidence": 0.95,
    }
    for side in (result.a, result.b):
        assert side.trades > 0 and side.charges > 0
        assert side.psr is not None and side.deflated_psr is not None
        assert side.deflated_psr < side.psr  # two candidates: deflated
        assert (tmp_path / "runs" / str(side.run_id) / "manifest.json").is_file()
    sharpe = doc["tests"]["sharpe"]
    assert sharpe["improvement"] == pytest.approx((result.b.sharpe or 0) - (result.a.sharpe or 0))
    assert sharpe["ci"][0] < sharpe["ci"][1] and 0 < sharpe["p_value"] <= 1
    assert sharpe["dates"] == result.sessions
    # Deterministic for a seed (the runs are saved only when asked).
    unsaved = {**doc, "a": {**doc["a"], "run_id": None}, "b": {**doc["b"], "run_id": None}}
    assert compare(store).to_dict() == unsaved
    assert compare(store, seed=4).tests != result.tests


def test_a_model_against_itself_is_no_difference(store: Path) -> None:
    result = compare(store, b="m@v1")
    assert result.tests["sharpe"].improvement == 0.0
    assert result.tests["sharpe"].p_value == 1.0


def test_a_window_either_model_saw_is_refused_without_a_way_round(store: Path) -> None:
    with pytest.raises(UsageError) as err:
        compare(store, start=dt.date(2023, 6, 1))
    text = str(err.value)
    assert "overlaps m@v1's training window plus label horizon" in text
    assert "--allow-overlap" not in text and "pass" not in text


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"resamples": 0}, UsageError, "--resamples must be at least 1"),
        ({"block": 0}, UsageError, "--block must be at least 1 session"),
        ({"seed": -1}, UsageError, "--seed must be >= 0"),
        ({"end": dt.date(2023, 7, 31)}, UsageError, "--to 2023-07-31 is before --from"),
        ({"a": "nope@v1"}, NotFoundError, "not found"),
        ({"features": "nofs"}, NotFoundError, "feature set nofs"),
        ({"start": dt.date(2024, 2, 23)}, DataError, "needs at least two"),
        ({"start": dt.date(2024, 3, 1), "end": dt.date(2024, 3, 5)}, QuantcliError, "no bars"),
    ],
)
def test_bad_input(store: Path, change: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        compare(store, **change)


def test_the_strategy_parameters_it_sets_are_refused(store: Path) -> None:
    with pytest.raises(UsageError, match="-p features is set by the comparison"):
        compare_backtests(
            store, "m@v1", "m@v2", features="fs", start=START, end=END, seed=0,
            params={"features": "fs"},
        )  # fmt: skip
