"""A user feature set: trend and range features over a ``window`` of sessions.

    quantcli features build trend --dataset nse --spec examples/trend_features.py:Trend -p window=30

Expressions see the split/bonus-adjusted bars a strategy sees, sorted by symbol then ts; every
window runs per symbol (``.over("symbol")``) and uses only bars up to the current one, which
the build checks (a ``shift(-1)`` here would be refused as looking ahead).
"""

from __future__ import annotations

import polars as pl


class Trend:
    """Close over its rolling mean and the high-low range, both over ``window`` sessions."""

    window: int = 20

    def features(self) -> dict[str, pl.Expr]:
        """The named per-symbol expressions."""
        w = self.params.window
        close = pl.col("close")
        return {
            "trend": (close / close.rolling_mean(w) - 1).over("symbol"),
            "range": (
                (pl.col("high").rolling_max(w) - pl.col("low").rolling_min(w)) / close
            ).over("symbol"),
        }
