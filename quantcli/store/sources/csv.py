"""Generic delimited text files: any layout, mapped to the canonical columns with ``--map``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from quantcli.errors import UsageError
from quantcli.store.sources.base import (
    PRICES_OPTION,
    TABLE_OPTIONS,
    ParsedSource,
    check_options,
    column_mapping,
    parse_tables,
    prices_option,
    skip_rows,
    table_options,
)

OPTIONS = (*TABLE_OPTIONS, "delimiter", "skip_rows", PRICES_OPTION)


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse CSV files (plain, ``.gz`` or ``.zip``); the symbol is ``symbol``, the
    ``symbol_column`` (else a ``symbol`` column), else the file name."""
    check_options("csv", options, OPTIONS)
    delimiter = options.get("delimiter") or ","
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter must be one character, not {delimiter!r}")
    opts = table_options(options, mapping=column_mapping(options))
    prices = prices_option(options)
    parsed = parse_tables(files, opts, delimiter=delimiter, skip=skip_rows(options))
    return replace(parsed, prices=prices)
