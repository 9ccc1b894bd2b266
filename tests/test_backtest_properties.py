"""Property tests: the book never drifts, whatever the strategy and the data."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import BacktestResult, simulate
from quantcli.backtest.strategy import EventStrategy, LoadedStrategy, SignalStrategy
from quantcli.market.calendar import sessions
from quantcli.market.instruments import lot_size

DAYS = sessions(date(2024, 1, 1), date(2024, 12, 31))
HOLIDAY = datetime(2024, 1, 26)  # Republic Day: bars stamped on it must be ignored


@st.composite
def bar_rows(draw: Any, n: int) -> list[tuple[float, float, float, float, int]]:
    rows = []
    for _ in range(n):
        o = draw(st.floats(50, 150, allow_nan=False))
        c = draw(st.floats(50, 150, allow_nan=False))
        locked = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
        if locked:
            o = c
        hi = max(o, c) + (0 if locked else draw(st.floats(0, 5)))
        lo = min(o, c) - (0 if locked else draw(st.floats(0, 5)))
        vol = draw(st.sampled_from([0, 10, 1_000, 100_000, 10_000_000]))
        rows.append((round(o, 2), round(hi, 2), round(lo, 2), round(c, 2), vol))
    return rows


@st.composite
def scenarios(draw: Any) -> tuple[pl.DataFrame, BacktestConfig, str]:
    segment = draw(st.sampled_from(["delivery", "intraday", "futures", "options"]))
    derivative = segment in ("futures", "options")
    names = ["NIFTY", "BANKNIFTY"] if derivative else ["AAA", "BBB", "CCC"]
    symbols = names[: draw(st.integers(1, len(names)))]
    n = draw(st.integers(2, 30))
    frames = []
    for sym in symbols:
        rows = draw(bar_rows(n))
        # A derivative target below one lot is refused (it could never trade): draw whole
        # lots' worth or nothing (NIFTY's lot is 50, BANKNIFTY's 15 in these days).
        smallest = 50 if derivative else 1
        shares = st.integers(-300, 300).map(lambda t, m=smallest: float(t) if abs(t) >= m else 0.0)
        targets = draw(st.lists(st.one_of(st.none(), shares), min_size=n, max_size=n))
        frames.append(
            pl.DataFrame(
                {
                    "symbol": sym,
                    "ts": [datetime(d.year, d.month, d.day) for d in DAYS[:n]],
                    "open": [r[0] for r in rows],
                    "high": [r[1] for r in rows],
                    "low": [r[2] for r in rows],
                    "close": [r[3] for r in rows],
                    "volume": [r[4] for r in rows],
                    "tgt": targets,
                },
                schema_overrides={"tgt": pl.Float64},
            )
        )
    bars = pl.concat(frames)
    holiday = bars.head(1).with_columns(ts=pl.lit(HOLIDAY))
    bars = pl.concat([bars, holiday]).with_columns(
        pl.col("ts").dt.replace_time_zone("Asia/Kolkata")
    )
    config = BacktestConfig(
        dataset="prop",
        strategy="random",
        params={},
        cash=draw(st.sampled_from([5_000.0, 100_000.0, 10_000_000.0])),
        segment=segment,
        costs=draw(st.sampled_from(["statutory", "flat:0.1%"])),
        slippage=draw(st.sampled_from(["none", "bps:5", "spread:10", "sqrt:0.5"])),
        fill=draw(st.sampled_from(["open", "close"])),
        participation=draw(st.sampled_from([0.01, 0.1, 1.0])),
        allow_short=draw(st.booleans()),
    )
    kind = draw(st.sampled_from(["targets", "events"]))
    return bars, config, kind


class RandomTargets(SignalStrategy):
    def targets(self) -> pl.Expr:
        return pl.col("tgt")


class RandomOrders(EventStrategy):
    """Places seeded-random market/limit/stop orders and cancels some."""

    def __init__(self, seed: int) -> None:
        super().__init__(None)
        self.rng = np.random.default_rng(seed)

    def on_bar(self, ctx: Any, bar: Any) -> None:
        r = self.rng.random()
        qty = int(self.rng.integers(1, 200))
        side = ctx.buy if self.rng.random() < 0.6 else ctx.sell
        tif = ("DAY", "IOC", "GTC")[int(self.rng.integers(0, 3))]
        if r < 0.3:
            side(bar.symbol, qty, tif=tif)
        elif r < 0.5:
            side(bar.symbol, qty, limit=bar.close * (0.97 + 0.06 * self.rng.random()), tif=tif)
        elif r < 0.6:
            side(bar.symbol, qty, stop=bar.close * (0.97 + 0.06 * self.rng.random()), tif=tif)
        elif r < 0.7:
            p = bar.close * (0.97 + 0.06 * self.rng.random())
            side(bar.symbol, qty, stop=p, limit=p * 1.01, tif=tif)
        elif r < 0.8:
            for order in ctx.open_orders(bar.symbol)[:1]:
                ctx.cancel(order.order_id)


def run(bars: pl.DataFrame, config: BacktestConfig, kind: str) -> BacktestResult:
    instance: Any = RandomTargets(None) if kind == "targets" else RandomOrders(config.seed)
    strategy = LoadedStrategy("random", instance, kind, "h", {})
    return simulate(bars, config, strategy=strategy)


def ipc(result: BacktestResult) -> list[bytes]:
    out = []
    for frame in (result.orders, result.fills, result.equity, result.trades):
        buf = io.BytesIO()
        frame.write_ipc(buf)
        out.append(buf.getvalue())
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(scenarios())
def test_book_invariants(scenario: tuple[pl.DataFrame, BacktestConfig, str]) -> None:
    bars, config, kind = scenario
    result = run(bars, config, kind)
    eq = result.equity
    # Accounting identity at every row.
    assert np.allclose(eq["cash"] + eq["holdings"], eq["equity"], rtol=1e-12, atol=1e-6)
    fills = result.fills
    event(f"{kind} {config.segment}: {'fills' if fills.height else 'no fills'}")
    charge_cols = [c for c in fills.columns if c.startswith("charge_")]
    assert all((fills[c] >= 0).all() for c in charge_cols)
    assert (fills["quantity"] > 0).all()
    # No fills (and no equity rows) on non-sessions.
    assert HOLIDAY.date() not in fills["ts"].dt.date().to_list()
    assert HOLIDAY.date() not in eq["ts"].dt.date().to_list()
    segment = config.segment if config.segment in ("futures", "options") else "equity"
    for sym, qty, ts in fills.select("symbol", "quantity", "ts").iter_rows():
        assert qty % lot_size(sym, ts.date(), segment) == 0
    # Orders never overfill.
    orders = result.orders
    assert (orders["filled_quantity"] <= orders["quantity"]).all()
    signed = fills.select(
        "symbol", q=pl.when(pl.col("side") == "buy").then("quantity").otherwise(-pl.col("quantity"))
    )
    if config.segment == "delivery" or not config.allow_short:
        # Positions never go short where shorting is not allowed.
        running = signed.select(pl.col("q").cum_sum().over("symbol"))
        assert (running["q"] >= 0).all()
    if config.segment in ("delivery", "options") and not config.allow_short:
        # Cash pays for delivery buys and option premiums: never overdrawn.
        assert (eq["cash"] >= -1e-6).all()
    if config.segment == "intraday":
        assert (eq["holdings"].abs() < 1e-9).all()
    # Determinism: a second run gives byte-identical frames.
    assert ipc(run(bars, config, kind)) == ipc(result)
