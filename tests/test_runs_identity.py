"""Run identity and reproduction through the CLI: every input that decides the numbers is in the
run id and manifest, a run directory is never overwritten, `reproduce` names the input that
changed, and runs live beside the store with copies of the user files they read."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from quantcli.backtest import runs
from quantcli.core.timezone import TIMEZONE
from quantcli.market.calendar import sessions
from quantcli.settings import resolve_runs_dir
from quantcli.store.manifest import SourceInfo
from quantcli.store.publish import publish

STRATEGY = """\
from dataclasses import dataclass

import polars as pl

from quantcli.backtest.strategy import SignalStrategy


class Dip(SignalStrategy):
    @dataclass(frozen=True)
    class Params:
        qty: int = 10

    def targets(self) -> pl.Expr:
        falling = pl.col("close") < pl.col("close").shift(1).over("symbol")
        return pl.when(falling).then(self.params.qty).otherwise(0)
"""
BROKER = (Path(runs.__file__).parents[1] / "market/data/brokers/zerodha.toml").read_text()
ACTIONS_HEADER = (
    '"SYMBOL","COMPANY NAME","SERIES","PURPOSE","FACE VALUE","EX-DATE","RECORD DATE",'
    '"BC START DATE","BC END DATE"\n'
)
SPLIT_ROW = '"AAA","AAA Ltd","EQ","Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 2/- Per Share","10","03-Apr-2023","-","-","-"\n'  # noqa: E501


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with dataset ``px``: one symbol on the NSE sessions of 2023 H1, a wavy close."""
    root = tmp_path / "store"
    days = sessions(date(2023, 1, 2), date(2023, 6, 30))
    close = [100.0 + 10.0 * math.sin(i / 4.0) for i in range(len(days))]
    bars = pl.DataFrame(
        {
            "symbol": ["AAA"] * len(days),
            "ts": [datetime.combine(d, datetime.min.time()) for d in days],
            "open": close,
            "high": [c + 1.0 for c in close],
            "low": [c - 1.0 for c in close],
            "close": close,
            "volume": [1_000_000] * len(days),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone(TIMEZONE))
    publish(root, "px", bars, interval="1d", source=SourceInfo(kind="test"))
    return root


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder holding a user strategy ``dip.py`` and a broker profile ``broker.toml``."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "dip.py").write_text(STRATEGY)
    (folder / "broker.toml").write_text(BROKER)
    return folder


def backtest(cli, store: Path, *args: str, strategy: str = "sma_cross"):
    params = ["-p", "fast=3", "-p", "slow=8", "-p", "qty=10"] if strategy == "sma_cross" else []
    return cli("--json", "backtest", "-d", "px", "-s", strategy, *params, *args, root=store)


def run_of(res) -> tuple[str, Path]:
    assert res.exit_code == 0, res.stderr
    out = res.json()
    return out["run_id"], Path(out["run_dir"])


def import_split(cli, store: Path, tmp_path: Path) -> None:
    src = tmp_path / "split.csv"
    src.write_text(ACTIONS_HEADER + SPLIT_ROW)
    res = cli("actions", "import", str(src), root=store)
    assert res.exit_code == 0, res.stderr


def manifest_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


# --- the id covers every input ---------------------------------------------------------------


def test_runs_are_saved_beside_the_store_by_default(cli, store: Path) -> None:
    run_id, run_dir = run_of(backtest(cli, store))
    assert run_dir == store / "runs" / run_id
    listed = cli("--json", "backtest", "list", root=store).json()
    assert [r["run_id"] for r in listed] == [run_id]
    assert cli("backtest", "show", run_id, root=store).exit_code == 0


def test_an_imported_split_gives_a_new_run_and_keeps_the_old_one(
    cli, store: Path, tmp_path: Path
) -> None:
    before_id, before_dir = run_of(backtest(cli, store))
    before = snapshot(before_dir)
    import_split(cli, store, tmp_path)
    after_id, after_dir = run_of(backtest(cli, store))
    assert after_id != before_id
    assert snapshot(before_dir) == before  # the first run survives, untouched
    assert manifest_of(before_dir)["inputs"]["corporate_actions"]["count"] == 0
    assert manifest_of(after_dir)["inputs"]["corporate_actions"]["count"] == 1
    assert sorted(p.name for p in (store / "runs").iterdir()) == sorted([before_id, after_id])


NSE_2027 = "Sr. No,Date,Day,Description\n1,26-Jan-2027,Tuesday,Republic Day\n"


def test_an_imported_calendar_year_changes_the_id(cli, store: Path, tmp_path: Path) -> None:
    before_id, before_dir = run_of(backtest(cli, store))
    (tmp_path / "nse-2027.csv").write_text(NSE_2027)
    assert cli("calendar", "import", str(tmp_path / "nse-2027.csv"), root=store).exit_code == 0
    after_id, after_dir = run_of(backtest(cli, store))
    assert after_id != before_id
    calendar_of = [manifest_of(d)["inputs"]["calendar"]["sha256"] for d in (before_dir, after_dir)]
    assert calendar_of[0] != calendar_of[1]
    # From Python, outside the CLI's store context, the store's calendar is still the one hashed.
    assert runs._calendar_fingerprint(store) == calendar_of[1]


def test_manifest_inputs_name_and_hash_each_input(cli, store: Path, files: Path) -> None:
    from quantcli.market.calendar import fingerprint

    res = backtest(
        cli, store, "--broker", str(files / "broker.toml"), strategy=f"{files / 'dip.py'}:Dip"
    )
    _, run_dir = run_of(res)
    inputs = manifest_of(run_dir)["inputs"]
    assert list(inputs) == sorted(runs.INPUTS)  # every input, nothing else
    assert all(len(entry["sha256"]) == 64 for entry in inputs.values())
    assert inputs["strategy"]["sha256"] == hashlib.sha256(STRATEGY.encode()).hexdigest()
    assert inputs["strategy"]["file"] == "strategy.py"
    assert inputs["broker"]["sha256"] == hashlib.sha256(BROKER.encode()).hexdigest()
    assert inputs["broker"] == {**inputs["broker"], "file": "broker.toml", "name": "zerodha"}
    assert inputs["calendar"]["sha256"] == fingerprint()
    assert inputs["charge_rates"]["periods"] >= 1
    assert (run_dir / "strategy.py").read_text() == STRATEGY
    assert (run_dir / "broker.toml").read_text() == BROKER
    versions = manifest_of(run_dir)["versions"]
    assert {"python", "exchange-calendars", "numpy", "quantcli"} <= set(versions)


def test_flat_costs_record_that_no_rates_or_broker_were_used(cli, store: Path) -> None:
    _, run_dir = run_of(backtest(cli, store, "--costs", "flat:0.05%"))
    inputs = manifest_of(run_dir)["inputs"]
    assert inputs["charge_rates"]["used"] is False and inputs["broker"]["used"] is False


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: (f / "broker.toml").write_text(BROKER.replace("dp = 13.0", "dp = 20.0")), id="broker"),  # noqa: E501
        pytest.param(lambda f: (f / "broker.toml").write_text(BROKER + "# edited\n"), id="broker-bytes"),  # noqa: E501
        pytest.param(lambda f: (f / "dip.py").write_text(STRATEGY + "# edited\n"), id="strategy"),
    ],
)  # fmt: skip
def test_changing_a_user_file_changes_the_id(cli, store: Path, files: Path, change) -> None:
    args = ("--broker", str(files / "broker.toml"))
    spec = f"{files / 'dip.py'}:Dip"
    first_id, first_dir = run_of(backtest(cli, store, *args, strategy=spec))
    change(files)
    second_id, _ = run_of(backtest(cli, store, *args, strategy=spec))
    assert second_id != first_id
    assert first_dir.is_dir()


