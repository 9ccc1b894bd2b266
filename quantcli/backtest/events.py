"""The Python replay loop for event strategies.

:class:`EventRun` walks the prepared bars in (ts, symbol) order and calls the strategy's
``on_bar`` with a :class:`Bar`; the strategy trades through its :class:`Context`. Orders work
until filled, cancelled or expired, and fill by the same rules and into the same book as the
compiled signal kernel (quantcli.backtest.fills.execute, quantcli.backtest.kernel.Book).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numba
import numpy as np

from quantcli.backtest import kernel
from quantcli.backtest.accounting import (
    CASH,
    MARK,
    N_FILLS,
    POS,
    SQ_DAY,
    apply_action,
    holdings,
    settle,
)
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.fills import execute, trigger_price
from quantcli.backtest.inputs import EOD, LAST_OF_TS, SQUARE_OFF
from quantcli.backtest.kernel import CHUNK, Book, Output, Prepared
from quantcli.backtest.orders import (
    DAY,
    EV_CANCEL,
    EV_EXPIRE,
    EV_FILL,
    EV_FILL_ALL,
    EV_REJECT,
    F_ID,
    F_PRICE,
    IOC,
    LIMIT,
    MARKET,
    NO_REASON,
    O_FLOAT_COLS,
    O_INT_COLS,
    R_ACTION,
    R_LOT,
    R_SQUARED_OFF,
    R_USER,
    REASONS,
    STOP,
    STOP_LIMIT,
    TIFS,
    Fill,
    Order,
    transition,
)
from quantcli.backtest.strategy import LoadedStrategy
from quantcli.core.timezone import ist_datetime
from quantcli.errors import QuantcliError, StrategyError
from quantcli.market.instruments import ROUND_DOWN, ROUND_UP, round_to_tick_kernel, tick_kind


class Bar:
    """The bar an event strategy sees (plain Python values; ``ts`` built on first access).

    ``open``, ``high``, ``low``, ``close`` and ``volume`` are split/bonus-adjusted like a signal
    strategy's columns (quantcli.backtest.engine.strategy_view); ``raw_open`` ... ``raw_volume``
    are the traded values.
    """

    __slots__ = (
        "close", "high", "index", "low", "open", "raw_close", "raw_high", "raw_low", "raw_open",
        "raw_volume", "symbol", "ts_us", "volume",
    )  # fmt: skip

    def __init__(
        self,
        index: int,
        symbol: str,
        ts_us: int,
        ohlcv: tuple[float, float, float, float, float],
        factor: float = 1.0,
    ) -> None:
        """A bar from its traded (open, high, low, close, volume) and its adjustment
        ``factor`` (prices are multiplied by it and the volume divided)."""
        open_, high, low, close, volume = ohlcv
        self.index = index
        self.symbol = symbol
        self.ts_us = ts_us
        self.raw_open = open_
        self.raw_high = high
        self.raw_low = low
        self.raw_close = close
        self.raw_volume = volume
        self.open = open_ * factor
        self.high = high * factor
        self.low = low * factor
        self.close = close * factor
        self.volume = volume / factor

    @property
    def ts(self) -> datetime:
        """The bar's timestamp (IST)."""
        return ist_datetime(self.ts_us)

    def __repr__(self) -> str:
        return (
            f"Bar({self.symbol} {self.ts:%Y-%m-%d %H:%M} o={self.open} h={self.high} "
            f"l={self.low} c={self.close} v={self.volume})"
        )


