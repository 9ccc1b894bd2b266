"""Shared parsing for the tabular sources: read a text table, map columns, type them.

Every parser returns the canonical columns plus two bookkeeping columns, ``__file`` (index into
``ParsedSource.files``) and ``__row`` (the line an editor shows for the bar: the header is line
1, so the first data row of a plain CSV is line 2; a Parquet file's 1-based row), so validation
can point at the exact input line. Both are dropped before publishing.

Files are read as bytes by this module, never handed to polars as paths: polars expands glob
characters in a path, so ``[ab].csv`` would ingest ``a.csv`` and ``b.csv`` under the wrong name.
"""

from __future__ import annotations

import csv as _csv
import gzip
import io
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

import polars as pl

from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.timezone import TIMEZONE
from quantcli.errors import DataError, QuantcliError, UsageError
from quantcli.store.manifest import RAW, check_prices
from quantcli.store.schema import ALL_COLUMNS, REQUIRED

FILE_COL: Final = "__file"
ROW_COL: Final = "__row"
BOOKKEEPING: Final = (FILE_COL, ROW_COL)

# Tried in order when no --date-format is given: ISO with a UTC offset (intraday vendor files;
# a trailing Z is read as +00:00), plain ISO, then the DD-MM-YYYY of NSE's own downloads.
DEFAULT_DATE_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
)
_TIME_DIRECTIVES: Final = ("%H", "%M", "%S", "%T", "%R", "%z", "%s", "%I", "%p")
# Column names taken as ``ts`` when nothing else maps to it (vendor files say "date").
TS_ALIASES: Final = ("date", "datetime", "timestamp", "time")
# The options every tabular source takes (see TableOptions).
TABLE_OPTIONS: Final = ("date_format", "timezone", "symbol", "symbol_column", "volume_optional")
# ``--prices``: what the vendor already adjusted a file's prices for, in the sources whose
# layout does not say (csv, parquet, nifty50); the yahoo source knows it from its layout.
PRICES_OPTION: Final = "prices"
_SAMPLE: Final = 1000
_FLOAT_COLUMNS: Final = tuple(c for c, t in ALL_COLUMNS.items() if t == pl.Float64())
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
_TABLE_SUFFIXES: Final = (".csv", ".tsv")  # a zip's members read as tables (not its readme)
_BOM: Final = b"\xef\xbb\xbf"
_TAIL: Final = 65536


@dataclass(frozen=True)
class ParsedSource:
    """Canonical bars parsed from the inputs, with ``__file``/``__row`` when they came from files.

    ``files`` holds display labels indexed by ``__file`` (a zip member is ``archive.zip!member``);
    ``inputs`` the files read from disk, which the manifest records with their hashes; ``notes``
    what the parser did beyond reading (filled volumes, dropped rows, renamed symbols), for the
    manifest's notes; ``prices`` what the vendor already adjusted the prices for
    (``manifest.PRICES``).
    """

    frame: pl.DataFrame
    files: tuple[str, ...]
    inputs: tuple[Path, ...]
    ignored_columns: tuple[str, ...] = ()
    notes: Mapping[str, object] = field(default_factory=dict)
    prices: str = RAW


@dataclass(frozen=True)
class TableOptions:
    """How to turn one raw table into canonical columns."""

    mapping: Mapping[str, str]  # source column -> canonical column
    date_format: str | None = None
    timezone: str = TIMEZONE
    symbol: str | None = None
    symbol_column: str | None = None
    volume_optional: bool = False  # empty or absent volume is 0 (index files have none)
    strict_columns: bool = False  # unknown columns are an error (fixed layouts) instead of ignored
    layout: str = "csv"  # named in errors about columns


def check_options(kind: str, options: Mapping[str, str], allowed: Sequence[str]) -> None:
    """Refuse option keys a source kind does not understand (``map.*`` is checked by callers)."""
    unknown = sorted(k for k in options if k not in allowed and not k.startswith("map."))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(f"source {kind!r} does not take option(s): {flags}")