def test_changing_a_parameter_or_option_changes_the_id(cli, store: Path) -> None:
    base, _ = run_of(backtest(cli, store))
    assert run_of(backtest(cli, store, "-p", "fast=4"))[0] != base
    assert run_of(backtest(cli, store, "--cash", "2000000"))[0] != base
    assert run_of(backtest(cli, store))[0] == base


# --- a run directory is never overwritten ----------------------------------------------------


def test_an_identical_run_is_left_as_it_is(cli, store: Path) -> None:
    first = backtest(cli, store).json()
    assert first["unchanged"] is False
    run_dir = Path(first["run_dir"])
    manifest = manifest_of(run_dir)
    manifest["created_at"] = "2001-01-01T00:00:00+00:00"  # when the run was first saved
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(run_dir)
    assert backtest(cli, store).json()["unchanged"] is True
    res = cli("backtest", "-d", "px", "-s", "sma_cross", "-p", "fast=3", "-p", "slow=8",
              "-p", "qty=10", root=store)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert f"unchanged: {run_dir} already holds this run" in res.stderr
    assert snapshot(run_dir) == before  # not rewritten: the first save's time is kept


def test_a_different_run_under_the_same_id_is_refused(cli, store: Path) -> None:
    run_id, run_dir = run_of(backtest(cli, store))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["final_equity"] += 1
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    before = snapshot(run_dir)
    res = backtest(cli, store)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"run {run_id} already exists in {run_dir} with different metrics.json" in lines[0]
    assert snapshot(run_dir) == before
    assert [p.name for p in (store / "runs").iterdir()] == [run_id]  # no temp left


