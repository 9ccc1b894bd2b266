"""Deterministic synthetic daily bars: geometric random walks on NSE sessions.

The same options give byte-identical frames (and so the same dataset content hash): every
random number comes from one ``np.random.default_rng(seed)`` drawn in a fixed order, and the
sessions come from the project calendar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from quantcli.core.dates import parse_date
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.timezone import DAY_US, IST_OFFSET_US
from quantcli.errors import CoverageError, UsageError
from quantcli.store.sources.base import ParsedSource, check_options

OPTIONS = ("symbols", "days", "seed", "end")
DEFAULTS: Final = {"symbols": "50", "days": "5000", "seed": "42"}
_MIN_PRICE: Final = 0.05  # one NSE tick: a walk that sinks further is floored, not zeroed


def _positive_int(options: Mapping[str, str], key: str) -> int:
    raw = options.get(key) or DEFAULTS[key]
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"--{key} must be an integer, not {raw!r}") from None
    if value < 0 or (key != "seed" and value == 0):
        raise UsageError(f"--{key} must be positive, not {value}")
    return value


def session_days(days: int, end: date | None) -> list[date]:
    """The last ``days`` NSE sessions on or before ``end`` (default: the calendar's last day).

    Raises CoverageError for an ``end`` outside the calendar's coverage, after it as before
    it: sessions past the coverage are unknown, not absent.
    """
    from quantcli.market import calendar

    first, last = calendar.coverage()
    try:
        found = calendar.sessions(first, last if end is None else end)
    except CoverageError as exc:
        raise CoverageError(f"--end {exc.message}") from None
    if days > len(found):
        raise UsageError(
            f"--days {days}: the calendar has only {len(found)} sessions from {first} to "
            f"{found[-1] if found else end}"
        )
    return found[-days:]


def symbol_names(count: int) -> list[str]:
    """SYN0001, SYN0002, ...: zero-padded so they sort in generation order."""
    width = max(4, len(str(count)))
    return [f"SYN{i:0{width}d}" for i in range(1, count + 1)]


def _price(log_values: np.ndarray) -> np.ndarray:
    """exp, rounded to the paisa, floored at one tick: all monotone, so low <= open, close <=
    high survives them. In place, as first-touching fresh 80 MB arrays dominates the time."""
    np.exp(log_values, out=log_values)
    log_values *= 100.0
    np.rint(log_values, out=log_values)
    log_values *= 0.01
    np.maximum(log_values, _MIN_PRICE, out=log_values)
    return log_values.ravel()


def generate(symbols: int, days: int, seed: int, end: date | None) -> pl.DataFrame:
    """``symbols`` x ``days`` canonical daily bars, sorted by (symbol, ts)."""
    sessions = session_days(days, end)
    rng = np.random.default_rng(seed)
    shape = (symbols, days)
    start = rng.uniform(np.log(50.0), np.log(5000.0), size=(symbols, 1))
    sigma = rng.uniform(0.01, 0.025, size=(symbols, 1))
    drift = rng.normal(0.0002, 0.0002, size=(symbols, 1))
    # Close-to-close log returns split into an overnight gap and an intraday move; the wicks
    # stretch high and low beyond the body.
    gap, move, wick_up, wick_down = rng.standard_normal(size=(4, *shape))
    gap *= 0.3 * sigma
    move *= sigma
    move += drift
    np.abs(wick_up, out=wick_up)
    wick_up *= 0.5 * sigma
    np.abs(wick_down, out=wick_down)
    wick_down *= 0.5 * sigma
    volume = rng.lognormal(12.0, 1.0, size=shape)
    log_close = gap  # reuse the buffer: log close = start + cumulated (gap + move)
    log_close += move
    np.cumsum(log_close, axis=1, out=log_close)
    log_close += start
    log_open = log_close - move
    wick_up += np.maximum(log_open, log_close)
    wick_down = np.minimum(log_open, log_close) - wick_down
    day_us = np.array([d.toordinal() - date(1970, 1, 1).toordinal() for d in sessions], np.int64)
    stamps = np.tile(day_us * DAY_US - IST_OFFSET_US, symbols)
    names = pl.Series("symbol", symbol_names(symbols))
    return pl.DataFrame(
        {
            "symbol": names.gather(np.repeat(np.arange(symbols, dtype=np.uint32), days)),
            "ts": pl.Series(stamps).cast(TS_DTYPE),
            "open": _price(log_open),
            "high": _price(wick_up),
            "low": _price(wick_down),
            "close": _price(log_close),
            "volume": np.rint(volume, out=volume).astype(np.int64).ravel(),
        }
    )


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Generate bars from ``symbols``, ``days``, ``seed`` and ``end`` (ISO date; default: the
    calendar's last day); takes no files."""
    check_options("synthetic", options, OPTIONS)
    if files:
        raise UsageError("source 'synthetic' takes no files")
    if any(k.startswith("map.") for k in options):
        raise UsageError("source 'synthetic' takes no --map")
    raw_end = options.get("end")
    end = parse_date(raw_end, "--end") if raw_end else None
    frame = generate(
        _positive_int(options, "symbols"),
        _positive_int(options, "days"),
        _positive_int(options, "seed"),
        end,
    )
    return ParsedSource(frame=frame, files=(), inputs=())
