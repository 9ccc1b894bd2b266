"""Feature sets and labels through the Python API: the basic set, point in time, splits,
labels, storage in the store (publish, re-runs, kinds, query, verify) and look-ahead refusal."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantcli.errors import DataError, NotFoundError, StrategyError, UsageError
from quantcli.features import (
    LabelSpec,
    build_features,
    list_feature_sets,
    load_features,
    make_labels,
    open_feature_set,
)
from quantcli.features.build import compute_features
from quantcli.features.spec import feature_view
from quantcli.market.corporate_actions import CorporateAction
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish
from quantcli.store.query import query_rows
from quantcli.store.verify import verify

BASIC = (
    "ret_1",
    "ret_5",
    "ret_20",
    "vol_20",
    "rsi_14",
    "volume_z_20",
    "dist_mean_20",
    "dist_mean_50",
    "day_of_week",
)


def sessions(n: int, start: date = date(2023, 1, 2)) -> list[date]:
    """``n`` weekdays from ``start``."""
    out, day = [], start
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def make_bars(
    n: int = 120, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 1, prev: bool = True
) -> pl.DataFrame:
    """Daily bars of a random walk per symbol (prev_close = the previous close)."""
    rng = np.random.default_rng(seed)
    days = sessions(n)
    frames = []
    for s in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        cols: dict[str, object] = {
            "symbol": [s] * n,
            "ts": days,
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 5_000, n),
        }
        if prev:
            cols["prev_close"] = np.r_[np.nan, close[:-1]]
        frames.append(pl.DataFrame(cols))
    return pl.concat(frames).with_columns(pl.col("prev_close").fill_nan(None) if prev else [])


def stored(root: Path, bars: pl.DataFrame, name: str = "demo") -> str:
    return publish(root, name, bars, interval="1d", source=SourceInfo("csv")).manifest.ref


def basic_of(bars: pl.DataFrame, actions: tuple[CorporateAction, ...] = ()) -> pl.DataFrame:
    """The basic features of in-memory bars, as a build computes them."""
    from quantcli.store.publish import conform

    view = feature_view(conform(bars), actions)
    return compute_features(view, load_features("basic", {}))


# ------------------------------------------------------------------------------ basic set


def test_basic_features_match_their_definitions() -> None:
    bars = make_bars(80, ("AAA",))
    out = basic_of(bars)
    assert out.columns == ["symbol", "ts", *BASIC]
    close = bars["close"].to_numpy()
    r = close[1:] / close[:-1] - 1
    got = out["ret_1"].to_numpy()
    assert math.isnan(got[0]) or out["ret_1"][0] is None
    np.testing.assert_allclose(got[1:], r, rtol=1e-12)
    np.testing.assert_allclose(out["ret_5"][10], close[10] / close[5] - 1, rtol=1e-10)
    np.testing.assert_allclose(out["ret_20"][30], close[30] / close[10] - 1, rtol=1e-10)
    assert out["ret_5"][4] is None and out["ret_5"][5] is not None
    np.testing.assert_allclose(out["vol_20"][40], np.std(r[20:40], ddof=1), rtol=1e-9)
    np.testing.assert_allclose(
        out["dist_mean_50"][60], close[60] / close[11:61].mean() - 1, rtol=1e-10
    )
    vol = bars["volume"].to_numpy().astype(float)
    window = vol[41:61]
    np.testing.assert_allclose(
        out["volume_z_20"][60], (vol[60] - window.mean()) / window.std(ddof=1), rtol=1e-9
    )
    rsi = out["rsi_14"].drop_nulls().to_numpy()
    assert ((rsi >= 0) & (rsi <= 100)).all()
    assert out["rsi_14"][13] is None and out["rsi_14"][14] is not None
    assert out["day_of_week"].to_list()[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_rsi_is_100_when_prices_only_rise() -> None:
    bars = make_bars(40, ("UP",)).with_columns(
        pl.Series("close", [100.0 + k for k in range(40)]),
    )
    bars = bars.with_columns(pl.col("close").shift(1).alias("prev_close"))
    assert basic_of(bars)["rsi_14"][-1] == pytest.approx(100.0)


def test_windows_are_per_symbol() -> None:
    bars = make_bars(60, ("AAA", "BBB"))
    both = basic_of(bars)
    alone = basic_of(bars.filter(pl.col("symbol") == "BBB"))
    assert both.filter(pl.col("symbol") == "BBB").equals(alone)


def split_bars(prev: bool) -> pl.DataFrame:
    """60 sessions of AAA at ~100 that split 2:1 (ratio 2) on the 31st: traded prices halve;
    the exchange's prev_close on the ex-date is the adjusted 50."""
    n = 60
    close = np.array([100.0 + 0.1 * k for k in range(n)])
    close[30:] /= 2
    cols: dict[str, object] = {
        "symbol": ["AAA"] * n,
        "ts": sessions(n),
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": [1000] * 30 + [2000] * 30,
    }
    if prev:
        given = np.r_[np.nan, close[:-1]]
        given[30] = close[29] / 2
        cols["prev_close"] = given
    return pl.DataFrame(cols).with_columns(pl.col("prev_close").fill_nan(None) if prev else [])


