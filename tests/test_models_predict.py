"""`quantcli model predict` and `model route`: batched predictions, the audit log, the
baseline fallback and routers, through the CLI and from Python."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_models import published_feature_set, train_on_set
from test_models_cli import one_line_error

from quantcli.errors import ConflictError, DataError, IntegrityError, UsageError
from quantcli.models import TrainSpec, load, predict, registry, route, train
from quantcli.models.audit import COLUMNS, audit_root, batch_files
from quantcli.models.router import RouterSpec

PREDICT = ["model", "predict", "m@v1", "--features", "fs@v1"]
WINDOW = ["--from", "2023-08-01", "--to", "2023-09-30"]


@pytest.fixture
def trained(store: Path) -> dict[str, Any]:
    """fs@v1 and model m@v1 (rf) trained on it."""
    published_feature_set(store)
    return train_on_set(store).metadata  # type: ignore[no-any-return]


def baseline(root: Path, name: str = "base", feature: str = "ret_5") -> dict[str, Any]:
    spec = TrainSpec(
        label="direction:5",
        kind="baseline",
        params={"feature": feature},
        train_from=dt.date(2023, 1, 1),
        train_to=dt.date(2023, 6, 30),
        test_to=dt.date(2023, 10, 31),
        seed=1,
    )
    return train(name, spec, features="fs@v1", root=root).metadata  # type: ignore[no-any-return]


def audit_rows(root: Path) -> pl.DataFrame:
    """Every batch of the log (per-call constants are stored as dictionaries: read as text)."""
    files = batch_files(root)
    text = pl.selectors.by_dtype(pl.Categorical).cast(pl.String)
    return pl.concat([pl.read_parquet(f).with_columns(text) for f in files])


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def corrupt(root: Path, meta: dict[str, Any]) -> None:
    path = registry.models_root(root) / meta["name"] / f"v{meta['version']}" / meta["artifact"]
    path.chmod(0o644)
    path.write_bytes(b"changed")


# ---------------------------------------------------------------------------------------------
# Predictions.


def test_predict_scores_the_window_in_one_batch(cli, store: Path, trained: dict[str, Any]) -> None:
    out = store.parent / "p.parquet"
    res = cli(*PREDICT, *WINDOW, "--symbols", "AAA,CCC", "--output", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    frame = pl.read_parquet(out)
    assert frame.columns == [
        "prediction_id",
        "request_id",
        "ts",
        "symbol",
        "score",
        "prob_0",
        "prob_1",
        "decision",
        "answered_by",
        "route",
    ]
    assert doc["rows"] == frame.height > 0 and doc["answered_by"] == ["m@v1"]
    assert set(frame["symbol"]) == {"AAA", "CCC"}
    days = frame["ts"].dt.date()
    assert days.min() >= dt.date(2023, 8, 1) and days.max() <= dt.date(2023, 9, 30)
    assert frame["prediction_id"].n_unique() == frame.height
    assert (frame["request_id"] == doc["request_id"]).all()
    # The same numbers as the loaded model's own score of those rows.
    from quantcli.features import open_feature_set

    features = open_feature_set("fs@v1", store).frame(["AAA", "CCC"])
    keys = frame.select("symbol", "ts")
    expected = load(store, "m@v1").score(keys.join(features, on=["symbol", "ts"], how="left"))
    np.testing.assert_array_equal(frame["prob_1"].to_numpy(), expected)
    np.testing.assert_allclose(frame["prob_0"].to_numpy(), 1 - expected)
    assert (frame["decision"].to_numpy() == (expected > 0.5)).all()


def test_csv_json_and_table_output(cli, store: Path, trained: dict[str, Any]) -> None:
    out = store.parent / "p.csv"
    res = cli(*PREDICT, *WINDOW, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert pl.read_csv(out).height > 0
    doc = cli(*PREDICT, *WINDOW, "--json").json()
    assert len(doc["predictions"]) == doc["rows"] == pl.read_csv(out).height
    assert {"prediction_id", "ts", "symbol", "score", "decision"} <= set(doc["predictions"][0])
    shown = cli(*PREDICT, *WINDOW)
    assert shown.exit_code == 0
    assert "prediction_id" in shown.stdout and "showing the first 20" in shown.stderr


def test_python_predict_is_the_command_and_deterministic(tmp_path: Path, cli, store: Path) -> None:
    published_feature_set(store)
    train_on_set(store)
    res = cli(*PREDICT, "--request-id", "r1", "-o", str(tmp_path / "cli.parquet"))
    assert res.exit_code == 0, res.stderr
    other = tmp_path / "other"
    published_feature_set(other)
    train_on_set(other)
    result = predict("m@v1", features="fs@v1", root=other, request_id="r1")
    from quantcli.store.query import write_result

    write_result(result.frame, "parquet", tmp_path / "py.parquet")
    assert (tmp_path / "cli.parquet").read_bytes() == (tmp_path / "py.parquet").read_bytes()
    # Rows with a null feature (the warm-up) are skipped and counted, never filled.
    assert result.skipped > 0 and result.frame["score"].is_not_null().all()


def test_every_call_appends_one_immutable_batch(cli, store: Path, trained: dict[str, Any]) -> None:
    first = cli(*PREDICT, *WINDOW, "--json")
    second = cli(*PREDICT, "--json")
    assert first.exit_code == second.exit_code == 0
    files = batch_files(store)
    assert len(files) == 2
    for f in files:
        assert f.stat().st_mode & 0o222 == 0, "a batch is read-only"
        assert f.parent.parent.name == "model=m" and f.parent.name.startswith("date=")
    rows = audit_rows(store)
    assert rows.columns == [*COLUMNS, "features"]
    assert rows.height == first.json()["rows"] + second.json()["rows"]
    assert set(rows["request_id"]) == {first.json()["request_id"], second.json()["request_id"]}
    assert rows["artifact_sha256"].unique().to_list() == [trained["artifact_sha256"]]
    assert rows["answered_sha256"].unique().to_list() == [trained["artifact_sha256"]]
    assert rows["fallback_reason"].is_null().all() and rows["route"].is_null().all()
    assert rows["latency_ms"].min() > 0
    # The feature snapshot is the values each row was scored on.
    snapshot = rows.filter(pl.col("request_id") == first.json()["request_id"]).unnest("features")
    names = [c["name"] for c in trained["input_schema"]]
    from quantcli.features import open_feature_set

    stored = open_feature_set("fs@v1", store).frame()
    joined = snapshot.select("symbol", "ts", *names).join(stored, on=["symbol", "ts"], suffix="_fs")
    for name in names:
        assert (joined[name] == joined[f"{name}_fs"]).all(), name
    # A request id is never logged twice for a model: nothing is overwritten.
    again = cli(*PREDICT, "--request-id", first.json()["request_id"])
    assert again.exit_code == 1
    assert "already holds request" in one_line_error(again)
    assert len(batch_files(store)) == 2


def test_audit_is_queryable_with_data_query(cli, store: Path, trained: dict[str, Any]) -> None:
    empty = cli("--json", "data", "query", "SELECT count(*) AS n FROM audit", "--audit")
    assert empty.exit_code == 0, empty.stderr
    assert empty.json()["rows"] == [{"n": 0}]
    shape = cli("--json", "data", "query", "SELECT * FROM audit", "--audit").json()["columns"]
    assert shape == ["prediction_id", *COLUMNS]
    baseline(store)
    n = cli(*PREDICT, "--json").json()["rows"]
    cli("model", "predict", "base@v1", "--features", "fs@v1", *WINDOW)
    sql = (
        "SELECT model, version, count(*) AS n, min(features.ret_5) IS NOT NULL AS f, "
        "typeof(any_value(ts)) AS t FROM audit GROUP BY ALL ORDER BY model"
    )
    res = cli("--json", "data", "query", sql, "--audit")
    assert res.exit_code == 0, res.stderr
    got = res.json()["rows"]
    assert [(r["model"], r["version"]) for r in got] == [("base", 1), ("m", 1)]
    assert got[1]["n"] == n and got[1]["t"] == "TIMESTAMP WITH TIME ZONE"
    # The audit view joins the datasets; a --dataset alias may not take its name.
    joined = cli(
        "--json", "data", "query", "SELECT count(*) AS n FROM audit JOIN bars USING (symbol, ts)",
        "-d", "bars@v1", "--audit",
    )  # fmt: skip
    assert joined.json()["rows"][0]["n"] > 0
    clash = cli("data", "query", "SELECT 1", "-d", "audit=bars@v1", "--audit")
    assert clash.exit_code == 2 and "built-in view" in one_line_error(clash)
    # Models on other feature sets log other snapshots: the view unions them by name.
    spec = TrainSpec(
        label="direction:5", kind="baseline", train_from=dt.date(2023, 1, 1),
        train_to=dt.date(2023, 6, 30), test_to=dt.date(2023, 10, 31), seed=1,
    )  # fmt: skip
    train("thin", spec, features=slim(store, "slim", "ret_1"), root=store)
    predict("thin@v1", features="slim@v1", root=store)
    sql = (
        "SELECT model, count(features.ret_1) AS has_ret_1, count(features.ret_5) AS has_ret_5 "
        "FROM audit GROUP BY model ORDER BY model"
    )
    got = cli("--json", "data", "query", sql, "--audit").json()["rows"]
    assert [(r["model"], r["has_ret_1"] > 0, r["has_ret_5"] > 0) for r in got] == [
        ("base", True, True),
        ("m", True, True),
        ("thin", False, True),
    ]


def test_the_audit_view_gives_each_prediction_its_output_id(
    cli, store: Path, trained: dict[str, Any]
) -> None:
    out = store.parent / "p.parquet"
    for request in ("r1", "r2"):
        res = cli(*PREDICT, *WINDOW, "--request-id", request, "-o", str(out))
        assert res.exit_code == 0, res.stderr
    # A batch stores each prediction's number in its call; the view makes the output's id.
    (batch,) = [f for f in batch_files(store) if f.stem == "r2"]
    numbers = pl.read_parquet(batch)["prediction_n"]
    assert numbers.to_list() == list(range(numbers.len()))
    sql = "SELECT prediction_id, ts, symbol FROM audit WHERE request_id = 'r2'"
    logged = cli("--json", "data", "query", sql, "--audit", "-o", str(store.parent / "a.parquet"))
    assert logged.exit_code == 0, logged.stderr
    keys = ("prediction_id", pl.col("ts").dt.epoch("us"), "symbol")
    view = pl.read_parquet(store.parent / "a.parquet").select(keys).sort("prediction_id")
    expected = pl.read_parquet(out).select(keys).sort("prediction_id")
    assert view.height > 0 and view.equals(expected)
    count = "SELECT count(DISTINCT prediction_id) AS n, count(*) AS rows FROM audit"
    (row,) = cli("--json", "data", "query", count, "--audit").json()["rows"]
    assert row["n"] == row["rows"] == 2 * len(view)


def test_one_structured_log_line_per_call(
    cli, store: Path, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")  # the default: JSON off a terminal
    res = cli(*PREDICT, *WINDOW, "--json")
    (line,) = log_lines(res.stderr)
    assert line["event"] == "model.predict" and line["level"] == "info"
    assert line["request_id"] == res.json()["request_id"] and line["model"] == "m@v1"
    assert line["rows"] == res.json()["rows"] and line["answered_by"] == ["m@v1"]
    assert line["audit_ms"] == round(res.json()["audit_ms"], 3) > 0
    assert line["audit_batch"] == str(batch_files(store)[0])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model", "predict", "nope", "--features", "fs@v1"], 1, "not found"),
        (["model", "predict", "m@v9", "--features", "fs@v1"], 1, "not found"),
        (["model", "predict", "m@v1", "--features", "zz"], 1, "feature set zz"),
        ([*PREDICT, "--from", "2030-01-01"], 65, "no rows of fs@v1 for --from 2030-01-01"),
        ([*PREDICT, "--from", "2023-02-01", "--to", "2023-01-01"], 2, "is before --from"),
        ([*PREDICT, "--symbols", "ZZZ"], 1, "symbol(s) ZZZ not in fs@v1"),
        ([*PREDICT, "--output", "p.json"], 2, "name a .parquet or .csv file"),
        ([*PREDICT, "--output", "nodir/p.csv"], 2, "does not exist"),
        ([*PREDICT, "--fallback", "other"], 2, "unknown --fallback 'other'"),
        ([*PREDICT, "--request-id", "a b"], 2, "invalid --request-id"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    cli, store: Path, trained: dict[str, Any], args: list[str], code: int, message: str
) -> None:
    res = cli(*args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert not audit_root(store).exists()


def slim(root: Path, name: str, drop: str) -> str:
    """Feature set ``name`` holding fs@v1 without column ``drop``; its reference."""
    from quantcli.features import open_feature_set
    from quantcli.store.manifest import SourceInfo
    from quantcli.store.publish import publish

    fs = open_feature_set("fs@v1", root)
    source = SourceInfo(kind=fs.manifest.source.kind, options=fs.manifest.source.options)
    frame = fs.frame().drop(drop)
    publish(root, name, frame, interval="1d", source=source, notes=fs.manifest.notes)
    return f"{name}@v1"


def test_a_feature_set_without_the_models_columns_is_one_line(
    cli, store: Path, trained: dict[str, Any]
) -> None:
    res = cli("model", "predict", "m@v1", "--features", slim(store, "slim", "ret_1"))
    assert res.exit_code == 65
    assert "reads feature 'ret_1', which feature set slim@v1 lacks" in one_line_error(res)
    assert not audit_root(store).exists()


# ---------------------------------------------------------------------------------------------
# Fallback.


def test_a_changed_artifact_fails_without_fallback(
    cli, store: Path, trained: dict[str, Any]
) -> None:
    corrupt(store, trained)
    res = cli(*PREDICT)
    assert res.exit_code == 1
    line = one_line_error(res)
    assert "m@v1 cannot be loaded" in line and "give --fallback baseline" in line
    none = cli(*PREDICT, "--fallback", "baseline")
    assert none.exit_code == 1
    assert "no baseline model for direction:5 is trained on feature set fs" in one_line_error(none)
    assert not audit_root(store).exists()


def test_fallback_answers_with_the_newest_baseline(
    cli, store: Path, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")  # its log line is read below
    baseline(store, "base", "ret_1")
    newest = baseline(store, "base", "ret_5")
    (registry.models_root(store) / "m" / "v1" / trained["artifact"]).unlink()
    res = cli(*PREDICT, *WINDOW, "--fallback", "baseline", "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["answered_by"] == [newest["ref"]] == ["base@v2"]
    assert "cannot read the artifact" in doc["fallback_reason"]
    (line,) = log_lines(res.stderr)
    assert line["level"] == "warning" and line["fallback_reason"] == doc["fallback_reason"]
    rows = audit_rows(store)
    assert rows["model"].unique().to_list() == ["m"] and rows["version"].unique().to_list() == [1]
    assert rows["artifact_sha256"].unique().to_list() == [trained["artifact_sha256"]]
    assert rows["answered_by"].unique().to_list() == ["base@v2"]
    assert rows["answered_sha256"].unique().to_list() == [newest["artifact_sha256"]]
    assert rows["fallback_reason"].unique().to_list() == [doc["fallback_reason"]]
    ret_5 = rows.unnest("features")["ret_5"].to_numpy()
    assert (rows["decision"].to_numpy() == (ret_5 > 0)).all()


# ---------------------------------------------------------------------------------------------
# Routers.


ROUTE = [
    "model", "route", "r", "--feature", "vol_20", "--bins", "0.5", "--models", "m@v1,base@v1",
    "--features", "fs@v1", "--train-from", "2023-01-01", "--train-to", "2023-06-30",
]  # fmt: skip


def test_router_routes_each_row_and_the_audit_says_who_answered(
    cli, store: Path, trained: dict[str, Any]
) -> None:
    base = baseline(store)
    made = cli(*ROUTE, "--json")
    assert made.exit_code == 0, made.stderr
    meta = made.json()
    assert meta["kind"] == "router" and meta["ref"] == "r@v1"
    from quantcli.features import open_feature_set

    frame = open_feature_set("fs@v1", store).frame(
        start=dt.date(2023, 1, 1), end=dt.date(2023, 6, 30)
    )
    median = float(np.quantile(frame["vol_20"].drop_nulls().to_numpy(), 0.5))
    assert meta["params"]["edges"] == [median]
    schema = registry.metadata(store, "r@v1")["input_schema"]
    assert {"name": "vol_20", "dtype": "Float64"} in schema
    assert {c["name"] for c in schema} >= {c["name"] for c in trained["input_schema"]}
    again = cli(*ROUTE)
    assert again.exit_code == 0 and "nothing new" in again.stderr
    assert [m["ref"] for m in registry.versions(store, "r")] == ["r@v1"]
    assert cli("model", "verify", "r").exit_code == 0
    assert cli("model", "show", "r@v1").exit_code == 0
    assert "routes on vol_20 to m@v1, base@v1" in cli("model", "list").stdout
    retrain = cli("model", "reproduce", "r@v1")
    assert retrain.exit_code == 2 and "is a router, which is not trained" in one_line_error(retrain)

    res = cli("model", "predict", "r@v1", "--features", "fs@v1", *WINDOW, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["answered_by"] == ["base@v1", "m@v1"]
    rows = audit_rows(store).unnest("features")
    low = rows["vol_20"] < median
    assert (rows.filter(low)["answered_by"] == "m@v1").all()
    assert (rows.filter(~low)["answered_by"] == "base@v1").all()
    assert (rows["route"] == (~low).cast(pl.Int32)).all()
    shas = {"m@v1": trained["artifact_sha256"], "base@v1": base["artifact_sha256"]}
    assert (rows["answered_sha256"] == rows["answered_by"].replace_strict(shas)).all()
    # Each regime's rows got their own model's scores.
    high = rows.filter(~low)
    assert (high["score"].to_numpy() == (high["ret_5"].to_numpy() > 0)).all()
    # A feature set without the regime feature cannot be routed.
    (before,) = batch_files(store)
    lacking = cli("model", "predict", "r@v1", "--features", slim(store, "novol", "vol_20"))
    assert lacking.exit_code == 65
    assert "r@v1 reads regime feature 'vol_20'" in one_line_error(lacking)
    assert batch_files(store) == [before]
    # A routed model that can no longer load makes the router fail over like any model.
    corrupt(store, trained)
    broken = cli("model", "predict", "r@v1", "--features", "fs@v1")
    assert broken.exit_code == 1 and "router r@v1 cannot load m@v1" in one_line_error(broken)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"--feature": "vol_99"}, 2, "regime feature 'vol_99' is not in feature set fs@v1"),
        ({"--models": "m@v1,nope@v1"}, 1, "not found"),
        ({"--models": "m@v1"}, 2, "gives 1 model(s) for the 2 regimes"),
        ({"--bins": "0.5,0.2"}, 2, "must be increasing"),
        ({"--bins": "half"}, 2, "expected quantile levels"),
        ({"--train-from": "2030-01-01", "--train-to": "2030-12-31"}, 65, "has no values"),
    ],
)
def test_router_bad_input_is_one_line_and_registers_nothing(
    cli, store: Path, trained: dict[str, Any], change: dict[str, str], code: int, message: str
) -> None:
    baseline(store)
    args = list(ROUTE)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    res = cli(*args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert "r" not in registry.names(store)


def test_router_of_routers_and_mixed_labels_are_refused(
    store: Path, trained: dict[str, Any]
) -> None:
    baseline(store)
    kw = {
        "feature": "vol_20", "levels": (0.5,), "features": "fs@v1",
        "train_from": dt.date(2023, 1, 1), "train_to": dt.date(2023, 6, 30),
    }  # fmt: skip
    route(store, "r", models=["m@v1", "base@v1"], **kw)
    with pytest.raises(UsageError, match="r@v1 is a router: score it with"):
        load(store, "r@v1")
    with pytest.raises(UsageError, match="is a router"):
        route(store, "r2", models=["r@v1", "m@v1"], **kw)
    train_on_set(store, label="direction:3")
    with pytest.raises(UsageError, match="different labels"):
        route(store, "r2", models=["m@v2", "base@v1"], **kw)
    assert registry.names(store) == ["base", "m", "r"]


@given(
    edges=st.lists(st.floats(-10, 10), min_size=1, max_size=4, unique=True).map(sorted),
    values=st.lists(st.floats(-20, 20), min_size=1, max_size=50),
)
def test_a_row_belongs_to_the_regime_its_value_falls_in(
    edges: list[float], values: list[float]
) -> None:
    n = len(edges)
    levels = tuple(0.1 * (i + 1) for i in range(n))
    models = tuple(f"m@v{i}" for i in range(n + 1))
    spec = RouterSpec("f", levels, tuple(edges), models, ("x",) * (n + 1))
    regimes = spec.regimes(np.asarray(values))
    bounds = [-np.inf, *edges, np.inf]
    for value, regime in zip(values, regimes, strict=True):
        assert bounds[regime] <= value < bounds[regime + 1]


def test_errors_from_python(store: Path, trained: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="no rows"):
        predict("m@v1", features="fs@v1", root=store, start=dt.date(2031, 1, 1))
    predict("m@v1", features="fs@v1", root=store, request_id="x")
    with pytest.raises(ConflictError, match="already holds request x"):
        predict("m@v1", features="fs@v1", root=store, request_id="x")
    corrupt(store, trained)
    with pytest.raises(IntegrityError, match="--fallback baseline"):
        predict("m@v1", features="fs@v1", root=store)
