"""The backtest engine: execution rules, accounting, strategies, errors (in-memory bars)."""

from __future__ import annotations

import io
import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.costs import parse_costs
from quantcli.backtest.engine import simulate
from quantcli.backtest.events import Bar
from quantcli.backtest.slippage import parse_slippage
from quantcli.backtest.strategy import (
    EventStrategy,
    LoadedStrategy,
    SignalStrategy,
    load_strategy,
)
from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import DataError, NotFoundError, QuantcliError, StrategyError, UsageError
from quantcli.market.calendar import sessions
from quantcli.market.corporate_actions import CorporateAction

Row = tuple[float, float, float, float, int]


def make_bars(data: dict[str, list[Row]], start: date = date(2024, 1, 1)) -> pl.DataFrame:
    """Daily bars on consecutive NSE sessions from ``start``: rows of (o, h, l, c, volume)."""
    days = sessions(start, date(2026, 12, 31))
    frames = []
    for symbol, rows in data.items():
        frames.append(
            pl.DataFrame(
                {
                    "symbol": [symbol] * len(rows),
                    "ts": [datetime(d.year, d.month, d.day) for d in days[: len(rows)]],
                    "open": [r[0] for r in rows],
                    "high": [r[1] for r in rows],
                    "low": [r[2] for r in rows],
                    "close": [r[3] for r in rows],
                    "volume": [r[4] for r in rows],
                }
            ).with_columns(pl.col("ts").dt.replace_time_zone("Asia/Kolkata"))
        )
    return pl.concat(frames)


def flat(n: int, price: float = 100.0, volume: int = 1_000_000) -> list[Row]:
    return [(price, price + 1, price - 1, price, volume)] * n


def loaded(instance: Any, kind: str) -> LoadedStrategy:
    return LoadedStrategy(type(instance).__name__, instance, kind, "hash", {})


class Script(EventStrategy):
    """Runs ``actions[bar_index](ctx, bar)`` (a scripted event strategy for tests)."""

    def __init__(self, actions: dict[int, Any]) -> None:
        super().__init__(None)
        self.actions = actions
        self.fills: list[Any] = []

    def on_bar(self, ctx: Any, bar: Bar) -> None:
        action = self.actions.get(bar.index)
        if action is not None:
            action(ctx, bar)

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.fills.append(fill)


class Targets(SignalStrategy):
    """Fixed per-row targets from a column the test adds (``tgt``)."""

    def __init__(self, column: str = "tgt") -> None:
        super().__init__(None)
        self.column = column

    def targets(self) -> pl.Expr:
        return pl.col(self.column)


def cfg(**kw: Any) -> BacktestConfig:
    base: dict[str, Any] = {"dataset": "test", "strategy": "x", "costs": "flat:0%"}
    base.update(kw)
    return BacktestConfig(**base)


def run_script(
    data: dict[str, list[Row]], actions: dict[int, Any], start: date = date(2024, 1, 1), **kw: Any
) -> Any:
    script = Script(actions)
    result = simulate(make_bars(data, start), cfg(**kw), strategy=loaded(script, "events"))
    return result, script


