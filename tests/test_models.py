"""The model library: folds, kinds, metrics, training, the registry and reproduction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_features import make_bars

from quantcli.errors import DataError, IntegrityError, NotFoundError, UsageError
from quantcli.features import FeatureSet, build_features, open_feature_set
from quantcli.models import TrainSpec, load, registry, train, train_on_frames
from quantcli.models.evaluate import final_train, walk_forward
from quantcli.models.kinds import TRUSTED_TYPES, make_kind
from quantcli.models.metrics import evaluate, information_coefficient
from quantcli.models.reproduce import reproduce, reproduce_on_frames
from quantcli.models.train import frame_sha256
from quantcli.store.catalog import remove_version
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish

TZ = "Asia/Kolkata"
USER_FEATURES = """
import polars as pl

class Trend:
    window: int = 10

    def features(self):
        close = pl.col("close")
        mean = close.rolling_mean(self.params.window).over("symbol")
        return {"trend": close / mean - 1, "ret_1": close.pct_change().over("symbol")}
"""
START = dt.date(2020, 1, 1)


def sessions(n: int) -> list[dt.date]:
    days = [START + dt.timedelta(days=i) for i in range(2 * n + 10)]
    return [d for d in days if d.weekday() < 5][:n]


def frames(
    symbols: int = 4, days: int = 200, seed: int = 0, horizon: int = 5, signal: float = 0.0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Synthetic features (ret_1, ret_5 with a warm-up) and labels over random-walk closes.

    ``signal`` > 0 makes ret_1 predict the next return, so a model has something to learn.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for s in range(symbols):
        noise = rng.normal(0, 0.01, days)
        r = noise.copy()
        r[1:] += signal * noise[:-1]
        parts.append(
            pl.DataFrame(
                {"symbol": f"S{s}", "d": sessions(days), "close": 100 * np.exp(r.cumsum())}
            )
        )
    bars = pl.concat(parts).with_columns(
        ts=pl.col("d").cast(pl.Datetime("us")).dt.replace_time_zone(TZ)
    )
    c = pl.col("close")
    features = bars.select(
        "symbol",
        "ts",
        ret_1=(c / c.shift(1) - 1).over("symbol"),
        ret_5=(c / c.shift(5) - 1).over("symbol"),
    )
    labels = bars.select(
        "symbol", "ts", forward_return=(c.shift(-horizon) / c - 1).over("symbol")
    ).with_columns(label=(pl.col("forward_return") > 0).cast(pl.Int8))
    return features, labels


def window(days: int = 200, train: int = 120) -> dict[str, dt.date]:
    d = sessions(days)
    return {"train_from": d[0], "train_to": d[train - 1], "test_to": d[-1]}


def run(root: Path, name: str = "m", kind: str = "logistic", **kw: Any) -> Any:
    """Train ``name`` on ``frames`` (default: :func:`frames`); ``kw`` are TrainSpec fields
    and ``source``."""
    f, lab = kw.pop("frames", None) or frames()
    source = kw.pop("source", None)
    args = {"label": "direction:5", "seed": 7, "folds": 3, **window(), **kw}
    return train_on_frames(root, name, f, lab, TrainSpec(kind=kind, **args), source=source)


# ---------------------------------------------------------------------------------------------
# Folds.


@given(
    n=st.integers(20, 300),
    frac=st.floats(0.2, 0.8),
    k=st.integers(1, 5),
    h=st.integers(1, 10),
    e=st.integers(0, 10),
)
def test_no_training_label_window_overlaps_a_test_block(
    n: int, frac: float, k: int, h: int, e: int
) -> None:
    first = int(n * frac)
    try:
        folds = walk_forward(n, first, k, h, e)
    except DataError:
        return
    blocks = [set(f.test) for f in folds]
    assert sorted(i for b in blocks for i in b) == list(range(first, n))
    for j, fold in enumerate(folds):
        for i in fold.train:
            # The label of session i covers sessions i+1 .. i+h.
            assert not set(range(i, i + h + 1)) & set(fold.test)
            assert i < fold.test_start
            for earlier in folds[:j]:
                assert not earlier.test_end < i <= earlier.test_end + e, "embargoed row trained"
        # Everything else before the purge is used: the purge is exactly h sessions.
        embargoed = {
            i
            for earlier in folds[:j]
            for i in range(earlier.test_end + 1, earlier.test_end + 1 + e)
        }
        expected = [i for i in range(fold.test_start - h) if i not in embargoed]
        assert list(fold.train) == expected


def test_fold_errors() -> None:
    with pytest.raises(UsageError, match="--folds"):
        walk_forward(100, 50, 0, 5, 5)
    with pytest.raises(DataError, match="cannot make 10 folds"):
        walk_forward(55, 50, 10, 5, 5)
    with pytest.raises(DataError, match="no training sessions"):
        walk_forward(100, 3, 2, 5, 5)
    assert list(final_train(10, 3)) == list(range(7))


# ---------------------------------------------------------------------------------------------
# Metrics.


def test_metrics_match_sklearn_and_scipy() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    dates = np.repeat(np.arange(10), 5)
    score = rng.uniform(size=50)
    fwd = rng.normal(size=50)
    y = (fwd > 0).astype(float)
    m = evaluate("classifier", y, score, dates, fwd)
    assert m["auc"] == pytest.approx(roc_auc_score(y, score))
    assert m["accuracy"] == pytest.approx(np.mean((score > 0.5) == y))
    assert m["brier"] == pytest.approx(np.mean((score - y) ** 2))
    ics = [spearmanr(score[dates == d], fwd[dates == d]).statistic for d in range(10)]
    assert m["ic_mean"] == pytest.approx(np.mean(ics))
    assert m["ic_tstat"] == pytest.approx(np.mean(ics) / (np.std(ics, ddof=1) / np.sqrt(10)))
    r = evaluate("regressor", fwd, score, dates, fwd)
    assert r["mae"] == pytest.approx(np.mean(np.abs(fwd - score)))
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((fwd - score) ** 2)))


def test_ic_is_undefined_on_single_symbol_dates() -> None:
    ic = information_coefficient(np.arange(5), np.arange(5.0), np.arange(5.0))
    assert ic == {"ic_mean": None, "ic_tstat": None, "ic_dates": 0}
    one_class = evaluate("classifier", np.ones(4), np.full(4, 0.7), np.zeros(4), np.ones(4))
    assert one_class["auc"] is None


# ---------------------------------------------------------------------------------------------
# Training and the registry.


@pytest.mark.parametrize("kind", ["baseline", "logistic", "hgb", "rf"])
def test_each_kind_trains_deterministically(tmp_path: Path, kind: str) -> None:
    params = {"max_iter": "20"} if kind == "hgb" else {"n_estimators": "10"} if kind == "rf" else {}
    a = run(tmp_path / "a", kind=kind, params=params).metadata
    b = run(tmp_path / "b", kind=kind, params=params).metadata
    assert a["metrics"] == b["metrics"]
    assert a["predictions_sha256"] == b["predictions_sha256"]
    assert a["artifact_sha256"] == b["artifact_sha256"]
    bytes_a = (registry.models_root(tmp_path / "a") / "m" / "v1" / a["artifact"]).read_bytes()
    bytes_b = (registry.models_root(tmp_path / "b") / "m" / "v1" / b["artifact"]).read_bytes()
    assert bytes_a == bytes_b
    assert set(a["metrics"]) >= {"auc", "log_loss", "accuracy", "brier", "ic_mean", "ic_tstat"}
    assert len(a["fold_results"]) == 3
    # A different seed is a different training (for the seeded kinds, different numbers).
    c = run(tmp_path / "a", kind=kind, params=params, seed=8)
    assert c.created and c.metadata["version"] == 2
    if kind in ("hgb", "rf"):
        assert c.metadata["artifact_sha256"] != a["artifact_sha256"]


def test_a_learnable_signal_is_learned(tmp_path: Path) -> None:
    meta = run(
        tmp_path,
        kind="logistic",
        label="direction:1",
        frames=frames(signal=0.9, days=300, horizon=1),
        **window(300, 150),
    ).metadata
    assert meta["metrics"]["auc"] > 0.6
    assert meta["metrics"]["ic_mean"] > 0.1


def test_regressor_for_return_labels(tmp_path: Path) -> None:
    f, lab = frames()
    lab = lab.with_columns(label=pl.col("forward_return"))
    meta = run(tmp_path, kind="hgb", label="return:5", frames=(f, lab), params={"max_iter": "10"})
    m = meta.metadata["metrics"]
    assert meta.metadata["task"] == "regressor"
    assert {"mae", "rmse", "ic_mean"} <= set(m) and "auc" not in m


def test_retraining_the_same_inputs_creates_nothing(tmp_path: Path) -> None:
    first = run(tmp_path)
    again = run(tmp_path)
    assert first.created and not again.created
    assert again.metadata == first.metadata
    assert registry.names(tmp_path) == ["m"]
    assert [m["version"] for m in registry.versions(tmp_path, "m")] == [1]


def test_null_features_are_dropped_and_counted(tmp_path: Path) -> None:
    f, lab = frames(symbols=3)
    meta = run(tmp_path, frames=(f, lab)).metadata
    # ret_5 is null for the first 5 sessions of each symbol; the last 5 have no label.
    assert meta["dropped_rows"] == {"null_features": 15, "no_label": 15}
    holey = f.with_columns(
        ret_1=pl.when(pl.int_range(pl.len()) == 50).then(None).otherwise(pl.col("ret_1"))
    )
    assert run(tmp_path, frames=(holey, lab)).metadata["dropped_rows"]["null_features"] == 16


def test_integer_features_are_used_and_recorded(tmp_path: Path) -> None:
    f, lab = frames()
    f = f.with_columns(dow=pl.col("ts").dt.weekday().cast(pl.Int8))
    meta = run(tmp_path, frames=(f, lab)).metadata
    assert {"name": "dow", "dtype": "Int8"} in meta["input_schema"]
    assert meta["dropped_rows"]["null_features"] == 4 * 5
    assert load(tmp_path, "m").score(f.drop_nulls()).shape == (f.drop_nulls().height,)


def test_metadata_records_what_the_issue_lists(tmp_path: Path) -> None:
    meta = run(tmp_path, source={"features_ref": "fs@v1"}).metadata
    for key in (
        "name",
        "version",
        "kind",
        "params",
        "seed",
        "source",
        "label",
        "window",
        "folds",
        "fold_results",
        "metrics",
        "predictions_sha256",
        "dropped_rows",
        "input_schema",
        "libraries",
        "artifact_sha256",
        "created_at",
    ):
        assert key in meta, key
    assert meta["input_schema"] == [
        {"name": "ret_1", "dtype": "Float64"},
        {"name": "ret_5", "dtype": "Float64"},
    ]
    assert meta["libraries"]["scikit-learn"] == "1.9.1"
    on_disk = registry.models_root(tmp_path) / "m" / "v1" / "metadata.json"
    assert json.loads(on_disk.read_text())["identity"] == meta["identity"]


def test_references(tmp_path: Path) -> None:
    one = run(tmp_path).metadata
    two = run(tmp_path, seed=9).metadata
    assert registry.resolve(tmp_path, "m") == ("m", 2)
    assert registry.resolve(tmp_path, "m@latest") == ("m", 2)
    assert registry.resolve(tmp_path, "m@v1") == ("m", 1)
    assert registry.resolve(tmp_path, f"m@{one['artifact_sha256'][:8]}") == ("m", 1)
    assert two["artifact_sha256"] != one["artifact_sha256"]
    with pytest.raises(NotFoundError, match=r"m@v5 not found \(versions: v1, v2"):
        registry.resolve(tmp_path, "m@v5")
    with pytest.raises(NotFoundError, match="model 'nope' not found"):
        registry.resolve(tmp_path, "nope")
    registry.remove(tmp_path, "m@v2", force=True)
    with pytest.raises(NotFoundError, match="m@v2 was removed"):
        registry.resolve(tmp_path, "m@v2")
    # A removed number is never reused.
    assert run(tmp_path, seed=10).metadata["version"] == 3


def test_rm_needs_force(tmp_path: Path) -> None:
    run(tmp_path)
    with pytest.raises(UsageError, match="without --force"):
        registry.remove(tmp_path, "m@v1")
    assert registry.resolve(tmp_path, "m@v1") == ("m", 1)


def test_a_changed_artifact_is_refused_before_loading(tmp_path: Path) -> None:
    meta = run(tmp_path, kind="hgb", params={"max_iter": "5"}).metadata
    model = load(tmp_path, "m@v1")
    f, _ = frames()
    x = f.drop("symbol", "ts").drop_nulls()
    assert model.score(x).shape == (x.height,)
    path = registry.models_root(tmp_path) / "m" / "v1" / meta["artifact"]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="artifact sha256 does not match"):
        load(tmp_path, "m@v1")
    (report,) = registry.verify(tmp_path, "m@v1")
    assert not report.ok and report.changed == ("model.skops",)


def test_input_schema_is_checked_at_load(tmp_path: Path) -> None:
    run(tmp_path)
    model = load(tmp_path, "m")
    f, _ = frames()
    with pytest.raises(DataError, match="'ret_5' is missing"):
        model.score(f.select("ret_1"))
    with pytest.raises(DataError, match="'ret_5' has dtype Float32"):
        model.score(f.select("ret_1", pl.col("ret_5").cast(pl.Float32)))


def test_untrusted_types_are_refused() -> None:
    """An artifact is loaded with the allowlist in code, whatever types it declares."""
    from fractions import Fraction

    import skops.io
    from sklearn.linear_model import LogisticRegression

    x, y = np.array([[0.0], [1.0]]), np.array([0, 1])
    fitted = LogisticRegression().fit(x, y)
    fitted.payload_ = Fraction(1, 2)  # stands for any type outside the allowlist
    crafted = skops.io.dumps(fitted)
    # The artifact itself would declare the type it needs; quantcli never asks it.
    assert skops.io.get_untrusted_types(data=crafted) == ["fractions.Fraction"]
    kind = make_kind(
        "logistic", {"c": 1.0, "max_iter": 200}, task="classifier", seed=0, features=("x",)
    )
    with pytest.raises(IntegrityError, match=r"refusing to load the artifact: .*fractions"):
        kind.loads(crafted)
    kind.loads(skops.io.dumps(LogisticRegression().fit(x, y)))
    assert kind.score(x).shape == (2,)
    assert "sklearn.tree._tree.Tree" in TRUSTED_TYPES


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"kind": "xgb"}, UsageError, "unknown model kind 'xgb'"),
        ({"params": {"c": "high"}}, UsageError, "parameter c: expected float, got 'high'"),
        ({"params": {"depth": "3"}}, UsageError, "unknown parameter depth"),
        ({"label": "up:5"}, UsageError, "invalid label 'up:5'"),
        ({"label": "direction:500"}, DataError, "horizon \\(500 sessions\\) is longer than the"),
        (
            {"train_from": dt.date(2030, 1, 1), "train_to": dt.date(2030, 2, 1), "test_to": None},
            DataError,
            "no rows between --train-from 2030-01-01",
        ),
        ({"folds": 500}, DataError, "cannot make 500 folds"),
        ({"kind": "baseline", "params": {"feature": "rsi"}}, UsageError, "'rsi' is not in"),
    ],
)
def test_bad_input_leaves_nothing(
    tmp_path: Path, kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run(tmp_path, **kw)
    assert registry.names(tmp_path) == []
    assert not list((registry.models_root(tmp_path)).glob("*/v*"))


def test_single_class_labels_are_refused(tmp_path: Path) -> None:
    f, lab = frames()
    with pytest.raises(DataError, match="single class"):
        run(tmp_path, frames=(f, lab.with_columns(label=pl.lit(1, pl.Int8))))
    assert registry.names(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Reproduction.


def published_feature_set(root: Path, days: int = 200, spec: str = "basic") -> FeatureSet:
    """Feature set fs@v1 built with ``spec`` from dataset bars@v1: random walks of four
    symbols on ``days`` weekdays from 2023-01-02."""
    publish(
        root,
        "bars",
        make_bars(days, ("AAA", "BBB", "CCC", "DDD"), seed=3),
        interval="1d",
        source=SourceInfo("csv"),
    )
    build_features(root, "fs", "bars@v1", spec)
    return open_feature_set("fs@v1", root)


def train_on_set(root: Path, **kw: Any) -> Any:
    """Model m trained on fs@v1 (rf, small) with direction:5; ``kw`` are TrainSpec fields."""
    args: dict[str, Any] = {
        "label": "direction:5",
        "kind": "rf",
        "params": {"n_estimators": "5"},
        "train_from": dt.date(2023, 1, 1),
        "train_to": dt.date(2023, 6, 30),
        "test_to": dt.date(2023, 10, 31),
        "seed": 7,
        **kw,
    }
    return train("m", TrainSpec(**args), features="fs@v1", root=root)


def edit_metadata(root: Path, ref: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a version's metadata.json, as if it had been recorded elsewhere."""
    name, _, version = ref.partition("@")
    path = registry.models_root(root) / name / version / "metadata.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.chmod(0o644)
    path.write_text(json.dumps(meta))


