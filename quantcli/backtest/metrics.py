"""Performance metrics of a backtest: pure functions over the engine's result frames.

Conventions (one place for each):

- Returns are daily. Intraday equity is first reduced to the last equity of each IST session
  date, so daily and intraday runs are measured alike. The first return is measured from the
  initial cash, so a run of N sessions has N returns.
- Annualisation uses 252 sessions a year (the usual NSE count, ~248-252 sessions a year).
- The risk-free rate is a simple annual rate; its daily share is ``risk_free / 252``.
- Ratios that are undefined are ``None`` (``null`` in JSON): Sharpe and volatility of fewer
  than two returns, Sharpe of a flat equity curve (zero deviation), Sortino with no downside,
  Calmar with no drawdown, trade statistics with no trades. A profit factor with wins and no
  losses is ``inf`` in Python and ``null`` in JSON (JSON has no infinity).
- Max drawdown is a positive fraction of the running peak (0.25 = 25 % below the peak), and
  its duration the longest run of consecutive sessions spent below a previous peak.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from quantcli.market.charges import CHARGE_COMPONENTS

if TYPE_CHECKING:
    from quantcli.backtest.engine import BacktestResult

SESSIONS_PER_YEAR = 252
# 12 significant digits hide float noise that differs between summation orders while keeping
# far more precision than any rupee amount or ratio needs.
JSON_SIGNIFICANT_DIGITS = 12

Metric = float | int | str | None


def daily_equity(equity: pl.DataFrame) -> pl.DataFrame:
    """The last equity of each IST session date: columns ``date`` and ``equity``, sorted."""
    return (
        equity.lazy()
        .sort("ts")
        .group_by(pl.col("ts").dt.date().alias("date"), maintain_order=True)
        .agg(pl.col("equity").last())
        .collect()
    )


def daily_returns(values: np.ndarray, initial_cash: float) -> np.ndarray:
    """Simple returns of a daily equity series, the first one measured from ``initial_cash``."""
    prev = np.concatenate(([initial_cash], values[:-1]))
    return np.asarray(values / prev - 1.0, dtype=np.float64)


def total_return(initial_cash: float, final_equity: float) -> float:
    """Final equity over initial cash, minus one."""
    return final_equity / initial_cash - 1.0


def cagr(initial_cash: float, final_equity: float, sessions: int) -> float | None:
    """Compound annual growth rate over ``sessions`` daily returns (None without any; ``inf``
    when annualising a short run's gain overflows)."""
    if sessions <= 0:
        return None
    if final_equity <= 0:
        return -1.0
    try:
        return float((final_equity / initial_cash) ** (SESSIONS_PER_YEAR / sessions) - 1.0)
    except OverflowError:  # a huge gain over a few sessions: annualised, beyond float range
        return math.inf


def annual_volatility(returns: np.ndarray) -> float | None:
    """Sample standard deviation of daily returns times sqrt(252); None below two returns."""
    if returns.size < 2:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(SESSIONS_PER_YEAR))


def _excess(returns: np.ndarray, risk_free: float) -> np.ndarray:
    return np.asarray(returns - risk_free / SESSIONS_PER_YEAR, dtype=np.float64)


def session_sharpe(returns: np.ndarray, risk_free: float = 0.0) -> float | None:
    """Sharpe ratio of daily returns per session: mean excess return over its sample standard
    deviation; None below two returns or with no deviation. The report's annualised Sharpe and
    the probabilistic Sharpe ratio (quantcli.backtest.sharpe) both start from this one."""
    if returns.size < 2:
        return None
    excess = _excess(returns, risk_free)
    sd = float(np.std(excess, ddof=1))
    if sd <= 1e-15:
        return None
    return float(np.mean(excess)) / sd


def sharpe_ratio(returns: np.ndarray, risk_free: float = 0.0) -> float | None:
    """Annualised Sharpe ratio of daily returns: :func:`session_sharpe` times sqrt(252)."""
    per_session = session_sharpe(returns, risk_free)
    return None if per_session is None else per_session * math.sqrt(SESSIONS_PER_YEAR)


def sortino_ratio(returns: np.ndarray, risk_free: float = 0.0) -> float | None:
    """Annualised Sortino ratio: mean excess return over the downside deviation.

    The downside deviation is sqrt(mean(min(excess, 0)^2)) over all returns; None when no
    return falls below the risk-free rate (no downside to measure).
    """
    if returns.size < 2:
        return None
    excess = _excess(returns, risk_free)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= 1e-15:
        return None
    return float(np.mean(excess) / downside * math.sqrt(SESSIONS_PER_YEAR))


def drawdown(values: np.ndarray, initial_cash: float) -> np.ndarray:
    """Drawdown of each point as a positive fraction below the running peak (initial cash on)."""
    peaks = np.maximum.accumulate(np.concatenate(([initial_cash], values)))[1:]
    return np.asarray(1.0 - values / peaks, dtype=np.float64)


def max_drawdown(values: np.ndarray, initial_cash: float) -> tuple[float, int]:
    """Deepest drawdown (positive fraction) and the longest run of sessions under water."""
    if values.size == 0:
        return 0.0, 0
    dd = drawdown(values, initial_cash)
    longest = run = 0
    for under in dd > 1e-12:
        run = run + 1 if under else 0
        longest = max(longest, run)
    return float(dd.max()), longest


def calmar_ratio(growth: float | None, deepest: float) -> float | None:
    """CAGR over max drawdown; None without a drawdown or a CAGR."""
    if growth is None or deepest <= 0:
        return None
    return growth / deepest


