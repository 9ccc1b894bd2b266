"""Metrics and the HTML report, checked against hand-computed values on tiny series."""

from __future__ import annotations

import json
import math
import statistics
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quantcli.backtest import metrics as m
from quantcli.backtest.report import fmt, line_chart, monthly_table, render_report
from quantcli.market.charges import CHARGE_COMPONENTS

IST = ZoneInfo("Asia/Kolkata")
TS = pl.Datetime("us", "Asia/Kolkata")
CHARGES = [f"charge_{c}" for c in (*CHARGE_COMPONENTS, "total")]


def equity_frame(
    values: list[float], days: list[date] | None = None, exposure=None
) -> pl.DataFrame:
    days = days or [date(2024, 1, 1) + timedelta(days=i) for i in range(len(values))]
    ts = [datetime(d.year, d.month, d.day, tzinfo=IST) for d in days]
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=TS),
            "cash": values,
            "holdings": [0.0] * len(values),
            "equity": values,
            "exposure": exposure if exposure is not None else [0.0] * len(values),
        }
    )


def trades_frame(pnl: list[float]) -> pl.DataFrame:
    n = len(pnl)
    return pl.DataFrame(
        {
            "symbol": ["X"] * n,
            "entry_ts": pl.Series([None] * n, dtype=TS),
            "exit_ts": pl.Series([None] * n, dtype=TS),
            "side": ["long"] * n,
            "quantity": [1.0] * n,
            "entry_price": [1.0] * n,
            "exit_price": [1.0] * n,
            "pnl": pl.Series(pnl, dtype=pl.Float64),
        }
    )


def fills_frame(rows: list[tuple[float, float, float]]) -> pl.DataFrame:
    """Rows of (quantity, price, brokerage); every other charge is 1.0 per fill."""
    data: dict[str, list[float]] = {"quantity": [], "price": []}
    for c in CHARGES:
        data[c] = []
    for qty, price, brokerage in rows:
        data["quantity"].append(qty)
        data["price"].append(price)
        for c in CHARGES:
            data[c].append(brokerage if c == "charge_brokerage" else 1.0)
        data["charge_total"][-1] = brokerage + 6.0
    return pl.DataFrame(data, schema={k: pl.Float64 for k in data})


# --- returns, volatility, Sharpe, Sortino -------------------------------------------------


def test_daily_returns_start_from_initial_cash() -> None:
    r = m.daily_returns(np.array([110.0, 99.0, 121.0]), 100.0)
    assert r == pytest.approx([0.1, -0.1, 121 / 99 - 1])


def test_total_return_and_cagr() -> None:
    assert m.total_return(100.0, 121.0) == pytest.approx(0.21)
    # 504 sessions = two years: 1.21 -> 10 % a year
    assert m.cagr(100.0, 121.0, 504) == pytest.approx(0.10)
    assert m.cagr(100.0, 121.0, 0) is None
    assert m.cagr(100.0, -5.0, 10) == -1.0
    assert m.cagr(1.0, 17.0, 1) == math.inf  # 17 ** 252 overflows


def test_volatility_and_sharpe_match_hand_computation() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    sd = statistics.stdev([0.01, -0.02, 0.03, 0.0])
    assert m.annual_volatility(r) == pytest.approx(sd * math.sqrt(252))
    assert m.sharpe_ratio(r) == pytest.approx(0.005 / sd * math.sqrt(252))
    rf = 0.0252  # 0.0001 a session
    excess = [x - 0.0001 for x in r]
    assert m.sharpe_ratio(r, rf) == pytest.approx(
        statistics.mean(excess) / statistics.stdev(excess) * math.sqrt(252)
    )


def test_sortino_uses_downside_deviation() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    downside = math.sqrt((0.02**2) / 4)
    assert m.sortino_ratio(r) == pytest.approx(0.005 / downside * math.sqrt(252))
    assert m.sortino_ratio(np.array([0.01, 0.02])) is None  # no downside
    assert m.sortino_ratio(np.array([0.01])) is None


def test_flat_equity_has_no_sharpe() -> None:
    r = np.zeros(5)
    assert m.annual_volatility(r) == 0.0
    assert m.sharpe_ratio(r) is None
    assert m.sharpe_ratio(np.array([0.01])) is None
    assert m.annual_volatility(np.array([0.01])) is None


# --- drawdown ------------------------------------------------------------------------------


def test_max_drawdown_depth_and_duration() -> None:
    values = np.array([90.0, 95.0, 101.0, 99.0, 98.0, 97.0, 102.0])
    depth, duration = m.max_drawdown(values, 100.0)
    assert depth == pytest.approx(0.10)  # 100 -> 90
    assert duration == 3  # 99, 98, 97 below the 101 peak
    assert m.drawdown(values, 100.0)[5] == pytest.approx(1 - 97 / 101)
    assert m.max_drawdown(np.array([]), 100.0) == (0.0, 0)
    assert m.max_drawdown(np.array([100.0, 100.0]), 100.0) == (0.0, 0)