class Context:
    """What an event strategy can do: read the book, place and cancel orders."""

    def __init__(self, run: EventRun) -> None:
        self._run = run
        self.params = (
            run.strategy.instance.params if hasattr(run.strategy.instance, "params") else None
        )
        self.symbols: tuple[str, ...] = tuple(run.prep.symbols)

    @property
    def ts(self) -> datetime:
        """Timestamp of the bar being processed."""
        return ist_datetime(self._run.prep.ts[self._run.i])

    @property
    def cash(self) -> float:
        """Cash now."""
        return float(self._run.book.ledger.acct[CASH])

    @property
    def equity(self) -> float:
        """Cash plus holdings at the last prices."""
        led = self._run.book.ledger
        value, _ = holdings(led.state, self._run.futures)
        return float(led.acct[CASH] + value)

    def position(self, symbol: str) -> int:
        """Signed position in ``symbol`` (0 when flat)."""
        return int(self._run.book.ledger.state[self._run.code(symbol), POS])

    @property
    def positions(self) -> dict[str, int]:
        """Non-zero positions by symbol."""
        pos = self._run.book.ledger.state[:, POS]
        return {self.symbols[k]: int(pos[k]) for k in np.flatnonzero(pos)}

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Working orders (of one symbol, or all), oldest first."""
        run = self._run
        if symbol is not None:
            return list(run.working[run.code(symbol)])
        return sorted((o for w in run.working for o in w), key=lambda o: o.order_id)

    def buy(
        self,
        symbol: str,
        quantity: int,
        *,
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "DAY",
    ) -> int:
        """Place a buy order (market, or limit/stop/stop-limit by the prices given).

        ``quantity`` is in traded shares (like positions); ``limit`` and ``stop`` are in the
        bars' adjusted units (like ``bar.high``), turned into traded prices here. On a split or
        bonus ex-date the symbol's working orders are converted like its position (traded
        prices divided by the ratio, the quantity left multiplied), so they keep their meaning.
        """
        return self._run.place(symbol, True, quantity, limit, stop, tif)

    def sell(
        self,
        symbol: str,
        quantity: int,
        *,
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "DAY",
    ) -> int:
        """Place a sell order (see :meth:`buy` for the units)."""
        return self._run.place(symbol, False, quantity, limit, stop, tif)

    def order_target(self, symbol: str, target: int, *, tif: str = "DAY") -> int | None:
        """Market order for the difference between ``target`` and the position (None if 0)."""
        delta = int(target) - self.position(symbol)
        if delta == 0:
            return None
        return self._run.place(symbol, delta > 0, abs(delta), None, None, tif)

    def cancel(self, order_id: int) -> bool:
        """Cancel a working order; False when it is not working."""
        return self._run.cancel(order_id)


class EventRun:
    """The Python replay loop for event strategies."""

    def __init__(self, prep: Prepared, config: BacktestConfig, strategy: LoadedStrategy) -> None:
        self.prep = prep
        self.config = config
        self.strategy = strategy
        self.book = Book(prep, config)
        self.orders: list[Order] = []
        self.working: list[list[Order]] = [[] for _ in prep.symbols]
        self.codes = {s: k for k, s in enumerate(prep.symbols)}
        self.futures = config.segment == "futures"
        self.intraday = config.segment == "intraday"
        self.fill_close = config.fill == "close"
        self.i = 0
        self.ctx = Context(self)
        self._execute = _entry_point(execute, self.book.run, 0, 0, 0.0, 0.0, False)

    def code(self, symbol: str) -> int:
        k = self.codes.get(symbol)
        if k is None:
            raise StrategyError(f"strategy {self.strategy.name}: unknown symbol {symbol!r}")
        return k

    # -- orders

    def place(
        self,
        symbol: str,
        is_buy: bool,
        quantity: int,
        limit: float | None,
        stop: float | None,
        tif: str,
    ) -> int:
        s = self.code(symbol)
        tif_code = TIFS.index(tif.upper()) if tif.upper() in TIFS else -1
        if tif_code < 0:
            raise StrategyError(
                f"strategy {self.strategy.name}: unknown tif {tif!r} (DAY, IOC, GTC)"
            )
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int | np.integer)
            or quantity <= 0
        ):
            raise StrategyError(
                f"strategy {self.strategy.name}: order quantity must be a positive integer, "
                f"got {quantity!r}"
            )
        kind = MARKET
        if limit is not None and stop is not None:
            kind = STOP_LIMIT
        elif limit is not None:
            kind = LIMIT
        elif stop is not None:
            kind = STOP
        i = self.i
        at = i if self.prep.bars.sym[i] == s else self._latest_bar(s)
        factor = float(self.prep.adjust[at])
        # Rounded to the tick against the trader: a buy limit down, a buy stop up.
        lim = math.nan if limit is None else self._on_tick(symbol, limit, factor, up=not is_buy)
        stp = math.nan if stop is None else self._on_tick(symbol, stop, factor, up=is_buy)
        lot = int(self.prep.bars.lot[at])
        qty = int(quantity) // lot * lot
        order = Order(
            order_id=len(self.orders) + 1,
            bar=i,
            symbol=symbol,
            sym=s,
            is_buy=is_buy,
            type=kind,
            tif=tif_code,
            quantity=qty,
            limit_price=lim,
            stop_price=stp,
            at_close=kind == MARKET and self.fill_close,
        )
        self.orders.append(order)
        if qty == 0:
            self._finish(order, EV_REJECT, R_LOT)
        elif self.intraday and self.book.ledger.state[s, SQ_DAY] == self.prep.bars.day[i]:
            self._finish(order, EV_REJECT, R_SQUARED_OFF)
        else:
            self.working[s].append(order)
        return order.order_id

    def _on_tick(self, symbol: str, price: float, factor: float, *, up: bool) -> float:
        # The traded price of an order price in adjusted units, on the tick.
        from quantcli.market.instruments import tick_size

        if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
            raise StrategyError(
                f"strategy {self.strategy.name}: order price must be a positive number, "
                f"got {price!r}"
            )
        traded = float(price) / factor
        day = self.prep.days[int(self.prep.bars.day[self.i])]
        tick = tick_size(traded, day, tick_kind(self.config.segment, symbol))
        return float(round_to_tick_kernel(traded, tick, ROUND_UP if up else ROUND_DOWN))

    def _latest_bar(self, s: int) -> int:
        # The symbol's latest bar so far (its first bar when it has not traded yet): its lot
        # and adjustment factor are the ones in force for an order placed now.
        sym = self.prep.bars.sym
        mine = np.flatnonzero(sym[: self.i + 1] == s)
        return int(mine[-1]) if mine.size else int(np.flatnonzero(sym == s)[0])

    def cancel(self, order_id: int) -> bool:
        if not 1 <= order_id <= len(self.orders):
            return False
        order = self.orders[order_id - 1]
        if not order.is_open:
            return False
        self.working[order.sym].remove(order)
        self._finish(order, EV_CANCEL, R_USER)
        return True

    def _finish(self, order: Order, event: int, reason: int) -> None:
        # End an order by ``event`` (cancel, expire or reject) for ``reason``.
        order.status = transition(order.status, event)
        order.reason = reason
        if event == EV_REJECT and self.config.on_reject == "error":
            raise StrategyError(
                f"order {order.order_id} for {order.symbol} at "
                f"{ist_datetime(self.prep.ts[self.i])} rejected: {REASONS[reason]} "
                "(on_reject=error)"
            )

    def _fill(self, order: Order, price: float, forced: bool = False) -> None:
        book = self.book
        book.ensure_room()
        signed = float(order.remaining if order.is_buy else -order.remaining)
        q, reason = self._execute(book.run, self.i, order.order_id, signed, price, forced)
        if reason != NO_REASON:
            self.working[order.sym].remove(order)
            self._finish(order, EV_REJECT, reason)
        elif q > 0:
            order.filled += int(q)
            done = order.filled == order.quantity
            order.status = transition(order.status, EV_FILL_ALL if done else EV_FILL)
            if done:
                self.working[order.sym].remove(order)
        if q > 0:
            self._on_fill(order, q)

    def _on_fill(self, order: Order, q: float) -> None:
        led = self.book.ledger
        n = int(led.counters[N_FILLS]) - 1
        traded = float(led.fill_floats[n, F_PRICE])
        fill = Fill(
            fill_id=int(led.fill_ints[n, F_ID]),
            order_id=order.order_id,
            ts=ist_datetime(self.prep.ts[self.i]),
            symbol=order.symbol,
            side="buy" if order.is_buy else "sell",
            quantity=int(q),
            price=traded * float(self.prep.adjust[self.i]),
            charges=float(led.fill_floats[n, -1]),
            raw_price=traded,
        )
        self._call(self.strategy.instance.on_fill, fill)

    def _call(self, fn: Callable[[Context, Any], None], arg: Any) -> None:
        try:
            fn(self.ctx, arg)
        except QuantcliError:
            raise
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            raise StrategyError(
                f"strategy {self.strategy.name} raised at {ist_datetime(self.prep.ts[self.i])}: "
                f"{type(exc).__name__}: {text}"
            ) from exc

    def _match(self, s: int, at_close: bool) -> None:
        bars, i = self.prep.bars, self.i
        d = int(bars.day[i])
        for order in list(self.working[s]):
            if order.at_close != at_close or not order.is_open:
                continue
            if order.tif == DAY:
                if order.day < 0:
                    order.day = d
                elif order.day != d:
                    self.working[s].remove(order)
                    self._finish(order, EV_EXPIRE, NO_REASON)
                    continue
            if order.type == MARKET:
                price = bars.close[i] if at_close else bars.open[i]
            else:
                price, order.triggered = trigger_price(
                    order.type, order.is_buy, order.limit_price, order.stop_price,
                    order.triggered, bars.open[i], bars.high[i], bars.low[i],
                )  # fmt: skip
            if not math.isnan(price):
                self._fill(order, float(price))
            if order.tif == IOC and order.is_open:
                self.working[s].remove(order)
                self._finish(order, EV_EXPIRE, NO_REASON)

    def _square_off(self, s: int, price: float) -> None:
        state, i = self.book.ledger.state, self.i
        state[s, SQ_DAY] = self.prep.bars.day[i]
        for order in list(self.working[s]):
            self.working[s].remove(order)
            self._finish(order, EV_CANCEL, R_SQUARED_OFF)
        pos = int(state[s, POS])
        if pos == 0:
            return
        order = Order(
            len(self.orders) + 1, i, self.prep.symbols[s], s, pos < 0, MARKET, DAY, abs(pos)
        )
        order.reason = R_SQUARED_OFF
        self.orders.append(order)
        self.working[s].append(order)
        self._fill(order, price, forced=True)

    # -- the loop

    def replay(self, progress: Callable[[float], None] | None) -> Output:
        prep, book = self.prep, self.book
        bars, led = prep.bars, book.ledger
        on_bar = self.strategy.instance.on_bar
        names = prep.symbols
        state = led.state
        working = self.working
        act_bar = prep.actions.bar.tolist()
        ap = 0
        n_act = len(act_bar)
        futures, intraday, fill_close = self.futures, self.intraday, self.fill_close
        step = max(1, prep.n // 100)
        for lo in range(0, prep.n, CHUNK):
            hi = min(prep.n, lo + CHUNK)
            cols = [
                a[lo:hi].tolist()
                for a in (
                    bars.sym, prep.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                    bars.flags, prep.adjust,
                )
            ]  # fmt: skip
            for j, (s, t, o, h, lw, c, v, f, adj) in enumerate(zip(*cols, strict=True)):
                i = lo + j
                self.i = i
                while ap < n_act and act_bar[ap] == i:
                    self._action(ap)
                    ap += 1
                if intraday and f & SQUARE_OFF and state[s, SQ_DAY] != bars.day[i]:
                    self._square_off(s, o)
                if working[s]:
                    self._match(s, False)
                state[s, MARK] = c
                self._call(on_bar, Bar(i, names[s], t, (o, h, lw, c, v), adj))
                if fill_close and working[s]:
                    self._match(s, True)
                if f & EOD:
                    if intraday and state[s, SQ_DAY] != bars.day[i]:
                        self._square_off(s, c)
                    if futures:
                        settle(state, led.acct, s)
                if f & LAST_OF_TS:
                    kernel.snapshot(led, i, futures)
                if progress is not None and i % step == 0:
                    progress(i / prep.n)
        return self._output()

    def _action(self, ap: int) -> None:
        acts, led = self.prep.actions, self.book.ledger
        s = int(acts.sym[ap])
        ratio, cash = apply_action(led.state, led.acct, s, acts.ratio[ap], acts.amount[ap])
        if ratio != 1.0:
            for order in list(self.working[s]):
                self._convert(order, ratio)
        kernel.record_action(self.book.run, ap, self.i, ratio, cash)

    def _convert(self, order: Order, ratio: float) -> None:
        # A split or bonus: the order's traded prices divided by the ratio (on the tick,
        # against the trader, as when placed) and the quantity left multiplied (in lots); one
        # with nothing left (a consolidation of a small order) is cancelled.
        lot = int(self.prep.bars.lot[self.i])
        left = int(order.remaining * ratio) // lot * lot
        if left == 0:
            self.working[order.sym].remove(order)
            self._finish(order, EV_CANCEL, R_ACTION)
            return
        order.quantity = order.filled + left
        if not math.isnan(order.limit_price):
            order.limit_price = self._on_tick(
                order.symbol, order.limit_price, ratio, up=not order.is_buy
            )
        if not math.isnan(order.stop_price):
            order.stop_price = self._on_tick(order.symbol, order.stop_price, ratio, up=order.is_buy)

    def _output(self) -> Output:
        n = len(self.orders)
        ints = np.zeros((n, O_INT_COLS), dtype=np.int64)
        floats = np.zeros((n, O_FLOAT_COLS), dtype=np.float64)
        for k, o in enumerate(self.orders):
            ints[k] = (
                o.order_id, o.bar, o.sym, 1 if o.is_buy else -1, o.type, o.tif, o.quantity,
                o.status, o.filled, o.reason,
            )  # fmt: skip
            floats[k] = (o.limit_price, o.stop_price)
        out = self.book.output()
        out.order_ints = ints
        out.order_floats = floats
        return out


def _entry_point(fn: Any, *args: Any) -> Callable[..., Any]:
    """The compiled entry of numba function ``fn`` for the types of ``args``: it converts its
    arguments by those types instead of typing them at each call, which for a Run (with its
    slippage formula) costs about a millisecond; the event loop calls ``execute`` per fill."""
    typeof: Any = numba.typeof  # untyped in numba's stubs
    signature = tuple(typeof(a) for a in args)
    fn.compile(signature)
    entry: Callable[..., Any] = fn.overloads[signature].entry_point
    return entry


__all__ = ["Bar", "Context", "EventRun"]
