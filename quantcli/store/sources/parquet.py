"""Generic Parquet files, mapped to the canonical columns with ``--map``."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from quantcli.errors import DataError
from quantcli.store.sources.base import (
    PRICES_OPTION,
    ROW_COL,
    TABLE_OPTIONS,
    ParsedSource,
    canonical_frame,
    check_options,
    column_mapping,
    finish,
    prices_option,
    read_bytes,
    table_options,
    table_stem,
)

OPTIONS = (*TABLE_OPTIONS, PRICES_OPTION)


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse Parquet files; ``__row`` is the 1-based row within each file."""
    check_options("parquet", options, OPTIONS)
    opts = table_options(options, mapping=column_mapping(options))
    prices = prices_option(options)
    frames: list[pl.DataFrame] = []
    ignored: list[str] = []
    for path in files:
        try:  # from bytes: polars would expand glob characters in a path
            raw = pl.read_parquet(io.BytesIO(read_bytes(path)))
        except (pl.exceptions.ComputeError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"not a readable Parquet file: {message}", path=str(path)) from None
        if raw.height == 0:
            raise DataError("no data rows", path=str(path))
        raw = raw.with_row_index(ROW_COL, offset=1).with_columns(pl.col(ROW_COL).cast(pl.Int64))
        frame, skipped = canonical_frame(raw, str(path), table_stem(path.name), opts)
        frames.append(frame)
        ignored.extend(skipped)
    parsed = finish(
        frames, [str(p) for p in files], files, ignored, volume_optional=opts.volume_optional
    )
    return replace(parsed, prices=prices)
