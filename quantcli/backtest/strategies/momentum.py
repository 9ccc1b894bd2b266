"""Cross-sectional momentum: each month, hold the ``top`` symbols with the highest return over
the last ``lookback`` bars, equally weighted (``weight`` of equity in total).

The ranking runs on the first bar of each month from closes up to that bar; the engine trades it
at the next bar. Between rebalances the strategy has no opinion, so holdings drift with prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantcli.backtest.strategy import SignalStrategy


class Momentum(SignalStrategy):
    """Top-N by lookback return, monthly rebalance."""

    @dataclass(frozen=True)
    class Params:
        lookback: int = 126
        top: int = 5
        weight: float = 1.0

    params: Params

    def __init__(self, params: Params) -> None:
        if params.lookback < 1 or params.top < 1:
            raise ValueError(f"lookback and top must be >= 1, got {params.lookback}, {params.top}")
        if not 0 < params.weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {params.weight}")
        super().__init__(params)

    def features(self) -> list[pl.Expr]:
        """The rebalance flag (first bar of a month) and the lookback return, per symbol."""
        month = pl.col("ts").dt.month()
        lookback = self.params.lookback
        return [
            (month != month.shift(1)).over("symbol").fill_null(False).alias("_rebalance"),
            (pl.col("close") / pl.col("close").shift(lookback) - 1.0).over("symbol").alias("_ret"),
        ]

    def warmup(self) -> int:
        """The lookback return's first value is ``lookback`` bars in."""
        return self.params.lookback

    def weights(self) -> pl.Expr:
        """Weight ``weight/top`` for the top symbols on rebalance bars, 0 for the rest."""
        rebalance = pl.col("_rebalance") & pl.col("_ret").is_not_null()
        rank = pl.when(rebalance).then(pl.col("_ret")).rank("ordinal", descending=True).over("ts")
        share = self.params.weight / self.params.top
        return pl.when(rebalance).then(pl.when(rank <= self.params.top).then(share).otherwise(0.0))