def check_identity(result: Any) -> None:
    eq = result.equity
    assert np.allclose(eq["cash"] + eq["holdings"], eq["equity"], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- config


def test_config_round_trip_and_validation() -> None:
    c = BacktestConfig(
        "d", "sma_cross", {"slow": "30", "fast": "10"}, symbols=("A",), start=date(2024, 1, 1)
    )
    assert list(c.params) == ["fast", "slow"]
    assert BacktestConfig.from_dict(c.to_dict()) == c
    assert c.to_dict()["start"] == "2024-01-01"
    for bad in (
        {"segment": "x"},
        {"fill": "mid"},
        {"cash": 0},
        {"participation": 0},
        {"margin": 2},
        {"on_reject": "x"},
        {"start": date(2024, 2, 1), "end": date(2024, 1, 1)},
    ):
        with pytest.raises(UsageError):
            BacktestConfig("d", "s", **bad)
    with pytest.raises(UsageError, match="unknown backtest config keys"):
        BacktestConfig.from_dict({"dataset": "d", "strategy": "s", "nope": 1})


# --------------------------------------------------------------------------- signals


def test_sma_cross_fills_at_next_open_with_statutory_charges() -> None:
    closes = [100.0] * 5 + [110.0] * 5 + [90.0] * 5
    rows = [(c + 0.5, c + 2, c - 2, c, 1_000_000) for c in closes]
    result = simulate(
        make_bars({"AAA": rows}),
        cfg(strategy="sma_cross", params={"fast": "2", "slow": "4"}, costs="statutory"),
    )
    fills = result.fills
    assert fills["side"].to_list() == ["buy", "sell"]
    # Signal on the close of bar 5 (fast > slow) trades at bar 6's open.
    assert fills["ts"][0] == result.equity["ts"][6]
    assert fills["price"][0] == 110.5
    assert fills["charge_total"][0] > 0
    assert (fills["charge_stt"] > 0).all()
    orders = result.orders
    assert orders["ts"][0] == result.equity["ts"][5]  # stamped with the signal's bar
    assert orders["status"].to_list() == ["filled", "filled"]
    trade = result.trades.row(0, named=True)
    assert trade["side"] == "long" and trade["quantity"] == 100
    assert trade["pnl"] == pytest.approx(
        (trade["exit_price"] - trade["entry_price"]) * 100 - fills["charge_total"].sum()
    )
    check_identity(result)
    assert result.bars == 15
    assert result.equity.schema["ts"] == TS_DTYPE
    # Frames are built once, on first read, and the repr stays short (no buffers).
    assert result.fills is fills and result.orders is orders
    assert "output" not in repr(result) and len(repr(result)) < 2000


def test_fill_close_trades_on_the_signal_bar() -> None:
    bars = make_bars({"AAA": flat(4)}).with_columns(tgt=pl.Series([None, 10.0, None, 0.0]))
    result = simulate(bars, cfg(fill="close"), strategy=loaded(Targets(), "targets"))
    assert result.fills["ts"].to_list() == result.equity["ts"].gather([1, 3]).to_list()
    assert result.fills["price"].to_list() == [100.0, 100.0]


def test_look_ahead_is_detected() -> None:
    class Peek(SignalStrategy):
        def targets(self) -> pl.Expr:
            return pl.when(pl.col("close").shift(-1).over("symbol") > pl.col("close")).then(10.0)

    rows = [(p, p + 1, p - 1, p, 10_000) for p in [100.0, 101, 99, 102, 98, 103, 97, 104]]
    with pytest.raises(StrategyError, match="looks ahead"):
        simulate(make_bars({"AAA": rows}), cfg(), strategy=loaded(Peek(None), "targets"))


def test_weights_buy_and_hold_invests_cash_across_symbols() -> None:
    result = simulate(
        make_bars({"AAA": flat(5), "BBB": flat(5, 50.0)}),
        cfg(strategy="buy_and_hold", costs="statutory"),
    )
    fills = result.fills
    assert fills["symbol"].to_list() == ["AAA", "BBB"]
    assert fills["quantity"][0] == 5000
    assert 9900 < fills["quantity"][1] < 10000  # what the cash left after charges pays for
    final = result.equity.row(-1, named=True)
    assert final["exposure"] == pytest.approx(1.0, abs=0.01)
    assert final["cash"] >= 0
    check_identity(result)


def test_momentum_rebalances_monthly_to_top_n() -> None:
    rng = np.random.default_rng(3)
    data = {}
    for k, sym in enumerate(["A", "B", "C", "D"]):
        closes = 100 * np.exp(np.cumsum(rng.normal(0.001 * k, 0.01, 120)))
        data[sym] = [(c, c * 1.01, c * 0.99, c, 1_000_000) for c in closes]
    result = simulate(
        make_bars(data), cfg(strategy="momentum", params={"lookback": "20", "top": "2"})
    )
    assert result.fills.height > 0
    held = result.fills.group_by("symbol").agg(pl.col("quantity").sum())
    assert held.height >= 2
    check_identity(result)


def test_signal_expression_errors_are_strategy_errors() -> None:
    class Broken(SignalStrategy):
        def targets(self) -> pl.Expr:
            return pl.col("nope")

    class NotExpr(SignalStrategy):
        def targets(self) -> Any:
            return 3

    class Raises(SignalStrategy):
        def weights(self) -> pl.Expr:
            raise RuntimeError("boom")

    bars = make_bars({"AAA": flat(3)})
    with pytest.raises(StrategyError, match="expression failed"):
        simulate(bars, cfg(), strategy=loaded(Broken(None), "targets"))
    with pytest.raises(StrategyError, match="must return a polars expression"):
        simulate(bars, cfg(), strategy=loaded(NotExpr(None), "targets"))
    with pytest.raises(StrategyError, match="RuntimeError: boom"):
        simulate(bars, cfg(), strategy=loaded(Raises(None), "weights"))


def test_no_sessions_is_one_line_error() -> None:
    bars = make_bars({"AAA": flat(1)}).with_columns(
        ts=pl.lit(datetime(2024, 1, 26)).dt.replace_time_zone("Asia/Kolkata")  # Republic Day
    )
    with pytest.raises(QuantcliError, match="no bars on NSE sessions"):
        simulate(bars, cfg(strategy="buy_and_hold"))


def test_non_session_bars_are_skipped() -> None:
    bars = make_bars({"AAA": flat(3)})
    holiday = bars.head(1).with_columns(
        ts=pl.lit(datetime(2024, 1, 26)).dt.replace_time_zone("Asia/Kolkata")
    )
    result = simulate(pl.concat([bars, holiday]), cfg(strategy="buy_and_hold"))
    assert result.bars == 3
    assert datetime(2024, 1, 26).date() not in result.equity["ts"].dt.date().to_list()


def test_sorted_bars_with_an_off_session_bar_drop_it_before_signals() -> None:
    # Sorted input is evaluated while the sessions are found; an off-session bar in it must
    # still not reach the strategy (its targets are redone on the session bars).
    closes = [100.0, 102.0, 99.0, 105.0, 104.0, 101.0, 107.0, 103.0, 108.0, 106.0]
    bars = make_bars({"AAA": [(c, c + 1, c - 1, c, 1_000_000) for c in closes]})
    saturday = bars.slice(4, 1).with_columns(
        ts=pl.lit(datetime(2024, 1, 6)).dt.replace_time_zone("Asia/Kolkata"), close=pl.lit(1e4)
    )
    with_saturday = pl.concat([bars.head(5), saturday, bars.tail(5)])
    strategy = load_strategy("sma_cross", {"fast": "2", "slow": "3", "qty": "10"})
    expected = simulate(bars, cfg(), strategy=strategy)
    result = simulate(with_saturday, cfg(), strategy=strategy)
    assert result.bars == len(closes)
    assert expected.fills.height > 0
    assert result.fills.equals(expected.fills)
    assert result.orders.equals(expected.orders)


# --------------------------------------------------------------------------- execution rules


def test_limit_and_stop_orders_fill_gap_aware() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 100_000),
        (95, 96, 94, 95, 100_000),  # gaps below the buy limit 98 -> fills at the open 95
        (100, 104, 99, 103, 100_000),  # buy stop 102 triggers inside the bar -> at 102
        (110, 112, 109, 111, 100_000),  # sell limit 105 gapped through -> at the open 110
        (111, 112, 110, 111, 100_000),
    ]

    def day0(ctx: Any, bar: Bar) -> None:
        ctx.buy("AAA", 10, limit=98.004)  # rounded down to the 0.01 tick: 98.0

    def day1(ctx: Any, bar: Bar) -> None:
        ctx.buy("AAA", 10, stop=102.0, tif="GTC")

    def day2(ctx: Any, bar: Bar) -> None:
        ctx.sell("AAA", 20, limit=105.0)

    result, script = run_script({"AAA": rows}, {0: day0, 1: day1, 2: day2})
    assert result.fills["price"].to_list() == [95.0, 102.0, 110.0]
    assert [f.side for f in script.fills] == ["buy", "buy", "sell"]
    assert result.orders["type"].to_list() == ["limit", "stop", "limit"]
    check_identity(result)


