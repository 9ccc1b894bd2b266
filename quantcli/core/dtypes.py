"""The timestamp dtype of every stored bar and every result frame: microseconds, IST."""

from __future__ import annotations

from typing import Final

import polars as pl

from quantcli.core.timezone import TIMEZONE

TS_DTYPE: Final = pl.Datetime("us", TIMEZONE)
