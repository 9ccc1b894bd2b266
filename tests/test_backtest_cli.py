"""`quantcli backtest` end to end on the bundled sample: run, reproduce, list, show, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quantcli.backtest import runs

# Next-open fills, a flat 0.05 % commission and no slippage: the simple-backtester setup.
SIMPLE = ["--costs", "flat:0.05%", "--slippage", "none", "--cash", "100000"]


def backtest(cli, root: Path, runs_dir: Path, *args: str):
    return cli(
        "backtest",
        "--dataset",
        "sample",
        "--strategy",
        "sma_cross",
        "--symbols",
        "MARUTI",
        "-p",
        "qty=5",
        "--runs-dir",
        str(runs_dir),
        *SIMPLE,
        *args,
        root=root,
    )


def test_run_json_and_run_directory(cli, sample_store: Path, tmp_path: Path) -> None:
    res = backtest(cli, sample_store, tmp_path / "runs", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    for key in ("final_equity", "trades", "bars", "run_id", "run_dir", "sharpe", "charges_total"):
        assert key in out
    assert out["trades"] > 10 and out["bars"] > 4000
    run_dir = Path(out["run_dir"])
    assert run_dir == tmp_path / "runs" / out["run_id"]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*runs.OUTPUTS, "manifest.json"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "sample" and manifest["dataset"]["version"] == 1
    assert manifest["config"]["costs"] == "flat:0.05%"
    assert manifest["strategy"]["params"] == {"qty": "5"}


def test_same_inputs_give_byte_identical_outputs(cli, sample_store: Path, tmp_path: Path) -> None:
    a = backtest(cli, sample_store, tmp_path / "a", "--json").json()
    b = backtest(cli, sample_store, tmp_path / "b", "--json").json()
    assert a["run_id"] == b["run_id"]
    for name in runs.OUTPUTS:
        assert (Path(a["run_dir"]) / name).read_bytes() == (Path(b["run_dir"]) / name).read_bytes()


def test_human_output_is_a_summary_table(cli, sample_store: Path, tmp_path: Path) -> None:
    res = backtest(cli, sample_store, tmp_path / "runs")
    assert res.exit_code == 0, res.stderr
    assert (
        "Final equity" in res.stdout and "Sharpe" in res.stdout and "charges: total" in res.stdout
    )
    assert "saved" in res.stderr


def test_reproduce_identical(cli, sample_store: Path, tmp_path: Path) -> None:
    out = backtest(cli, sample_store, tmp_path / "runs", "--json").json()
    res = cli("backtest", "reproduce", out["run_dir"], root=sample_store)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == f"reproduced: {len(runs.OUTPUTS)} files identical"
    res = cli("backtest", "reproduce", out["run_id"], "--runs-dir", str(tmp_path / "runs"),
              "--json", root=sample_store)  # fmt: skip
    assert res.json()["ok"] is True and res.json()["different"] == []


def test_reproduce_reports_differences(cli, sample_store: Path, tmp_path: Path) -> None:
    out = backtest(cli, sample_store, tmp_path / "runs", "--json").json()
    run_dir = Path(out["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["final_equity"] += 1.0
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["outputs"]["metrics.json"] = "0" * 64
    manifest["outputs"]["fills.parquet"] = "0" * 64
    manifest["versions"]["numpy"] = "0.0.1"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    res = cli("backtest", "reproduce", str(run_dir), root=sample_store)
    assert res.exit_code == 1
    assert "NOT reproduced: 2 files differ" in res.stdout
    assert "differs: fills.parquet" in res.stdout
    assert "differs: metrics.json (keys: final_equity)" in res.stdout
    assert "version changed: numpy 0.0.1 -> " in res.stdout
    res = cli("--json", "backtest", "reproduce", str(run_dir), root=sample_store)
    assert res.exit_code == 1
    assert res.json()["metric_keys"] == ["final_equity"]


def test_reproduce_without_the_dataset_version(cli, sample_store: Path, tmp_path: Path) -> None:
    out = backtest(cli, sample_store, tmp_path / "runs", "--json").json()
    empty = tmp_path / "empty-store"
    empty.mkdir()
    res = cli("backtest", "reproduce", out["run_dir"], root=empty)
    assert res.exit_code == 1
    assert "dataset version sample@" in res.stderr and "not in the store" in res.stderr
    assert "use --root" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_list_and_show(cli, sample_store: Path, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    out = backtest(cli, sample_store, runs_dir, "--json").json()
    listed = cli("backtest", "list", "--runs-dir", str(runs_dir), "--json").json()
    assert [r["run_id"] for r in listed] == [out["run_id"]]
    assert listed[0]["final_equity"] == out["final_equity"]
    assert listed[0]["dataset"] == "sample"
    shown = cli("backtest", "show", out["run_id"][:12], "--runs-dir", str(runs_dir), "--json")
    assert shown.json()["metrics"]["trades"] == out["trades"]


# --- bad input: one line, non-zero exit, no run directory ---------------------------------

BAD_STRATEGY = {
    "syntax.py": "class Broken(:\n",
    "raises.py": (
        "from quantcli.backtest.strategy import SignalStrategy\n"
        "class Raises(SignalStrategy):\n"
        "    def targets(self):\n"
        "        raise RuntimeError('boom')\n"
    ),
    "onbar.py": (
        "from quantcli.backtest.strategy import EventStrategy\n"
        "class OnBar(EventStrategy):\n"
        "    def on_bar(self, ctx, bar):\n"
        "        raise ValueError('bad bar')\n"
    ),
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nosuch", "--strategy", "sma_cross"], "nosuch"),
        (["--dataset", "sample", "--strategy", "sma_cross", "--symbols", "NOPE"], "NOPE"),
        (["--dataset", "sample", "--strategy", "{dir}/syntax.py:Broken"], "syntax.py"),
        (["--dataset", "sample", "--strategy", "{dir}/missing.py:X"], "not found"),
        (["--dataset", "sample", "--strategy", "{dir}/raises.py:Raises"], "boom"),
        (["--dataset", "sample", "--strategy", "{dir}/onbar.py:OnBar"], "bad bar"),
        (["--dataset", "sample", "--strategy", "sma_cross", "-p", "fast=ten"], "fast"),
        (["--dataset", "sample", "--strategy", "sma_cross", "-p", "fast=40"], "fast"),
        (
            [
                "--dataset",
                "sample",
                "--strategy",
                "sma_cross",
                "--from",
                "2019-01-05",
                "--to",
                "2019-01-06",
            ],
            "no bars",
        ),
        (["--dataset", "sample", "--strategy", "sma_cross", "--costs", "free"], "cost"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(
    cli, sample_store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    for name, text in BAD_STRATEGY.items():
        (tmp_path / name).write_text(text)
    runs_dir = tmp_path / "runs"
    argv = [a.replace("{dir}", str(tmp_path)) for a in args]
    # The case's own options come later and win.
    res = cli(
        "backtest", "--symbols", "MARUTI", "--runs-dir", str(runs_dir), *SIMPLE, *argv,
        root=sample_store,
    )  # fmt: skip
    assert res.exit_code != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_run_directory_is_removed_when_saving_fails(
    cli, sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(runs, "write_parquet", boom)
    res = backtest(cli, sample_store, tmp_path / "runs")
    assert res.exit_code == 1 and res.stderr == "error: disk full\n"  # one line, no traceback
    assert list((tmp_path / "runs").iterdir()) == []


def test_runs_dir_is_copied_with_the_run(cli, sample_store: Path, tmp_path: Path) -> None:
    """A run directory moved elsewhere still reproduces: nothing in it depends on its path."""
    out = backtest(cli, sample_store, tmp_path / "runs", "--json").json()
    moved = tmp_path / "moved"
    shutil.copytree(out["run_dir"], moved)
    res = cli("backtest", "reproduce", str(moved), root=sample_store)
    assert res.exit_code == 0, res.stdout


def test_cli_defaults_are_the_config_defaults(cli, sample_store: Path, tmp_path: Path) -> None:
    from datetime import date

    from quantcli.backtest.config import BacktestConfig

    res = cli(
        "backtest", "-d", "sample", "-s", "sma_cross", "-p", "qty=5", "--symbols", "MARUTI",
        "--from", "2015-01-01", "--runs-dir", str(tmp_path), "--json", root=sample_store,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((Path(res.json()["run_dir"]) / "manifest.json").read_text())
    expected = BacktestConfig(
        dataset="sample",
        strategy="sma_cross",
        params={"qty": "5"},
        symbols=("MARUTI",),
        start=date(2015, 1, 1),
    )
    assert manifest["config"] == expected.to_dict()
    assert res.json()["charges_stt"] > 0  # statutory costs by default