def test_stop_limit_and_tif_expiry_and_cancel() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 100_000),
        (100, 101, 99, 100, 100_000),  # DAY limit 90 never reached -> works today only
        (100, 101, 99, 100, 100_000),  # ... expired here; IOC limit at 90 expires at once
        (100, 106, 99, 104, 100_000),  # stop-limit 105/106 triggers, fills at the stop
        (100, 101, 99, 100, 100_000),
    ]
    ids: dict[str, int] = {}

    def day0(ctx: Any, bar: Bar) -> None:
        ctx.buy("AAA", 5, limit=90.0)
        ids["gtc"] = ctx.buy("AAA", 5, limit=80.0, tif="GTC")

    def day1(ctx: Any, bar: Bar) -> None:
        ctx.buy("AAA", 5, limit=90.0, tif="IOC")
        ctx.buy("AAA", 5, stop=105.0, limit=106.0, tif="GTC")
        assert len(ctx.open_orders("AAA")) == 4  # the DAY order works through today

    def day3(ctx: Any, bar: Bar) -> None:
        assert ctx.cancel(ids["gtc"]) is True
        assert ctx.cancel(ids["gtc"]) is False
        assert ctx.cancel(999) is False

    result, _ = run_script({"AAA": rows}, {0: day0, 1: day1, 3: day3})
    statuses = dict(zip(result.orders["order_id"], result.orders["status"], strict=True))
    assert statuses == {1: "expired", 2: "cancelled", 3: "expired", 4: "filled"}
    assert result.fills["price"].to_list() == [105.0]
    assert result.orders.filter(pl.col("order_id") == 2)["reason"][0] == "cancelled by the strategy"


