"""Run directories: atomic, deterministic writes; listing and finding runs (no engine needed)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from quantcli.backtest import runs
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.kernel import Output
from quantcli.backtest.orders import O_FLOAT_COLS, O_INT_COLS
from quantcli.core.hashing import sha256_file
from quantcli.errors import ConflictError, NotFoundError, QuantcliError, UsageError
from quantcli.market.charges import CHARGE_COMPONENTS

IST = ZoneInfo("Asia/Kolkata")
TS = pl.Datetime("us", "Asia/Kolkata")


@dataclass(frozen=True)
class FakeResult:
    """BacktestResult-shaped: the same attributes, built by hand."""

    config: BacktestConfig
    dataset_hash: str
    strategy_hash: str
    bars: int
    orders: pl.DataFrame
    fills: pl.DataFrame
    equity: pl.DataFrame
    trades: pl.DataFrame
    ts: np.ndarray
    symbols: list[str]
    output: Output  # the buffers of the same run (metrics_of reads them)
    warnings: tuple[str, ...] = ()
    inputs: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)


def fake_result(cash: float = 1000.0, final: float = 1100.0, dataset: str = "px") -> FakeResult:
    days = [datetime(2024, 1, 1, tzinfo=IST) + timedelta(days=i) for i in range(3)]
    ts = pl.Series(days, dtype=TS)
    equity = pl.DataFrame(
        {
            "ts": ts,
            "cash": [cash, cash - 500, final],
            "holdings": [0.0, 520.0, 0.0],
            "equity": [cash, cash + 20, final],
            "exposure": [0.0, 0.5, 0.0],
        }
    )
    charges = {f"charge_{c}": [1.0, 1.0] for c in (*CHARGE_COMPONENTS, "total")}
    fills = pl.DataFrame(
        {
            "fill_id": [1, 2],
            "order_id": [1, 2],
            "ts": ts[1:],
            "symbol": ["A", "A"],
            "side": ["buy", "sell"],
            "quantity": [5.0, 5.0],
            "price": [100.0, 120.0],
            "slippage": [0.0, 0.0],
            **charges,
        }
    )
    orders = pl.DataFrame(
        {"order_id": [1, 2], "ts": ts[:2], "symbol": ["A", "A"], "side": ["buy", "sell"]}
    )
    trades = pl.DataFrame(
        {
            "symbol": ["A"],
            "entry_ts": ts[1:2],
            "exit_ts": ts[2:3],
            "side": ["long"],
            "quantity": [5.0],
            "entry_price": [100.0],
            "exit_price": [120.0],
            "pnl": [final - cash],
        }
    )
    config = BacktestConfig(
        dataset=dataset,
        strategy="sma_cross",
        params={"fast": "2"},
        cash=cash,
        start=date(2024, 1, 1),
    )
    micros = ts.dt.epoch("us").to_numpy()
    charge_row = [1.0] * (len(CHARGE_COMPONENTS) + 1)
    output = Output(
        order_ints=np.zeros((2, O_INT_COLS), dtype=np.int64),
        order_floats=np.zeros((2, O_FLOAT_COLS)),
        # fill id, order id, bar, symbol, signed quantity; price, slippage, charges, total
        fill_ints=np.array([[1, 1, 1, 0, 5], [2, 2, 2, 0, -5]], dtype=np.int64),
        fill_floats=np.array([[100.0, 0.0, *charge_row], [120.0, 0.0, *charge_row]]),
        equity=equity.select("cash", "holdings", "equity", pl.col("exposure") * pl.col("equity"))
        .to_numpy()
        .astype(np.float64),
        equity_bar=np.arange(3, dtype=np.int64),
        event_ints=np.zeros((0, 3), dtype=np.int64),
        event_floats=np.zeros((0, 2)),
    )
    return FakeResult(
        config, "c0ffee" * 10, "beef" * 16, 3, orders, fills, equity, trades, micros, ["A"], output
    )


@pytest.fixture(autouse=True)
def no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset's name and version come from the store; these tests have none."""

    def info(ref: str, content_hash: str, root: Path) -> dict[str, object]:
        return {
            "ref": ref,
            "name": ref.partition("@")[0],
            "version": 1,
            "content_hash": content_hash,
        }

    monkeypatch.setattr(runs, "dataset_info", info)