@pytest.mark.parametrize("prev", [True, False])
def test_a_recorded_split_makes_no_feature_jump(prev: bool) -> None:
    bars = split_bars(prev)
    ex = bars["ts"][30]
    split = CorporateAction("AAA", ex, "split", 2.0, 0.0)
    out = basic_of(bars, (split,))
    # Prices rise 0.1 a session throughout: no return near -50 %, no mean-distance cliff.
    assert out["ret_1"].drop_nulls().abs().max() < 0.01
    assert out["ret_20"].drop_nulls().abs().max() < 0.05
    assert out["dist_mean_20"].drop_nulls().abs().max() < 0.02
    # Adjusted volume is flat (0 / 0 z-scores), so the z-score never sees the doubling.
    assert out["volume_z_20"].drop_nulls().is_nan().all()


def test_prev_close_makes_returns_split_correct_without_a_recorded_action() -> None:
    out = basic_of(split_bars(prev=True))
    assert out["ret_1"].drop_nulls().abs().max() < 0.01


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 90),
    cut=st.integers(1, 89),
    prev=st.booleans(),
    split_at=st.integers(0, 89),
)
def test_basic_features_are_point_in_time(
    seed: int, n: int, cut: int, prev: bool, split_at: int
) -> None:
    """Features on bars truncated at any date equal the full build's rows up to that date."""
    bars = make_bars(n, ("AAA", "BBB", "CCC"), seed=seed, prev=prev)
    days = sessions(n)
    last = days[min(cut, n - 1)]
    actions = (CorporateAction("BBB", days[min(split_at, n - 1)], "split", 5.0, 0.0),)
    full = basic_of(bars, actions)
    part = basic_of(bars.filter(pl.col("ts") <= last), actions)
    expected = full.filter(pl.col("ts").dt.date() <= last)
    assert part.equals(expected)


# ------------------------------------------------------------------------------ labels


def test_label_spec_parse() -> None:
    assert LabelSpec.parse("direction:5") == LabelSpec("direction", 5)
    assert LabelSpec.parse("return:1") == LabelSpec("return", 1)
    assert str(LabelSpec.parse("return:20")) == "return:20"
    for bad in ("direction", "direction:0", "return:-1", "up:5", "return:2.5", ""):
        with pytest.raises(UsageError, match="use direction:H or return:H"):
            LabelSpec.parse(bad)


