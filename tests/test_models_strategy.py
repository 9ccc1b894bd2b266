"""The ``model`` backtest strategy, its leakage guard and its manifest input, through the CLI and
from Python."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import copy_store
from test_features import make_bars
from test_models import (
    USER_FEATURES,
    edit_metadata,
    run,
    train_on_set,
)
from test_models_cli import one_line_error
from test_models_predict import baseline, slim

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import run_backtest, simulate
from quantcli.backtest.runs import save_run
from quantcli.backtest.strategy import RunContext, Setup, load_strategy
from quantcli.errors import StrategyError, UsageError
from quantcli.features import build_features, open_feature_set
from quantcli.models import registry, route
from quantcli.models.audit import audit_root
from quantcli.models.leakage import seen_span
from quantcli.models.predict import open_scorer
from quantcli.models.strategy import ModelStrategy
from quantcli.store.catalog import remove_version
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish
from quantcli.store.reader import open_dataset

# m@v1 is trained on 2023-01-01..2023-06-30 with a 5-session label: it saw up to 2023-07-07.
UNSEEN = "2023-08-01"
SEEN = "2023-06-01"
BACKTEST = ["backtest", "--dataset", "bars", "--strategy", "model", "-p", "model=m@v1"]


@pytest.fixture
def store(model_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the session's model store (the ``cli`` fixture runs on it)."""
    return copy_store(model_template, tmp_path)


def backtest(cli, *extra: str):
    return cli(*BACKTEST, *extra, "--json")


def saved(res) -> tuple[str, Path, dict]:
    assert res.exit_code == 0, res.stderr
    out = res.json()
    run_dir = Path(out["run_dir"])
    return out["run_id"], run_dir, json.loads((run_dir / "manifest.json").read_text())


def runs_left(store: Path) -> list[str]:
    folder = store / "runs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def context(store: Path, first: str = UNSEEN, last: str = "2024-02-23", **config) -> RunContext:
    bars = open_dataset("bars@v1", store)
    return RunContext(
        root=store,
        config=BacktestConfig(dataset="bars@v1", strategy="model", **config),
        dataset_hash=bars.manifest.content_hash,
        first=dt.date.fromisoformat(first),
        last=dt.date.fromisoformat(last),
        symbols=bars.manifest.symbols,
    )


# --- the scores and the targets ---------------------------------------------------------------


def test_setup_scores_the_feature_set_rows_in_one_batch(store: Path) -> None:
    strat = load_strategy("model", {"model": "m@v1", "long": "0.6", "short": "0.4"})
    assert isinstance(strat.instance, ModelStrategy) and strat.kind == "weights"
    setup = strat.setup(context(store))
    # The same scores as the registered model gives the feature set's complete rows.
    rows = open_feature_set("fs@v1", store).frame(start=dt.date(2023, 8, 1)).drop_nulls()
    expected = registry.load(store, "m@v1").score(rows)
    scores = strat.instance._scores
    assert scores.get_column("ts").to_list() == rows.get_column("ts").to_list()
    assert np.array_equal(scores.get_column("score").to_numpy(), expected)
    entry = setup.inputs["model"]
    meta = registry.metadata(store, "m@v1")
    assert entry["ref"] == "m@v1" and entry["artifact_sha256"] == meta["artifact_sha256"]
    assert entry["features"] == "feature set fs@v1"
    assert entry["pin"] == {"model": "m@v1"}
    assert setup.warnings == ()
    # Targets: +0.1 at a score >= 0.6, -0.1 at <= 0.4, 0 between, no opinion without a score.
    probe = pl.DataFrame({"symbol": ["AAA"] * 3, "ts": rows.get_column("ts")[:3]}).with_columns(
        pl.col("symbol").cast(pl.String)
    )
    probe = pl.concat([probe, pl.DataFrame({"symbol": ["ZZZ"], "ts": probe["ts"][:1]})])
    weights = probe.with_columns(strat.features()).select(strat.expression()).to_series()
    aaa = scores.filter(pl.col("symbol") == "AAA").get_column("score")[:3].to_list()
    want = [0.1 if s >= 0.6 else -0.1 if s <= 0.4 else 0.0 for s in aaa]
    assert weights.to_list() == [*want, None]


def test_without_short_scores_below_long_are_flat(store: Path) -> None:
    strat = load_strategy("model", {"model": "m@v1", "long": "0.5", "weight": "0.25"})
    strat.setup(context(store))
    scores = strat.instance._scores
    weights = scores.with_columns(strat.features()).select(strat.expression()).to_series()
    expected = np.where(scores.get_column("score").to_numpy() >= 0.5, 0.25, 0.0)
    assert np.array_equal(weights.to_numpy(), expected)


