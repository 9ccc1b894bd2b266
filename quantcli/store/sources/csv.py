"""Generic delimited text files: any layout, mapped to the canonical columns with ``--map``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from quantcli.errors import UsageError
from quantcli.store.sources.base import (
    ParsedSource,
    canonical_frame,
    check_options,
    column_mapping,
    finish,
    read_text_table,
    table_options,
)

OPTIONS = ("date_format", "timezone", "symbol", "delimiter")


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse CSV files; the symbol is ``symbol``, a ``symbol`` column, else the file stem."""
    check_options("csv", options, OPTIONS)
    delimiter = options.get("delimiter") or ","
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter must be one character, not {delimiter!r}")
    opts = table_options(options, mapping=column_mapping(options))
    frames: list[pl.DataFrame] = []
    ignored: list[str] = []
    for path in files:
        raw = read_text_table(path, str(path), delimiter=delimiter)
        frame, skipped = canonical_frame(raw, str(path), path.stem, opts)
        frames.append(frame)
        ignored.extend(skipped)
    return finish(frames, [str(p) for p in files], files, ignored)