def test_labels_come_from_the_feature_set(tmp_path: Path) -> None:
    fs = published_feature_set(tmp_path)
    meta = train_on_set(tmp_path).metadata
    assert meta["labels_sha256"] == frame_sha256(fs.labels("direction:5"))
    assert meta["features_sha256"] == frame_sha256(fs.frame())
    assert meta["source"]["spec"] == "basic" and meta["source"]["params"] == fs.params
    assert [d["name"] for d in meta["input_schema"]] == list(fs.columns)


def test_reproduce_is_identical_then_names_what_changed(tmp_path: Path) -> None:
    fs = published_feature_set(tmp_path)
    train_on_set(tmp_path)
    same = reproduce(tmp_path, "m@v1")
    assert same.identical, same.differences
    assert same.summary() == "m@v1: reproduced (metrics, predictions and artifact identical)"
    shuffled = fs.frame().with_columns(ret_1=pl.col("ret_1").shuffle(1))
    moved = reproduce_on_frames(tmp_path, "m@v1", shuffled, fs.labels("direction:5"))
    text = moved.summary()
    assert "data: the features differ" in text
    assert "metrics: " in text and "predictions: sha256" in text

    def elsewhere(meta: dict[str, Any]) -> None:
        meta["source"]["dataset_hash"] = "e" * 64
        meta["libraries"]["scikit-learn"] = "0.1"

    edit_metadata(tmp_path, "m@v1", elsewhere)
    changed = reproduce(tmp_path, "m@v1")
    assert not changed.identical
    text = changed.summary()
    assert f"data: dataset bars@v1 hash eeeeeeeeeeee -> {fs.dataset_hash[:12]}" in text
    assert "library versions: scikit-learn 0.1 -> 1.9.1" in text