def test_cli_backtest_records_the_model_and_reproduces(cli, store: Path) -> None:
    res = backtest(cli, "-p", "long=0.5", "--from", UNSEEN, "--segment", "intraday")
    run_id, _, manifest = saved(res)
    assert run_id.startswith("model-bars-")
    assert res.json()["trades"] > 0
    entry = manifest["inputs"]["model"]
    meta = registry.metadata(store, "m@v1")
    assert (entry["name"], entry["version"]) == ("m", 1)
    assert entry["artifact_sha256"] == meta["artifact_sha256"]
    assert "allow_overlap" not in manifest["config"]  # recorded only when set
    again = cli("backtest", "reproduce", run_id, "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["ok"] is True and again.json()["inputs_changed"] == []


def test_a_router_is_backtested_with_the_models_it_routes_to(cli, store: Path) -> None:
    baseline(store)
    router = route(
        store, "r", feature="vol_20", levels=(0.5,), models=["m@v1", "base@v1"],
        features="fs@v1", train_from=dt.date(2023, 1, 1), train_to=dt.date(2023, 6, 30),
    ).metadata  # fmt: skip
    res = cli(*BACKTEST[:-1], "model=r@champion", "--from", UNSEEN, "--json")
    assert res.exit_code == 1 and "no alias 'champion'" in one_line_error(res)
    cli("model", "alias", "r@v1", "champion")
    run_id, _, manifest = saved(cli(*BACKTEST[:-1], "model=r@champion", "--from", UNSEEN, "--json"))
    entry = manifest["inputs"]["model"]
    assert entry["ref"] == "r@v1" and entry["artifact_sha256"] == router["artifact_sha256"]
    assert entry["pin"] == {"model": "r@v1"}
    # Each regime's rows scored by its own model, as model predict scores them.
    strat = load_strategy("model", {"model": "r@v1"})
    strat.setup(context(store))
    rows = open_feature_set("fs@v1", store).frame(start=dt.date(2023, 8, 1)).drop_nulls()
    scores, which, _ = open_scorer(store, registry.metadata(store, "r@v1")).score(rows)
    assert set(np.unique(which)) == {0, 1}
    assert np.array_equal(strat.instance._scores.get_column("score").to_numpy(), scores)
    # A backtest is not a prediction served: nothing in the audit log.
    assert not audit_root(store).exists()
    again = cli("backtest", "reproduce", run_id, "--json")
    assert again.exit_code == 0 and again.json()["ok"] is True, again.stdout
    # A feature set without the regime feature is one line.
    novol = slim(store, "novol", "vol_20")
    lacking = cli(*BACKTEST[:-1], "model=r@v1", "-p", f"features={novol}", "--from", UNSEEN)
    assert lacking.exit_code == 65
    assert "feature column 'vol_20' is missing (router r@v1 routes on it)" in one_line_error(
        lacking
    )


def test_the_run_id_changes_with_the_model(cli, store: Path) -> None:
    first, _, _ = saved(backtest(cli, "--from", UNSEEN))
    same, _, _ = saved(backtest(cli, "--from", UNSEEN))
    assert same == first
    train_on_set(store, seed=8)
    other, _, manifest = saved(cli(*BACKTEST[:-1], "model=m@v2", "--from", UNSEEN, "--json"))
    assert other != first
    assert manifest["inputs"]["model"]["ref"] == "m@v2"


def test_a_reference_is_pinned_to_the_version_it_ran(cli, store: Path) -> None:
    run_id, _, manifest = saved(cli(*BACKTEST[:-1], "model=m", "--from", UNSEEN, "--json"))
    assert manifest["inputs"]["model"]["pin"] == {"model": "m@v1"}
    train_on_set(store, seed=8)  # "m" now names m@v2
    res = cli("backtest", "reproduce", run_id, "--json")
    assert res.exit_code == 0 and res.json()["ok"] is True, res.stdout


def test_an_alias_runs_the_version_it_holds_and_is_pinned(cli, store: Path) -> None:
    train_on_set(store, seed=8)  # m@v2
    moved = cli("model", "alias", "m@v2", "champion", "--force", "--reason", "test")
    assert moved.exit_code == 0, moved.stderr
    res = cli(*BACKTEST[:-1], "model=m@champion", "--from", UNSEEN, "--json")
    run_id, _, manifest = saved(res)
    entry = manifest["inputs"]["model"]
    assert entry["pin"] == {"model": "m@v2"}
    assert entry["artifact_sha256"] == registry.metadata(store, "m@v2")["artifact_sha256"]
    # champion moves back to v1: the run still reproduces the version it ran.
    back = cli("model", "alias", "m@v1", "champion", "--force", "--reason", "roll back")
    assert back.exit_code == 0, back.stderr
    again = cli("backtest", "reproduce", run_id, "--json")
    assert again.exit_code == 0 and again.json()["ok"] is True, again.stdout


def test_reproduce_names_a_changed_model(cli, store: Path) -> None:
    run_id, _, _ = saved(backtest(cli, "--from", UNSEEN))
    other = train_on_set(store, seed=8).metadata
    # m@v1 now holds m@v2's artifact, its metadata made to match: it loads, and is another model.
    folder = registry.models_root(store) / "m"
    target = folder / "v1" / other["artifact"]
    target.chmod(0o644)
    target.write_bytes((folder / "v2" / other["artifact"]).read_bytes())
    edit_metadata(store, "m@v1", lambda m: m.update(artifact_sha256=other["artifact_sha256"]))
    res = cli("backtest", "reproduce", run_id)
    assert "input changed: model" in res.stdout
    doc = cli("backtest", "reproduce", run_id, "--json").json()
    assert doc["inputs_changed"] == ["model"]


def test_reproduce_refuses_a_tampered_artifact_in_one_line(cli, store: Path) -> None:
    run_id, _, _ = saved(backtest(cli, "--from", UNSEEN))
    meta = registry.metadata(store, "m@v1")
    path = registry.models_root(store) / "m" / "v1" / meta["artifact"]
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    res = cli("backtest", "reproduce", run_id)
    assert res.exit_code == 1
    assert "artifact sha256 does not match" in one_line_error(res)


def test_features_are_rebuilt_from_the_run_dataset_when_the_set_is_gone(cli, store: Path) -> None:
    with_set, _, kept = saved(backtest(cli, "--from", UNSEEN))
    shutil.rmtree(store / "runs")
    remove_version(store, "fs@v1", force=True)
    rebuilt, _, manifest = saved(backtest(cli, "--from", UNSEEN))
    entry = manifest["inputs"]["model"]
    assert entry["features"] == "basic built from bars"
    # The same features (by content), so the same model input and the same run.
    assert entry["features_sha256"] == kept["inputs"]["model"]["features_sha256"]
    assert rebuilt == with_set


def test_an_explicit_feature_set_is_pinned(cli, store: Path) -> None:
    _, _, manifest = saved(backtest(cli, "-p", "features=fs", "--from", UNSEEN))
    fs = open_feature_set("fs@v1", store)
    assert manifest["inputs"]["model"]["pin"] == {
        "model": "m@v1",
        "features": f"fs@{fs.content_hash}",
    }


def test_the_look_ahead_check_still_runs_on_the_scores(store: Path) -> None:
    # Scores that read a later bar would be refused like any strategy's targets.
    class Peeking(ModelStrategy):
        def features(self) -> list[pl.Expr]:
            rises = pl.col("close").shift(-1) > pl.col("close")
            return [rises.cast(pl.Float64).over("symbol").alias("_score")]

    strat = load_strategy("model", {"model": "m@v1"})
    peeking = Peeking(strat.instance.params)
    config = BacktestConfig(dataset="bars@v1", strategy="model", params={"model": "m@v1"})
    version = open_dataset("bars@v1", store)
    bars = version.frame(start=dt.date(2023, 8, 1))
    digest = version.manifest.content_hash
    kept = simulate(bars, config, strategy=strat, root=store, dataset_hash=digest)
    assert kept.inputs["model"]["ref"] == "m@v1"
    with pytest.raises(StrategyError, match="looks ahead"):
        simulate(
            bars, config, strategy=replace(strat, instance=peeking), root=store, dataset_hash=digest
        )


# --- the leakage guard ------------------------------------------------------------------------


def test_an_overlapping_window_is_refused_naming_the_overlap(cli, store: Path) -> None:
    res = cli(*BACKTEST, "--from", SEEN)
    assert res.exit_code == 2
    line = one_line_error(res)
    span = seen_span(registry.metadata(store, "m@v1"))
    assert f"m@v1's training window plus label horizon ({span.first}..{span.last})" in line
    assert f"on {SEEN}..{span.last}" in line
    assert "--allow-overlap" in line
    assert runs_left(store) == []


def test_allow_overlap_is_recorded_in_the_manifest_and_report(cli, store: Path) -> None:
    res = backtest(cli, "--from", SEEN, "--allow-overlap")
    run_id, run_dir, manifest = saved(res)
    span = seen_span(registry.metadata(store, "m@v1"))
    assert manifest["config"]["allow_overlap"] is True
    assert manifest["inputs"]["model"]["overlap"] == f"{SEEN}..{span.last}"
    (warning,) = [w for w in manifest["warnings"] if "allow-overlap" in w]
    assert f"saw {SEEN}..{span.last}" in warning and "in sample" in warning
    assert warning in res.json()["warnings"]
    report = (run_dir / "report.html").read_text()
    assert "allow_overlap" in report and "in sample" in report
    # The flag changes the run's identity.
    assert cli("backtest", "reproduce", run_id, "--json").json()["ok"] is True


# --- bad input: one line, nothing left --------------------------------------------------------


def frames_model(store: Path) -> None:
    """Model frames@v1, trained on frames rather than a feature set."""
    run(store, name="frames")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-p", "long=0.5"], 1, "parameter model is required"),
        (["-p", "model=nope@v1"], 1, "not found"),
        (["-p", "model=m@v1", "-p", "weight=2"], 1, "weight must be in (0, 1]"),
        (["-p", "model=m@v1", "-p", "short=0.6"], 1, "short (0.6) must be below long (0.55)"),
        (["-p", "model=frames@v1"], 2, "trained on frames, not on a feature set"),
        (["-p", "model=m@v1", "-p", "features=other"], 2, "was built from bars2@v1"),
        (["-p", "model=m@v1", "-p", "long=high"], 1, "parameter long: expected float"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(
    cli, store: Path, args: list[str], code: int, message: str
) -> None:
    frames_model(store)
    publish(store, "bars2", make_bars(80), interval="1d", source=SourceInfo("csv"))
    build_features(store, "other", "bars2@v1", "basic")
    res = cli("backtest", "--dataset", "bars", "--strategy", "model", *args, "--from", UNSEEN)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert runs_left(store) == []


def test_without_a_store_the_strategy_says_so(store: Path) -> None:
    start = dt.date(2023, 8, 1)
    bars = open_dataset("bars@v1", store).frame(start=start)
    config = BacktestConfig(
        dataset="bars@v1", strategy="model", params={"model": "m@v1"}, start=start
    )
    with pytest.raises(UsageError, match="reads the model registry"):
        simulate(bars, config)
    # With the store it runs, from Python as from the CLI.
    result = run_backtest(config, root=store)
    assert result.inputs["model"]["ref"] == "m@v1"


# --- the setup hook any strategy may define --------------------------------------------------


class Reading:
    """A weights strategy whose setup returns ``result`` (or raises it)."""

    def __init__(self, result: object) -> None:
        self.result = result

    def setup(self, run: RunContext) -> object:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def weights(self) -> pl.Expr:
        return pl.lit(0.5)


def simulate_with(store: Path, result: object):
    strat = replace(load_strategy("buy_and_hold", {}), instance=Reading(result))
    bars = make_bars(30)
    config = BacktestConfig(dataset="px", strategy="buy_and_hold")
    return simulate(bars, config, strategy=strat, root=store)


def test_setup_inputs_are_recorded_and_may_not_shadow_the_runs_own(store: Path) -> None:
    publish(store, "px", make_bars(30), interval="1d", source=SourceInfo("csv"))
    entry = {"sha256": "ab" * 32, "what": "a lookup table"}
    result = simulate_with(store, Setup(inputs={"table": entry}, warnings=("read a table",)))
    assert result.warnings[0] == "read a table"
    version = open_dataset("px@v1", store)
    result = replace(result, dataset_hash=version.manifest.content_hash)
    run = save_run(result, store / "runs", root=store)
    assert run.manifest.inputs["table"] == entry
    shadowing = simulate_with(store, Setup(inputs={"dataset": entry}))
    shadowing = replace(shadowing, dataset_hash=version.manifest.content_hash)
    with pytest.raises(StrategyError, match="input 'dataset' is one the run records itself"):
        save_run(shadowing, store / "runs", root=store)


def test_setup_errors_are_strategy_errors(store: Path) -> None:
    with pytest.raises(StrategyError, match=r"setup\(\) must return a Setup"):
        simulate_with(store, {"inputs": {}})
    with pytest.raises(StrategyError, match=r"setup\(\) raised ValueError: boom"):
        simulate_with(store, ValueError("boom"))
    with pytest.raises(UsageError, match="own words"):
        simulate_with(store, UsageError("own words"))


def test_a_feature_set_without_the_model_columns_is_one_line(
    cli, store: Path, tmp_path: Path
) -> None:
    definition = tmp_path / "trend.py"
    definition.write_text(USER_FEATURES)
    build_features(store, "trend", "bars@v1", f"{definition}:Trend")
    res = cli(*BACKTEST, "-p", "features=trend", "--from", UNSEEN)
    assert res.exit_code == 65
    assert "feature column 'ret_5' is missing" in one_line_error(res)
    assert runs_left(store) == []
