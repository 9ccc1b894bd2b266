"""The built-in ``basic`` feature set: returns, volatility, RSI, volume z-score, distance from
moving averages and day of week, per symbol and point in time."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantcli.features.spec import FeatureSpec


def daily_return() -> pl.Expr:
    """Each bar's return from the previous close, split-correct: ``close / prev_close - 1``
    with the exchange's (split-adjusted) ``prev_close`` where the bars have one, else from the
    previous bar's close in the split-adjusted view. Evaluate it ``.over("symbol")``."""
    previous = pl.col("close").shift(1)
    return pl.col("close") / pl.coalesce(pl.col("prev_close"), previous) - 1


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

    def features(self) -> dict[str, pl.Expr]:
        """The named per-symbol expressions."""
        p = self.params
        r = daily_return()
        close = pl.col("close")
        change = close - pl.coalesce(pl.col("prev_close"), close.shift(1))
        # Wilder's smoothing: an exponential mean with alpha = 1/window, started after
        # ``window`` changes.
        gain = change.clip(lower_bound=0).ewm_mean(
            alpha=1 / p.rsi_window, adjust=False, min_samples=p.rsi_window
        )
        loss = (
            (-change)
            .clip(lower_bound=0)
            .ewm_mean(alpha=1 / p.rsi_window, adjust=False, min_samples=p.rsi_window)
        )
        volume = pl.col("volume")
        per_symbol = {
            "ret_1": r,
            "ret_5": compounded(r, 5),
            "ret_20": compounded(r, 20),
            f"vol_{p.vol_window}": r.rolling_std(p.vol_window),
            f"rsi_{p.rsi_window}": 100 * gain / (gain + loss),
            f"volume_z_{p.volume_window}": (volume - volume.rolling_mean(p.volume_window))
            / volume.rolling_std(p.volume_window),
            f"dist_mean_{p.fast_mean}": close / close.rolling_mean(p.fast_mean) - 1,
            f"dist_mean_{p.slow_mean}": close / close.rolling_mean(p.slow_mean) - 1,
        }
        out = {name: expr.over("symbol") for name, expr in per_symbol.items()}
        out["day_of_week"] = pl.col("ts").dt.weekday()
        return out