def test_reproduce_rebuilds_a_removed_feature_set(tmp_path: Path) -> None:
    fs = published_feature_set(tmp_path)
    train_on_set(tmp_path)
    remove_version(tmp_path, "fs@v1", force=True)
    with pytest.raises(NotFoundError):
        open_feature_set("fs@v1", tmp_path)
    rebuilt = reproduce(tmp_path, "m@v1")
    assert rebuilt.identical, rebuilt.differences
    edit_metadata(tmp_path, "m@v1", lambda m: m["source"].update(spec_sha256="a" * 64))
    changed = reproduce(tmp_path, "m@v1")
    assert changed.differences == [
        f"feature definition: basic sha256 aaaaaaaaaaaa -> {fs.spec_hash[:12]}"
    ]
    remove_version(tmp_path, "bars@v1", force=True)
    with pytest.raises(NotFoundError, match="neither its feature set fs@v1 nor its dataset"):
        reproduce(tmp_path, "m@v1")


def test_reproduce_rebuilds_from_the_recorded_user_definition(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(USER_FEATURES)
    published_feature_set(tmp_path, spec=f"{path}:Trend")
    meta = train_on_set(tmp_path, kind="logistic", params={}).metadata
    assert meta["source"]["params"] == {"window": 10}
    remove_version(tmp_path, "fs@v1", force=True)
    # The file changed since: the rebuild uses the definition the model recorded.
    path.write_text(USER_FEATURES.replace("rolling_mean", "rolling_max"))
    rebuilt = reproduce(tmp_path, "m@v1")
    assert rebuilt.identical, rebuilt.differences


def test_reproduce_names_a_changed_artifact(tmp_path: Path) -> None:
    f, lab = frames()
    meta = run(tmp_path, frames=(f, lab)).metadata
    path = registry.models_root(tmp_path) / "m" / "v1" / meta["artifact"]
    path.chmod(0o644)
    path.write_bytes(b"junk")
    report = reproduce_on_frames(tmp_path, "m@v1", f, lab)
    assert report.differences == ["artifact: changed model.skops"]
    with pytest.raises(NotFoundError, match="trained on frames"):
        reproduce(tmp_path, "m@v1")


def test_frame_and_window_errors(tmp_path: Path) -> None:
    f, lab = frames()
    d = sessions(200)
    cases = [
        ({"frames": (f.drop("ts"), lab)}, DataError, "features frame has no column"),
        ({"frames": (f, lab.drop("forward_return"))}, DataError, "no column.*forward_return"),
        ({"frames": (f.select("symbol", "ts"), lab)}, DataError, "no feature columns"),
        (
            {"frames": (f.with_columns(name=pl.lit("x")), lab)},
            DataError,
            "name are not numeric",
        ),
        ({"test_to": d[50]}, UsageError, "--test-to .* must be after --train-to"),
        ({"train_from": d[130], "test_to": None}, UsageError, "is before --train-from"),
        ({"params": {"c": "0"}}, UsageError, "c must be > 0"),
        ({"seed": -1}, UsageError, "--seed must be >= 0"),
        ({"name": "v2"}, UsageError, "reads as a version number"),
    ]
    for kw, error, message in cases:
        with pytest.raises(error, match=message):
            run(tmp_path, **kw)
    assert registry.names(tmp_path) == []


def test_logistic_regressor_is_ridge_and_a_baseline_artifact_is_checked(tmp_path: Path) -> None:
    f, lab = frames()
    lab = lab.with_columns(label=pl.col("forward_return"))
    meta = run(tmp_path, frames=(f, lab), label="return:5").metadata
    assert "Ridge" in str(load(tmp_path, "m").model.model)
    assert meta["metrics"]["rmse"] > 0
    base = run(tmp_path, name="b", kind="baseline").metadata
    assert load(tmp_path, "b").score(f.drop_nulls()).tolist()[:1] in ([0.0], [1.0])
    kind = make_kind(
        "baseline", {"feature": "ret_1"}, task="classifier", seed=0, features=("ret_1",)
    )
    with pytest.raises(IntegrityError, match="does not match its metadata"):
        kind.loads((registry.models_root(tmp_path) / "b" / "v1" / base["artifact"]).read_bytes())
    with pytest.raises(IntegrityError, match="unreadable baseline artifact"):
        kind.loads(b"{")
