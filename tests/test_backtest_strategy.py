"""Strategy loading, typed parameters, built-ins and the store-backed run_backtest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from test_backtest_engine import cfg, flat, make_bars

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import run_backtest, simulate
from quantcli.backtest.strategy import (
    EventStrategy,
    load_strategy,
    params_type,
    parse_params,
    parse_value,
)
from quantcli.errors import NotFoundError, StrategyError

SIGNAL_FILE = """
from dataclasses import dataclass
import polars as pl
from quantcli.backtest.strategy import SignalStrategy

class Above(SignalStrategy):
    @dataclass(frozen=True)
    class Params:
        level: float = 100.0
        qty: int = 10

    def targets(self):
        return pl.when(pl.col("close") > self.params.level).then(self.params.qty).otherwise(0)
"""

EVENT_FILE = """
from quantcli.backtest.strategy import EventStrategy

class Once(EventStrategy):
    qty: int = 5
    verbose: bool = False
    label: str = "x"

    def on_bar(self, ctx, bar):
        if bar.index == 0:
            ctx.buy(bar.symbol, self.params.qty)
"""


def write(tmp_path: Path, text: str, name: str = "strat.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_signal_strategy_with_typed_params(tmp_path: Path) -> None:
    path = write(tmp_path, SIGNAL_FILE)
    strat = load_strategy(f"{path}:Above", {"level": "100.5", "qty": "7"})
    assert strat.kind == "targets"
    assert strat.params == {"level": 100.5, "qty": 7}
    assert strat.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = [(101.0, 102.0, 100.0, 101.0, 100_000)] * 3
    result = simulate(make_bars({"AAA": rows}), cfg(), strategy=strat)
    assert result.fills["quantity"].to_list() == [7]
    assert result.strategy_hash == strat.source_hash


def test_file_event_strategy_with_annotated_params(tmp_path: Path) -> None:
    path = write(tmp_path, EVENT_FILE)
    strat = load_strategy(f"{path}:Once", {"qty": "3", "verbose": "yes"})
    assert strat.kind == "events"
    assert strat.params == {"qty": 3, "verbose": True, "label": "x"}
    result = simulate(make_bars({"AAA": flat(3)}), cfg(), strategy=strat)
    assert result.fills["quantity"].to_list() == [3]


def test_parameter_errors(tmp_path: Path) -> None:
    path = write(tmp_path, SIGNAL_FILE)
    with pytest.raises(StrategyError, match=r"parameter qty: expected int, got 'abc'"):
        load_strategy(f"{path}:Above", {"qty": "abc"})
    with pytest.raises(StrategyError, match="unknown parameter nope"):
        load_strategy(f"{path}:Above", {"nope": "1"})
    with pytest.raises(StrategyError, match="parameter level: expected float"):
        load_strategy(f"{path}:Above", {"level": "high"})
    with pytest.raises(StrategyError, match="parameter fast: expected int, got 'abc'"):
        load_strategy("sma_cross", {"fast": "abc"})
    with pytest.raises(StrategyError, match="need 0 < fast < slow"):
        load_strategy("sma_cross", {"fast": "30", "slow": "10"})
    with pytest.raises(StrategyError, match="expected bool"):
        parse_value("flag", bool, "maybe")
    with pytest.raises(StrategyError, match="unsupported type"):
        parse_value("x", list, "1")
    assert parse_value("x", int | None, "none") is None
    assert parse_value("x", float | None, "2.5") == 2.5
    assert parse_value("x", str, " a ") == " a "


def test_required_parameter() -> None:
    class Needs(EventStrategy):
        @dataclass(frozen=True)
        class Params:
            size: int

    with pytest.raises(StrategyError, match="parameter size is required"):
        parse_params(Needs, {}, "needs")
    assert parse_params(Needs, {"size": "4"}, "needs").size == 4


def test_annotations_skip_classvars_and_private() -> None:
    class Ann(EventStrategy):
        window: int = 3
        _cache: int = 0
        NAME: ClassVar[str] = "ann"

    fields = params_type(Ann).__dataclass_fields__
    assert list(fields) == ["window"]


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="unknown strategy 'nope'"):
        load_strategy("nope", {})
    with pytest.raises(NotFoundError, match="not found"):
        load_strategy(f"{tmp_path / 'missing.py'}:X", {})
    bad = write(tmp_path, "import not_a_module_xyz\n", "bad.py")
    with pytest.raises(StrategyError, match="failed to import: ModuleNotFoundError"):
        load_strategy(f"{bad}:X", {})
    good = write(tmp_path, SIGNAL_FILE, "good.py")
    with pytest.raises(StrategyError, match="no class Missing"):
        load_strategy(f"{good}:Missing", {})
    plain = write(tmp_path, "class Plain:\n    def __init__(self, p):\n        pass\n", "plain.py")
    with pytest.raises(StrategyError, match="define targets"):
        load_strategy(f"{plain}:Plain", {})
    ctor = write(
        tmp_path,
        "class C:\n    def __init__(self, p):\n        raise ValueError('no')\n"
        "    def targets(self):\n        return None\n",
        "ctor.py",
    )
    with pytest.raises(StrategyError, match="constructor raised ValueError: no"):
        load_strategy(f"{ctor}:C", {})


def test_builtins_resolve_with_hashes() -> None:
    for name in ("buy_and_hold", "sma_cross", "momentum"):
        strat = load_strategy(name, {})
        assert len(strat.source_hash) == 64
    weighted = load_strategy("sma_cross", {"weight": "0.5", "fast": "2", "slow": "3"})
    assert weighted.kind == "weights"
    closes = [100.0, 100.0, 100.0, 110.0, 120.0, 130.0]
    rows = [(c, c + 1, c - 1, c, 1_000_000) for c in closes]
    result = simulate(make_bars({"AAA": rows}), cfg(), strategy=weighted)
    assert result.fills["quantity"][0] == int(0.5 * 1_000_000 / 120.0)
    assert load_strategy("sma_cross", {}).kind == "targets"
    with pytest.raises(StrategyError):
        load_strategy("buy_and_hold", {"weight": "2"})
    with pytest.raises(StrategyError):
        load_strategy("momentum", {"top": "0"})
    with pytest.raises(StrategyError):
        load_strategy("momentum", {"weight": "0"})
    with pytest.raises(StrategyError):
        load_strategy("sma_cross", {"qty": "0"})
    with pytest.raises(StrategyError):
        load_strategy("sma_cross", {"weight": "3"})


def test_sma_cross_short_on_futures() -> None:
    closes = [100.0] * 5 + [110.0] * 5 + [90.0] * 6
    rows = [(c, c + 1, c - 1, c, 1_000_000) for c in closes]
    result = simulate(
        make_bars({"NIFTY": rows}),
        cfg(
            strategy="sma_cross",
            params={"fast": "2", "slow": "4", "qty": "50", "short": "true"},
            segment="futures",
            allow_short=True,
        ),
    )
    # Flat start (fast == slow): short; the rise reverses to long, the fall back to short.
    assert result.fills["side"].to_list() == ["sell", "buy", "sell"]
    assert result.fills["quantity"].to_list() == [50, 100, 100]
    assert result.trades["side"].to_list() == ["short", "long"]


def test_run_backtest_reads_the_store(store: Path, sample_dir: Path) -> None:
    import polars as pl

    from quantcli.store.manifest import SourceInfo
    from quantcli.store.publish import publish

    raw = pl.read_csv(sample_dir / "MARUTI.csv", n_rows=5)
    assert raw.height == 5
    bars = make_bars({"MARUTI": flat(60, 10_000.0), "JSWSTEEL": flat(60, 800.0)})
    publish(store, "demo", bars, interval="1d", source=SourceInfo(kind="test"))
    config = BacktestConfig(
        dataset="demo",
        strategy="buy_and_hold",
        params={},
        symbols=("JSWSTEEL",),
    )
    seen: list[float] = []
    result = run_backtest(config, root=store, progress=seen.append)
    assert result.fills["symbol"].unique().to_list() == ["JSWSTEEL"]
    assert len(result.dataset_hash) >= 16
    assert seen[-1] == 1.0
    with pytest.raises(NotFoundError):
        run_backtest(BacktestConfig(dataset="nope", strategy="buy_and_hold"), root=store)


def test_parameter_declaration_edge_cases(tmp_path: Path) -> None:
    class Ann(EventStrategy):
        params: object
        size: int = 1

    assert list(params_type(Ann).__dataclass_fields__) == ["size"]
    assert parse_value("flag", bool, "No") is False
    broken = write(
        tmp_path,
        "from __future__ import annotations\n"
        "from quantcli.backtest.strategy import EventStrategy\n"
        "class B(EventStrategy):\n    size: Missing = 1\n"
        "    def on_bar(self, ctx, bar):\n        pass\n",
        "broken.py",
    )
    with pytest.raises(StrategyError, match="cannot read its parameter types"):
        load_strategy(f"{broken}:B", {})
    checked = write(
        tmp_path,
        "from dataclasses import dataclass\n"
        "from quantcli.backtest.strategy import EventStrategy\n"
        "class C(EventStrategy):\n"
        "    @dataclass(frozen=True)\n"
        "    class Params:\n"
        "        size: int = 1\n"
        "        def __post_init__(self):\n"
        "            if self.size < 1:\n"
        "                raise ValueError('size must be >= 1')\n"
        "    def on_bar(self, ctx, bar):\n        pass\n",
        "checked.py",
    )
    with pytest.raises(StrategyError, match="invalid parameters: ValueError: size must be >= 1"):
        load_strategy(f"{checked}:C", {"size": "0"})


def test_features_hook_errors() -> None:
    import polars as pl

    from quantcli.backtest.strategy import LoadedStrategy, SignalStrategy

    class Bad(SignalStrategy):
        def features(self) -> list[object]:
            return [1]

        def targets(self) -> pl.Expr:
            return pl.lit(1.0)

    class Boom(Bad):
        def features(self) -> list[object]:
            raise KeyError("x")

    with pytest.raises(StrategyError, match="must return polars expressions"):
        LoadedStrategy("bad", Bad(None), "targets", "", {}).features()
    with pytest.raises(StrategyError, match="features\\(\\) raised KeyError"):
        LoadedStrategy("boom", Boom(None), "targets", "", {}).features()
    scalar = LoadedStrategy("scalar", Bad(None), "targets", "", {})
    assert scalar.expression().meta.is_literal()


@pytest.mark.parametrize(
    "params",
    [
        {"fast": "1", "slow": "2"},
        {"fast": "1", "slow": "2", "short": "true"},
        {"fast": "1", "slow": "2", "weight": "0.1"},
        {"fast": "1", "slow": "3", "weight": "0.3", "short": "true"},
    ],
)
def test_sma_cross_matches_the_two_branch_form(params: dict[str, str]) -> None:
    # The built-in evaluates one per-symbol window; its targets must equal, bit for bit, the
    # plain when(fast > slow) / when(fast <= slow) form, ties, NaN, nulls and infinities too.
    import numpy as np
    import polars as pl

    loaded = load_strategy("sma_cross", params)
    p = loaded.instance.params
    size = float(p.qty) if p.weight is None else p.weight
    close = pl.col("close")
    fast = close.rolling_mean(p.fast).over("symbol")
    slow = close.rolling_mean(p.slow).over("symbol")
    flat_size = -size if p.short else 0.0
    reference = pl.when(fast > slow).then(pl.lit(size)).when(fast <= slow).then(pl.lit(flat_size))
    values = [1.0, 2.0, 2.0, float("nan"), None, float("inf"), -float("inf"), 3.0, 0.5]
    rng = np.random.default_rng(7)
    for _ in range(40):
        picks = rng.integers(0, len(values), 16)
        frame = pl.DataFrame(
            {"symbol": ["A"] * 8 + ["B"] * 8, "close": [values[k] for k in picks]},
            schema={"symbol": pl.String, "close": pl.Float64},
        )
        got = frame.select(loaded.expression().cast(pl.Float64)).to_series()
        want = frame.select(reference.cast(pl.Float64)).to_series()
        assert got.is_null().to_list() == want.is_null().to_list()
        assert got.to_numpy().tobytes() == want.to_numpy().tobytes()