def test_circuit_locked_bar_blocks_buys() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 100_000),
        (110, 110, 110, 110, 100_000),  # locked at the upper circuit: no sellers
        (111, 112, 110, 111, 100_000),
    ]
    result, _ = run_script({"AAA": rows}, {0: lambda ctx, bar: ctx.buy("AAA", 10, tif="GTC")})
    assert result.fills["ts"][0] == result.equity["ts"][2]
    assert result.fills["price"][0] == 111.0


def test_participation_cap_fills_partially_and_carries_over() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1_000)] * 4
    result, _ = run_script({"AAA": rows}, {0: lambda ctx, bar: ctx.buy("AAA", 250, tif="GTC")})
    assert result.fills["quantity"].to_list() == [100, 100, 50]
    # IOC: one bar, the rest expires.
    result, _ = run_script({"AAA": rows}, {0: lambda ctx, bar: ctx.buy("AAA", 250, tif="IOC")})
    assert result.fills["quantity"].to_list() == [100]
    assert result.orders["status"].to_list() == ["partially_filled"]


def test_slippage_and_tick_rounding_are_adverse() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1_000_000)] * 3

    def trade(ctx: Any, bar: Bar) -> None:
        ctx.buy("AAA", 10)

    result, _ = run_script(
        {"AAA": rows}, {0: trade, 1: lambda c, b: c.sell("AAA", 10)}, slippage="bps:7"
    )
    buy, sell = result.fills["price"].to_list()
    assert buy == 100.1  # 100.07 rounded up to the 0.05 tick... or 0.01 by the schedule
    assert sell == pytest.approx(99.93) or sell == 99.9
    assert (result.fills["slippage"] > 0).all()


def test_square_root_impact_grows_with_size() -> None:
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 40)))
    rows = [(c, c * 1.01, c * 0.99, c, 100_000) for c in closes]
    small, _ = run_script({"AAA": rows}, {30: lambda c, b: c.buy("AAA", 100)}, slippage="sqrt:1")
    big, _ = run_script({"AAA": rows}, {30: lambda c, b: c.buy("AAA", 9000)}, slippage="sqrt:1")
    per_share = [r.fills["slippage"][0] / r.fills["quantity"][0] for r in (small, big)]
    assert 0 < per_share[0] < per_share[1]


def test_delivery_short_is_rejected_or_errors() -> None:
    rows = flat(3)
    result, _ = run_script({"AAA": rows}, {0: lambda c, b: c.sell("AAA", 10)})
    order = result.orders.row(0, named=True)
    assert order["status"] == "rejected"
    assert order["reason"] == "short selling not allowed in this segment"
    assert result.fills.height == 0
    with pytest.raises(StrategyError, match="rejected"):
        run_script({"AAA": rows}, {0: lambda c, b: c.sell("AAA", 10)}, on_reject="error")
    bars = make_bars({"AAA": rows}).with_columns(tgt=pl.Series([-10.0, None, None]))
    with pytest.raises(StrategyError, match="short selling"):
        simulate(bars, cfg(on_reject="error"), strategy=loaded(Targets(), "targets"))


def test_insufficient_cash_cuts_delivery_buys() -> None:
    rows = flat(3, 1000.0)
    result, _ = run_script(
        {"AAA": rows}, {0: lambda c, b: c.buy("AAA", 5000, tif="GTC")}, cash=100_000
    )
    assert result.fills["quantity"].to_list() == [100]
    order = result.orders.row(0, named=True)
    assert order["status"] == "partially_filled" and order["reason"] == "insufficient cash"
    assert result.equity["cash"].min() >= 0


def test_intraday_daily_bars_square_off_at_close() -> None:
    rows = [(100, 102, 99, 101, 1_000_000)] * 4
    bars = make_bars({"AAA": rows}).with_columns(tgt=pl.lit(10.0))
    result = simulate(
        bars, cfg(segment="intraday", allow_short=True), strategy=loaded(Targets(), "targets")
    )
    # Bought at each open from bar 1, squared off at that bar's close.
    assert result.fills["side"].to_list() == ["buy", "sell"] * 3
    assert result.fills.filter(pl.col("side") == "sell")["price"].unique().to_list() == [101.0]
    assert (result.equity["holdings"] == 0).all()
    assert result.trades.height == 3


def test_intraday_bars_square_off_at_1520() -> None:
    stamps = pl.datetime_range(
        datetime(2024, 1, 2, 15, 10), datetime(2024, 1, 2, 15, 25), "5m", eager=True
    ).dt.replace_time_zone("Asia/Kolkata")
    bars = pl.DataFrame(
        {
            "symbol": "AAA",
            "ts": stamps,
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.0,
            "volume": 100_000,
        }
    )

    class Buyer(EventStrategy):
        def on_bar(self, ctx: Any, bar: Bar) -> None:
            if bar.index == 0:
                ctx.buy("AAA", 10)
            if bar.index == 2:
                ctx.buy("AAA", 10)  # after the square-off: rejected

    result = simulate(bars, cfg(segment="intraday"), strategy=loaded(Buyer(None), "events"))
    assert result.fills["side"].to_list() == ["buy", "sell"]
    assert result.fills["ts"][1].hour == 15 and result.fills["ts"][1].minute == 20
    assert result.orders["reason"].to_list()[-1] == "position squared off for the day (intraday)"