def column_mapping(options: Mapping[str, str]) -> dict[str, str]:
    """The ``map.<source>=<canonical>`` options (and ``symbol_column``) as a dict, checked
    against the schema."""
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
    column = options.get("symbol_column")
    if column:
        if "symbol" in mapping.values() and mapping.get(column) != "symbol":
            raise UsageError("--symbol-column and --map ...=symbol name different columns")
        mapping[column] = "symbol"
    return mapping


def flag(options: Mapping[str, str], key: str) -> bool:
    """A boolean option: ``true``/``1``/``yes`` (as the CLI stores a set flag) or absent."""
    raw = (options.get(key) or "false").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise UsageError(f"--{key.replace('_', '-')} is a flag (true or false), not {raw!r}")


def table_options(options: Mapping[str, str], *, mapping: Mapping[str, str]) -> TableOptions:
    """TableOptions from the common string options (``TABLE_OPTIONS``)."""
    symbol, column = options.get("symbol") or None, options.get("symbol_column") or None
    if symbol is not None and column is not None:
        raise UsageError("pass --symbol or --symbol-column, not both")
    return TableOptions(
        mapping=mapping,
        date_format=options.get("date_format") or None,
        timezone=options.get("timezone") or TIMEZONE,
        symbol=symbol,
        symbol_column=column,
        volume_optional=flag(options, "volume_optional"),
    )


def prices_option(options: Mapping[str, str]) -> str:
    """The ``prices`` option as a manifest kind (default raw); UsageError naming ``--prices``."""
    return check_prices(options.get(PRICES_OPTION) or RAW)


def skip_rows(options: Mapping[str, str]) -> int:
    """The ``skip_rows`` option: extra header rows under the column names (default 0)."""
    raw = options.get("skip_rows") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"--skip-rows must be a whole number, not {raw!r}") from None
    if value < 0:
        raise UsageError(f"--skip-rows must be 0 or more, not {value}")
    return value


def table_stem(name: str) -> str:
    """The default symbol of a table: its file or zip member name without folders, ``.gz``
    and the extension (``TCS.csv.gz`` -> ``TCS``; a member ``data/TCS.csv`` -> ``TCS``)."""
    name = Path(name).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


# --- reading files -------------------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path`` (checked to be a file by ``parse_source``); one line naming it
    when it cannot be read (permissions, I/O error)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise QuantcliError(f"{path}: cannot read: {exc.strerror or exc}") from None


class InputTable(NamedTuple):
    """One table read from an input file: ``label`` for messages (``archive.zip!member`` for
    a zip member), ``name`` the file or member name, ``content`` its (decompressed) bytes."""

    label: str
    name: str
    content: bytes


def input_tables(path: Path) -> list[InputTable]:
    """Each table in ``path``: a plain file as it is, a gzip file decompressed, or each
    ``.csv``/``.tsv`` in a zip archive.

    The kind is told by the first bytes, and by a ``.gz``/``.zip`` name (so a damaged archive
    is called one). Raises DataError naming the file for a truncated or corrupt archive.
    """
    raw = read_bytes(path)
    label, name = str(path), path.name.lower()
    if raw.startswith(_GZIP_MAGIC) or name.endswith(".gz"):
        return [InputTable(label, path.name, _gunzip(raw, label))]
    if raw.startswith(_ZIP_MAGIC) or name.endswith(".zip"):
        return unzip_tables(raw, label)
    return [InputTable(label, path.name, raw)]


def _gunzip(raw: bytes, label: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        raise DataError("named .gz but not gzip data", path=label)
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError("gzip data ends early (file truncated?)", path=label) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"corrupt gzip data ({exc})", path=label) from None


