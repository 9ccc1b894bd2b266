"""Event strategies: the Python side of their replay.

:class:`EventRun` walks the prepared bars in (ts, symbol) order and calls the strategy's
``on_bar`` with a :class:`Bar`; the strategy trades through its :class:`Context`. Its orders
are rows of the run's order buffers and everything that happens to them (matching, fills,
expiry, square-off, conversion on a split) is done by the one compiled replay loop that also
runs signal strategies (quantcli.backtest.kernel); this module only calls back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import repeat
from operator import length_hint
from typing import NamedTuple

import numpy as np

from quantcli.backtest.accounting import (
    C_BAR,
    C_REJECT,
    CASH,
    LAST_BAR,
    N_FILLS,
    N_ORDERS,
    N_WORKING,
    POS,
    WORKING,
    holdings,
)
from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.inputs import Ledger, OrderRequest
from quantcli.backtest.kernel import AT_FILL, AT_ROOM, AT_STOP, CHUNK, Book, Output, Prepared
from quantcli.backtest.orders import (
    F_BAR,
    F_ID,
    F_ORDER,
    F_PRICE,
    F_QTY,
    F_SYM,
    LIMIT,
    MARKET,
    O_ID,
    O_NEXT,
    O_REASON,
    O_STATUS,
    O_SYM,
    REASONS,
    REJECTED,
    STOP,
    STOP_LIMIT,
    TIFS,
    WORKING_STATUSES,
    Fill,
    Order,
)
from quantcli.backtest.strategy import LoadedStrategy
from quantcli.core.timezone import ist_datetime
from quantcli.errors import QuantcliError, StrategyError


class Bar(NamedTuple):
    """The bar an event strategy sees.

    ``open``, ``high``, ``low``, ``close`` and ``volume`` are split/bonus-adjusted like a signal
    strategy's columns (quantcli.backtest.prepare.strategy_view); ``raw_open`` ... ``raw_volume``
    are the traded values and ``factor`` the adjustment (prices are multiplied by it and the
    volume divided). A tuple, so the replay builds one per bar at the cost of a tuple; ``ts``
    and the adjusted values are computed when read.
    """

    index: int  # type: ignore[assignment]  # the bar's replay index (shadows tuple.index)
    symbol: str
    ts_us: int
    raw_open: float
    raw_high: float
    raw_low: float
    raw_close: float
    raw_volume: float
    factor: float = 1.0

    @property
    def open(self) -> float:
        """Adjusted open."""
        return self.raw_open * self.factor

    @property
    def high(self) -> float:
        """Adjusted high."""
        return self.raw_high * self.factor

    @property
    def low(self) -> float:
        """Adjusted low."""
        return self.raw_low * self.factor

    @property
    def close(self) -> float:
        """Adjusted close."""
        return self.raw_close * self.factor

    @property
    def volume(self) -> float:
        """Adjusted volume."""
        return self.raw_volume / self.factor

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
        return float(self._run.ledger().acct[CASH])

    @property
    def equity(self) -> float:
        """Cash plus holdings at the last prices."""
        led = self._run.ledger()
        value, _ = holdings(led.state, self._run.futures)
        return float(led.acct[CASH] + value)

    def position(self, symbol: str) -> int:
        """Signed position in ``symbol`` (0 when flat)."""
        s = self._run.code(symbol)
        return int(self._run.ledger().state[s, POS])

    @property
    def positions(self) -> dict[str, int]:
        """Non-zero positions by symbol."""
        pos = self._run.ledger().state[:, POS]
        return {self.symbols[k]: int(pos[k]) for k in np.flatnonzero(pos)}

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Working orders (of one symbol, or all), oldest first."""
        run = self._run
        s = None if symbol is None else run.code(symbol)
        led = run.ledger()
        ints = led.order_ints
        if s is None:
            status = ints[: led.counters[N_ORDERS], O_STATUS]
            rows = np.flatnonzero(np.isin(status, WORKING_STATUSES)).tolist()
        else:
            rows = []
            row = int(led.state[s, WORKING])
            while row >= 0:
                rows.append(row)
                row = int(ints[row, O_NEXT])
        return [Order(run.book, r, self.symbols[int(ints[r, O_SYM])]) for r in rows]

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
        return self._run.place(symbol, True, quantity, (limit, stop), tif)

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
        return self._run.place(symbol, False, quantity, (limit, stop), tif)

    def order_target(self, symbol: str, target: int, *, tif: str = "DAY") -> int | None:
        """Market order for the difference between ``target`` and the position (None if 0)."""
        delta = int(target) - self.position(symbol)
        if delta == 0:
            return None
        return self._run.place(symbol, delta > 0, abs(delta), (None, None), tif)

    def cancel(self, order_id: int) -> bool:
        """Cancel a working order; False when it is not working."""
        return self._run.cancel(order_id)


