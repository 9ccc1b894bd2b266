"""`quantcli backtest walkforward`: the window arithmetic (hypothesis), the per-window best
combination and its out-of-sample run with the capital carried, stitched equity, stability and
deflated Sharpe, the same bytes on 1 or 2 workers, --retrain through the registry with the
leakage guard, and bad spans as one line that writes nothing."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import copy_store
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import UsageError
from quantcli.sweep.walkforward import Span, parse_span, plan_windows

SIMPLE = ["--costs", "flat:0.05%", "--cash", "100000", "--symbols", "MARUTI"]
SPAN = ["--from", "2014-01-01", "--to", "2017-12-31"]
GRID = ["-p", "fast=5,10", "-p", "slow=20,30", "-p", "qty=5"]
WF = ["backtest", "walkforward", "--dataset", "sample", "--strategy", "sma_cross"]


def walkforward(cli, root: Path, *args: str):
    grid = [] if "-p" in args else GRID
    return cli(*WF, *grid, *SIMPLE, *args, root=root)


def saved(root: Path) -> list[Path]:
    folder = root / "walkforwards"
    return sorted(p for p in folder.glob("*/v*") if p.is_dir()) if folder.is_dir() else []


@pytest.fixture
def store_copy(sample_store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "wf-root"
    shutil.copytree(sample_store, root)
    return root


# --------------------------------------------------------------------------- window arithmetic


def test_spans_parse_and_bad_ones_name_the_flag() -> None:
    assert parse_span("3y", "--train") == Span(3, "y")
    assert parse_span("6m", "--test") == Span(6, "m")
    assert parse_span("120s", "--train") == Span(120, "s")
    assert Span(1, "m").shift(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert Span(1, "y").shift(date(2024, 2, 29), -1) == date(2023, 2, 28)
    for bad in ("3", "0y", "3x", "y", "-1m", "1.5y"):
        with pytest.raises(UsageError, match="--train"):
            parse_span(bad, "--train")


@st.composite
def session_lists(draw: st.DrawFn) -> list[date]:
    gaps = draw(st.lists(st.integers(1, 5), min_size=1, max_size=400))
    day, out = date(2020, 1, 1), []
    for gap in gaps:
        day += timedelta(days=gap)
        out.append(day)
    return out


spans = st.builds(Span, st.integers(1, 40), st.sampled_from("ywms")).filter(
    lambda s: s.unit != "y" or s.count <= 2
)


@settings(max_examples=300, deadline=None)
@given(session_lists(), spans, spans, st.booleans())
def test_windows_cover_never_overlap_and_train_precedes_test(
    sessions: list[date], train: Span, test: Span, anchored: bool
) -> None:
    after = sessions[-1] + timedelta(days=1)
    try:
        windows = plan_windows(sessions, train, test, anchored=anchored, after=after)
    except UsageError as exc:
        assert "--train" in str(exc) or "--test" in str(exc)
        return
    n = len(sessions)
    assert windows[0].test_lo > 0
    assert windows[-1].test_hi == n  # the test windows cover the data after the first training
    for a, b in itertools.pairwise(windows):
        assert a.test_hi == b.test_lo  # no gap, no overlap
    for i, w in enumerate(windows):
        assert w.index == i
        assert w.test_lo < w.test_hi  # never empty
        assert 0 <= w.train_lo < w.train_hi == w.test_lo  # training right before its test
        assert not w.partial or i == len(windows) - 1  # only the last may be cut
        if anchored:
            assert w.train_lo == 0
        elif train.unit == "s":
            assert w.train_hi - w.train_lo == min(train.count, w.train_hi)
        else:
            assert sessions[w.train_lo] >= train.shift(sessions[w.test_lo], -1)
            assert w.train_lo == 0 or sessions[w.train_lo - 1] < train.shift(
                sessions[w.test_lo], -1
            )
        if test.unit == "s" and not w.partial:
            assert w.test_hi - w.test_lo == test.count
        elif test.unit != "s" and w.test_hi < n:
            reached = test.shift(sessions[w.test_lo], 1)
            assert sessions[w.test_hi - 1] < reached <= sessions[w.test_hi]


def test_a_training_span_over_the_data_or_a_test_span_past_it_is_refused() -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(100)]
    after = days[-1] + timedelta(days=1)
    with pytest.raises(UsageError, match="--train 100s covers all 100 sessions"):
        plan_windows(days, Span(100, "s"), Span(1, "s"), anchored=False, after=after)
    with pytest.raises(UsageError, match="--test 2m is longer than the data"):
        plan_windows(days, Span(2, "m"), Span(2, "m"), anchored=False, after=after)
    windows = plan_windows(days, Span(60, "s"), Span(30, "s"), anchored=False, after=after)
    assert [(w.test_lo, w.test_hi, w.partial) for w in windows] == [
        (60, 90, False),
        (90, 100, True),
    ]


# --------------------------------------------------------------------------- through the CLI


@pytest.mark.dask
def test_each_window_trades_its_training_best_with_the_capital_carried(
    cli, store_copy: Path, tmp_path: Path
) -> None:
    from quantcli.store.reader import open_dataset

    res = walkforward(cli, store_copy, *SPAN, "--train", "1y", "--test", "6m", "--json",
                      "--workers", "1")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    windows = out["windows"]
    assert len(windows) >= 5
    path = Path(out["path"])
    assert saved(store_copy) == [path]
    results = pl.read_parquet(path / "results.parquet")
    for w in windows:
        assert w["train_to"] < w["test_from"] <= w["test_to"]
        # The best in sample by sharpe, ties to the lowest K.
        grid = results.filter(pl.col("window") == w["window"]).sort(
            ["sharpe", "K"], descending=[True, False], nulls_last=True
        )
        assert grid.height == 4
        assert w["K"] == grid["K"][0]
        assert w["is_sharpe"] == pytest.approx(grid["sharpe"][0])
        assert w["is_trades"] == grid["trades"][0]
    for a, b in itertools.pairwise(windows):
        assert a["test_to"] < b["test_from"]
        assert b["oos_start_cash"] == a["oos_final_equity"]  # the capital carried
    assert windows[0]["oos_start_cash"] == 100000.0
    equity = pl.read_parquet(path / "equity.parquet")
    assert equity["window"].unique().sort().to_list() == [w["window"] for w in windows]
    assert equity["equity"][-1] == pytest.approx(windows[-1]["oos_final_equity"])
    assert out["oos"]["final_equity"] == pytest.approx(equity["equity"][-1])
    assert out["oos"]["total_return"] == pytest.approx(equity["equity"][-1] / 100000.0 - 1)
    # Deflated by the 4 combinations tried: below the plain probabilistic Sharpe ratio.
    assert out["oos"]["combinations"] == 4
    assert out["oos"]["deflated_sharpe"] < out["oos"]["probabilistic_sharpe"]
    stab = out["stability"]
    ks = [w["K"] for w in windows]
    assert stab["changes"] == sum(a != b for a, b in itertools.pairwise(ks))
    assert stab["distinct_combos"] == len(set(ks))
    assert set(stab["params"]) == {"fast", "slow"}
    slows = [w["slow"] for w in windows]
    if "spread" in stab["params"]["slow"]:
        assert stab["params"]["slow"]["spread"] == max(slows) - min(slows)

    # Window 1's test run is a plain backtest of its best combination, from its warm-up bars
    # (slow - 1 before the window), with the cash window 0 ended with.
    w = windows[1]
    days = (
        open_dataset("sample", store_copy)
        .frame(symbols=("MARUTI",))
        .get_column("ts")
        .dt.date()
        .to_list()
    )
    start = days[days.index(date.fromisoformat(w["test_from"])) - (w["slow"] - 1)]
    plain = cli(
        "backtest", "--dataset", "sample", "--strategy", "sma_cross",
        "-p", f"fast={w['fast']}", "-p", f"slow={w['slow']}", "-p", "qty=5",
        "--costs", "flat:0.05%", "--symbols", "MARUTI", "--cash", repr(w["oos_start_cash"]),
        "--from", start.isoformat(), "--to", w["test_to"], "--json",
        "--runs-dir", str(tmp_path / "runs"), root=store_copy,
    )  # fmt: skip
    assert plain.exit_code == 0, plain.stderr
    assert plain.json()["final_equity"] == pytest.approx(w["oos_final_equity"])

    # The same walk-forward on 2 workers: the same id and bytes, nothing new written.
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    again = walkforward(cli, store_copy, *SPAN, "--train", "1y", "--test", "6m", "--json",
                        "--workers", "2")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] is True
    assert json.loads(again.stdout)["walkforward_id"] == out["walkforward_id"]
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


@pytest.mark.dask
def test_anchored_windows_all_train_from_the_first_session(cli, store_copy: Path) -> None:
    res = walkforward(cli, store_copy, *SPAN, "--train", "1y", "--test", "1y", "--anchored",
                      "--workers", "1")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    frame = pl.read_parquet(saved(store_copy)[0] / "windows.parquet")
    assert frame["train_from"].n_unique() == 1
    assert frame["train_to"].is_sorted() and frame.height >= 2
    # The rich report: the windows, the parameter stability and the stitched summary.
    for text in ("windows", "parameter stability", "stitched out of sample", "deflated_sharpe"):
        assert text in res.stdout


def test_progress_is_told_the_total_before_the_combinations_finish(store_copy: Path) -> None:
    from quantcli.backtest.config import BacktestConfig
    from quantcli.sweep.grid import parse_grid
    from quantcli.sweep.walkforward import execute_walkforward

    config = BacktestConfig(
        dataset="sample",
        strategy="sma_cross",
        symbols=("MARUTI",),
        start=date(2014, 1, 1),
        end=date(2017, 12, 31),
        cash=100_000.0,
        costs="flat:0.05%",
    )
    calls: list[tuple[str, int]] = []
    saved_wf = execute_walkforward(
        config,
        parse_grid(GRID[1::2], None),
        train=parse_span("1y", "--train"),
        test=parse_span("1y", "--test"),
        anchored=False,
        metric="sharpe",
        root=store_copy,
        cluster=None,
        progress=lambda n: calls.append(("done", n)),
        planned=lambda total: calls.append(("total", total)),
    )
    windows = saved_wf.windows.height
    assert calls[0] == ("total", windows * 4) and windows >= 2
    assert sum(n for kind, n in calls[1:] if kind == "done") == windows * 4
    assert all(kind == "done" for kind, _ in calls[1:])


@pytest.mark.dask
@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--train", "3y", "--test", "2y"], "--test 2y is longer than the data", 2),
        (["--train", "4y", "--test", "6m"], "--train 4y covers all", 2),
        (["--train", "20s", "--test", "6m"], "warm-up of 29 bars", 2),
        (["--train", "3x", "--test", "6m"], "--train '3x': expected a span", 2),
        (["--train", "1y", "--test", "6m", "--retrain"], "needs --strategy model", 2),
        (["--train", "1y", "--test", "6m", "--metric", "nope"], "not a metric", 2),
        (
            ["--train", "1y", "--test", "6m", "-p", "fast=5,40", "-p", "slow=30"],
            "combination 1 (fast=40 slow=30): strategy sma_cross: constructor raised",
            1,
        ),
        (
            ["--train", "1y", "--test", "6m", "--scheduler", "tcp://127.0.0.1:1"],
            "cannot connect",
            69,
        ),
    ],
)
def test_bad_spans_are_one_line_and_write_nothing(
    cli, store_copy: Path, args: list[str], message: str, code: int
) -> None:
    workers = [] if "--scheduler" in args else ["--workers", "1"]
    res = walkforward(cli, store_copy, *SPAN, *args, *workers)
    assert res.exit_code == code, res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert saved(store_copy) == []
    assert not (store_copy / "walkforwards").exists() or not any(
        (store_copy / "walkforwards").iterdir()
    )


@pytest.mark.dask
def test_a_test_run_that_trades_in_its_warm_up_is_refused(
    cli, store_copy: Path, tmp_path: Path
) -> None:
    source = tmp_path / "long_warmup.py"
    source.write_text(
        "from quantcli.backtest.strategies.sma_cross import SmaCross\n\n\n"
        "class LongWarmup(SmaCross):\n"
        "    def warmup(self) -> int:\n"
        "        return self.params.slow + 5\n"
    )
    ok = cli(*WF[:-1], f"{source}:LongWarmup", *GRID, *SIMPLE, *SPAN, "--train", "1y", "--test",
             "6m", "--workers", "1", root=store_copy)  # fmt: skip
    # A warm-up longer than needed trades before the window: refused, nothing written.
    assert ok.exit_code == 1, ok.stderr
    assert "traded before test window 0" in ok.stderr
    assert saved(store_copy) == []


# --------------------------------------------------------------------------- models


@pytest.mark.dask
def test_retrain_registers_a_version_per_window_clear_of_its_test_window(
    cli, model_template: Path, tmp_path: Path
) -> None:
    from quantcli.models import registry
    from quantcli.models.leakage import seen_span

    root = copy_store(model_template, tmp_path / "m")
    args = ["backtest", "walkforward", "-d", "bars", "-s", "model", "-p", "model=m@v1",
            "-p", "long=0.5,0.6", "--train", "6m", "--test", "2m", "--from", "2023-03-01",
            "--costs", "flat:0.05%", "--workers", "1", "--json"]  # fmt: skip
    # Without --retrain, m@v1 saw the first test windows in training: the guard refuses.
    early = [a if a != "6m" else "4m" for a in args]
    refused = cli(*early, root=root)
    assert refused.exit_code == 2, refused.stderr
    assert "overlaps m@v1's training window plus label horizon" in refused.stderr
    assert saved(root) == []

    res = cli(*args, "--retrain", root=root)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    models = out["models"]
    assert len(models) == len(out["windows"]) >= 2
    assert len({m["ref"] for m in models}) == len(models)  # a new version per window
    for w, m in zip(out["windows"], models, strict=True):
        assert w["retrained"] == m["ref"]
        meta = registry.metadata(root, m["ref"])
        assert meta["identity"] == m["identity"]
        assert meta["window"]["train_from"] == w["train_from"]
        assert seen_span(meta).last < date.fromisoformat(w["test_from"])
    # The fixed model on windows after what it saw: it is a grid parameter like any other.
    fixed = cli(*args, root=root)
    assert fixed.exit_code == 0, fixed.stderr
    assert {w["model"] for w in json.loads(fixed.stdout)["windows"]} == {"m@v1"}
    manifest = json.loads((Path(out["path"]) / "manifest.json").read_text())
    assert manifest["models"] == models


def test_walkforward_help_imports_no_dask() -> None:
    from startup import modules_loaded

    assert modules_loaded([["backtest", "walkforward", "--help"]], ("dask", "distributed")) == []


def test_a_warmup_hook_must_count_bars(tmp_path: Path) -> None:
    from quantcli.backtest.strategy import load_strategy
    from quantcli.errors import StrategyError

    source = tmp_path / "hooks.py"
    source.write_text(
        "from quantcli.backtest.strategies.sma_cross import SmaCross\n\n\n"
        "class Raises(SmaCross):\n"
        "    def warmup(self) -> int:\n"
        "        raise RuntimeError('no')\n\n\n"
        "class Negative(SmaCross):\n"
        "    def warmup(self) -> int:\n"
        "        return -1\n"
    )
    assert load_strategy("sma_cross", {"slow": "40"}).warmup() == 39
    assert load_strategy("momentum", {"lookback": "60"}).warmup() == 60
    assert load_strategy("buy_and_hold", {}).warmup() == 0
    with pytest.raises(StrategyError, match=r"warmup\(\) raised RuntimeError: no"):
        load_strategy(f"{source}:Raises", {}).warmup()
    with pytest.raises(StrategyError, match="must return a count >= 0"):
        load_strategy(f"{source}:Negative", {}).warmup()
