"""`quantcli backtest sweep` and `sweep show`: saved results, the top table, --json, errors that
write nothing, and a saved combination equal to a plain `backtest` with its parameters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

SIMPLE = ["--costs", "flat:0.05%", "--slippage", "none", "--cash", "100000"]
GRID_FLAGS = ["-p", "fast=5,10", "-p", "slow=20:40:10", "-p", "qty=5"]
SWEEP = ["backtest", "sweep", "--dataset", "sample", "--strategy", "sma_cross"]


def sweep(cli, root: Path, *args: str):
    return cli(*SWEEP, "--symbols", "MARUTI", *GRID_FLAGS, *SIMPLE, *args, root=root)


def sweep_dirs(root: Path) -> list[Path]:
    folder = root / "sweeps"
    return sorted(p for p in folder.glob("*/v*") if p.is_dir()) if folder.is_dir() else []


@pytest.fixture
def store_copy(sample_store: Path, tmp_path: Path) -> Path:
    """A test's own copy of the sample store (sweeps are saved into it)."""
    root = tmp_path / "sweep-root"
    shutil.copytree(sample_store, root)
    return root


def test_sweep_saves_results_and_prints_the_top_as_json(cli, store_copy: Path) -> None:
    res = sweep(cli, store_copy, "--json", "--top", "3", "--workers", "1")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["combinations"] == 6 and len(out["top"]) == 3
    sharpes = [row["sharpe"] for row in out["top"]]
    assert sharpes == sorted(sharpes, reverse=True)
    (saved,) = sweep_dirs(store_copy)
    assert saved.parent.name == out["sweep_id"]
    results = pl.read_parquet(saved / "results.parquet")
    assert results.get_column("K").to_list() == list(range(6))
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["grid"]["params"] == {"fast": [5, 10], "qty": [5], "slow": [20, 30, 40]}
    assert set(manifest["inputs"]) >= {"strategy", "dataset", "params", "options", "calendar"}
    assert {"dask", "distributed", "polars", "numba"} <= set(manifest["versions"])
    # The same sweep again, in this process this time: the same id and bytes, nothing new.
    again = sweep(cli, store_copy, "--json", "--top", "3", "--workers", "2")
    assert json.loads(again.stdout)["sweep_id"] == out["sweep_id"]
    assert json.loads(again.stdout)["unchanged"] is True
    assert sweep_dirs(store_copy) == [saved]


def test_show_combo_save_equals_a_plain_backtest(cli, store_copy: Path, tmp_path: Path) -> None:
    out = json.loads(sweep(cli, store_copy, "--json", "--workers", "1").stdout)
    best = out["top"][0]
    runs = tmp_path / "runs"
    shown = cli(
        "backtest",
        "sweep",
        "show",
        out["sweep_id"][:20],
        "--combo",
        str(best["K"]),
        "--save",
        "--runs-dir",
        str(runs),
        "--json",
        root=store_copy,
    )
    assert shown.exit_code == 0, shown.stderr
    saved = json.loads(shown.stdout)
    assert saved["row"] == best
    plain = cli(
        "backtest",
        "--dataset",
        "sample",
        "--strategy",
        "sma_cross",
        "--symbols",
        "MARUTI",
        "-p",
        f"fast={best['fast']}",
        "-p",
        f"slow={best['slow']}",
        "-p",
        "qty=5",
        *SIMPLE,
        "--runs-dir",
        str(runs),
        "--json",
        root=store_copy,
    )
    assert plain.exit_code == 0, plain.stderr
    run = json.loads(plain.stdout)
    # The plain run is the saved one: the same id, every output byte-identical.
    assert run["run_id"] == saved["run_id"] and run["unchanged"] is True
    metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
    assert metrics["trades"] == best["trades"]
    assert metrics["sharpe"] == pytest.approx(best["sharpe"], rel=1e-11)


def test_show_lists_the_top_and_refuses_tampered_results(cli, store_copy: Path) -> None:
    out = json.loads(sweep(cli, store_copy, "--json", "--workers", "1").stdout)
    shown = cli(
        "backtest",
        "sweep",
        "show",
        out["sweep_id"],
        "--metric",
        "max_drawdown",
        "--json",
        root=store_copy,
    )
    top = json.loads(shown.stdout)["top"]
    assert [r["max_drawdown"] for r in top] == sorted(r["max_drawdown"] for r in top)
    human = cli("backtest", "sweep", "show", out["sweep_id"], root=store_copy)
    assert "top 6 of 6 by sharpe" in human.stdout
    (saved,) = sweep_dirs(store_copy)
    path = saved / "results.parquet"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    bad = cli("backtest", "sweep", "show", out["sweep_id"], root=store_copy)
    assert bad.exit_code == 1
    assert "results.parquet: changed since the sweep was saved" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["-p", "fast=5:1:1"], "-p fast=5:1:1: the range ends before it starts", 2),
        (["-p", "speed=1,2"], "combination 0 (speed=1): strategy sma_cross: unknown parameter", 1),
        (["-p", "fast=25", "-p", "slow=20:30:10"], "combination 0 (fast=25 slow=20)", 1),
        (["-p", "fast=5,10", "--where", "fast > 50"], "keeps none", 2),
        (["-p", "fast=5,10", "--metric", "luck"], "--metric 'luck': not a metric", 2),
        (["-p", "fast=5", "--workers", "2", "--scheduler", "tcp://x:1"], "exclude each other", 2),
    ],
)
def test_bad_sweeps_are_one_line_and_write_nothing(
    cli, store_copy: Path, args: list[str], message: str, code: int
) -> None:
    res = cli(*SWEEP, "--symbols", "MARUTI", *SIMPLE, *args, root=store_copy)
    assert res.exit_code == code, res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert sweep_dirs(store_copy) == []


def test_show_errors(cli, store_copy: Path) -> None:
    missing = cli("backtest", "sweep", "show", "nope", root=store_copy)
    assert missing.exit_code == 1 and "sweep 'nope' not found" in missing.stderr
    out = json.loads(sweep(cli, store_copy, "--json", "--workers", "1").stdout)
    far = cli("backtest", "sweep", "show", out["sweep_id"], "--combo", "99", root=store_copy)
    assert far.exit_code == 2 and "has combinations 0..5" in far.stderr
    alone = cli("backtest", "sweep", "show", out["sweep_id"], "--save", root=store_copy)
    assert alone.exit_code == 2 and "--save needs --combo K" in alone.stderr


def test_help_and_a_plain_backtest_import_no_dask(store_copy: Path, tmp_path: Path) -> None:
    from startup import modules_loaded

    root = ["--root", str(store_copy)]
    run = [*root, "backtest", "-d", "sample", "-s", "sma_cross", "--symbols", "MARUTI"]
    runs = ["--runs-dir", str(tmp_path / "runs")]
    invocations = [
        ["backtest", "--help"],
        ["backtest", "sweep", "--help"],
        [*run, "-p", "qty=5", *SIMPLE, *runs],
    ]
    assert modules_loaded(invocations, ("dask", "distributed")) == []
