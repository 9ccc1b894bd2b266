"""Input parsers: each turns files of one kind into canonical bars (``ParsedSource``).

Kinds: ``csv`` and ``parquet`` (generic, with a column map), ``nifty50`` (the NIFTY-50 daily
layout), ``bhavcopy`` (NSE legacy and UDiFF bhavcopies), ``yahoo`` (Yahoo Finance downloads) and
``synthetic`` (generated bars). File arguments are paths, taken literally: never patterns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

from quantcli.errors import NotFoundError, UsageError
from quantcli.store.sources import bhavcopy, csv, nifty50, parquet, synthetic, yahoo
from quantcli.store.sources.base import BOOKKEEPING, FILE_COL, PRICES_OPTION, ROW_COL, ParsedSource

__all__ = [
    "BOOKKEEPING",
    "FILE_COL",
    "KINDS",
    "ROW_COL",
    "ParsedSource",
    "parse_source",
    "takes_prices",
]

Parser = Callable[[Sequence[Path], Mapping[str, str]], ParsedSource]

_SOURCES: Final[dict[str, ModuleType]] = {
    "csv": csv,
    "parquet": parquet,
    "nifty50": nifty50,
    "bhavcopy": bhavcopy,
    "yahoo": yahoo,
    "synthetic": synthetic,
}
_PARSERS: Final[dict[str, Parser]] = {kind: module.parse for kind, module in _SOURCES.items()}
KINDS: Final = tuple(_PARSERS)


def takes_prices(kind: str) -> bool:
    """Whether source ``kind`` takes ``--prices`` (the others know their prices' kind)."""
    module = _SOURCES.get(kind)
    return module is not None and bool(PRICES_OPTION in module.OPTIONS)


def parse_source(kind: str, files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse ``files`` of source ``kind`` with string ``options`` into canonical bars.

    Raises UsageError for an unknown kind or option or a directory or other non-file given as
    a file, NotFoundError for a missing file and DataError (with file and line) for content
    that cannot be parsed.
    """
    parser = _PARSERS.get(kind)
    if parser is None:
        raise UsageError(f"unknown source kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind != "synthetic" and not files:
        raise UsageError(f"source {kind!r} needs at least one input file")
    for path in files:
        if path.is_dir():
            raise UsageError(f"{path}: is a directory, not a file (pass the files in it)")
        if not path.exists():
            raise NotFoundError(f"{path}: no such file")
        if not path.is_file():
            raise UsageError(f"{path}: not a regular file")
    return parser([Path(p) for p in files], options)
