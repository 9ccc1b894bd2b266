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
    ParsedSource,
    canonical_frame,
    check_options,
    finish,
    read_text_table,
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

OPTIONS = ("date_format", "timezone", "symbol")


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse NIFTY-50 layout files (full or reduced), one or more symbols per file."""
    check_options("nifty50", options, OPTIONS)
    opts = replace(table_options(options, mapping=LAYOUT), strict_columns=True, layout="NIFTY-50")
    frames = []
    for path in files:
        raw = read_text_table(path, str(path))
        frame, _ = canonical_frame(raw, str(path), path.stem, opts)
        frames.append(frame)
    return finish(frames, [str(p) for p in files], files)
