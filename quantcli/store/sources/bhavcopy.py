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
from typing import Final

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


def _layout(columns: list[str], label: str) -> tuple[str, dict[str, str]]:
    if "TIMESTAMP" in columns and "SYMBOL" in columns:
        return "legacy bhavcopy", LEGACY
    if "TradDt" in columns and "TckrSymb" in columns:
        return "UDiFF bhavcopy", UDIFF
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
            layout, mapping = _layout([c for c in raw.columns if c != ROW_COL], label)
            opts: TableOptions = replace(base, mapping=mapping, layout=layout)
            # The legacy TIMESTAMP is DD-MON-YYYY (01-JAN-2024), UDiFF's TradDt ISO.
            opts = replace(opts, date_format="%d-%b-%Y" if mapping is LEGACY else "%Y-%m-%d")
            frame, _ = canonical_frame(raw, label, table_stem(name), opts)
            if series is not None:
                frame = frame.filter(pl.col("series").is_in(series))
            frames.append(frame)
            labels.append(label)
    return finish(frames, labels, files)
