"""``sqrt:K``: square-root market impact, K * sigma * sqrt(quantity / bar volume), sigma the
volatility of the symbol's recent per-bar returns (Almgren et al., "Direct estimation of
equity market impact", 2005: impact grows with the square root of participation)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import cfunc

from quantcli.backtest.slippage import FORMULA, SlippageModel, number_param

WINDOW = 20  # bars of returns behind sigma


@cfunc(FORMULA, cache=True)
def _formula(param: float, quantity: float, volume: float, x: float) -> float:
    if volume <= 0.0:
        return param * x
    return param * x * math.sqrt(quantity / volume)


class SquareRootImpact(SlippageModel):
    """Square-root impact scaled by recent volatility."""

    name = "sqrt"
    usage = "sqrt:K"
    formula = _formula

    @classmethod
    def parse(cls, raw: str) -> SlippageModel:
        """``K``: the impact coefficient, a non-negative number."""
        return cls(number_param(f"sqrt:{raw}", raw))

    def prepare(self, bars: pl.DataFrame) -> np.ndarray:
        """Sigma per bar: the standard deviation of the symbol's last WINDOW close-to-close
        returns before the bar (shifted: a bar's own move is not known when its fills are
        priced at the open), 0 until two returns exist."""
        returns = pl.col("close").pct_change().over("symbol")
        vol = returns.rolling_std(WINDOW, min_samples=2).shift(1).over("symbol")
        return bars.select(vol.fill_null(0.0).fill_nan(0.0)).to_series().to_numpy()


MODEL = SquareRootImpact