def test_save_run_writes_every_output(tmp_path: Path) -> None:
    run = runs.save_run(fake_result(), tmp_path / "runs", root=tmp_path)
    assert run.path == tmp_path / "runs" / run.run_id
    assert run.run_id.startswith("sma_cross-px-") and len(run.run_id.split("-")[-1]) == 12
    names = sorted(p.name for p in run.path.iterdir())
    assert names == sorted([*runs.OUTPUTS, "manifest.json"])
    manifest = json.loads((run.path / "manifest.json").read_text())
    for name, digest in manifest["outputs"].items():
        assert sha256_file(run.path / name) == digest
    assert manifest["config"]["params"] == {"fast": "2"}
    assert manifest["strategy"]["source_hash"] == "beef" * 16
    assert manifest["dataset"]["content_hash"] == "c0ffee" * 10
    assert set(manifest["versions"]) == {"quantcli", "python", *runs.DEPENDENCIES}
    assert set(manifest["inputs"]) == set(runs.INPUTS)
    assert manifest["inputs"]["strategy"]["sha256"] == "beef" * 16
    assert manifest["inputs"]["dataset"]["sha256"] == "c0ffee" * 10
    assert manifest["inputs"]["charge_rates"]["periods"] == 1  # 2024's rates only
    assert manifest["inputs"]["broker"]["name"] == "zerodha"
    assert manifest["inputs"]["corporate_actions"]["count"] == 0
    assert manifest["summary"]["final_equity"] == 1100.0
    assert run.metrics()["trades"] == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.run_id]  # no temp left
    fills = pl.read_parquet(run.path / "fills.parquet")
    assert fills["charge_total"].to_list() == [1.0, 1.0]
    assert pl.read_parquet(run.path / "equity.parquet")["ts"].dtype == TS


def test_same_inputs_give_the_same_id_and_identical_bytes(tmp_path: Path) -> None:
    a = runs.save_run(fake_result(), tmp_path / "a", root=tmp_path)
    b = runs.save_run(fake_result(), tmp_path / "b", root=tmp_path)
    assert a.run_id == b.run_id
    for name in runs.OUTPUTS:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    other = runs.save_run(fake_result(cash=2000.0), tmp_path / "a", root=tmp_path)
    assert other.run_id != a.run_id


def test_saving_again_keeps_an_identical_run(tmp_path: Path) -> None:
    first = runs.save_run(fake_result(), tmp_path, root=tmp_path)
    assert not first.unchanged
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    second = runs.save_run(fake_result(), tmp_path, root=tmp_path)
    assert second.unchanged and second.path == first.path
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == [first.run_id]  # no temp left


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda run: (run / "metrics.json").write_text("{}"), "metrics.json"),
        (lambda run: (run / "stale").write_text("x"), "stale"),
        (lambda run: (run / "report.html").unlink(), "report.html"),
        (lambda run: (run / "manifest.json").write_text("{not json"), "manifest.json"),
    ],
)
def test_saving_over_a_different_run_is_refused(tmp_path: Path, damage, named: str) -> None:
    first = runs.save_run(fake_result(), tmp_path, root=tmp_path)
    damage(first.path)
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    with pytest.raises(ConflictError, match=f"already exists .* different {named}: not overw"):
        runs.save_run(fake_result(), tmp_path, root=tmp_path)
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == [first.run_id]


def test_a_manifest_differing_only_in_created_at_is_the_same_run(tmp_path: Path) -> None:
    first = runs.save_run(fake_result(), tmp_path, root=tmp_path)
    manifest = json.loads((first.path / "manifest.json").read_text())
    manifest["created_at"] = "2001-01-01T00:00:00+00:00"
    (first.path / "manifest.json").write_text(json.dumps(manifest))
    assert runs.save_run(fake_result(), tmp_path, root=tmp_path).unchanged
    manifest["summary"]["trades"] = 99
    (first.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConflictError, match=r"different manifest\.json"):
        runs.save_run(fake_result(), tmp_path, root=tmp_path)


