"""hgb's bitvector scorer: the same bits as scikit-learn, and scikit-learn where it cannot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from quantcli.models.bitvector import (
    MAX_LEAVES,
    build_tables,
    dumps_tables,
    loads_tables,
    raw_scores,
    scores,
)
from quantcli.models.kinds import CLASSIFIER, REGRESSOR, HistGradientBoosting, make_kind

# scikit-learn's binning warns on infinite training values (the NaN bin edges they make).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def awkward(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """Normal features with NaNs, +/-inf, a constant column, ties and a few huge values."""
    x = rng.normal(size=(rows, columns))
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    x[rng.uniform(size=x.shape) < 0.02] = np.inf
    x[rng.uniform(size=x.shape) < 0.02] = -np.inf
    x[:, 0] = np.round(x[:, 0], 1)  # ties: many values equal to a threshold
    if columns > 2:
        x[:, 2] = 3.0  # constant: no tree splits on it
    return x


def fit(task: str, x: np.ndarray, y: np.ndarray, **params: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task == CLASSIFIER else HistGradientBoostingRegressor
    with threadpool_limits(limits=1):
        return cls(early_stopping=False, random_state=0, **params).fit(x, y)


def sklearn_score(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x)[:, 1])
    return np.asarray(model.predict(x))


class EveryBatch(HistGradientBoosting):
    """The hgb kind with its tables used for batches of any size."""

    TABLE_ROWS = 0


def kind_score(model: Any, x: np.ndarray) -> np.ndarray:
    """The hgb kind's score of ``x`` (tables at any size) with ``model`` as its estimator."""
    task = CLASSIFIER if hasattr(model, "predict_proba") else REGRESSOR
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    kind = EveryBatch(EveryBatch.Params(), task=task, seed=0, features=names)
    kind.model = model
    return kind.score(x)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    task=st.sampled_from([CLASSIFIER, REGRESSOR]),
    rows=st.integers(30, 600),
    columns=st.integers(1, 6),
    max_leaf_nodes=st.sampled_from([2, 3, 7, 31, 64]),
    max_depth=st.sampled_from([None, 1, 3]),
    max_iter=st.integers(1, 15),
)
# Found by this test: +inf and -inf in one bin make a NaN bin edge, a node x <= NaN.
@example(
    seed=124319,
    task=CLASSIFIER,
    rows=599,
    columns=4,
    max_leaf_nodes=7,
    max_depth=None,
    max_iter=2,
)
def test_scores_are_the_same_bits_as_sklearn(
    seed: int,
    task: str,
    rows: int,
    columns: int,
    max_leaf_nodes: int,
    max_depth: int | None,
    max_iter: int,
) -> None:
    rng = np.random.default_rng(seed)
    x = awkward(rng, rows, columns)
    signal = np.nan_to_num(x[:, -1], nan=0.5, posinf=2.0, neginf=-2.0)
    y = signal + rng.normal(size=rows)
    y = (y > 0).astype(np.int64) if task == CLASSIFIER else y
    if task == CLASSIFIER and len(np.unique(y)) < 2:
        y[0] = 1 - y[0]
    model = fit(
        task,
        x,
        y,
        max_leaf_nodes=max_leaf_nodes,
        max_depth=max_depth,
        max_iter=max_iter,
        min_samples_leaf=5,
    )
    tables = build_tables(model)
    assert tables is not None
    fresh = awkward(np.random.default_rng(seed + 1), 5000, columns)
    fresh[:7, 0] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -5e-324]
    expected = sklearn_score(model, fresh)
    assert np.array_equal(kind_score(model, fresh), expected)
    # Stored and read back (as a registered version is), the same bits and the same bytes.
    stored = dumps_tables(tables)
    assert np.array_equal(scores(loads_tables(stored), fresh), expected)
    assert dumps_tables(loads_tables(stored)) == stored
    # The rows it was fitted on, and its own thresholds exactly, go the same way too.
    assert np.array_equal(kind_score(model, x), sklearn_score(model, x))
    nodes = np.concatenate([p[0].nodes for p in model._predictors])
    at = np.tile(nodes["num_threshold"][nodes["is_leaf"] == 0][:, None], (1, columns))
    assert np.array_equal(kind_score(model, at), sklearn_score(model, at))


