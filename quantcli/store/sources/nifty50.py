"""The NIFTY-50 daily CSV layout (the widely shared Kaggle "NIFTY-50 Stock Market Data" files).

Full layout: Date, Symbol, Series, Prev Close, Open, High, Low, Last, Close, VWAP, Volume,
Turnover, Trades, Deliverable Volume, %Deliverble. The common reduced variant drops Symbol,
Series, Prev Close and Trades; its symbol is the file name. ``Last`` (last traded price) and
``%Deliverble`` (derivable from deliverable volume) have no canonical column and are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from quantcli.store.sources.base import (
    PRICES_OPTION,
    TABLE_OPTIONS,
    ParsedSource,
    check_options,
    parse_tables,
    prices_option,
    table_options,
)

LAYOUT: Final = {
    "Date": "ts",
    "Symbol": "symbol",
    "Series": "series",
    "Prev Close": "prev_close",
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Last": "",
    "Close": "close",
    "VWAP": "vwap",
    "Volume": "volume",
    "Turnover": "turnover",
    "Trades": "trades",
    "Deliverable Volume": "deliverable_volume",
    "%Deliverble": "",
}

# The layout names its symbol column (or has none), so no --symbol-column.
OPTIONS = (*(o for o in TABLE_OPTIONS if o != "symbol_column"), PRICES_OPTION)


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse NIFTY-50 layout files (full or reduced; plain, ``.gz`` or ``.zip``), one or more
    symbols per file."""
    check_options("nifty50", options, OPTIONS)
    opts = replace(table_options(options, mapping=LAYOUT), strict_columns=True, layout="NIFTY-50")
    prices = prices_option(options)
    return replace(parse_tables(files, opts), prices=prices)
