"""`quantcli features` end to end: build, list, show, the data commands on feature sets, and
bad input (one line, non-zero exit, nothing left in the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_features import BASIC, make_bars

from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish

USER = """
import polars as pl

class Trailing:
    window: int = 5

    def features(self):
        return {"trailing": pl.col("close").rolling_mean(self.params.window).over("symbol")}

class Peek:
    def features(self):
        return {"tomorrow": pl.col("close").shift(-1).over("symbol") / pl.col("close")}

class Boom:
    def features(self):
        raise ValueError("no [bold]features[/bold] :fire:")

class Empty:
    def features(self):
        return {}
"""


@pytest.fixture
def demo(store: Path, tmp_path: Path) -> Path:
    """A store holding dataset ``demo`` and a user definition file; returns the file."""
    publish(store, "demo", make_bars(), interval="1d", source=SourceInfo("csv"))
    path = tmp_path / "mine.py"
    path.write_text(USER)
    return path


def entries(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_build_prints_the_version_and_rerun_is_unchanged(cli: Any, demo: Path) -> None:
    res = cli("features", "build", "feats", "--dataset", "demo")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("built feats@v1 (9 features x 240 rows, from demo@v1, ")
    again = cli("--json", "features", "build", "feats", "--dataset", "demo", "--spec", "basic")
    assert again.exit_code == 0
    doc = again.json()
    assert doc["created"] is False and doc["ref"] == "feats@v1"
    assert doc["columns"] == list(BASIC)
    assert doc["dataset"] == "demo@v1" and len(doc["dataset_hash"]) == 64
    assert doc["spec"] == "basic" and len(doc["spec_sha256"]) == 64
    assert doc["params"]["vol_window"] == 20


def test_build_with_parameters_makes_a_new_version(cli: Any, demo: Path) -> None:
    spec = f"{demo}:Trailing"
    assert cli("features", "build", "t", "-d", "demo", "--spec", spec).exit_code == 0
    res = cli("--json", "features", "build", "t", "-d", "demo", "--spec", spec, "-p", "window=3")
    doc = res.json()
    assert (doc["ref"], doc["created"], doc["params"]) == ("t@v2", True, {"window": 3})


def test_list_and_show(cli: Any, demo: Path) -> None:
    cli("features", "build", "feats", "--dataset", "demo")
    cli("features", "build", "mine", "--dataset", "demo", "--spec", f"{demo}:Trailing")
    listed = cli("--json", "features", "list").json()
    assert [d["ref"] for d in listed] == ["feats@v1", "mine@v1"]
    assert listed[1]["columns"] == ["trailing"] and listed[1]["versions"] == [1]
    table = cli("features", "list")
    assert "feats" in table.stdout and "demo@v1" in table.stdout
    assert "demo " not in table.stdout.split("\n", 3)[-1].split("feats")[0]  # bars not listed
    shown = cli("--json", "features", "show", "feats@v1").json()
    assert shown["rows"] == 240 and shown["symbols"] == 2
    text = cli("features", "show", "feats").stdout
    assert "ret_1, ret_5, ret_20" in text and "demo@v1" in text


def test_the_data_commands_serve_feature_sets(cli: Any, demo: Path, store: Path) -> None:
    cli("features", "build", "feats", "--dataset", "demo")
    query = cli(
        "--json", "data", "query", "--dataset", "feats@v1", "SELECT count(ret_20) AS n FROM bars"
    )
    assert query.exit_code == 0, query.stderr
    assert "200" in query.stdout
    assert cli("data", "verify", "feats").stdout.startswith("feats@v1: ok")
    assert cli("data", "tag", "feats@v1", "paper").exit_code == 0
    assert cli("--json", "features", "show", "feats@paper").json()["ref"] == "feats@v1"
    assert cli("data", "rm", "feats@v1", "--force").exit_code == 0
    gone = cli("features", "show", "feats@v1")
    assert gone.exit_code == 1 and "dataset 'feats' not found" in gone.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--dataset", "nope"], 1, "dataset 'nope' not found"),
        (["--dataset", "demo", "--spec", "nope"], 1, "unknown feature set 'nope': use a built-in"),
        (["--dataset", "demo", "--spec", "missing.py:X"], 1, "feature set file missing.py"),
        (["--dataset", "demo", "--spec", "{f}:Nope"], 1, "no class Nope"),
        (["--dataset", "demo", "-p", "vol_window=ten"], 1, "expected int, got 'ten'"),
        (["--dataset", "demo", "-p", "colour=red"], 1, "unknown parameter colour"),
        (["--dataset", "demo", "-p", "novalue"], 2, "expected NAME=VALUE"),
        (["--dataset", "demo", "--spec", "{f}:Peek"], 1, "looks ahead: its features at AAA"),
        (
            ["--dataset", "demo", "--spec", "{f}:Boom"],
            1,
            "features() raised ValueError: no [bold]features[/bold] :fire:",
        ),
        (["--dataset", "demo", "--spec", "{f}:Empty"], 1, "returned no feature"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    cli: Any, demo: Path, store: Path, args: list[str], code: int, message: str
) -> None:
    before = entries(store)
    argv = [a.replace("{f}", str(demo)) for a in args]
    res = cli("features", "build", "feats", *argv)
    assert res.exit_code == code
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert entries(store) == before
    assert not (store / "feats").exists()


def test_json_errors_and_kind_mismatch(cli: Any, demo: Path) -> None:
    res = cli("--json", "features", "build", "demo", "--dataset", "demo")
    assert res.exit_code == 2
    assert res.json()["error"]["message"] == (
        "demo holds bar versions; publish this under another name"
    )
    shown = cli("features", "show", "demo")
    assert shown.exit_code == 1 and "bar dataset, not a feature set" in shown.stderr


def test_quiet_build_narrates_nothing(cli: Any, demo: Path) -> None:
    res = cli("--quiet", "features", "build", "feats", "--dataset", "demo")
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout.startswith("built feats@v1")


def test_gc_keeps_tagged_feature_sets_and_collects_old_ones(cli: Any, demo: Path) -> None:
    cli("features", "build", "feats", "--dataset", "demo")
    cli("features", "build", "feats", "--dataset", "demo", "-p", "slow_mean=30")
    cli("features", "build", "feats", "--dataset", "demo", "-p", "slow_mean=40")
    assert cli("data", "tag", "feats@v1", "keep").exit_code == 0
    res = cli("--json", "data", "gc", "--keep-last", "1")
    assert res.exit_code == 0, res.stderr
    assert res.json()["versions_removed"] == ["feats@v2"]
    listed = cli("--json", "features", "list").json()
    assert listed[0]["versions"] == [1, 3] and listed[0]["tags"] == {"keep": 1}