def test_futures_margin_and_daily_settlement() -> None:
    rows = [(100, 101, 99, 100, 10_000_000), (100, 106, 99, 105, 10_000_000)] + [
        (105, 106, 99, 102, 10_000_000)
    ] * 2
    bars = make_bars({"NIFTY": rows})
    # 1,000 lots of 50 at 100 = 5,000,000 notional; 20% margin = 1,000,000 > cash after charges.
    result, _ = run_script(
        {"NIFTY": rows},
        {0: lambda c, b: c.buy("NIFTY", 60_000), 1: lambda c, b: c.buy("NIFTY", 500)},
        segment="futures",
    )
    reasons = result.orders["reason"].to_list()
    assert reasons[0] == "insufficient margin"
    assert result.fills["quantity"].to_list() == [500]
    eq = result.equity
    check_identity(result)
    # Settled daily: holdings (unsettled P&L) are zero after each close.
    assert eq["holdings"].to_list() == [0.0] * 4
    assert eq["equity"][-1] == pytest.approx(1_000_000 + 500 * (102 - 105))
    assert bars.height == 4


def test_lot_sizes_round_orders_down() -> None:
    result, _ = run_script(
        {"NIFTY": flat(3)}, {0: lambda c, b: c.buy("NIFTY", 120)}, segment="futures"
    )
    lot = result.fills["quantity"][0]
    assert lot in (25, 50, 75, 100) and 120 // lot * lot == lot * (120 // lot)
    assert result.orders["quantity"][0] % lot == 0 or result.orders["quantity"][0] == lot
    tiny, _ = run_script({"NIFTY": flat(3)}, {0: lambda c, b: c.buy("NIFTY", 1)}, segment="futures")
    assert tiny.orders["reason"][0] == "quantity below one lot"


def test_split_and_dividend_on_ex_date() -> None:
    rows = [(100, 101, 99, 100, 1_000_000)] * 3 + [(50, 51, 49, 50, 1_000_000)] * 3
    bars = make_bars({"AAA": rows})
    ex = bars["ts"][3].date()
    actions = [
        CorporateAction("AAA", ex, "split", 2.0, 0.0),
        CorporateAction("AAA", bars["ts"][4].date(), "dividend", 1.0, 5.0),
        CorporateAction("ZZZ", ex, "split", 2.0, 0.0),
    ]
    script = Script(
        {0: lambda c, b: c.buy("AAA", 11), 4: lambda c, b: c.sell("AAA", c.position("AAA"))}
    )
    result = simulate(bars, cfg(), strategy=loaded(script, "events"), actions=actions)
    assert result.fills["quantity"].to_list() == [11, 22]
    trade = result.trades.row(0, named=True)
    assert trade["pnl"] == pytest.approx(22 * 50 - 11 * 100 + 22 * 5)
    # The split doubles the trade's quantity and halves its cost basis.
    assert (trade["quantity"], trade["entry_price"], trade["exit_price"]) == (22, 50.0, 50.0)
    check_identity(result)
    eq = result.equity["equity"].to_list()
    assert eq[3] == pytest.approx(eq[2])  # the split itself moves no value


def test_event_strategy_errors_name_the_bar() -> None:
    def boom(ctx: Any, bar: Bar) -> None:
        raise ValueError("bad thing")

    with pytest.raises(StrategyError, match=r"raised at 2024-01-0\d.*ValueError: bad thing"):
        run_script({"AAA": flat(3)}, {1: boom})
    with pytest.raises(StrategyError, match="unknown symbol"):
        run_script({"AAA": flat(3)}, {0: lambda c, b: c.buy("ZZZ", 1)})
    with pytest.raises(StrategyError, match="unknown tif"):
        run_script({"AAA": flat(3)}, {0: lambda c, b: c.buy("AAA", 1, tif="FOK")})
    with pytest.raises(StrategyError, match="positive integer"):
        run_script({"AAA": flat(3)}, {0: lambda c, b: c.buy("AAA", 1.5)})
    with pytest.raises(StrategyError, match="order price must be a positive number"):
        run_script({"AAA": flat(3)}, {0: lambda c, b: c.buy("AAA", 1, limit=-5.0)})


