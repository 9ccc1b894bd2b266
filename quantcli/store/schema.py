"""The canonical bar schema every dataset version stores.

``ts`` is timezone-aware exchange time (Asia/Kolkata). Intraday bars are stamped with the bar's
open time (09:15 is the first 5-minute bar); daily bars with 00:00 of the session date.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from quantcli.core.dtypes import TS_DTYPE

REQUIRED: Final[dict[str, pl.DataType]] = {
    "symbol": pl.String(),
    "ts": TS_DTYPE,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Int64(),
}

OPTIONAL: Final[dict[str, pl.DataType]] = {
    "oi": pl.Int64(),
    "vwap": pl.Float64(),
    "trades": pl.Int64(),
    "deliverable_volume": pl.Int64(),
    "series": pl.String(),
    "prev_close": pl.Float64(),
    "turnover": pl.Float64(),
}

ALL_COLUMNS: Final[dict[str, pl.DataType]] = {**REQUIRED, **OPTIONAL}

# A feature set is a dataset whose source kind is FEATURES_KIND: the key columns, then
# Float64 feature columns of any other name (quantcli.features builds them).
FEATURES_KIND: Final = "features"
KEY_COLUMNS: Final = ("symbol", "ts")
FEATURE_DTYPE: Final = pl.Float64()


def column_dtype(name: str) -> pl.DataType:
    """The stored dtype of column ``name``: the bar schema's, else a feature's (Float64)."""
    return ALL_COLUMNS.get(name, FEATURE_DTYPE)


def column_order(columns: list[str]) -> list[str]:
    """Required columns first, then the optional ones present, in schema order."""
    return [c for c in ALL_COLUMNS if c in columns]
