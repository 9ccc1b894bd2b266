"""Pluggable slippage models: a user-defined model, registered by name, prices fills through
the compiled replay of both strategy kinds with its own per-bar input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from numba import cfunc
from test_backtest_engine import Script, Targets, cfg, flat, loaded, make_bars

from quantcli.backtest import slippage
from quantcli.backtest.engine import simulate
from quantcli.backtest.slippage import FORMULA, SlippageModel, number_param, parse_slippage
from quantcli.errors import UsageError


@cfunc(FORMULA)
def _range_formula(param: float, quantity: float, volume: float, x: float) -> float:
    return param * x


class RangeShare(SlippageModel):
    """``range:K``: K times the previous bar's (high - low) / close, a per-bar input."""

    name = "range"
    usage = "range:K"
    formula = _range_formula

    @classmethod
    def parse(cls, raw: str) -> SlippageModel:
        return cls(number_param(f"range:{raw}", raw))

    def prepare(self, bars: pl.DataFrame) -> np.ndarray:
        spread = (pl.col("high") - pl.col("low")) / pl.col("close")
        return bars.select(spread.shift(1).over("symbol").fill_null(0.0)).to_series().to_numpy()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(slippage.MODELS, "range", RangeShare)


def test_a_user_defined_model_prices_signal_fills(registered: None) -> None:
    rows = [(100.0, 102.0, 98.0, 100.0, 1_000_000)] * 2 + [(100.0, 110.0, 90.0, 100.0, 1_000_000)]
    rows += [(100.0, 101.0, 99.0, 100.0, 1_000_000)] * 2
    bars = make_bars({"AAA": rows}).with_columns(tgt=pl.Series([10.0, None, 0.0, None, None]))
    result = simulate(bars, cfg(slippage="range:0.5"), strategy=loaded(Targets(), "targets"))
    fills = result.fills
    # Bought at bar 1's open (bar 0's range 4 %: 2 % slippage), sold at bar 3's open (bar 2's
    # range 20 %: 10 %); prices on the 0.05 tick, against the trader.
    assert fills["price"].to_list() == [102.0, 90.0]
    assert fills["slippage"].to_list() == pytest.approx([20.0, 100.0])
    assert parse_slippage("range:0.5").fraction(1, 1, 0.04) == pytest.approx(0.02)


def test_a_user_defined_model_prices_event_fills(registered: None) -> None:
    bars = make_bars({"AAA": flat(4)})
    script = Script({0: lambda ctx, bar: ctx.buy("AAA", 5)})
    result = simulate(bars, cfg(slippage="range:1"), strategy=loaded(script, "events"))
    # flat(): high - low = 2 on a close of 100, so 2 % above the open.
    assert result.fills["price"].to_list() == [102.0]


def test_registered_models_are_named_in_errors(registered: None) -> None:
    with pytest.raises(UsageError, match=r"expected none, bps:X, spread:X, sqrt:K, range:K"):
        parse_slippage("nope:1")
    with pytest.raises(UsageError, match="range:x"):
        parse_slippage("range:x")