def test_context_reads_book() -> None:
    seen: dict[str, Any] = {}

    def look(ctx: Any, bar: Bar) -> None:
        seen.update(
            cash=ctx.cash,
            equity=ctx.equity,
            positions=ctx.positions,
            ts=ctx.ts,
            bar=repr(bar),
            orders=ctx.open_orders(),
        )
        assert ctx.order_target("AAA", 10) is None

    result, _ = run_script({"AAA": flat(4)}, {0: lambda c, b: c.order_target("AAA", 10), 2: look})
    assert seen["positions"] == {"AAA": 10}
    assert seen["equity"] == pytest.approx(seen["cash"] + 1000)
    assert seen["ts"] == result.equity["ts"][2]
    assert "AAA" in seen["bar"] and seen["orders"] == []


class Clock(EventStrategy):
    """Buys on every tenth bar and records, in each callback, what the context says the time is."""

    def __init__(self) -> None:
        super().__init__(None)
        self.on_bars: list[tuple[Any, Any]] = []
        self.on_fills: list[tuple[Any, Any]] = []

    def on_bar(self, ctx: Any, bar: Bar) -> None:
        self.on_bars.append((ctx.ts, bar.ts))
        if bar.index % 10 == 0:
            ctx.buy(bar.symbol, 1)

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.on_fills.append((ctx.ts, fill.ts))


def test_context_time_is_the_bar_or_fill_called_back() -> None:
    # 2 x 300 bars replay in chunks of several bars: the context's bar is read off the chunk.
    clock = Clock()
    data = {"AAA": flat(300), "BBB": flat(300, price=50.0)}
    simulate(make_bars(data), cfg(), strategy=loaded(clock, "events"))
    assert len(clock.on_bars) == 600 and len(clock.on_fills) == 60
    assert all(seen == own for seen, own in clock.on_bars)
    assert all(seen == own for seen, own in clock.on_fills)


def test_event_strategy_errors_in_on_fill_name_the_fill_bar() -> None:
    class Late(Clock):
        def on_fill(self, ctx: Any, fill: Any) -> None:
            raise ValueError(f"fill at {fill.ts:%Y-%m-%d}")

    with pytest.raises(StrategyError, match=r"raised at (\S+) .*fill at \1"):
        simulate(make_bars({"AAA": flat(300)}), cfg(), strategy=loaded(Late(), "events"))


def test_determinism_identical_ipc_bytes() -> None:
    rng = np.random.default_rng(7)
    data = {}
    for sym in ["A", "B", "C"]:
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 80)))
        data[sym] = [(c, c * 1.02, c * 0.98, c, 5_000) for c in closes]
    config = cfg(
        strategy="sma_cross", params={"fast": "3", "slow": "8"}, slippage="sqrt:0.5",
        costs="statutory",
    )  # fmt: skip

    def blob() -> list[bytes]:
        result = simulate(make_bars(data), config)
        out = []
        for frame in (result.orders, result.fills, result.equity, result.trades):
            buf = io.BytesIO()
            frame.write_ipc(buf)
            out.append(buf.getvalue())
        return out

    assert blob() == blob()


def test_progress_is_reported() -> None:
    seen: list[float] = []
    simulate(make_bars({"AAA": flat(5)}), cfg(strategy="buy_and_hold"), progress=seen.append)
    assert seen[-1] == 1.0 and all(0 <= p <= 1 for p in seen)
    seen.clear()
    run_script({"AAA": flat(5)}, {})
    Path  # noqa: B018 - keep the import for the file-strategy tests' helper
    assert not math.isnan(1.0)


def test_input_order_and_prev_close_column() -> None:
    rng = np.random.default_rng(5)
    data = {}
    for sym in ["B", "A"]:
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 40)))
        data[sym] = [(c, c * 1.01, c * 0.99, c, 50_000) for c in closes]
    bars = make_bars(data)
    config = cfg(strategy="sma_cross", params={"fast": "2", "slow": "5"})
    ordered = simulate(bars.sort("symbol", "ts"), config)
    shuffled = simulate(bars.sample(fraction=1.0, shuffle=True, seed=1), config)
    assert ordered.fills.equals(shuffled.fills)
    assert ordered.equity.equals(shuffled.equity)
    # A given prev_close decides circuit locks: this locked bar sits above it (upper circuit).
    locked = make_bars({"AAA": [(100, 101, 99, 100, 100_000), (90, 90, 90, 90, 100_000)] * 2})
    with_prev = locked.with_columns(prev_close=pl.Series([None, 80.0, None, 80.0]))
    buys = {0: lambda c, b: c.buy("AAA", 5, tif="GTC")}
    plain = simulate(locked, cfg(), strategy=loaded(Script(buys), "events"))
    given = simulate(with_prev, cfg(), strategy=loaded(Script(buys), "events"))
    assert plain.fills["ts"][0] == plain.equity["ts"][1]  # a lower-circuit lock lets buys fill
    assert given.fills["ts"][0] == given.equity["ts"][2]