@pytest.mark.parametrize("h", [1, 3, 10])
def test_labels_are_forward_returns(h: int) -> None:
    bars = make_bars(40, ("AAA", "BBB"))
    out = make_labels(bars, f"return:{h}")
    assert out.columns == ["symbol", "ts", "label", "forward_return"]
    for symbol in ("AAA", "BBB"):
        close = bars.filter(pl.col("symbol") == symbol)["close"].to_numpy()
        mine = out.filter(pl.col("symbol") == symbol)
        fwd = mine["forward_return"].to_list()
        for t in range(40 - h):
            assert fwd[t] == pytest.approx(close[t + h] / close[t] - 1, rel=1e-10)
        assert fwd[40 - h :] == [None] * h
        assert mine["label"].to_list() == fwd
    direction = make_labels(bars, LabelSpec("direction", h))
    assert direction["label"].dtype == pl.Int64
    expect = [None if f is None else int(f > 0) for f in out["forward_return"].to_list()]
    assert direction["label"].to_list() == expect


def test_labels_are_split_correct() -> None:
    from quantcli.store.publish import conform

    bars = split_bars(prev=False)
    split = CorporateAction("AAA", bars["ts"][30], "split", 2.0, 0.0)
    out = make_labels(conform(bars), "return:5", actions=(split,))
    assert out["forward_return"].drop_nulls().abs().max() < 0.01


def test_a_horizon_longer_than_the_data_is_refused() -> None:
    with pytest.raises(DataError, match="horizon of 50 sessions is longer"):
        make_labels(make_bars(20), "direction:50")


# ------------------------------------------------------------------------------ the store


def test_build_publishes_a_versioned_feature_set(store: Path) -> None:
    ref = stored(store, make_bars())
    result = build_features(store, "feats", ref, "basic")
    assert result.created and result.manifest.ref == "feats@v1"
    fs = open_feature_set("feats@v1", store)
    assert fs.ref == "feats@v1"
    assert fs.columns == BASIC
    assert fs.dataset_ref == "demo@v1"
    assert fs.dataset_hash == open_feature_set("feats", store).dataset_hash
    assert fs.spec == "basic" and len(fs.spec_hash) == 64
    assert fs.params["rsi_window"] == 14
    frame = fs.frame()
    assert frame.columns == ["symbol", "ts", *BASIC]
    assert frame.equals(frame.sort("symbol", "ts"))
    assert frame.select(BASIC).equals(basic_of(make_bars()).select(BASIC))
    labels = fs.labels("direction:5")
    assert labels.select("symbol", "ts").equals(frame.select("symbol", "ts"))
    from quantcli.store.publish import conform

    assert labels.equals(make_labels(conform(make_bars()), "direction:5"))
    m = fs.manifest
    assert m.source.kind == "features"
    assert m.source.options["dataset_hash"] == fs.dataset_hash
    assert json.loads(m.source.options["params"])["slow_mean"] == 50
    assert list(m.notes["features"]) == list(BASIC)  # type: ignore[call-overload]
    assert "label" not in m.schema and "forward_return" not in m.schema
    assert len(m.source.options["actions_sha256"]) == 64
    assert "class Basic(FeatureSpec)" in fs.definition


def test_equal_inputs_give_equal_bytes(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    hashes = []
    for root in (store, other):
        ref = stored(root, make_bars())
        fs = open_feature_set(build_features(root, "f", ref, "basic").manifest.ref, root)
        hashes.append((fs.content_hash, dict(fs.manifest.files)))
    assert hashes[0] == hashes[1]


def test_the_definition_is_recorded_as_built(store: Path, tmp_path: Path) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "mine.py").write_text(PEEK)
    build_features(store, "mine", ref, f"{tmp_path / 'mine.py'}:Trailing")
    fs = open_feature_set("mine", store)
    assert fs.definition == PEEK
    assert fs.spec_hash == hashlib.sha256(PEEK.encode()).hexdigest()


