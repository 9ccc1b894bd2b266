"""The built-in ``basic`` feature set: returns, volatility, RSI, volume z-score, distance from
moving averages and day of week, per symbol and point in time.

The daily return and price change are helper inputs, computed once on the whole column (the
previous close is taken only within the symbol); the windows over them run per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantcli.core.timezone import DAY_US, IST_OFFSET_US
from quantcli.features.spec import FeatureSpec


def previous_close() -> pl.Expr:
    """The previous bar's close of the same symbol (null on a symbol's first bar), flat or
    within ``.over("symbol")``."""
    same = pl.col("symbol") == pl.col("symbol").shift(1)
    return pl.when(same).then(pl.col("close").shift(1))


def daily_return() -> pl.Expr:
    """Each bar's return from the previous close, split-correct: ``close / prev_close - 1``
    with the exchange's (split-adjusted) ``prev_close`` where the bars have one, else from the
    previous bar's close in the split-adjusted view."""
    return pl.col("close") / pl.coalesce(pl.col("prev_close"), previous_close()) - 1


def compounded(returns: pl.Expr, sessions: int) -> pl.Expr:
    """The return compounded over the last ``sessions`` bars (null until there are that many)."""
    return returns.log1p().rolling_sum(sessions).exp() - 1


class Basic(FeatureSpec):
    """Returns over 1, 5 and 20 sessions, 20-session volatility, RSI(14), volume z-score(20),
    distance from the 20- and 50-session means, and day of week (1 = Monday)."""

    @dataclass(frozen=True)
    class Params:
        """Window lengths, in sessions."""

        vol_window: int = 20
        rsi_window: int = 14
        volume_window: int = 20
        fast_mean: int = 20
        slow_mean: int = 50

    def inputs(self) -> dict[str, pl.Expr]:
        """Row-wise helpers: the daily return and the change from the previous close."""
        close = pl.col("close")
        return {
            "_return": daily_return(),
            "_change": close - pl.coalesce(pl.col("prev_close"), previous_close()),
        }

    def features(self) -> dict[str, pl.Expr]:
        """The named expressions."""
        p = self.params
        r, change, close = pl.col("_return"), pl.col("_change"), pl.col("close")
        # Wilder's smoothing: an exponential mean with alpha = 1/window, from the
        # ``window``-th change on.
        smooth = {"alpha": 1 / p.rsi_window, "adjust": False, "min_samples": p.rsi_window}
        gain = change.clip(lower_bound=0).ewm_mean(**smooth)
        loss = (-change).clip(lower_bound=0).ewm_mean(**smooth)
        volume = pl.col("volume")
        vw = p.volume_window
        ts_us = pl.col("ts").dt.epoch("us") + IST_OFFSET_US
        windowed = {
            "ret_5": compounded(r, 5),
            "ret_20": compounded(r, 20),
            f"vol_{p.vol_window}": r.rolling_std(p.vol_window),
            f"rsi_{p.rsi_window}": 100 * gain / (gain + loss),
            f"volume_z_{vw}": (volume - volume.rolling_mean(vw)) / volume.rolling_std(vw),
            f"dist_mean_{p.fast_mean}": close / close.rolling_mean(p.fast_mean) - 1,
            f"dist_mean_{p.slow_mean}": close / close.rolling_mean(p.slow_mean) - 1,
        }
        return {
            "ret_1": r,
            **{name: expr.over("symbol") for name, expr in windowed.items()},
            "day_of_week": (ts_us // DAY_US + 3) % 7 + 1,  # 1970-01-01 was a Thursday
        }