def test_missing_columns_and_bad_specs() -> None:
    bars = make_bars({"AAA": flat(3)})
    for name in ("ts", "symbol"):
        hole = pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col(name))
        with pytest.raises(DataError, match=f"null {name} in row 1"):
            simulate(bars.with_columns(hole.alias(name)), cfg(strategy="buy_and_hold"))
    with pytest.raises(DataError, match=r"duplicate bar \(AAA, 2024-01-02"):
        simulate(pl.concat([bars, bars.slice(1, 1)]), cfg(strategy="buy_and_hold"))
    with pytest.raises(DataError, match="lack required columns: volume"):
        simulate(make_bars({"AAA": flat(3)}).drop("volume"), cfg(strategy="buy_and_hold"))
    for spec in ("nope", "bps", "bps:x", "bps:-1", "none:3"):
        with pytest.raises(UsageError):
            parse_slippage(spec)
    for spec in ("flat", "flat:x%", "flat:-1%", "zero"):
        with pytest.raises(UsageError):
            parse_costs(spec)
    assert parse_costs("flat:0.05%").flat_rate == pytest.approx(0.0005)
    assert parse_slippage("sqrt:0.1").fraction(100, 0, 0.02) == pytest.approx(0.002)
    assert parse_slippage("spread:10").fraction(1, 1) == pytest.approx(0.0005)


def test_derivative_ticks_and_lots_by_symbol() -> None:
    rows = flat(3, 250.0)
    result, _ = run_script(
        {"NIFTY": rows, "RELIANCE": rows},
        {1: lambda c, b: c.buy("NIFTY", 500), 0: lambda c, b: c.buy("RELIANCE", 5000)},
        segment="futures",
        slippage="bps:3",
        start=date(2026, 8, 3),
    )
    prices = dict(zip(result.fills["symbol"], result.fills["price"], strict=True))
    assert prices["NIFTY"] == 250.1  # index futures tick 0.05 (index below 15,000)
    assert prices["RELIANCE"] in (250.1, 250.08)  # stock futures follow the equity ticks
    options, _ = run_script(
        {"NIFTY": flat(3, 80.0)}, {0: lambda c, b: c.buy("NIFTY", 1)}, segment="options"
    )
    assert options.orders["reason"][0] == "quantity below one lot"


def test_event_progress_and_other_symbol_orders() -> None:
    seen: list[float] = []
    script = Script({0: lambda c, b: c.buy("BBB", 3)})
    bars = make_bars({"AAA": flat(150), "BBB": flat(150)})
    result = simulate(bars, cfg(), strategy=loaded(script, "events"), progress=seen.append)
    assert result.fills["symbol"].to_list() == ["BBB"]
    assert len(seen) > 10 and seen[-1] == 1.0


def test_options_pay_premium_from_cash_and_margin_short_sales() -> None:
    rows = flat(3, 100.0)
    bought, _ = run_script(
        {"NIFTY": rows}, {0: lambda c, b: c.buy("NIFTY", 20_000, tif="GTC")},
        segment="options", cash=50_000,
    )  # fmt: skip
    assert bought.fills["quantity"][0] * 100 <= 50_000
    assert bought.equity["cash"].min() >= 0
    sold, _ = run_script(
        {"NIFTY": rows}, {0: lambda c, b: c.sell("NIFTY", 20_000)},
        segment="options", cash=50_000, allow_short=True,
    )  # fmt: skip
    assert sold.orders["reason"][0] == "insufficient margin"


def test_simulate_honours_symbols_and_dates() -> None:
    bars = make_bars({"AAA": flat(10), "BBB": flat(10, 50.0)})
    config = cfg(
        strategy="buy_and_hold",
        symbols=("BBB",),
        start=bars["ts"][2].date(),
        end=bars["ts"][6].date(),
    )
    result = simulate(bars, config)
    assert result.bars == 5
    assert result.fills["symbol"].to_list() == ["BBB"]
    assert result.equity["ts"][0] == bars["ts"][2]
    with pytest.raises(NotFoundError, match="symbol ZZZ not in the bars"):
        simulate(bars, cfg(strategy="buy_and_hold", symbols=("ZZZ",)))


# --------------------------------------------------------------------------- DP charge


def _two_sessions_of_5m(n_per_day: int = 6) -> pl.DataFrame:
    stamps = [
        datetime(day.year, day.month, day.day, 9, 15) + timedelta(minutes=5 * k)
        for day in (date(2024, 1, 2), date(2024, 1, 3))
        for k in range(n_per_day)
    ]
    return pl.DataFrame(
        {
            "symbol": "AAA",
            "ts": pl.Series(stamps).dt.replace_time_zone("Asia/Kolkata"),
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.0,
            "volume": 1_000,  # 10% participation: at most 100 shares a bar
        }
    )


