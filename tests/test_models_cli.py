"""`quantcli model`: list, show, verify, rm, reproduce and train's bad input, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from startup import modules_loaded
from test_models import edit_metadata, published_feature_set, run

from quantcli.features import FeatureSet
from quantcli.models import registry

MODEL_LIBRARIES = ("sklearn", "skops", "scipy", "tensorflow")
TRAIN = [
    "model",
    "train",
    "m",
    "--features",
    "fs@v1",
    "--label",
    "direction:5",
    "--model",
    "logistic",
    "--train-from",
    "2023-01-01",
    "--train-to",
    "2023-06-30",
    "--test-to",
    "2023-10-31",
    "--seed",
    "1",
]


def one_line_error(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


def test_help_and_listing_import_no_model_library(store: Path) -> None:
    run(store)
    root = ["--root", str(store)]
    invocations = [["model", "--help"], [*root, "model", "list"], [*root, "model", "show", "m"]]
    assert modules_loaded(invocations, MODEL_LIBRARIES) == []
    assert modules_loaded([["data", "--help"], [*root, "data", "list"]], MODEL_LIBRARIES) == []


def test_list_show_json(cli, store: Path) -> None:
    first = run(store).metadata
    run(store, seed=2)
    run(store, name="other", kind="baseline")
    res = cli("model", "list", "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert [(d["name"], d["version"]) for d in doc] == [("m", 2), ("other", 1)]
    for entry in doc:
        assert {"version", "metrics", "artifact_sha256", "predictions_sha256"} <= set(entry)
    versions = cli("--json", "model", "list", "m").json()
    assert [d["ref"] for d in versions] == ["m@v1", "m@v2"]
    shown = cli("model", "show", "m@v1", "--json").json()
    assert shown["artifact_sha256"] == first["artifact_sha256"]
    assert shown["metadata"]["fold_results"] == first["fold_results"]
    text = cli("model", "show", f"m@{first['artifact_sha256'][:10]}")
    assert text.exit_code == 0
    assert "m@v1" in text.stdout and "out of sample" in text.stdout
    table = cli("model", "list")
    assert "other@v1" in table.stdout and "baseline" in table.stdout


def test_verify_names_a_changed_artifact(cli, store: Path) -> None:
    meta = run(store).metadata
    assert cli("model", "verify").stdout.strip() == "m@v1: ok (1 file)"
    path = registry.models_root(store) / "m" / "v1" / meta["artifact"]
    path.chmod(0o644)
    path.write_bytes(b"changed")
    res = cli("model", "verify", "m")
    assert res.exit_code == 1
    assert one_line_error(res) == "error: m@v1: changed model.skops"
    doc = cli("model", "verify", "m@v1", "--json").json()
    assert doc["ok"] is False and doc["error"]["exit_code"] == 1
    # The changed artifact is refused before it is read as a model.
    from quantcli.errors import IntegrityError
    from quantcli.models import load

    with pytest.raises(IntegrityError, match="refusing to load"):
        load(store, "m")


def test_rm(cli, store: Path) -> None:
    run(store)
    refused = cli("model", "rm", "m@v1")
    assert refused.exit_code == 2
    assert "without --force" in one_line_error(refused)
    res = cli("model", "rm", "m@v1", "--force", "--json")
    assert res.exit_code == 0 and res.json()["removed"] is True
    assert cli("model", "list", "--json").json() == []
    gone = cli("model", "show", "m@v1")
    assert gone.exit_code == 1
    assert "not found" in one_line_error(gone)


def test_reproduce_of_a_frames_model_is_one_line(cli, store: Path) -> None:
    run(store)
    res = cli("model", "reproduce", "m@v1")
    assert res.exit_code == 1
    assert "trained on frames, not on a feature set" in one_line_error(res)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"--model": "xgb"}, 2, "unknown model kind 'xgb'"),
        ({"--label": "up:5"}, 2, "invalid label 'up:5'"),
        ({"-p": "c=high"}, 2, "parameter c: expected float, got 'high'"),
        (
            {"--train-to": "2020-13-01"},
            2,
            "--train-to: expected a date YYYY-MM-DD, got '2020-13-01'",
        ),
        ({}, 1, "fs@v1"),  # the feature set does not exist
    ],
)
def test_train_bad_input_is_one_line_and_leaves_nothing(
    cli, store: Path, change: dict[str, str], code: int, message: str
) -> None:
    args = list(TRAIN)
    for option, value in change.items():
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    res = cli(*args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert registry.names(store) == []
    assert not (registry.models_root(store)).exists() or not list(
        registry.models_root(store).glob("*/v*")
    )


@pytest.fixture
def feature_set(store: Path) -> FeatureSet:
    """fs@v1: the basic feature set of a small published dataset bars@v1."""
    return published_feature_set(store)


def test_train_then_reproduce_through_the_cli(cli, store: Path, feature_set: FeatureSet) -> None:
    args = [*TRAIN, "-p", "c=0.5", "--json"]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["created"] is True and doc["version"] == 1
    assert {"metrics", "artifact_sha256", "predictions_sha256"} <= set(doc)
    meta = registry.metadata(store, "m@v1")
    assert meta["source"]["features_ref"] == "fs@v1"
    assert meta["source"]["dataset_hash"] == feature_set.dataset_hash
    assert meta["params"] == {"c": 0.5, "max_iter": 200}
    again = cli(*args)
    assert again.json()["created"] is False and registry.names(store) == ["m"]
    same = cli("model", "reproduce", "m@v1", "--json")
    assert same.exit_code == 0, same.stdout
    assert same.json()["identical"] is True
    assert cli("model", "reproduce", "m@v1").stdout.startswith("m@v1: reproduced")
    edit_metadata(store, "m@v1", lambda m: m["source"].update(dataset_hash="0" * 64))
    changed = cli("model", "reproduce", "m@v1")
    assert changed.exit_code == 1
    expected = f"data: dataset bars@v1 hash 000000000000 -> {feature_set.dataset_hash[:12]}"
    assert expected in one_line_error(changed)


def test_reproduce_rebuilds_a_removed_feature_set(
    cli, store: Path, feature_set: FeatureSet
) -> None:
    assert cli(*TRAIN).exit_code == 0
    assert cli("data", "rm", "fs@v1", "--force").exit_code == 0
    res = cli("model", "reproduce", "m@v1", "--json")
    assert res.exit_code == 0, res.stdout
    assert res.json()["identical"] is True
    assert cli("model", "reproduce", "m@v1").stdout.startswith("m@v1: reproduced")
    assert cli("data", "rm", "bars@v1", "--force").exit_code == 0
    gone = cli("model", "reproduce", "m@v1")
    assert gone.exit_code == 1
    assert "neither its feature set fs@v1 nor its dataset bars@v1" in one_line_error(gone)


def test_train_errors_from_the_data_are_one_line(cli, store: Path, feature_set: FeatureSet) -> None:
    res = cli(*TRAIN, "--label", "direction:400")  # the last --label wins
    assert res.exit_code == 65
    assert "horizon of 400 sessions is longer than" in one_line_error(res)
    res = cli(
        *TRAIN, "--train-from", "2031-01-01", "--train-to", "2031-06-30", "--test-to", "2031-12-31"
    )
    assert res.exit_code == 65
    assert "no rows between --train-from 2031-01-01" in one_line_error(res)
    assert registry.names(store) == []


def test_a_held_lock_is_exit_75(cli, store: Path, feature_set: FeatureSet) -> None:
    from quantcli.core.lock import dataset_lock

    with dataset_lock(registry.models_root(store), "m", what="model"):
        res = cli(*TRAIN)
    assert res.exit_code == 75
    assert "model m is locked by another process" in one_line_error(res)
    assert registry.names(store) == []


def test_gc_removes_abandoned_publishes_only(cli, store: Path) -> None:
    from quantcli.core.files import make_temp_dir

    run(store)
    assert cli("model", "gc").stdout.strip() == "nothing to collect"
    abandoned = make_temp_dir(registry.models_root(store), "m", "publish")
    (abandoned / "model.skops").write_bytes(b"half")
    dry = cli("model", "gc", "--dry-run", "--json").json()
    assert dry["temp_removed"] == [f".tmp/{abandoned.name}"] and abandoned.exists()
    res = cli("model", "gc")
    assert res.stdout.strip() == f"removed .tmp/{abandoned.name}"
    assert not abandoned.exists()
    assert cli("model", "verify").exit_code == 0


def test_folds_and_embargo_reach_the_walk_forward(
    cli, store: Path, feature_set: FeatureSet
) -> None:
    """--folds sets the test blocks; --embargo (default: the label horizon) keeps the sessions
    just after a test block out of every later fold's training rows."""
    default = cli(*TRAIN, "--folds", "2")
    assert default.exit_code == 0, default.stderr
    meta = registry.metadata(store, "m@v1")
    assert meta["folds"] == 2 and meta["embargo"] == 5 and len(meta["fold_results"]) == 2
    rows = {}
    for embargo in ("0", "10"):
        res = cli(*TRAIN, "--folds", "3", "--embargo", embargo, "--json")
        assert res.exit_code == 0, res.stderr
        got = registry.metadata(store, res.json()["ref"])
        assert got["embargo"] == int(embargo)
        rows[embargo] = [f["train_rows"] for f in got["fold_results"]]
    # Blocks are contiguous: the sessions after block 1 open block 2, which only fold 3 trains
    # on; it loses 10 sessions x 4 symbols.
    assert rows["0"][:2] == rows["10"][:2]
    assert rows["0"][2] - rows["10"][2] == 10 * 4