def test_a_split_on_missing_values_has_an_infinite_threshold() -> None:
    """scikit-learn sends NaN right and everything else left with threshold +inf: such a node
    is in the tables like any other, and +inf itself goes left."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 1))
    x[:200] = np.nan
    y = np.isnan(x[:, 0]).astype(np.int64) ^ (rng.uniform(size=400) < 0.05)
    model = fit(CLASSIFIER, x, y, max_iter=3)
    thresholds = np.concatenate([p[0].nodes["num_threshold"] for p in model._predictors])
    assert np.isinf(thresholds).any()
    probe = np.array([[np.nan], [np.inf], [-np.inf], [0.0], [1e300]])
    assert np.array_equal(kind_score(model, probe), sklearn_score(model, probe))


def test_one_leaf_trees_score_their_baseline() -> None:
    x = np.full((50, 2), 1.0)
    y = np.arange(50.0)
    model = fit(REGRESSOR, x, y, max_iter=3)
    tables = build_tables(model)
    assert tables is not None
    assert np.array_equal(raw_scores(tables, x), model.predict(x))


def test_large_batches_use_tables_built_once_small_ones_sklearn() -> None:
    x = awkward(np.random.default_rng(0), 300, 3)
    y = (np.nan_to_num(x[:, 1]) > 0).astype(np.int64)
    kind = make_kind("hgb", {"max_iter": 5}, task=CLASSIFIER, seed=0, features=("a", "b", "c"))
    kind.fit(x, y)
    big = awkward(np.random.default_rng(1), HistGradientBoosting.TABLE_ROWS, 3)
    small = big[:-1]
    assert np.array_equal(kind.score(small), sklearn_score(kind.model, small))  # type: ignore[attr-defined]
    assert kind._tables_of is None  # type: ignore[attr-defined]
    assert np.array_equal(kind.score(big), sklearn_score(kind.model, big))  # type: ignore[attr-defined]
    tables = kind._tables  # type: ignore[attr-defined]
    assert tables is not None
    kind.score(big)
    assert kind._tables is tables  # type: ignore[attr-defined]
    kind.loads(kind.dumps())
    assert np.array_equal(kind.score(big), sklearn_score(kind.model, big))  # type: ignore[attr-defined]
    assert kind._tables is not tables  # type: ignore[attr-defined]


@pytest.mark.parametrize(("leaves", "dtype"), [(31, np.uint32), (33, np.uint64), (64, np.uint64)])
def test_trees_of_up_to_64_leaves_use_the_tables(leaves: int, dtype: type) -> None:
    rng = np.random.default_rng(4)
    x = awkward(rng, 4000, 4)
    y = np.nan_to_num(x[:, 0] * x[:, 1], nan=0.0, posinf=1.0, neginf=-1.0)
    model = fit(REGRESSOR, x, y + rng.normal(size=4000), max_iter=3, max_leaf_nodes=leaves)
    assert max(int(p[0].nodes["is_leaf"].sum()) for p in model._predictors) == leaves
    tables = build_tables(model)
    assert tables is not None and tables.table.dtype == dtype
    fresh = awkward(np.random.default_rng(5), 4000, 4)
    assert np.array_equal(kind_score(model, fresh), sklearn_score(model, fresh))


def test_large_trees_fall_back_to_sklearn() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 4))
    y = (x[:, 0] * x[:, 1] + rng.normal(size=5000) > 0).astype(np.int64)
    params = EveryBatch.Params(max_iter=2, max_leaf_nodes=100, min_samples_leaf=5)
    kind = EveryBatch(params, task=CLASSIFIER, seed=0, features=("a", "b", "c", "d"))
    kind.fit(x, y)
    model = kind.model
    assert max(int(p[0].nodes["is_leaf"].sum()) for p in model._predictors) > MAX_LEAVES
    assert build_tables(model) is None
    assert np.array_equal(kind.score(x), sklearn_score(model, x))
    assert kind._tables_of is model and kind._tables is None


def test_categorical_splits_fall_back_to_sklearn() -> None:
    rng = np.random.default_rng(2)
    x = np.column_stack([rng.integers(0, 5, 500).astype(float), rng.normal(size=500)])
    y = (x[:, 0] % 2 == 0).astype(np.int64)
    model = fit(CLASSIFIER, x, y, max_iter=3, categorical_features=[0])
    assert build_tables(model) is None
    assert np.array_equal(kind_score(model, x), sklearn_score(model, x))


def test_a_wrong_column_count_is_sklearns_error() -> None:
    x = awkward(np.random.default_rng(0), 200, 3)
    model = fit(REGRESSOR, x, np.arange(200.0), max_iter=2)
    with pytest.raises(ValueError, match="features"):
        kind_score(model, x[:, :2])
