"""Moving-average crossover: long while the fast simple moving average of the close is above
the slow one, flat (or short with ``short=true``) otherwise.

Sizing: ``qty`` shares per symbol, or ``weight`` of equity per symbol (give one of them).
Shorts are only filled on a segment that allows them (intraday, futures); delivery rejects them.
The averages run on split/bonus-adjusted closes, so a split does not cross them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from quantcli.backtest.strategy import SignalStrategy


class SmaCross(SignalStrategy):
    """SMA(fast) / SMA(slow) crossover on the close."""

    @dataclass(frozen=True)
    class Params:
        fast: int = 10
        slow: int = 30
        qty: int = 100
        weight: float | None = None
        short: bool = False

    params: Params
    exclusive_params: ClassVar[tuple[tuple[str, ...], ...]] = (("qty", "weight"),)

    def __init__(self, params: Params) -> None:
        if not 0 < params.fast < params.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={params.fast} slow={params.slow}")
        if params.weight is None and params.qty <= 0:
            raise ValueError(f"qty must be positive, got {params.qty}")
        if params.weight is not None and not 0 < params.weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {params.weight}")
        super().__init__(params)
        self.sizing = "targets" if params.weight is None else "weights"

    def warmup(self) -> int:
        """The slow average's first value is at its ``slow``-th bar."""
        return self.params.slow - 1

    def _signal(self, size: float) -> pl.Expr:
        close = pl.col("close")
        # A per-symbol window for each average: a sweep evaluates its combinations in one
        # query, where polars computes each distinct average once. Null until the slow average
        # exists: no opinion, no trade. Polars orders floats totally (NaN largest), so "not
        # above" is "at or below".
        fast, slow = (
            close.rolling_mean(n).over("symbol") for n in (self.params.fast, self.params.slow)
        )
        above = fast > slow
        flat = -size if self.params.short else 0.0
        # 1 -> (size - flat) + flat and 0 -> flat are exact for flat in {0, -size}.
        return above.cast(pl.Float64) * (size - flat) + flat

    def targets(self) -> pl.Expr:
        """Target shares: ``qty`` when long."""
        return self._signal(float(self.params.qty))

    def weights(self) -> pl.Expr:
        """Target weight: ``weight`` when long."""
        return self._signal(self.params.weight or 0.0)