def test_calmar() -> None:
    assert m.calmar_ratio(0.2, 0.1) == pytest.approx(2.0)
    assert m.calmar_ratio(0.2, 0.0) is None
    assert m.calmar_ratio(None, 0.1) is None


# --- trade statistics ----------------------------------------------------------------------


def test_trade_statistics() -> None:
    pnl = np.array([10.0, -5.0, 20.0, -5.0])
    assert m.win_rate(pnl) == 0.5
    assert m.profit_factor(pnl) == pytest.approx(3.0)
    assert m.average_trade(pnl) == pytest.approx(5.0)


def test_all_wins_profit_factor_is_inf_and_null_in_json() -> None:
    pnl = np.array([1.0, 2.0])
    assert m.profit_factor(pnl) == math.inf
    assert json.loads(m.metrics_json({"profit_factor": m.profit_factor(pnl)})) == {
        "profit_factor": None
    }


def test_no_trades() -> None:
    pnl = np.array([])
    assert m.win_rate(pnl) is None
    assert m.profit_factor(pnl) is None
    assert m.average_trade(pnl) is None
    assert m.profit_factor(np.array([0.0])) is None


def test_traded_value_and_charges() -> None:
    fills = fills_frame([(10, 100.0, 2.0), (-10, 110.0, 3.0)])
    assert m.traded_value(fills) == pytest.approx(2100.0)
    charges = m.charges_by_component(fills)
    assert charges["brokerage"] == 5.0
    assert charges["stt"] == 2.0
    assert charges["total"] == 17.0
    assert list(charges) == [*CHARGE_COMPONENTS, "total"]
    empty = fills.clear()
    assert m.traded_value(empty) == 0.0
    assert set(m.charges_by_component(empty).values()) == {0.0}


# --- aggregation ---------------------------------------------------------------------------


def test_intraday_equity_is_reduced_to_the_last_of_each_day() -> None:
    ts = [
        datetime(2024, 1, 1, 9, 15, tzinfo=IST),
        datetime(2024, 1, 1, 15, 25, tzinfo=IST),
        datetime(2024, 1, 2, 9, 15, tzinfo=IST),
        datetime(2024, 1, 2, 15, 25, tzinfo=IST),
    ]
    frame = pl.DataFrame({"ts": pl.Series(ts, dtype=TS), "equity": [1.0, 2.0, 3.0, 4.0]})
    daily = m.daily_equity(frame.reverse())
    assert daily["date"].to_list() == [date(2024, 1, 1), date(2024, 1, 2)]
    assert daily["equity"].to_list() == [2.0, 4.0]


def test_monthly_returns() -> None:
    days = [date(2024, 1, 10), date(2024, 1, 31), date(2024, 2, 5), date(2024, 3, 1)]
    frame = equity_frame([105.0, 110.0, 99.0, 108.9], days)
    monthly = m.monthly_returns(frame, 100.0)
    assert monthly["year"].to_list() == [2024] * 3
    assert monthly["month"].to_list() == [1, 2, 3]
    assert monthly["ret"].to_list() == pytest.approx([0.10, -0.10, 0.10])


# --- the whole set -------------------------------------------------------------------------


def test_compute_metrics_on_a_tiny_run() -> None:
    equity = equity_frame([110.0, 99.0, 121.0], exposure=[0.5, 1.0, 0.0])
    fills = fills_frame([(1, 100.0, 1.0), (-1, 120.0, 1.0)])
    out = m.compute_metrics(
        equity=equity,
        trades=trades_frame([8.0]),
        fills=fills,
        orders=2,
        bars=3,
        initial_cash=100.0,
        risk_free=0.0,
    )
    assert out["final_equity"] == 121.0
    assert out["total_return"] == pytest.approx(0.21)
    assert out["max_drawdown"] == pytest.approx(0.1)
    assert out["max_drawdown_duration"] == 1
    assert out["trades"] == 1
    assert out["win_rate"] == 1.0
    assert out["profit_factor"] == math.inf
    assert out["traded_value"] == pytest.approx(220.0)
    assert out["turnover"] == pytest.approx(220.0 / ((110 + 99 + 121) / 3))
    assert out["exposure"] == pytest.approx(0.5)
    assert out["time_in_market"] == pytest.approx(2 / 3)
    assert out["orders"] == 2 and out["fills"] == 2 and out["bars"] == 3
    assert out["sessions"] == 3
    assert out["start"] == "2024-01-01" and out["end"] == "2024-01-03"
    assert out["charges_total"] == pytest.approx(14.0)
    assert out["calmar"] == pytest.approx(out["cagr"] / 0.1)