def test_rerunning_a_build_creates_nothing(store: Path) -> None:
    ref = stored(store, make_bars())
    first = build_features(store, "feats", ref, "basic")
    again = build_features(store, "feats", ref, "basic")
    assert not again.created and again.manifest.content_hash == first.manifest.content_hash
    assert [p.name for p in sorted((store / "feats").glob("v*"))] == ["v1"]
    other = build_features(store, "feats", ref, "basic", {"slow_mean": "30"})
    assert other.created and other.manifest.ref == "feats@v2"
    assert open_feature_set("feats@v2", store).columns[-2] == "dist_mean_30"


def test_feature_sets_are_queried_verified_and_listed_like_datasets(store: Path) -> None:
    ref = stored(store, make_bars())
    build_features(store, "feats", ref, "basic")
    rows = query_rows(store, "SELECT count(*), count(ret_5) FROM bars", ["feats@v1"])
    assert rows.rows == [(240, 240 - 2 * 5)]
    joined = query_rows(
        store,
        "SELECT count(*) FROM f JOIN b USING (symbol, ts)",
        ["f=feats@v1", "b=demo@v1"],
    )
    assert joined.rows == [(240,)]
    assert all(r.ok for r in verify(store, "feats"))
    assert [s.name for s in list_feature_sets(store)] == ["feats"]


def test_one_name_holds_one_kind(store: Path) -> None:
    ref = stored(store, make_bars())
    with pytest.raises(UsageError, match="demo holds bar versions"):
        build_features(store, "demo", ref, "basic")
    build_features(store, "feats", ref, "basic")
    with pytest.raises(UsageError, match="feats holds feature set versions"):
        stored(store, make_bars(seed=2), name="feats")
    with pytest.raises(UsageError, match="is a feature set"):
        build_features(store, "more", "feats", "basic")
    with pytest.raises(NotFoundError, match="bar dataset, not a feature set"):
        open_feature_set("demo", store)


def test_publish_refuses_feature_columns_it_cannot_store(store: Path) -> None:
    frame = make_bars().select("symbol", "ts", pl.lit("x").alias("word"))
    with pytest.raises(DataError, match="feature column 'word' has dtype String"):
        publish(store, "f", frame, interval="1d", source=SourceInfo("features"))
    frame = make_bars().select("symbol", "ts", "close")
    with pytest.raises(DataError, match="close are bar column names"):
        publish(store, "f", frame, interval="1d", source=SourceInfo("features"))
    assert not (store / "f").exists()


def test_non_finite_features_are_stored_as_null(store: Path) -> None:
    frame = make_bars(3, ("AAA",)).select(
        "symbol", "ts", pl.Series("x", [1.0, float("inf"), float("nan")])
    )
    publish(store, "f", frame, interval="1d", source=SourceInfo("features"))
    assert open_feature_set("f", store).frame()["x"].to_list() == [1.0, None, None]


PEEK = """
import polars as pl

class Peek:
    def features(self):
        return {"tomorrow": pl.col("close").shift(-1).over("symbol") / pl.col("close")}

class Centered:
    window: int = 5

    def features(self):
        w = self.params.window
        return [pl.col("close").rolling_mean(w, center=True).over("symbol").alias("centered")]

class Trailing:
    window: int = 5

    def features(self):
        w = self.params.window
        return [pl.col("close").rolling_mean(w).over("symbol").alias("trailing")]

class NextVolume:
    def features(self):
        return {"next_volume": pl.col("volume").shift(-1).over("symbol")}

class ReadsLabels:
    def features(self):
        return {"leak": pl.col("forward_return")}
"""


@pytest.mark.parametrize("cls", ["Peek", "Centered", "NextVolume"])
def test_a_definition_that_looks_ahead_is_refused(store: Path, tmp_path: Path, cls: str) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "mine.py").write_text(PEEK)
    with pytest.raises(StrategyError, match=f"mine.py:{cls} looks ahead: its features at"):
        build_features(store, "mine", ref, f"{tmp_path / 'mine.py'}:{cls}")
    assert not (store / "mine").exists()