def unzip_tables(raw: bytes, label: str) -> list[InputTable]:
    """Each ``.csv``/``.tsv`` member of the zip archive ``raw`` (``label`` names it); DataError
    for an archive without one, a truncated or corrupt archive, or one that cannot be unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [
                m
                for m in archive.infolist()
                if m.filename.lower().endswith(_TABLE_SUFFIXES)
                and not m.filename.startswith("__MACOSX/")  # macOS resource forks
            ]
            if not members:
                raise DataError("zip archive holds no .csv file", path=label)
            return [
                InputTable(f"{label}!{m.filename}", m.filename, archive.read(m)) for m in members
            ]
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a readable zip archive ({exc}; truncated?)", path=label) from None
    except (zlib.error, EOFError) as exc:
        raise DataError(f"corrupt zip member ({exc})", path=label) from None
    except (NotImplementedError, RuntimeError) as exc:  # an unsupported method, a password
        raise DataError(f"cannot unpack zip archive ({exc})", path=label) from None


def read_text_table(
    content: bytes, label: str, *, delimiter: str = ",", skip: int = 0
) -> pl.DataFrame:
    """Every column of a delimited UTF-8 text table as strings, plus ``__row`` (the line).

    ``skip`` rows under the header line are skipped (multi-line headers); blank lines and
    rows of empty fields are dropped; classic-Mac CR-only line ends are read as line ends.
    Raises DataError naming ``label`` for an empty file, non-UTF-8 bytes, a header that looks
    like another delimiter, rows with too many fields, and a last line cut mid-row.
    """
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    if b"\r" in content and b"\n" not in content:
        content = content.replace(b"\r", b"\n")
    try:
        frame = pl.read_csv(
            io.BytesIO(content),
            infer_schema=False,
            separator=delimiter,
            empty_string_is_null=False,
            raise_if_empty=True,
            skip_rows_after_header=skip,
        )
    except pl.exceptions.NoDataError:
        raise DataError("empty file: no header and no rows", path=label) from None
    except pl.exceptions.ComputeError as exc:
        raise _explain_read_error(content, label, delimiter, exc) from None
    if any("\ufffd" in name for name in frame.columns):  # polars decodes the header lossily
        raise _explain_read_error(content, label, delimiter, None)
    _check_header(frame, label, delimiter)
    lines = _data_lines(content, frame.height, delimiter, skip)
    frame = frame.with_columns(pl.Series(ROW_COL, lines, dtype=pl.Int64))
    # A blank line (or one of empty fields) holds no bar: dropped, keeping the line numbers.
    blank = pl.all_horizontal(pl.exclude(ROW_COL).fill_null("").str.strip_chars() == "")
    frame = frame.filter(~blank)
    if frame.height == 0:
        raise DataError("no data rows after the header", path=label)
    _check_truncated(content[-_TAIL:], frame, label, delimiter)
    return frame


def _data_lines(content: bytes, rows: int, delimiter: str, skip: int) -> list[int]:
    """The line on which each of ``rows`` data records starts (header = line 1).

    Records are one line each unless a quoted field holds a line break; only then is the text
    walked with the csv module to find where each record starts.
    """
    first = 2 + skip
    total = content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
    if total == first - 1 + rows:
        return list(range(first, first + rows))
    reader = _csv.reader(
        io.StringIO(content.decode("utf-8", errors="replace"), newline=""), delimiter=delimiter
    )
    starts, previous = [], 0
    for _ in reader:
        starts.append(previous + 1)
        previous = reader.line_num
    data = starts[1 + skip :]
    return data if len(data) == rows else list(range(first, first + rows))


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
            row=None if line == 1 else line,
        )
    rows = _csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(rows, [])
    start = rows.line_num
    for fields in rows:
        if len(fields) > len(header):
            return DataError(
                f"{len(fields)} fields but the header has {len(header)}", path=label, row=start + 1
            )
        start = rows.line_num
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
    if tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(_csv.reader([last], delimiter=delimiter), [])
    width = len(frame.columns) - 1  # without __row
    if len(fields) < width:
        raise DataError(
            f"last row has {len(fields)} of {width} fields (file truncated?)",
            path=label,
            row=int(frame[ROW_COL][-1]),
        )


# --- columns and types ---------------------------------------------------------------------


def normalised(name: str) -> str:
    """A column name compared case- and spacing-insensitively: ``Prev Close`` -> ``prev_close``."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def canonical_frame(
    raw: pl.DataFrame, label: str, stem: str, opts: TableOptions
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Rename ``raw``'s columns to canonical names and type them; returns (frame, ignored).

    ``opts.mapping`` (``--map``) decides first; other columns whose name is a canonical one in
    any case or spacing (``Open``, ``PREV CLOSE``) map to it unless a mapping already claimed
    that column, and when nothing maps to ``ts`` a column named date, datetime, timestamp or
    time (any case) does. Anything else is ignored. A fixed layout (``strict_columns``) maps
    by ``opts.mapping`` alone, in any case or spacing, and refuses other columns. Values that
    cannot be typed raise DataError with the line.
    """
    if opts.symbol_column is not None and opts.symbol_column not in raw.columns:
        present = ", ".join(c for c in raw.columns if c != ROW_COL)
        raise DataError(
            f"--symbol-column {opts.symbol_column!r}: no such column; found {present}", path=label
        )
    claimed = {t for s, t in opts.mapping.items() if s in raw.columns and t}
    layout = {normalised(s): t for s, t in opts.mapping.items()} if opts.strict_columns else {}
    renames: dict[str, str] = {}
    ignored: list[str] = []
    for name in raw.columns:
        if name == ROW_COL:
            continue
        known = name in opts.mapping or normalised(name) in layout
        if name in opts.mapping:
            target: str | None = opts.mapping[name]
        elif opts.strict_columns:
            target = layout.get(normalised(name))
        else:
            auto = normalised(name)
            target = auto if auto in ALL_COLUMNS and auto not in claimed else None
        if not target:
            if opts.strict_columns and not known:
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
    if "symbol" not in frame.columns or opts.symbol is not None:
        frame = frame.with_columns(pl.lit(opts.symbol or stem).alias("symbol"))
    if "volume" not in frame.columns and opts.volume_optional:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("volume"))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        present = ", ".join(c for c in raw.columns if c != ROW_COL)
        hint = "map columns with --map SOURCE=canonical"
        if missing == ["volume"]:
            hint += "; an index file without volume: --volume-optional"
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found {present} ({hint})", path=label
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


def _first(mask: pl.Series, source: pl.Series, rows: pl.Series) -> tuple[int, object] | None:
    """(line, value) of the first row where ``mask`` holds, or None."""
    mask = mask.fill_null(False)
    if not mask.any():
        return None
    index = int(mask.arg_max() or 0)
    return int(rows[index]), source[index]


def _first_failure(
    source: pl.Series, result: pl.Series, rows: pl.Series
) -> tuple[int, object] | None:
    return _first(source.is_not_null() & result.is_null(), source, rows)


def _number(values: pl.Series, name: str, label: str, rows: pl.Series) -> pl.Series:
    """Floats; inf, nan (any spelling) and overflowing values such as 1e999 are refused, as no
    price or volume is infinite or undefined."""
    source = _blank_to_null(values)
    result = source.cast(pl.Float64, strict=False)
    failure = _first_failure(source, result, rows)
    if failure is not None:
        raise DataError(f"{name}: not a number: {failure[1]!r}", path=label, row=failure[0])
    infinite = _first(~result.is_finite(), source, rows)
    if infinite is not None:
        raise DataError(
            f"{name}: not a finite number: {infinite[1]!r}", path=label, row=infinite[0]
        )
    return result


def _integer(values: pl.Series, name: str, label: str, rows: pl.Series) -> pl.Series:
    """Integers, accepting integral floats such as ``1.2E+06`` that spreadsheets write."""
    source = _blank_to_null(values)
    exact = source.cast(pl.Int64, strict=False)
    if exact.null_count() == source.null_count():
        return exact
    floats = _number(values, name, label, rows)
    integral = (floats == floats.floor()) & (floats.abs() < 2.0**63)
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
    """Timestamps as ``Datetime(us, Asia/Kolkata)``; naive ones are taken in ``opts.timezone``,
    aware ones (``+05:30``, ``+00:00``, ``Z``) converted. Years before 1000 are refused as the
    two-digit years they almost always are, unless ``--date-format`` reads them with ``%y``."""
    if values.dtype == pl.Date:
        return _localise(values.cast(pl.Datetime("us")), label, opts.timezone)
    if isinstance(values.dtype, pl.Datetime):
        return _localise(
            values.cast(pl.Datetime("us", values.dtype.time_zone)), label, opts.timezone
        )
    text = _blank_to_null(values.cast(pl.String))
    if opts.date_format is not None:
        fmt = opts.date_format
    else:
        if (text.str.ends_with("Z") | text.str.ends_with("z")).any():  # ISO 8601's Z is UTC
            text = text.str.replace(r"(\d)[Zz]$", "${1}+00:00")
        # The format that parses most of a sample; a bad value then fails on its own row.
        sample = text.drop_nulls().head(_SAMPLE)
        fmt = max(DEFAULT_DATE_FORMATS, key=lambda f: _parse_with(sample, f).count())
    parsed = _parse_with(text, fmt)
    failure = _first_failure(text, parsed, rows)
    if failure is not None:
        hint = (
            f"with --date-format {opts.date_format}"
            if opts.date_format
            else "as ISO (with or without offset) or DD-MM-YYYY; pass --date-format"
        )
        raise DataError(f"ts: cannot parse {failure[1]!r} {hint}", path=label, row=failure[0])
    early = _first(parsed.dt.year() < 1000, text, rows) if "%y" not in fmt else None
    if early is not None:
        raise DataError(
            f"ts: {early[1]!r} has a two-digit year; write four-digit years, or pass "
            "--date-format with %y (00-68 read as 2000-2068, 69-99 as 1969-1999)",
            path=label,
            row=early[0],
        )
    return _localise(parsed, label, opts.timezone)


def _localise(values: pl.Series, label: str, timezone: str) -> pl.Series:
    dtype = values.dtype
    try:
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            values = values.dt.replace_time_zone(timezone)
        return values.dt.convert_time_zone(TIMEZONE).cast(TS_DTYPE)
    except pl.exceptions.ComputeError as exc:
        raise DataError(f"ts: {str(exc).splitlines()[0]}", path=label) from None


def parse_tables(
    files: Sequence[Path],
    opts: TableOptions,
    *,
    delimiter: str = ",",
    skip: int = 0,
) -> ParsedSource:
    """Read every table in ``files`` (plain, gzip or zip) and map each with ``opts``; the
    symbol defaults to the table's file name (``table_stem``)."""
    frames: list[pl.DataFrame] = []
    labels: list[str] = []
    ignored: list[str] = []
    for path in files:
        for label, name, content in input_tables(path):
            raw = read_text_table(content, label, delimiter=delimiter, skip=skip)
            frame, skipped = canonical_frame(raw, label, table_stem(name), opts)
            frames.append(frame)
            labels.append(label)
            ignored.extend(skipped)
    return finish(frames, labels, files, ignored, volume_optional=opts.volume_optional)


