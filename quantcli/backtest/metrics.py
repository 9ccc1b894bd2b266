"""Performance metrics of a backtest: pure functions over the engine's result frames or buffers.

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
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import polars as pl

from quantcli.backtest.accounting import _trips
from quantcli.backtest.orders import F_CHARGES, F_PRICE, F_QTY
from quantcli.core.timezone import DAY_US, IST_OFFSET_US
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


# A drawdown this small is rounding (a peak of cash * (1 + 1 ulp)), not a loss: it counts
# neither in the depth nor in the duration, so the two agree on whether there was one.
_UNDER_WATER = 1e-12


def max_drawdown(values: np.ndarray, initial_cash: float) -> tuple[float, int]:
    """Deepest drawdown (positive fraction) and the longest run of sessions under water."""
    if values.size == 0:
        return 0.0, 0
    dd = drawdown(values, initial_cash)
    # Each run under water starts and ends at a change of ``under`` (edges in pairs).
    under = np.concatenate(([False], dd > _UNDER_WATER, [False]))
    edges = np.flatnonzero(under[1:] != under[:-1])
    if not edges.size:
        return 0.0, 0
    return float(dd.max()), int((edges[1::2] - edges[::2]).max())


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
    dates = daily.get_column("date")
    return _metrics(
        _Run(
            values=daily["equity"].to_numpy().astype(np.float64),
            span=(str(dates[0]), str(dates[-1])) if daily.height else None,
            pnl=trades["pnl"].to_numpy().astype(np.float64),
            exposure=equity["exposure"].to_numpy().astype(np.float64),
            traded=traded_value(fills),
            charges=charges_by_component(fills),
            orders=orders,
            fills=fills.height,
            bars=bars,
        ),
        initial_cash,
        risk_free,
    )


class _Run(NamedTuple):
    """What a run's metrics are computed from."""

    values: np.ndarray  # the last equity of each session
    span: tuple[str, str] | None  # the first and last session (ISO dates), None without any
    pnl: np.ndarray  # each round trip's net P&L
    exposure: np.ndarray  # each equity row's exposure
    traded: float
    charges: dict[str, float]
    orders: int
    fills: int
    bars: int


def _metrics(run: _Run, initial_cash: float, risk_free: float) -> dict[str, Metric]:
    """:func:`compute_metrics` of a run's parts (the one computation of both its sources)."""
    values, pnl = run.values, run.pnl
    final = float(values[-1]) if values.size else initial_cash
    returns = daily_returns(values, initial_cash)
    growth = cagr(initial_cash, final, values.size)
    deepest, duration = max_drawdown(values, initial_cash)
    exposure = np.abs(run.exposure)
    mean_equity = float(values.mean()) if values.size else initial_cash
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
        "traded_value": run.traded,
        "turnover": run.traded / mean_equity if mean_equity > 0 else None,
        "exposure": float(exposure.mean()) if exposure.size else 0.0,
        "time_in_market": float((exposure > 0).mean()) if exposure.size else 0.0,
        "orders": run.orders,
        "fills": run.fills,
        "bars": run.bars,
        "sessions": int(values.size),
        "start": run.span[0] if run.span else None,
        "end": run.span[1] if run.span else None,
    }
    for name, total in run.charges.items():
        out[f"charges_{name}"] = total
    return out


def session_returns(result: BacktestResult) -> tuple[list[date], np.ndarray]:
    """The session dates of a run and its daily returns, net of charges."""
    days, values = _daily_of(result)
    dates: list[date] = days.astype("datetime64[D]").tolist()
    return dates, daily_returns(values, result.config.cash)


def metrics_of(result: BacktestResult) -> dict[str, Metric]:
    """``compute_metrics`` of an engine result, with its initial cash and risk-free rate:
    computed from the run's buffers, not its frames (a sweep reads thousands of runs), to
    the same numbers bit for bit."""
    out = result.output
    days, values = _daily_of(result)
    fills = out.fill_floats
    traded = np.abs(out.fill_ints[:, F_QTY]).astype(np.float64) * fills[:, F_PRICE]
    names = [*CHARGE_COMPONENTS, "total"]
    # Polars' own sums, as traded_value and charges_by_component take them of the frames: the
    # same summation order, so the same last bits.
    charges = {n: float(pl.Series(fills[:, F_CHARGES + k]).sum()) for k, n in enumerate(names)}
    span = None
    if days.size:
        first, last = days[[0, -1]].astype("datetime64[D]").tolist()
        span = (str(first), str(last))
    _, trips = _trips(out.fill_ints, fills, out.event_ints, out.event_floats, len(result.symbols))
    run = _Run(
        values=values,
        span=span,
        pnl=trips[:, 2],
        exposure=exposure(out.equity),
        traded=float(pl.Series(traded).sum()) if traded.size else 0.0,
        charges=charges if fills.shape[0] else dict.fromkeys(names, 0.0),
        orders=out.order_ints.shape[0],
        fills=fills.shape[0],
        bars=result.bars,
    )
    return _metrics(run, result.config.cash, result.config.risk_free)


def _daily_of(result: BacktestResult) -> tuple[np.ndarray, np.ndarray]:
    """(the IST epoch day of each session of a run, its last equity), from the run's equity
    rows (one a timestamp, in time order): :func:`daily_equity` of its equity frame."""
    out = result.output
    day = (result.ts[out.equity_bar] + IST_OFFSET_US) // DAY_US
    last = np.flatnonzero(np.r_[day[1:] != day[:-1], True]) if day.size else day
    return day[last], np.ascontiguousarray(out.equity[last, 2], dtype=np.float64)


def exposure(equity: np.ndarray) -> np.ndarray:
    """Each equity row's exposure (gross position value over equity; 0 at zero equity) from
    the replay's equity buffer (cash, holdings, equity, gross value)."""
    total = equity[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(total != 0, equity[:, 3] / total, 0.0), dtype=np.float64)


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