def test_a_user_definition_with_typed_parameters_builds(store: Path, tmp_path: Path) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "mine.py").write_text(PEEK)
    build_features(store, "mine", ref, f"{tmp_path / 'mine.py'}:Trailing", {"window": "3"})
    fs = open_feature_set("mine", store)
    assert fs.columns == ("trailing",) and fs.params == {"window": 3}
    with pytest.raises(StrategyError, match="parameter window: expected int, got 'x'"):
        build_features(store, "mine", ref, f"{tmp_path / 'mine.py'}:Trailing", {"window": "x"})


def test_no_feature_can_read_the_labels(store: Path, tmp_path: Path) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "mine.py").write_text(PEEK)
    with pytest.raises(StrategyError, match='unable to find column "forward_return"'):
        build_features(store, "mine", ref, f"{tmp_path / 'mine.py'}:ReadsLabels")


def test_inputs_are_computed_first_and_not_stored(store: Path, tmp_path: Path) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "helpers.py").write_text(
        "import polars as pl\n"
        "class Spread:\n"
        "    def inputs(self):\n"
        "        return {'_hl': pl.col('high') - pl.col('low')}\n"
        "    def features(self):\n"
        "        return {'hl_mean': pl.col('_hl').rolling_mean(3).over('symbol')}\n"
    )
    build_features(store, "spread", ref, f"{tmp_path / 'helpers.py'}:Spread")
    fs = open_feature_set("spread", store)
    assert fs.columns == ("hl_mean",)
    bars = make_bars().filter(pl.col("symbol") == "AAA")
    expected = (bars["high"] - bars["low"])[:3].mean()
    assert fs.frame()["hl_mean"][2] == pytest.approx(expected, rel=1e-12)


def test_the_example_definition_builds(store: Path) -> None:
    from conftest import REPO

    ref = stored(store, make_bars())
    spec = f"{REPO / 'examples/trend_features.py'}:Trend"
    build_features(store, "trend", ref, spec, {"window": "10"})
    fs = open_feature_set("trend", store)
    assert fs.columns == ("trend", "range") and fs.params == {"window": 10}
    assert fs.frame()["trend"].null_count() == 2 * 9


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def features(self):\n        return {'symbol': pl.col('close')}", "'symbol' is symbol"),
        ("def features(self):\n        return [pl.col('close'), pl.col('close')]", "given twice"),
        ("def features(self):\n        return {'x': 1}", "must return named polars"),
        (
            "def inputs(self):\n        return {'close': pl.col('open')}\n"
            "    def features(self):\n        return {'x': pl.col('close')}",
            "inputs() name 'close' is a column of the bars",
        ),
        ("x = 1", "define features(self)"),
    ],
)
def test_malformed_definitions_are_refused(
    store: Path, tmp_path: Path, body: str, message: str
) -> None:
    ref = stored(store, make_bars())
    (tmp_path / "bad.py").write_text(f"import polars as pl\nclass Bad:\n    {body}\n")
    with pytest.raises(StrategyError, match=re.escape(message)):
        build_features(store, "bad", ref, f"{tmp_path / 'bad.py'}:Bad")
    assert not (store / "bad").exists()


def test_vendor_adjusted_prices_are_not_adjusted_again(store: Path) -> None:
    # JSWSTEEL's bundled 10:1 split (ex 2017-01-04) is on record; these prices already include it
    # (a vendor-adjusted download), so features and labels must see them as they are.
    bars = make_bars(60, ("JSWSTEEL",)).with_columns(
        pl.Series("ts", sessions(60, date(2016, 12, 1)))
    )
    ref = publish(
        store, "vendor", bars, interval="1d", source=SourceInfo("csv"), prices="split_adjusted"
    ).manifest.ref
    built = build_features(store, "vf", ref, "basic")
    fs = open_feature_set(built.manifest.ref, store)
    expected = basic_of(bars)
    assert fs.frame().select(expected.columns).equals(expected)
    labels = fs.labels("return:1").drop_nulls("forward_return")
    assert labels["forward_return"].abs().max() < 0.2  # no 10x jump on the ex-date