# --- reproduce names the input that changed --------------------------------------------------


def reproduce(cli, store: Path, run_id: str, *args: str):
    return cli("backtest", "reproduce", run_id, *args, root=store)


def causes_before_files(stdout: str, cause: str) -> None:
    lines = stdout.splitlines()
    assert f"  input changed: {cause}" in lines, stdout
    first_diff = next((i for i, line in enumerate(lines) if "differs:" in line), len(lines))
    assert lines.index(f"  input changed: {cause}") < first_diff


def test_reproduce_names_an_imported_action(cli, store: Path, tmp_path: Path) -> None:
    run_id, _ = run_of(backtest(cli, store, strategy="buy_and_hold"))  # holds through the split
    import_split(cli, store, tmp_path)
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 1
    assert res.stdout.startswith("NOT reproduced:")
    causes_before_files(res.stdout, "corporate actions")
    assert "differs: equity.parquet" in res.stdout


def test_reproduce_names_an_edited_strategy_copy(cli, store: Path, files: Path) -> None:
    run_id, run_dir = run_of(backtest(cli, store, strategy=f"{files / 'dip.py'}:Dip"))
    (run_dir / "strategy.py").write_text(STRATEGY.replace("qty: int = 10", "qty: int = 20"))
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 1
    causes_before_files(res.stdout, "strategy source")
    assert "differs: orders.parquet" in res.stdout
    res = cli("--json", "backtest", "reproduce", run_id, root=store)
    assert res.json()["inputs_changed"] == ["strategy source"]


def test_reproduce_names_an_edited_broker_copy(cli, store: Path, files: Path) -> None:
    args = ("--broker", str(files / "broker.toml"))
    run_id, run_dir = run_of(backtest(cli, store, *args))
    (run_dir / "broker.toml").write_text(BROKER.replace("dp = 13.0", "dp = 20.0"))
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 1
    causes_before_files(res.stdout, "broker profile")
    assert "input changed: charge rates" in res.stdout  # the DP charge is one of the rates
    assert "differs: fills.parquet" in res.stdout


@pytest.mark.parametrize("name", sorted(runs.INPUTS))
def test_reproduce_names_every_recorded_input(cli, store: Path, name: str) -> None:
    """Each input the manifest pinned is compared with its value now: a recorded hash that
    no longer matches (here, edited in the manifest) is reported under its label."""
    run_id, run_dir = run_of(backtest(cli, store))
    manifest = manifest_of(run_dir)
    manifest["inputs"][name]["sha256"] = "0" * 64
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 0, res.stdout  # the outputs are still byte-identical
    assert res.stdout.splitlines() == [
        f"reproduced: {len(runs.OUTPUTS)} files identical",
        f"  input changed: {runs.INPUTS[name]}",
    ]