def win_rate(pnl: np.ndarray) -> float | None:
    """Share of round trips with a positive net P&L; None without trades."""
    if pnl.size == 0:
        return None
    return float(np.count_nonzero(pnl > 0) / pnl.size)


def profit_factor(pnl: np.ndarray) -> float | None:
    """Gross profit over gross loss: ``inf`` with wins and no losses, None with neither."""
    gains = float(pnl[pnl > 0].sum())
    losses = float(-pnl[pnl < 0].sum())
    if losses == 0:
        return math.inf if gains > 0 else None
    return gains / losses


def average_trade(pnl: np.ndarray) -> float | None:
    """Mean net P&L per round trip; None without trades."""
    return float(pnl.mean()) if pnl.size else None


def traded_value(fills: pl.DataFrame) -> float:
    """Sum of |quantity| x price over all fills."""
    if fills.height == 0:
        return 0.0
    return float(fills.select((pl.col("quantity").abs() * pl.col("price")).sum()).item())


def charges_by_component(fills: pl.DataFrame) -> dict[str, float]:
    """Total charges paid per component (``CHARGE_COMPONENTS``) and in all (``total``)."""
    names = [*CHARGE_COMPONENTS, "total"]
    if fills.height == 0:
        return dict.fromkeys(names, 0.0)
    sums = fills.select(pl.col(f"charge_{n}").sum() for n in names).row(0)
    return {n: float(v) for n, v in zip(names, sums, strict=True)}


def monthly_returns(equity: pl.DataFrame, initial_cash: float) -> pl.DataFrame:
    """Return of each calendar month: columns ``year``, ``month``, ``ret`` (fraction)."""
    daily = daily_equity(equity)
    month_end = (
        daily.group_by(
            pl.col("date").dt.year().alias("year"),
            pl.col("date").dt.month().alias("month"),
            maintain_order=True,
        )
        .agg(pl.col("equity").last())
        .sort("year", "month")
    )
    ends = month_end["equity"].to_numpy()
    rets = daily_returns(ends, initial_cash)
    return month_end.select("year", "month").with_columns(ret=pl.Series(rets, dtype=pl.Float64))


def compute_metrics(  # noqa: PLR0913 - keyword-only: every input is named where it is passed
    *,
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    orders: int,
    bars: int,
    initial_cash: float,
    risk_free: float = 0.0,
) -> dict[str, Metric]:
    """Every metric of a run as a flat mapping (see the module docstring for conventions).

    ``exposure`` is the mean of the engine's per-bar exposure (gross position value over
    equity) and ``time_in_market`` the share of bars with any exposure. ``turnover`` is the
    traded value over the mean daily equity (how many times the book was turned over).
    """
    daily = daily_equity(equity)
    values = daily["equity"].to_numpy().astype(np.float64)
    final = float(values[-1]) if values.size else initial_cash
    returns = daily_returns(values, initial_cash)
    growth = cagr(initial_cash, final, values.size)
    deepest, duration = max_drawdown(values, initial_cash)
    pnl = trades["pnl"].to_numpy().astype(np.float64)
    exposure = np.abs(equity["exposure"].to_numpy().astype(np.float64))
    mean_equity = float(values.mean()) if values.size else initial_cash
    value = traded_value(fills)
    out: dict[str, Metric] = {
        "initial_cash": initial_cash,
        "final_equity": final,
        "total_return": total_return(initial_cash, final),
        "cagr": growth,
        "volatility": annual_volatility(returns),
        "sharpe": sharpe_ratio(returns, risk_free),
        "sortino": sortino_ratio(returns, risk_free),
        "risk_free": risk_free,
        "max_drawdown": deepest,
        "max_drawdown_duration": duration,
        "calmar": calmar_ratio(growth, deepest),
        "trades": int(pnl.size),
        "win_rate": win_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "average_trade": average_trade(pnl),
        "traded_value": value,
        "turnover": value / mean_equity if mean_equity > 0 else None,
        "exposure": float(exposure.mean()) if exposure.size else 0.0,
        "time_in_market": float((exposure > 0).mean()) if exposure.size else 0.0,
        "orders": orders,
        "fills": fills.height,
        "bars": bars,
        "sessions": int(values.size),
        "start": str(daily["date"][0]) if daily.height else None,
        "end": str(daily["date"][-1]) if daily.height else None,
    }
    for name, total in charges_by_component(fills).items():
        out[f"charges_{name}"] = total
    return out


def session_returns(result: BacktestResult) -> tuple[list[date], np.ndarray]:
    """The session dates of a run and its daily returns, net of charges."""
    daily = daily_equity(result.equity)
    values = daily.get_column("equity").to_numpy().astype(np.float64)
    return daily.get_column("date").to_list(), daily_returns(values, result.config.cash)


def metrics_of(result: BacktestResult) -> dict[str, Metric]:
    """``compute_metrics`` of an engine result, with its initial cash and risk-free rate."""
    return compute_metrics(
        equity=result.equity,
        trades=result.trades,
        fills=result.fills,
        orders=result.orders.height,
        bars=result.bars,
        initial_cash=result.config.cash,
        risk_free=result.config.risk_free,
    )


def fixed_float(value: Metric) -> Metric:
    """A metric as stored in JSON: 12 significant digits, non-finite floats as None."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{JSON_SIGNIFICANT_DIGITS}g}")
    return value


def metrics_json(metrics: Mapping[str, Metric]) -> str:
    """Deterministic JSON text: sorted keys, 12 significant digits, non-finite as null."""
    fixed = {k: fixed_float(v) for k, v in metrics.items()}
    return json.dumps(fixed, indent=2, sort_keys=True, allow_nan=False) + "\n"
