"""Shared parsing for the tabular sources: read a text table, map columns, type them.

Every parser returns the canonical columns plus two bookkeeping columns, ``__file`` (index into
``ParsedSource.files``) and ``__row`` (1-based data row within that file, the header excluded),
so validation can point at the exact input line. Both are dropped before publishing.
"""

from __future__ import annotations

import csv as _csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from quantcli.errors import DataError, UsageError
from quantcli.store.manifest import TIMEZONE
from quantcli.store.schema import ALL_COLUMNS, REQUIRED, TS_DTYPE

FILE_COL: Final = "__file"
ROW_COL: Final = "__row"
BOOKKEEPING: Final = (FILE_COL, ROW_COL)

# Tried in order when no --date-format is given: ISO with a UTC offset (intraday vendor files),
# plain ISO, then the DD-MM-YYYY of NSE's own downloads.
DEFAULT_DATE_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
)
_TIME_DIRECTIVES: Final = ("%H", "%M", "%S", "%T", "%R", "%z", "%s", "%I", "%p")
# Column names taken as ``ts`` when nothing else maps to it (vendor files say "date").
TS_ALIASES: Final = ("date", "datetime", "timestamp", "time")
_SAMPLE: Final = 1000
_FLOAT_COLUMNS: Final = tuple(c for c, t in ALL_COLUMNS.items() if t == pl.Float64())
_INT_COLUMNS: Final = tuple(c for c, t in ALL_COLUMNS.items() if t == pl.Int64())


@dataclass(frozen=True)
class ParsedSource:
    """Canonical bars parsed from the inputs, with ``__file``/``__row`` when they came from files.

    ``files`` holds display labels indexed by ``__file`` (a zip member is ``archive.zip!member``);
    ``inputs`` the files read from disk, which the manifest records with their hashes.
    """

    frame: pl.DataFrame
    files: tuple[str, ...]
    inputs: tuple[Path, ...]
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableOptions:
    """How to turn one raw table into canonical columns."""

    mapping: Mapping[str, str]  # source column -> canonical column
    date_format: str | None = None
    timezone: str = TIMEZONE
    symbol: str | None = None
    strict_columns: bool = False  # unknown columns are an error (fixed layouts) instead of ignored
    layout: str = "csv"  # named in errors about columns


def check_options(kind: str, options: Mapping[str, str], allowed: Sequence[str]) -> None:
    """Refuse option keys a source kind does not understand (``map.*`` is checked by callers)."""
    unknown = sorted(k for k in options if k not in allowed and not k.startswith("map."))
    if unknown:
        raise UsageError(f"source {kind!r} does not take option(s): {', '.join(unknown)}")


def column_mapping(options: Mapping[str, str]) -> dict[str, str]:
    """The ``map.<source>=<canonical>`` options as a dict, checked against the schema."""
    mapping: dict[str, str] = {}
    for key, target in options.items():
        if not key.startswith("map."):
            continue
        if target not in ALL_COLUMNS:
            raise UsageError(
                f"--map {key[4:]}={target}: {target!r} is not a canonical column "
                f"({', '.join(ALL_COLUMNS)})"
            )
        mapping[key[4:]] = target
    return mapping


def table_options(options: Mapping[str, str], *, mapping: Mapping[str, str]) -> TableOptions:
    """TableOptions from the common string options (date_format, timezone, symbol)."""
    return TableOptions(
        mapping=mapping,
        date_format=options.get("date_format") or None,
        timezone=options.get("timezone") or TIMEZONE,
        symbol=options.get("symbol") or None,
    )