def finish(
    frames: Sequence[pl.DataFrame],
    labels: Sequence[str],
    inputs: Sequence[Path],
    ignored: Sequence[str] = (),
    *,
    volume_optional: bool = False,
    notes: Mapping[str, object] | None = None,
) -> ParsedSource:
    """Stack per-file frames (adding ``__file``), order columns canonically.

    With ``volume_optional`` an empty volume is stored as 0 (never null, which validation
    refuses) and the notes count them per symbol under ``volume_missing_as_zero``.
    """
    stacked = pl.concat(
        [f.with_columns(pl.lit(i, dtype=pl.Int32).alias(FILE_COL)) for i, f in enumerate(frames)],
        how="diagonal_relaxed",
    )
    all_notes = dict(notes or {})
    if volume_optional:
        empty = stacked.filter(pl.col("volume").is_null()).group_by("symbol").len().sort("symbol")
        if empty.height:
            all_notes["volume_missing_as_zero"] = dict(
                zip(empty["symbol"].to_list(), empty["len"].to_list(), strict=True)
            )
            stacked = stacked.with_columns(pl.col("volume").fill_null(0))
    ordered = [c for c in ALL_COLUMNS if c in stacked.columns] + list(BOOKKEEPING)
    return ParsedSource(
        frame=stacked.select(ordered),
        files=tuple(labels),
        inputs=tuple(inputs),
        ignored_columns=tuple(dict.fromkeys(ignored)),
        notes=all_notes,
    )
