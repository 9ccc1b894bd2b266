"""NSE capital-market bhavcopies, legacy and UDiFF, plain, zipped or gzipped; many days into
one frame.

Layouts (from /work/shared/docs/india-market-facts.md, "Bhavcopy formats"; NSE's archives):
- legacy, to July 2024, ``cmDDMMMYYYYbhav.csv``: SYMBOL, SERIES, OPEN, HIGH, LOW, CLOSE, LAST,
  PREVCLOSE, TOTTRDQTY, TOTTRDVAL, TIMESTAMP (DD-MON-YYYY), TOTALTRADES, ISIN and a trailing
  comma (an unnamed empty last column);
- UDiFF, from July 2024, ``BhavCopy_NSE_CM_0_0_0_YYYYMMDD_F_0000.csv``: 34 columns, ISO dates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final, NamedTuple

import polars as pl

from quantcli.errors import DataError
from quantcli.store.sources.base import (
    ROW_COL,
    ParsedSource,
    TableOptions,
    canonical_frame,
    check_options,
    finish,
    input_tables,
    read_text_table,
    table_options,
    table_stem,
)

LEGACY: Final = {
    "SYMBOL": "symbol",
    "SERIES": "series",
    "OPEN": "open",
    "HIGH": "high",
    "LOW": "low",
    "CLOSE": "close",
    "PREVCLOSE": "prev_close",
    "TOTTRDQTY": "volume",
    "TOTTRDVAL": "turnover",
    "TIMESTAMP": "ts",
    "TOTALTRADES": "trades",
}

UDIFF: Final = {
    "TradDt": "ts",
    "TckrSymb": "symbol",
    "SctySrs": "series",
    "OpnPric": "open",
    "HghPric": "high",
    "LwPric": "low",
    "ClsPric": "close",
    "PrvsClsgPric": "prev_close",
    "TtlTradgVol": "volume",
    "TtlTrfVal": "turnover",
    "TtlNbOfTxsExctd": "trades",
}

OPTIONS = ("series",)
DEFAULT_SERIES: Final = "EQ"


class Layout(NamedTuple):
    """A bhavcopy layout: its name in messages, its column mapping and its date format."""

    name: str
    mapping: Mapping[str, str]
    date_format: str


# The legacy TIMESTAMP is DD-MON-YYYY (01-JAN-2024), UDiFF's TradDt ISO.
LEGACY_LAYOUT: Final = Layout("legacy bhavcopy", LEGACY, "%d-%b-%Y")
UDIFF_LAYOUT: Final = Layout("UDiFF bhavcopy", UDIFF, "%Y-%m-%d")


def detect_layout(columns: Sequence[str], label: str) -> Layout:
    """The layout a bhavcopy's header ``columns`` show; DataError naming ``label`` otherwise."""
    if "TIMESTAMP" in columns and "SYMBOL" in columns:
        return LEGACY_LAYOUT
    if "TradDt" in columns and "TckrSymb" in columns:
        return UDIFF_LAYOUT
    raise DataError(
        f"not a bhavcopy: expected legacy (SYMBOL, TIMESTAMP, ...) or UDiFF (TradDt, TckrSymb, "
        f"...) columns, found {', '.join(columns[:6])}",
        path=label,
    )


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse bhavcopies, keeping the series in ``--series`` (comma-separated; ``ALL`` keeps all)."""
    check_options("bhavcopy", options, OPTIONS)
    wanted = (options.get("series") or DEFAULT_SERIES).upper()
    series = None if wanted == "ALL" else [s.strip() for s in wanted.split(",") if s.strip()]
    base = table_options({}, mapping={})
    frames, labels = [], []
    for path in files:
        for label, name, content in input_tables(path):
            raw = read_text_table(content, label)
            layout = detect_layout([c for c in raw.columns if c != ROW_COL], label)
            opts: TableOptions = replace(
                base, mapping=layout.mapping, layout=layout.name, date_format=layout.date_format
            )
            frame, _ = canonical_frame(raw, label, table_stem(name), opts)
            if series is not None:
                frame = frame.filter(pl.col("series").is_in(series))
            frames.append(frame)
            labels.append(label)
    return finish(frames, labels, files)