def test_reproduce_hints_root_when_the_dataset_is_not_in_the_store(
    cli, store: Path, tmp_path: Path
) -> None:
    _, run_dir = run_of(backtest(cli, store))
    other = tmp_path / "other-store"
    other.mkdir()
    res = cli("backtest", "reproduce", str(run_dir), root=other)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"dataset version px@{manifest_of(run_dir)['dataset']['content_hash']}" in lines[0]
    assert f"is not in the store {other}" in lines[0] and "--root" in lines[0]
    res = cli("backtest", "reproduce", run_dir.name, root=other)  # the id alone: other/runs
    assert res.exit_code == 1 and "not found" in res.stderr and "--root" in res.stderr


def test_reproduce_from_elsewhere_without_the_original_files(
    cli, store: Path, files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files)
    run_id, _ = run_of(backtest(cli, store, "--broker", "broker.toml", strategy="dip.py:Dip"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shutil.rmtree(files)
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.strip() == f"reproduced: {len(runs.OUTPUTS)} files identical"


def test_reproduce_of_a_run_missing_its_strategy_copy(cli, store: Path, files: Path) -> None:
    run_id, run_dir = run_of(backtest(cli, store, strategy=f"{files / 'dip.py'}:Dip"))
    (run_dir / "strategy.py").unlink()
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 1
    copy = run_dir / "strategy.py"
    assert res.stderr.strip() == f"error: {copy}: missing (the run's copy of a file it read)"


# --- where runs live ---------------------------------------------------------------------------


def test_runs_dir_resolution(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert resolve_runs_dir(None, root, cwd=tmp_path) == root / "runs"
    assert resolve_runs_dir("mine", root, cwd=tmp_path) == Path("mine")
    (tmp_path / "quantcli.toml").write_text('[runs]\ndir = "results/runs"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert resolve_runs_dir(None, root, cwd=sub) == tmp_path / "results/runs"
    assert resolve_runs_dir("mine", root, cwd=sub) == Path("mine")
    (tmp_path / "quantcli.toml").write_text("[runs]\ndir = 3\n")
    with pytest.raises(Exception, match=r"\[runs\] dir must be a string"):
        resolve_runs_dir(None, root, cwd=sub)


def test_quantcli_toml_runs_dir_is_used_by_every_command(
    cli, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "quantcli.toml").write_text('[runs]\ndir = "results"\n')
    monkeypatch.chdir(project / "notebooks")
    run_id, run_dir = run_of(backtest(cli, store))
    assert run_dir == project / "results" / run_id
    assert [r["run_id"] for r in cli("--json", "backtest", "list", root=store).json()] == [run_id]
    assert reproduce(cli, store, run_id).exit_code == 0
    flag = backtest(cli, store, "--runs-dir", str(tmp_path / "flag"))
    assert run_of(flag)[1] == tmp_path / "flag" / run_id


def test_show_lists_each_input(cli, store: Path, tmp_path: Path) -> None:
    import_split(cli, store, tmp_path)
    run_id, run_dir = run_of(backtest(cli, store))
    inputs = manifest_of(run_dir)["inputs"]
    res = cli("backtest", "show", run_id, root=store)
    assert res.exit_code == 0, res.stderr
    flat = " ".join(res.stdout.split())
    assert (
        f"input: corporate_actions │ {inputs['corporate_actions']['sha256'][:12]} (count 1)" in flat
    )
    assert f"input: calendar │ {inputs['calendar']['sha256'][:12]} │" in flat


def test_reproduce_reads_a_format_1_manifest(cli, store: Path) -> None:
    """Runs saved before manifests had ``inputs`` still reproduce; their strategy source and
    dataset hashes are the inputs they pinned."""
    run_id, run_dir = run_of(backtest(cli, store))
    manifest = manifest_of(run_dir)
    del manifest["inputs"]
    manifest["format"] = 1
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    res = reproduce(cli, store, run_id)
    assert res.exit_code == 0 and res.stdout.splitlines() == [
        f"reproduced: {len(runs.OUTPUTS)} files identical"
    ]
    manifest["strategy"]["source_hash"] = "0" * 64
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert "input changed: strategy source" in reproduce(cli, store, run_id).stdout