def read_text_table(source: Path | bytes, label: str, *, delimiter: str = ",") -> pl.DataFrame:
    """Every column of a delimited UTF-8 text table as strings, plus ``__row``.

    Raises DataError naming ``label`` for an empty file, non-UTF-8 bytes, a header that looks
    like another delimiter, rows with too many fields, and a last line cut mid-row.
    """
    try:
        frame = pl.read_csv(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            infer_schema=False,
            separator=delimiter,
            empty_string_is_null=False,
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise DataError("empty file: no header and no rows", path=label) from None
    except pl.exceptions.ComputeError as exc:
        raise _explain_read_error(_bytes(source), label, delimiter, exc) from None
    if any("\ufffd" in name for name in frame.columns):  # polars decodes the header lossily
        raise _explain_read_error(_bytes(source), label, delimiter, None)
    _check_header(frame, label, delimiter)
    if frame.height == 0:
        raise DataError("no data rows after the header", path=label)
    tail = source[-65536:] if isinstance(source, bytes) else _tail(source)
    _check_truncated(tail, frame, label, delimiter)
    return frame.with_row_index(ROW_COL, offset=1).with_columns(pl.col(ROW_COL).cast(pl.Int64))


def _bytes(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else source.read_bytes()


def _tail(path: Path, size: int = 65536) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        fh.seek(max(0, end - size))
        return fh.read()


def _explain_read_error(raw: bytes, label: str, delimiter: str, exc: Exception | None) -> DataError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = raw.count(b"\n", 0, bad.start) + 1
        byte = raw[bad.start : bad.start + 1].hex()
        where = " in the header" if line == 1 else ""
        return DataError(
            f"not UTF-8 text: byte 0x{byte}{where} (save the file as UTF-8)",
            path=label,
            row=None if line == 1 else line - 1,
        )
    rows = _csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(rows, [])
    for number, fields in enumerate(rows, start=1):
        if len(fields) > len(header):
            return DataError(
                f"{len(fields)} fields but the header has {len(header)}", path=label, row=number
            )
    reason = str(exc).splitlines()[0] if exc is not None and str(exc) else "malformed"
    return DataError(f"cannot read as CSV: {reason}", path=label)


def _check_header(frame: pl.DataFrame, label: str, delimiter: str) -> None:
    if len(frame.columns) == 1:
        only = frame.columns[0]
        for other in (";", "\t", "|"):
            if other != delimiter and other in only:
                shown = "tab" if other == "\t" else repr(other)
                raise DataError(
                    f"the header is separated by {shown}, not {delimiter!r} "
                    f"(wrong delimiter? pass --delimiter)",
                    path=label,
                )


def _check_truncated(tail: bytes, frame: pl.DataFrame, label: str, delimiter: str) -> None:
    """A last line without a newline and with fewer fields than the header was cut mid-row."""
    if tail.endswith(b"\n"):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(_csv.reader([last], delimiter=delimiter), [])
    if len(fields) < len(frame.columns):
        raise DataError(
            f"last row has {len(fields)} of {len(frame.columns)} fields (file truncated?)",
            path=label,
            row=frame.height,
        )


def canonical_frame(
    raw: pl.DataFrame, label: str, stem: str, opts: TableOptions
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Rename ``raw``'s columns to canonical names and type them; returns (frame, ignored).

    Canonical lower-case names map to themselves, and when nothing maps to ``ts`` a column
    named date, datetime, timestamp or time (any case) does; anything else not in
    ``opts.mapping`` is ignored (or refused with ``strict_columns``). Values that cannot be
    typed raise DataError with the row.
    """
    renames: dict[str, str] = {}
    ignored: list[str] = []
    for name in raw.columns:
        if name == ROW_COL:
            continue
        target = opts.mapping.get(name, name if name in ALL_COLUMNS else None)
        if target is None or target == "":
            if opts.strict_columns and name not in opts.mapping:
                raise DataError(
                    f"unexpected column {name!r} for the {opts.layout} layout", path=label
                )
            ignored.append(name)
            continue
        if target in renames.values():
            raise DataError(f"two columns map to {target!r}", path=label)
        renames[name] = target
    if "ts" not in renames.values():
        alias = next((n for n in ignored if n.lower() in TS_ALIASES), None)
        if alias is not None:
            renames[alias] = "ts"
            ignored.remove(alias)
    frame = raw.select([pl.col(s).alias(t) for s, t in renames.items()] + [pl.col(ROW_COL)])
    if "symbol" not in frame.columns:
        frame = frame.with_columns(pl.lit(opts.symbol or stem).alias("symbol"))
    elif opts.symbol is not None:
        frame = frame.with_columns(pl.lit(opts.symbol).alias("symbol"))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        present = ", ".join(c for c in raw.columns if c != ROW_COL)
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found {present} "
            f"(map columns with --map SOURCE=canonical)",
            path=label,
        )
    return type_columns(frame, label, opts), tuple(ignored)


def type_columns(frame: pl.DataFrame, label: str, opts: TableOptions) -> pl.DataFrame:
    """Cast the canonical columns of ``frame`` to their schema types, refusing bad values."""
    exprs: list[pl.Expr | pl.Series] = [pl.col(ROW_COL)]
    for name in frame.columns:
        if name in (ROW_COL, "ts"):
            continue
        if name in ("symbol", "series"):
            exprs.append(pl.col(name).cast(pl.String).str.strip_chars().replace("", None))
        elif name in _FLOAT_COLUMNS:
            exprs.append(_number(frame[name], name, label, frame[ROW_COL]).alias(name))
        else:  # the Int64 columns
            exprs.append(_integer(frame[name], name, label, frame[ROW_COL]).alias(name))
    typed = frame.select(exprs)
    return typed.with_columns(parse_ts(frame["ts"], label, frame[ROW_COL], opts).alias("ts"))


def _blank_to_null(values: pl.Series) -> pl.Series:
    if values.dtype == pl.String:
        return values.str.strip_chars().replace("", None)
    return values


def _first_failure(
    source: pl.Series, result: pl.Series, rows: pl.Series
) -> tuple[int, object] | None:
    bad = source.is_not_null() & result.is_null()
    if not bad.any():
        return None
    index = int(bad.arg_max() or 0)
    return int(rows[index]), source[index]


def _number(values: pl.Series, name: str, label: str, rows: pl.Series) -> pl.Series:
    source = _blank_to_null(values)
    result = source.cast(pl.Float64, strict=False)
    failure = _first_failure(source, result, rows)
    if failure is not None:
        raise DataError(f"{name}: not a number: {failure[1]!r}", path=label, row=failure[0])
    return result


def _integer(values: pl.Series, name: str, label: str, rows: pl.Series) -> pl.Series:
    """Integers, accepting integral floats such as ``1.2E+06`` that spreadsheets write."""
    source = _blank_to_null(values)
    exact = source.cast(pl.Int64, strict=False)
    if exact.null_count() == source.null_count():
        return exact
    floats = _number(values, name, label, rows)
    integral = floats.is_finite() & (floats == floats.floor()) & (floats.abs() < 2.0**63)
    result = floats.cast(pl.Int64, strict=False).set(~integral.fill_null(True), None)
    failure = _first_failure(source, result, rows)
    if failure is not None:
        raise DataError(f"{name}: not an integer: {failure[1]!r}", path=label, row=failure[0])
    return result


def _has_time(fmt: str) -> bool:
    return any(d in fmt for d in _TIME_DIRECTIVES)


def _parse_with(text: pl.Series, fmt: str) -> pl.Series:
    if _has_time(fmt):
        return text.str.to_datetime(fmt, strict=False, time_unit="us")
    return text.str.to_date(fmt, strict=False).cast(pl.Datetime("us"))


def parse_ts(values: pl.Series, label: str, rows: pl.Series, opts: TableOptions) -> pl.Series:
    """Timestamps as ``Datetime(us, Asia/Kolkata)``; naive ones are taken in ``opts.timezone``."""
    if values.dtype == pl.Date:
        return _localise(values.cast(pl.Datetime("us")), label, opts.timezone)
    if isinstance(values.dtype, pl.Datetime):
        return _localise(
            values.cast(pl.Datetime("us", values.dtype.time_zone)), label, opts.timezone
        )
    text = _blank_to_null(values.cast(pl.String))
    if opts.date_format is not None:
        formats: tuple[str, ...] = (opts.date_format,)
    else:
        # The format that parses most of a sample; a bad value then fails on its own row.
        sample = text.drop_nulls().head(_SAMPLE)
        formats = (max(DEFAULT_DATE_FORMATS, key=lambda f: _parse_with(sample, f).count()),)
    parsed = _parse_with(text, formats[0])
    failure = _first_failure(text, parsed, rows)
    if failure is not None:
        hint = (
            f"with --date-format {opts.date_format}"
            if opts.date_format
            else "as ISO (with or without offset) or DD-MM-YYYY; pass --date-format"
        )
        raise DataError(f"ts: cannot parse {failure[1]!r} {hint}", path=label, row=failure[0])
    return _localise(parsed, label, opts.timezone)


def _localise(values: pl.Series, label: str, timezone: str) -> pl.Series:
    dtype = values.dtype
    try:
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            values = values.dt.replace_time_zone(timezone)
        return values.dt.convert_time_zone(TIMEZONE).cast(TS_DTYPE)
    except pl.exceptions.ComputeError as exc:
        raise DataError(f"ts: {str(exc).splitlines()[0]}", path=label) from None


def finish(
    frames: Sequence[pl.DataFrame],
    labels: Sequence[str],
    inputs: Sequence[Path],
    ignored: Sequence[str] = (),
) -> ParsedSource:
    """Stack per-file frames (adding ``__file``), order columns canonically."""
    stacked = pl.concat(
        [f.with_columns(pl.lit(i, dtype=pl.Int32).alias(FILE_COL)) for i, f in enumerate(frames)],
        how="diagonal_relaxed",
    )
    ordered = [c for c in ALL_COLUMNS if c in stacked.columns] + list(BOOKKEEPING)
    return ParsedSource(
        frame=stacked.select(ordered),
        files=tuple(labels),
        inputs=tuple(inputs),
        ignored_columns=tuple(dict.fromkeys(ignored)),
    )
