"""The one compiled replay core (quantcli.backtest.kernel.advance) as event strategies reach
it: the book an event strategy reads is the same whenever it reads it (the event loop leaves
the book behind while nothing can call the strategy back), orders placed by on_fill wait for
the next matching pass, every entry into compiled code has one signature, and two processes
can compile into one empty numba cache at once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numba.core.types import boolean, none
from test_backtest_engine import Row, Script, cfg, flat, loaded, make_bars, run_script

from quantcli.backtest import kernel, orders
from quantcli.backtest.engine import simulate
from quantcli.backtest.kernel import params_for
from quantcli.backtest.prepare import prepare
from quantcli.backtest.strategy import EventStrategy, load_strategy
from quantcli.errors import StrategyError


class Reader(EventStrategy):
    """Trades on a fixed plan and records what the book says on every ``every``-th bar."""

    def __init__(self, every: int) -> None:
        super().__init__(None)
        self.every = every
        self.seen: list[tuple[int, str, int, float, float, int]] = []

    def on_bar(self, ctx: Any, bar: Any) -> None:
        if bar.index % 17 == 3:
            ctx.buy(bar.symbol, 10, limit=bar.close * 0.99, tif="GTC")
        elif bar.index % 23 == 5 and ctx.position(bar.symbol) > 0:
            ctx.sell(bar.symbol, ctx.position(bar.symbol), tif="DAY")
        if bar.index % self.every == 0:
            self.seen.append(
                (
                    bar.index,
                    bar.symbol,
                    ctx.position(bar.symbol),
                    round(ctx.cash, 6),
                    round(ctx.equity, 6),
                    len(ctx.open_orders()),
                )
            )


def _walk(n: int, seed: int) -> dict[str, list[Row]]:
    rng = np.random.default_rng(seed)
    data: dict[str, list[Row]] = {}
    for name in ("AAA", "BBB"):
        closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 1)
        data[name] = [(c, c * 1.02, c * 0.98, c, 50_000) for c in closes.tolist()]
    return data


def test_the_book_reads_the_same_however_rarely_the_strategy_looks() -> None:
    bars = make_bars(_walk(150, 3))
    every_bar, rarely = Reader(1), Reader(7)
    a = simulate(bars, cfg(costs="statutory"), strategy=loaded(every_bar, "events"))
    b = simulate(bars, cfg(costs="statutory"), strategy=loaded(rarely, "events"))
    assert a.fills.height > 5
    assert a.fills.equals(b.fills) and a.orders.equals(b.orders) and a.equity.equals(b.equity)
    assert rarely.seen == [row for row in every_bar.seen if row[0] % 7 == 0]


def test_an_order_placed_by_on_fill_waits_for_the_next_pass() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 100_000)] * 4

    class Chain(Script):
        def on_fill(self, ctx: Any, fill: Any) -> None:
            super().on_fill(ctx, fill)
            if len(self.fills) < 3:
                ctx.buy("AAA", 5, tif="GTC")

    script = Chain({0: lambda ctx, bar: ctx.buy("AAA", 5, tif="GTC")})
    result = simulate(make_bars({"AAA": rows}), cfg(), strategy=loaded(script, "events"))
    # One fill per bar: each order placed in an on_fill trades at the next bar's open.
    assert result.fills["ts"].to_list() == result.equity["ts"][1:4].to_list()
    assert [f.order_id for f in script.fills] == [1, 2, 3]


def test_an_order_read_earlier_follows_its_fills() -> None:
    # Orders are rows of the run's buffers; what open_orders returns is a view of them.
    held: list[Any] = []

    def place(ctx: Any, bar: Any) -> None:
        ctx.buy("AAA", 250, tif="GTC")
        held.extend(ctx.open_orders("AAA"))

    result, _ = run_script({"AAA": [(100, 101, 99, 100, 1_000)] * 4}, {0: place})
    assert result.fills["quantity"].to_list() == [100, 100, 50]
    (order,) = held
    assert (order.filled, order.remaining, order.status) == (250, 0, orders.FILLED)
    assert not order.is_open and order.order_id == 1 and order.is_buy
    assert repr(order) == "Order(1 buy 250 AAA market GTC filled, filled 250)"


def test_cancel_names_an_order_id_that_is_not_an_integer() -> None:
    with pytest.raises(StrategyError, match=r"an order id is an integer, got 1\.5"):
        run_script({"AAA": flat(3)}, {1: lambda ctx, bar: ctx.cancel(1.5)})


def test_every_run_enters_the_replay_through_one_signature_per_set_of_switches() -> None:
    # A run with one tick for every price and one with price bands, signal and event
    # strategies: one Run type serves them all; only the switches tell the specialisations
    # of the loop apart (a signal run and an event run differ in one).
    flat_bars = make_bars({"AAA": flat(6)})
    # From 2024-06-10 a price below 250 ticks 0.01, above it 0.05.
    rows: list[Row] = [(c, c + 1, c - 1, c, 10_000) for c in (240.0, 260.0) * 3]
    banded = make_bars({"AAA": rows}, start=date(2025, 6, 2))
    buy_and_hold = cfg(strategy="buy_and_hold"), load_strategy("buy_and_hold", {})
    assert prepare(flat_bars, *buy_and_hold, []).ticks.bounds.shape[1] == 0
    assert prepare(banded, *buy_and_hold, []).ticks.bounds.shape[1] > 0
    for bars in (flat_bars, banded):
        simulate(bars, cfg(strategy="buy_and_hold"))
        simulate(bars, cfg(), strategy=loaded(Script({0: lambda c, b: c.buy("AAA", 1)}), "events"))
    runs = {signature[:2] for signature in kernel.advance.signatures}
    switches = {signature[2:] for signature in kernel.advance.signatures}
    assert len(runs) == 1
    assert {(none, none, none), (none, none, boolean)} <= switches
    assert {t for s in switches for t in s} <= {none, boolean}


def test_switches_leave_out_what_a_run_cannot_meet() -> None:
    daily = params_for(cfg())
    intraday = params_for(cfg(segment="intraday"))
    assert kernel.switches(daily, 0) == (None, None, None)
    assert kernel.switches(intraday, 0) == (True, None, None)
    assert kernel.switches(daily, 2) == (None, True, None)
    assert kernel.switches(params_for(cfg(), events=True), 0) == (None, None, True)


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_backtest_engine import Script, cfg, flat, loaded, make_bars
from quantcli.backtest.engine import simulate
bars = make_bars({{"AAA": flat(5)}})
a = simulate(bars, cfg(strategy="buy_and_hold"))
b = simulate(bars, cfg(), strategy=loaded(Script({{1: lambda c, x: c.buy("AAA", 3)}}), "events"))
print(a.fills.height, b.fills["price"].to_list())
"""


def test_two_processes_compile_into_one_empty_cache_at_once(tmp_path: Path) -> None:
    # numba writes each cache entry to a temporary file and renames it into place, and keys
    # entries by source file and signature, so racing compilers write the same bytes.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    code = CHILD.format(tests=str(Path(__file__).parent))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=900) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs[0][1][-2000:]
    assert outputs[0][0] == outputs[1][0] == b"1 [100.0]\n"
    assert any((tmp_path / "numba").rglob("kernel.advance-*.nbc"))