def test_compute_metrics_with_nothing() -> None:
    out = m.compute_metrics(
        equity=equity_frame([]).clear(),
        trades=trades_frame([]),
        fills=fills_frame([]),
        orders=0,
        bars=0,
        initial_cash=100.0,
    )
    assert out["final_equity"] == 100.0
    assert out["cagr"] is None and out["sharpe"] is None and out["calmar"] is None
    assert out["trades"] == 0 and out["win_rate"] is None
    assert out["exposure"] == 0.0 and out["time_in_market"] == 0.0
    assert out["start"] is None
    json.loads(m.metrics_json(out))  # serialisable


def test_flat_run_metrics() -> None:
    out = m.compute_metrics(
        equity=equity_frame([100.0] * 4),
        trades=trades_frame([]),
        fills=fills_frame([]),
        orders=0,
        bars=4,
        initial_cash=100.0,
    )
    assert out["sharpe"] is None and out["sortino"] is None
    assert out["volatility"] == 0.0 and out["max_drawdown"] == 0.0 and out["cagr"] == 0.0


def test_metrics_json_is_sorted_and_fixed() -> None:
    text = m.metrics_json({"b": 1 / 3, "a": 2, "c": None, "d": -math.inf, "e": "x"})
    assert list(json.loads(text)) == ["a", "b", "c", "d", "e"]
    assert '"b": 0.333333333333' in text
    assert json.loads(text)["d"] is None
    assert text.endswith("}\n")


# --- report --------------------------------------------------------------------------------


def test_report_is_self_contained_and_deterministic() -> None:
    days = [date(2023, 12, 28) + timedelta(days=i) for i in range(60)]
    values = [100.0 + 5 * math.sin(i / 5) for i in range(60)]
    equity = equity_frame(values, days)
    metrics = m.compute_metrics(
        equity=equity,
        trades=trades_frame([1.0, -2.0]),
        fills=fills_frame([(1, 10.0, 1.0)]),
        orders=1,
        bars=60,
        initial_cash=100.0,
    )
    kwargs = {
        "title": "run <1>",
        "config": {"dataset": "d", "strategy": "sma_cross", "symbols": None},
        "metrics": metrics,
        "equity": equity,
        "initial_cash": 100.0,
    }
    page = render_report(**kwargs)
    assert page == render_report(**kwargs)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "run &lt;1&gt;" in page
    for heading in ("Equity", "Drawdown", "Monthly returns", "Metrics", "Charges by component"):
        assert f"<h2>{heading}</h2>" in page
    assert ">2023</th>" in page and ">2024</th>" in page
    assert "rgb(" in page  # coloured month cells


def test_report_edge_cases() -> None:
    assert "no data" in line_chart([], np.array([]), title="t", area=False)
    flat = line_chart([date(2024, 1, 1)] * 2, np.array([5.0, 5.0]), title="t", area=False)
    assert "<polyline" in flat
    assert "<polygon" in line_chart([date(2024, 1, 1)] * 2, np.zeros(2), title="t", area=True)
    table = monthly_table(pl.DataFrame({"year": [2024, 2024], "month": [3, 4], "ret": [-0.2, 0.1]}))
    assert "rgb(255,100,100)" in table and "-20.0%" in table  # the largest move: full colour
    assert "rgb(178,255,178)" in table and "10.0%" in table  # half of it: half the colour
    flat = monthly_table(pl.DataFrame({"year": [2024], "month": [3], "ret": [0.0]}))
    assert "rgb(255,255,255)" in flat
    assert fmt(None, "pct") == "-"
    assert fmt(math.inf, "ratio") == "inf" and fmt(-math.inf, "ratio") == "-inf"
    assert fmt(0.1234, "pct") == "12.34%"
    assert fmt(1234.5, "money") == "1,234.50"
    assert fmt(3, "int") == "3"
    assert fmt("2024-01-01", "text") == "2024-01-01"
    assert fmt(1.23456, "ratio") == "1.235"


# --- invariants ----------------------------------------------------------------------------

curves = st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(values=curves, cash=st.floats(1.0, 1e6))
@example(values=[1.0], cash=1.0000000000000002)  # a one-ulp "drawdown": no depth, no duration
def test_metric_invariants(values: list[float], cash: float) -> None:
    arr = np.array(values)
    returns = m.daily_returns(arr, cash)
    # Daily returns compound to the total return (compared as growth factors).
    assert np.prod(1 + returns) == pytest.approx(1 + m.total_return(cash, values[-1]), rel=1e-9)
    depth, duration = m.max_drawdown(arr, cash)
    assert 0.0 <= depth < 1.0 and 0 <= duration <= len(values)
    assert (depth == 0.0) == (duration == 0)
    growth = m.cagr(cash, values[-1], len(values))
    assert growth is not None and (growth > 0) == (values[-1] > cash)
    sharpe = m.sharpe_ratio(returns)
    if sharpe is not None:
        assert math.isfinite(sharpe)