def test_a_strategy_file_edited_during_the_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("# not the source the run imported\n")
    result = fake_result()
    config = dataclasses.replace(result.config, strategy=f"{tmp_path / 'mine.py'}:Mine")
    with pytest.raises(ConflictError, match=r"mine\.py changed while the backtest ran"):
        runs.save_run(dataclasses.replace(result, config=config), tmp_path / "runs", root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr("quantcli.backtest.report.render_report", boom)
    with pytest.raises(RuntimeError):
        runs.save_run(fake_result(), tmp_path / "runs", root=tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_saved_run_is_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every file and the directory reach the disk before the rename publishes the run, and
    # the runs directory (holding the rename) after it: the store's own publish order.
    synced: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = runs.save_run(fake_result(), tmp_path / "runs", root=tmp_path)
    assert synced[-1] == tmp_path / "runs"
    (tmp,) = {p.parent for p in synced if p.parent.name.startswith(".tmp-")}
    assert tmp in synced[:-1]
    assert {p.name for p in synced if p.parent == tmp} == {p.name for p in run.path.iterdir()}


def test_list_and_find_runs(tmp_path: Path) -> None:
    assert runs.list_runs(tmp_path / "none") == []
    a = runs.save_run(fake_result(dataset="aa"), tmp_path, root=tmp_path)
    b = runs.save_run(fake_result(dataset="bb"), tmp_path, root=tmp_path)
    (tmp_path / ".tmp-x").mkdir()
    (tmp_path / "no-manifest").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    (tmp_path / "v1").mkdir()  # a dataset version, if a dataset is named like the runs dir
    (tmp_path / "v1" / "manifest.json").write_text('{"name": "runs", "version": 1}')
    assert sorted(r.run_id for r in runs.list_runs(tmp_path)) == sorted([a.run_id, b.run_id])
    assert runs.find_run(tmp_path, a.run_id).path == a.path
    assert runs.find_run(tmp_path, str(b.path)).run_id == b.run_id
    assert runs.find_run(tmp_path, "sma_cross-bb").run_id == b.run_id
    with pytest.raises(UsageError, match="ambiguous"):
        runs.find_run(tmp_path, "sma_cross")
    with pytest.raises(NotFoundError, match=r"not found .*use --runs-dir, or --root"):
        runs.find_run(tmp_path, "nope")


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        runs._read_json(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(QuantcliError, match="JSON object"):
        runs._read_json(tmp_path / "list.json")


def test_run_id_names() -> None:
    config = {"dataset": "nifty 50@v3", "strategy": "strats/my.py:Mean Rev"}
    run_id = runs.run_id_for(config, {"dataset": {"sha256": "h"}})
    assert run_id.startswith("Mean_Rev-nifty_50-")
    assert run_id != runs.run_id_for(config, {"dataset": {"sha256": "g"}})
    assert runs.strategy_name("strats/my.py") == "my"
    assert runs._slug("@@") == "run"


def test_pinned_config() -> None:
    manifest = {
        "config": fake_result().config.to_dict(),
        "dataset": {"name": "px", "content_hash": "abc"},
    }
    assert runs.pinned_config(manifest, Path("run")).dataset == "px@abc"


# --- the CLI over saved runs ---------------------------------------------------------------


def test_cli_list_and_show(cli, tmp_path: Path) -> None:
    run = runs.save_run(fake_result(), tmp_path, root=tmp_path)
    res = cli("backtest", "list", "--runs-dir", str(tmp_path), "--json")
    assert res.exit_code == 0, res.stderr
    rows = res.json()
    assert [r["run_id"] for r in rows] == [run.run_id]
    assert rows[0]["final_equity"] == 1100.0 and rows[0]["strategy"] == "sma_cross"
    res = cli("backtest", "--runs-dir", str(tmp_path), "list")
    assert res.exit_code == 0 and run.run_id[:10] in res.stdout and "10.00%" in res.stdout
    res = cli("--json", "backtest", "show", run.run_id, "--runs-dir", str(tmp_path))
    assert res.exit_code == 0, res.stderr
    shown = res.json()
    assert shown["metrics"]["final_equity"] == 1100.0
    assert shown["manifest"]["run_id"] == run.run_id
    res = cli("backtest", "show", str(run.path))
    assert res.exit_code == 0 and "Final equity" in res.stdout and "1,100.00" in res.stdout
    res = cli("backtest", "show", "nope", "--runs-dir", str(tmp_path))
    assert res.exit_code == 1 and "not found" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --dataset and --strategy"),
        (["-d", "x", "-s", "sma_cross", "-p", "fast"], "expected NAME=VALUE"),
        (
            ["-d", "x", "-s", "sma_cross", "--from", "2024-13-01"],
            "--from: expected a date YYYY-MM-DD",
        ),
        (["-d", "x", "-s", "sma_cross", "--symbols", " , "], "no symbol"),
        (["-d", "x", "-s", "sma_cross", "--fill", "mid"], "unknown fill"),
        (["-d", "x", "-s", "sma_cross", "--on-reject", "maybe"], "unknown on_reject"),
        (["-d", "x", "-s", "sma_cross", "--from", "2024-02-01", "--to", "2024-01-01"], "after"),
    ],
)
def test_cli_bad_options_are_usage_errors(cli, tmp_path: Path, args, message) -> None:
    res = cli("backtest", "--runs-dir", str(tmp_path / "runs"), "--cash", "1000", *args)
    assert res.exit_code == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_listing_runs_imports_no_heavy_library(tmp_path: Path) -> None:
    import subprocess
    import sys

    runs.save_run(fake_result(), tmp_path, root=tmp_path)
    code = (
        "import sys\n"
        "from quantcli.cli import app\n"
        "try:\n"
        f"    app(['backtest', 'list', '--runs-dir', {str(tmp_path)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('polars', 'numba', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sma_cross" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