class EventRun:
    """The Python side of an event strategy's replay: it builds the bars and calls the
    strategy's callbacks; the book work between them is the compiled loop's
    (quantcli.backtest.kernel.advance), entered once per bar at most.

    While no order is working (and, intraday, no position is open) nothing the loop does can
    call the strategy back, so the book is left behind and caught up (in one compiled call)
    only when the strategy reads it or places an order: a strategy that trades rarely costs
    a tuple and a call per bar."""

    def __init__(self, prep: Prepared, config: BacktestConfig, strategy: LoadedStrategy) -> None:
        self.prep = prep
        self.config = config
        self.strategy = strategy
        self.book = Book(prep, config, events=True)
        self.codes = {s: k for k, s in enumerate(prep.symbols)}
        self.futures = config.segment == "futures"
        self.intraday = config.segment == "intraday"
        # The bar whose on_bar runs is read off the chunk's index iterator (see ``i``), so the
        # loop stores nothing per bar.
        self._rows: Iterator[int] = iter(())
        self._stop = 1
        self._fill_bar = -1
        self.synced = -1  # the book is at this bar's strategy point (-1: behind)
        self.quiet = True  # nothing the book does next can call the strategy back
        self.in_fill = False  # an on_fill is running: the book stands at its fill
        self.ctx = Context(self)

    @property
    def i(self) -> int:
        """The bar being called back: a fill's bar inside on_fill, else the bar whose on_bar
        runs (the last bar once the loop is done)."""
        if self.in_fill:
            return self._fill_bar
        return self._stop - 1 - length_hint(self._rows)

    def code(self, symbol: str) -> int:
        """The symbol's code (StrategyError for a symbol not in the run)."""
        k = self.codes.get(symbol)
        if k is None:
            raise StrategyError(f"strategy {self.strategy.name}: unknown symbol {symbol!r}")
        return k

    def ledger(self) -> Ledger:
        """The book as of the bar (or fill) being called back."""
        if self.synced != self.i and not self.in_fill:
            self.sync(self.i)
        return self.book.ledger

    def sync(self, stop: int) -> None:
        """Replay the book to bar ``stop``'s strategy point, calling on_fill for each fill."""
        book = self.book
        while True:
            code = book.advance(stop)
            if code == AT_STOP:
                break
            if code == AT_ROOM:
                book.ensure_room(16)
            elif code == AT_FILL:
                self._on_fill()
            else:
                counters = book.ledger.counters
                raise self._rejected(int(counters[C_REJECT]), int(counters[C_BAR]))
        self.synced = stop
        self.quiet = self._quiet()

    def _quiet(self) -> bool:
        led = self.book.ledger
        return led.counters[N_WORKING] == 0 and not (self.intraday and led.state[:, POS].any())

    # -- orders

    def place(
        self,
        symbol: str,
        is_buy: bool,
        quantity: int,
        prices: tuple[float | None, float | None],
        tif: str,
    ) -> int:
        """Place an order for the strategy (see Context.buy); returns its id."""
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
        limit, stop = prices
        kind = MARKET
        if limit is not None and stop is not None:
            kind = STOP_LIMIT
        elif limit is not None:
            kind = LIMIT
        elif stop is not None:
            kind = STOP
        state = self.ledger().state
        i = self.i
        at = i if self.prep.bars.sym[i] == s else self._latest_bar(s, int(state[s, LAST_BAR]))
        factor = float(self.prep.adjust[at])
        request = OrderRequest(
            bar=i,
            at=at,
            sym=s,
            buy=bool(is_buy),
            kind=kind,
            tif=tif_code,
            quantity=int(quantity),
            limit=self._traded(limit, factor),
            stop=self._traded(stop, factor),
        )
        row = self.book.place(request)
        self.quiet = self.quiet and self.book.ledger.counters[N_WORKING] == 0
        led = self.book.ledger
        if led.order_ints[row, O_STATUS] == REJECTED and self.config.on_reject == "error":
            raise self._rejected(row, i)
        return row + 1

    def _traded(self, price: float | None, factor: float) -> float:
        # The traded price of an order price in adjusted units (rounded to the tick by place).
        if price is None:
            return math.nan
        if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
            raise StrategyError(
                f"strategy {self.strategy.name}: order price must be a positive number, "
                f"got {price!r}"
            )
        return float(price) / factor

    def _latest_bar(self, s: int, last: int) -> int:
        # The symbol's latest bar so far (its first bar when it has not traded yet): its lot
        # and adjustment factor are the ones in force for an order placed now.
        return last if last >= 0 else int(np.flatnonzero(self.prep.bars.sym == s)[0])

    def cancel(self, order_id: int) -> bool:
        """Cancel the strategy's working order ``order_id``; False when it is not working."""
        if isinstance(order_id, bool) or not isinstance(order_id, int | np.integer):
            raise StrategyError(
                f"strategy {self.strategy.name}: an order id is an integer, got {order_id!r}"
            )
        led = self.ledger()
        if not 1 <= order_id <= led.counters[N_ORDERS]:
            return False
        return self.book.cancel(int(order_id) - 1)

    def _rejected(self, row: int, bar: int) -> StrategyError:
        # Order ``row`` rejected in bar ``bar`` under on_reject="error".
        ints = self.book.ledger.order_ints[row]
        return StrategyError(
            f"order {ints[O_ID]} for {self.prep.symbols[ints[O_SYM]]} at "
            f"{ist_datetime(self.prep.ts[bar])} rejected: {REASONS[ints[O_REASON]]} "
            "(on_reject=error)"
        )

    def _on_fill(self) -> None:
        led = self.book.ledger
        n = int(led.counters[N_FILLS]) - 1
        fill_ints, fill_floats = led.fill_ints[n].tolist(), led.fill_floats[n]
        bar, qty = fill_ints[F_BAR], fill_ints[F_QTY]
        traded = float(fill_floats[F_PRICE])
        fill = Fill(
            fill_id=fill_ints[F_ID],
            order_id=fill_ints[F_ORDER],
            ts=ist_datetime(self.prep.ts[bar]),
            symbol=self.prep.symbols[fill_ints[F_SYM]],
            side="buy" if qty > 0 else "sell",
            quantity=abs(qty),
            price=traded * float(self.prep.adjust[bar]),
            charges=float(fill_floats[-1]),
            raw_price=traded,
        )
        self._fill_bar, self.in_fill = bar, True
        try:
            self.strategy.instance.on_fill(self.ctx, fill)
        except QuantcliError:
            raise
        except Exception as exc:
            raise self._raised(exc) from exc
        finally:
            self.in_fill = False

    def _raised(self, exc: Exception) -> StrategyError:
        # A callback's exception, at the bar being called back.
        text = " ".join(str(exc).split())[:300]
        return StrategyError(
            f"strategy {self.strategy.name} raised at {ist_datetime(self.prep.ts[self.i])}: "
            f"{type(exc).__name__}: {text}"
        )

    # -- the loop

    def replay(self, progress: Callable[[float], None] | None) -> Output:
        """Replay every bar through the strategy's callbacks; the run's buffers."""
        prep = self.prep
        bars = prep.bars
        on_bar = self.strategy.instance.on_bar
        ctx = self.ctx
        names = np.array(prep.symbols, dtype=object)
        make = tuple.__new__
        # Progress is reported at the start of each chunk.
        step = max(1, min(CHUNK, prep.n // 100))
        try:
            for lo in range(0, prep.n, step):
                if progress is not None:
                    progress(lo / prep.n)
                hi = min(prep.n, lo + step)
                self._rows, self._stop = iter(range(lo, hi)), hi
                cols = (
                    self._rows, names[bars.sym[lo:hi]].tolist(), prep.ts[lo:hi].tolist(),
                    *(a[lo:hi].tolist() for a in (bars.open, bars.high, bars.low, bars.close)),
                    bars.volume[lo:hi].tolist(), prep.adjust[lo:hi].tolist(),
                )  # fmt: skip
                # map hands zip's row straight to the Bar, so zip reuses its row tuple.
                for bar in map(make, repeat(Bar), zip(*cols, strict=True)):
                    if not self.quiet:
                        self.sync(bar[0])
                    on_bar(ctx, bar)
            self._rows, self._stop = iter(()), prep.n
            self.sync(prep.n)
        except QuantcliError:
            raise
        except Exception as exc:
            raise self._raised(exc) from exc
        return self.book.output()


__all__ = ["Bar", "Context", "EventRun"]