def test_dp_charge_once_per_symbol_and_session() -> None:
    # Signal path: buy 200 on day one, sell them on day two in two 100-share fills.
    bars = _two_sessions_of_5m().with_columns(
        tgt=pl.Series([200.0] + [None] * 5 + [0.0] + [None] * 5)
    )
    result = simulate(bars, cfg(costs="statutory"), strategy=loaded(Targets(), "targets"))
    sells = result.fills.filter(pl.col("side") == "sell")
    assert sells["quantity"].to_list() == [100, 100]
    assert sells["charge_dp"][0] > 0 and sells["charge_dp"][1] == 0.0
    assert result.fills.filter(pl.col("side") == "buy")["charge_dp"].to_list() == [0.0, 0.0]
    components = [
        c for c in result.fills.columns if c.startswith("charge_") and c != "charge_total"
    ]
    assert np.allclose(
        result.fills.select(pl.sum_horizontal(components)), result.fills[["charge_total"]]
    )
    check_identity(result)

    # Event path: two sells on day one's later bars pay one DP, a sell on day two pays another.
    def buy(c: Any, b: Bar) -> None:
        c.buy("AAA", 90)

    def sell(c: Any, b: Bar) -> None:
        c.sell("AAA", 30)

    script = Script({0: buy, 2: sell, 3: sell, 7: sell})
    events = simulate(
        _two_sessions_of_5m(), cfg(costs="statutory"), strategy=loaded(script, "events")
    )
    dp = events.fills.filter(pl.col("side") == "sell")["charge_dp"].to_list()
    assert dp[0] > 0 and dp[1] == 0.0 and dp[2] == dp[0]


def test_flat_costs_never_charge_dp() -> None:
    bars = _two_sessions_of_5m().with_columns(
        tgt=pl.Series([200.0] + [None] * 5 + [0.0] + [None] * 5)
    )
    result = simulate(bars, cfg(costs="flat:0.05%"), strategy=loaded(Targets(), "targets"))
    assert result.fills["charge_dp"].to_list() == [0.0] * 4


# --------------------------------------------------------------------------- preparation paths


def test_unsorted_symbols_and_many_symbols_look_ahead() -> None:
    rng = np.random.default_rng(9)
    data = {}
    for sym in [f"S{k:02d}" for k in range(12)]:
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
        data[sym] = [(c, c * 1.01, c * 0.99, c, 50_000) for c in closes]
    bars = make_bars(data)
    config = cfg(strategy="sma_cross", params={"fast": "2", "slow": "5"})
    by_symbol = simulate(bars, config)
    # Symbols out of order (not grouped), and a null-free Categorical column: the slow path.
    reversed_ = simulate(bars.sort("symbol", "ts", descending=[True, False]), config)
    assert by_symbol.fills.equals(reversed_.fills)

    class PeekOne(SignalStrategy):
        # Looks ahead on every symbol: the check sees it on its slice of 8 of the 12 symbols.
        def targets(self) -> pl.Expr:
            ahead = pl.col("close").shift(-1).over("symbol") > pl.col("close")
            return pl.when(ahead).then(10.0).otherwise(0.0)

    with pytest.raises(StrategyError, match="looks ahead"):
        simulate(bars, cfg(), strategy=loaded(PeekOne(None), "targets"))

    class CrossPeek(SignalStrategy):
        # A cross-section of the next bar's returns: look-ahead through .over("ts").
        def features(self) -> list[pl.Expr]:
            return [(pl.col("close").shift(-1) / pl.col("close")).over("symbol").alias("nxt")]

        def targets(self) -> pl.Expr:
            return pl.when(pl.col("nxt").mean().over("ts") > 1.1).then(10.0).otherwise(0.0)

    with pytest.raises(StrategyError, match="looks ahead"):
        simulate(bars, cfg(), strategy=loaded(CrossPeek(None), "targets"))


def test_strategy_errors_come_before_contract_errors() -> None:
    # Targets are evaluated beside the replay arrays; the strategy's error still wins.
    bars = make_bars({"NOSUCHFUT": flat(5)}).with_columns(tgt=pl.lit(1.0))

    class Broken(SignalStrategy):
        def targets(self) -> pl.Expr:
            return pl.col("no_such_column")

    with pytest.raises(StrategyError, match="no_such_column"):
        simulate(bars, cfg(segment="futures"), strategy=loaded(Broken(None), "targets"))
    with pytest.raises(NotFoundError, match="NOSUCHFUT"):
        simulate(bars, cfg(segment="futures"), strategy=loaded(Targets(), "targets"))
