"""An event strategy: a Donchian-channel breakout with a trailing stop.

Buys ``qty`` shares with a stop order one tick above the highest high of the last ``lookback``
bars; once long, keeps a GTC stop below the lowest low of the last ``exit_lookback`` bars and
moves it up as the channel rises. Path-dependent (the stop only ratchets up), which is what the
event style is for. Channel levels come from the bars' split/bonus-adjusted prices, the units
order prices are given in, so a split inside the history moves no level.

    quantcli backtest --dataset nse --strategy examples/breakout.py:Breakout -p lookback=20
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from quantcli.backtest.strategy import EventStrategy


class Breakout(EventStrategy):
    """Channel breakout entry, ratcheting channel stop exit."""

    @dataclass(frozen=True)
    class Params:
        lookback: int = 20
        exit_lookback: int = 10
        qty: int = 10

    params: Params

    def __init__(self, params: Params) -> None:
        if params.lookback < 2 or params.exit_lookback < 2 or params.qty < 1:
            raise ValueError("lookback and exit_lookback must be >= 2 and qty >= 1")
        super().__init__(params)
        self.highs: dict[str, deque[float]] = {}
        self.lows: dict[str, deque[float]] = {}
        self.stop_order: dict[str, int] = {}
        self.stop_price: dict[str, float] = {}

    def on_bar(self, ctx: Any, bar: Any) -> None:
        highs = self.highs.setdefault(bar.symbol, deque(maxlen=self.params.lookback))
        lows = self.lows.setdefault(bar.symbol, deque(maxlen=self.params.exit_lookback))
        position = ctx.position(bar.symbol)
        if position == 0 and len(highs) == highs.maxlen and not ctx.open_orders(bar.symbol):
            ctx.buy(bar.symbol, self.params.qty, stop=max(highs), tif="DAY")
        elif position > 0 and len(lows) == lows.maxlen:
            self._trail(ctx, bar.symbol, position, min(lows))
        highs.append(bar.high)
        lows.append(bar.low)

    def _trail(self, ctx: Any, symbol: str, position: int, level: float) -> None:
        # The stop only moves up: replace the working stop when the channel floor rises.
        if level <= self.stop_price.get(symbol, 0.0):
            return
        previous = self.stop_order.pop(symbol, None)
        if previous is not None:
            ctx.cancel(previous)
        self.stop_order[symbol] = ctx.sell(symbol, position, stop=level, tif="GTC")
        self.stop_price[symbol] = level

    def on_fill(self, ctx: Any, fill: Any) -> None:
        if ctx.position(fill.symbol) == 0:
            self.stop_order.pop(fill.symbol, None)
            self.stop_price.pop(fill.symbol, None)
