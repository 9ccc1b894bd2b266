"""Canonical-schema bar frames for the store tests (built with polars, deterministic)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import polars as pl

from quantcli.store.manifest import TIMEZONE, SourceInfo

SOURCE = SourceInfo(kind="test")


def make_bars(
    symbols: Sequence[str] = ("AAA", "BBB", "CCC"),
    start: date = date(2019, 12, 20),
    days: int = 30,
    *,
    seed: int = 0,
    extra: bool = False,
) -> pl.DataFrame:
    """Daily bars (00:00 IST) for every symbol on ``days`` consecutive calendar days.

    Prices depend on the symbol, the day and ``seed`` so frames are reproducible; ``extra``
    adds the optional vwap and oi columns.
    """
    rows = []
    for k, sym in enumerate(symbols):
        for d in range(days):
            base = 100.0 + 10 * k + d + seed
            rows.append(
                {
                    "symbol": sym,
                    "ts": datetime.combine(start + timedelta(days=d), datetime.min.time()),
                    "open": base,
                    "high": base + 2,
                    "low": base - 2,
                    "close": base + 1,
                    "volume": 1000 + d,
                }
            )
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").dt.replace_time_zone(TIMEZONE))
    if extra:
        frame = frame.with_columns(vwap=pl.col("close") - 0.5, oi=pl.lit(7, dtype=pl.Int64))
    return frame
