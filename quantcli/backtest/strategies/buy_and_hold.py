"""Buy and hold: invest ``weight`` of equity, split equally across the symbols trading at each
symbol's first bar, and never trade again."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantcli.backtest.strategy import SignalStrategy


class BuyAndHold(SignalStrategy):
    """Equal-weight buy and hold (the benchmark every other strategy should beat)."""

    @dataclass(frozen=True)
    class Params:
        weight: float = 1.0

    params: Params

    def __init__(self, params: Params) -> None:
        if not 0 < params.weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {params.weight}")
        super().__init__(params)

    def weights(self) -> pl.Expr:
        """The weight at each symbol's first bar; no opinion afterwards."""
        first = pl.int_range(pl.len()).over("symbol") == 0
        share = pl.lit(self.params.weight) / pl.len().over("ts")
        return pl.when(first).then(share).otherwise(None)
