"""Publishing a frame of bars as a new immutable dataset version, atomically.

The version is built in ``<root>/.tmp/<name>+publish-<random>/`` on the store's file system:
data files first (fsynced), then ``manifest.json``, then the directory is renamed into
``<root>/<name>/v<N>/``. A directory rename is atomic, so a process killed at any moment leaves
either no new version or a complete one; ``gc`` removes the abandoned temp directory.

Data files are content-named and written deterministically (the same bars give the same bytes),
so a re-run is recognised by its content hash and makes no version, and a version derived from
a parent hard-links every file whose bytes did not change (copy-on-write).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from quantcli import __version__, log
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.files import fsync_dir, make_temp_dir, write_new
from quantcli.core.hashing import sha256_hex
from quantcli.core.intervals import INTERVALS
from quantcli.core.lock import dataset_lock
from quantcli.core.timezone import TIMEZONE
from quantcli.errors import ConflictError, DataError, NotFoundError, UsageError
from quantcli.store.manifest import (
    MANIFEST,
    RAW,
    Manifest,
    Partition,
    SourceInfo,
    check_name,
    check_prices,
    content_hash,
    next_version,
    read_manifest,
    removed_versions,
    version_dir,
    version_numbers,
)
from quantcli.store.schema import (
    ALL_COLUMNS,
    FEATURE_DTYPE,
    FEATURES_KIND,
    KEY_COLUMNS,
    REQUIRED,
    column_dtype,
    column_order,
)

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

DATA_DIR = "data"
# Fixed writer settings: part of the on-disk format, so equal bars give equal bytes.
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_GROUP_ROWS = 1 << 20
MIN_ROW_GROUP_ROWS = 1 << 16
# A data file ends after ~1 symbol in CHUNK_SYMBOLS (by name hash) or at CHUNK_ROWS rows: a
# 2,000-symbol daily dataset is ~60 files, whose footers a full scan opens in a few ms.
CHUNK_SYMBOLS = 32
CHUNK_ROWS = 1 << 22
DATA_PAGE_BYTES = 1 << 20
HASH_PREFIX = 16


@dataclass(frozen=True)
class PublishResult:
    """The version a publish produced, or the existing one when the content was unchanged."""

    manifest: Manifest
    created: bool


# ---------------------------------------------------------------------------------------------
# Schema conformance.


def _conform_column(frame: pl.DataFrame, column: str) -> pl.Expr:
    import polars as pl

    dtype = frame.schema[column]
    target = ALL_COLUMNS[column]
    col = pl.col(column)
    if dtype in (target, pl.Null):
        return col.cast(target)
    if column == "ts":
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            return col.dt.convert_time_zone(TIMEZONE).cast(TS_DTYPE)
        if dtype == pl.Date:
            return col.cast(pl.Datetime("us")).dt.replace_time_zone(TIMEZONE)
    elif target == pl.String():
        if isinstance(dtype, pl.Categorical | pl.Enum):
            return col.cast(pl.String)
    elif target == pl.Float64():
        if dtype.is_float() or dtype.is_integer():
            return col.cast(pl.Float64)
    elif dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32):
        return col.cast(pl.Int64)
    raise DataError(f"column {column!r} has dtype {dtype}, expected {target} (no safe cast)")


def conform(frame: pl.DataFrame, *, features: bool = False) -> pl.DataFrame:
    """``frame`` in the canonical schema, sorted by (symbol, ts); DataError if it cannot be.

    Safe casts are applied (narrower integers, Float32, Categorical, a ts in another time zone or
    unit, a Date for daily bars); anything else, an unknown or missing column, a null in a
    required column, a duplicate (symbol, ts) or an empty frame is a DataError.

    With ``features`` the frame is a feature set: symbol and ts, then numeric feature columns
    (any name outside the bar schema, in the given order) stored as Float64, NaN and infinities
    as null.
    """
    import polars as pl

    if features:
        required: tuple[str, ...] = KEY_COLUMNS
        clash = [c for c in frame.columns if c in ALL_COLUMNS and c not in KEY_COLUMNS]
        if clash:
            raise DataError(
                f"feature column(s) {', '.join(clash)} are bar column names; rename them"
            )
        bad = [
            c for c in frame.columns if c not in KEY_COLUMNS and not frame.schema[c].is_numeric()
        ]
        if bad:
            column = bad[0]
            dtype = frame.schema[column]
            raise DataError(f"feature column {column!r} has dtype {dtype}, not a number")
    else:
        required = tuple(REQUIRED)
        unknown = [c for c in frame.columns if c not in ALL_COLUMNS]
        if unknown:
            raise DataError(
                f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(ALL_COLUMNS)}"
            )
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"missing required column(s) {', '.join(missing)}")
    if frame.height == 0:
        raise DataError("no rows to publish")
    if features:
        values = [c for c in frame.columns if c not in KEY_COLUMNS]
        finite = [
            pl.when(pl.col(c).cast(FEATURE_DTYPE).is_finite())
            .then(pl.col(c).cast(FEATURE_DTYPE))
            .alias(c)
            for c in values
        ]
        out = frame.select([_conform_column(frame, c) for c in KEY_COLUMNS] + finite)
    else:
        out = frame.select([_conform_column(frame, c) for c in column_order(frame.columns)])
    for column in required:
        if out.get_column(column).null_count():
            row = int(out.get_column(column).is_null().arg_true()[0])
            raise DataError(f"null {column} in row {row} (symbol {out['symbol'][row]!r})", row=row)
    out = out.sort("symbol", "ts")
    # Sorted, so a duplicate (symbol, ts) is equal to the row before it.
    dup = out.select(
        (pl.col("symbol") == pl.col("symbol").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
    ).to_series()
    if dup.any():
        row = int(dup.arg_true()[0])
        raise DataError(f"duplicate bar for symbol {out['symbol'][row]!r} at {out['ts'][row]}")
    return out


def arrow_schema(columns: list[str]) -> pa.Schema:
    """The Arrow schema data files are written with (fixed types, so bytes are stable)."""
    import polars as pl
    import pyarrow as pa

    def arrow_type(dtype: pl.DataType) -> pa.DataType:
        if dtype == pl.String():
            return pa.string()
        if dtype == pl.Float64():
            return pa.float64()
        if dtype == pl.Int64():
            return pa.int64()
        return pa.timestamp("us", tz=TIMEZONE)

    return pa.schema([pa.field(c, arrow_type(column_dtype(c))) for c in columns])


# ---------------------------------------------------------------------------------------------
# Data files.


@dataclass(frozen=True)
class _Chunk:
    """Rows ``[start, cuts[-1])`` of the sorted bars: whole symbols, stored in one data file."""

    start: int
    cuts: tuple[int, ...]  # row-group ends, the last is the chunk end
    symbols: tuple[tuple[str, int, int], ...]  # (symbol, start row, end row)


def _encode(table: pa.Table, cuts: tuple[int, ...]) -> bytes:
    """Bars as Parquet bytes, one row group per range ending at each of ``cuts``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        data_page_size=DATA_PAGE_BYTES,
        # Dictionaries only pay off for the repeated strings; on prices they cost time and bytes.
        use_dictionary=[f.name for f in table.schema if f.type == pa.string()],
        write_statistics=True,
        store_schema=True,
    ) as writer:
        lo = 0
        for hi in cuts:
            writer.write_table(table.slice(lo, hi - lo), row_group_size=ROW_GROUP_ROWS)
            lo = hi
    return bytes(sink.getvalue().to_pybytes())


def ends_chunk(symbol: str) -> bool:
    """Whether a data file ends after ``symbol``: true for about one symbol in CHUNK_SYMBOLS.

    Decided by the name alone (content-defined chunking), so adding, dropping or changing a
    symbol moves no boundary elsewhere and the other files keep their bytes (copy-on-write).
    """
    digest = hashlib.sha256(symbol.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % CHUNK_SYMBOLS == 0


def _chunks(bars: pl.DataFrame) -> list[_Chunk]:
    """The data files of ``bars`` (sorted): runs of whole symbols, and their row groups.

    A file holds consecutive symbols, so reading the files in order keeps (symbol, ts) order
    and a full scan opens few files; it also ends once it reaches CHUNK_ROWS rows. Row groups
    break only between symbols or calendar years (IST) and hold at least MIN_ROW_GROUP_ROWS
    rows when they can: scanning many tiny groups (a daily year is ~250 rows) costs far more
    than reading a few extra rows, and the symbol and ts statistics of larger groups still
    let readers skip the other symbols and years.
    """
    import polars as pl

    keys = bars.select(pl.col("symbol"), pl.col("ts").dt.year().alias("year"))
    new_symbol = (keys["symbol"] != keys["symbol"].shift(1)).fill_null(True)
    new_year = (keys["year"] != keys["year"].shift(1)).fill_null(True)
    starts = new_symbol.arg_true().to_list()
    breaks = (new_symbol | new_year).arg_true().to_list()
    names = keys["symbol"].gather(starts).to_list()
    ends = [*starts[1:], bars.height]
    out: list[_Chunk] = []
    members: list[tuple[str, int, int]] = []
    j = 0
    for name, lo, hi in zip(names, starts, ends, strict=True):
        members.append((name, lo, hi))
        first = members[0][1]
        if hi < bars.height and not ends_chunk(name) and hi - first < CHUNK_ROWS:
            continue
        cuts, last = [], first
        while j < len(breaks) and breaks[j] < hi:
            if breaks[j] - last >= MIN_ROW_GROUP_ROWS:
                cuts.append(breaks[j])
                last = breaks[j]
            j += 1
        cuts.append(hi)
        out.append(_Chunk(first, tuple(cuts), tuple(members)))
        members = []
    return out


def data_path(sha256: str) -> str:
    """The relative path of a data file, named by its content."""
    return f"{DATA_DIR}/{sha256[:HASH_PREFIX]}.parquet"


def _write_chunk(
    bars: pl.DataFrame, schema: pa.Schema, chunk: _Chunk, dest: Path, reuse: dict[str, Path]
) -> tuple[list[Partition], str, str]:
    end = chunk.cuts[-1]
    # Converted per file, so the whole frame is never held twice (polars and Arrow).
    table = bars.slice(chunk.start, end - chunk.start).to_arrow().cast(schema)
    data = _encode(table, tuple(c - chunk.start for c in chunk.cuts))
    sha = sha256_hex(data)
    rel = data_path(sha)
    target = dest / rel
    source = reuse.get(sha)
    linked = False
    if source is not None:
        try:
            # A base file truncated or rewritten since its version was made is not linked into
            # this one under the sha256 of what it should hold: a fresh copy is written.
            if source.stat().st_size == len(data):
                os.link(source, target)
                linked = True
        except OSError:
            linked = False  # another file system or link limit: write a copy below
    if not linked:
        write_new(target, data, 0o444)
    ts = bars["ts"]
    partitions = [
        Partition(
            path=rel,
            symbol=symbol,
            rows=hi - lo,
            first_ts=ts[lo],
            last_ts=ts[hi - 1],
            bytes=len(data),
        )
        for symbol, lo, hi in chunk.symbols
    ]
    return partitions, rel, sha


def _write_files(
    bars: pl.DataFrame, dest: Path, reuse: dict[str, Path]
) -> tuple[list[Partition], dict[str, str], dict[str, str]]:
    schema = arrow_schema(bars.columns)
    (dest / DATA_DIR).mkdir()
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(lambda c: _write_chunk(bars, schema, c, dest, reuse), _chunks(bars)))
    fsync_dir(dest / DATA_DIR)
    partitions = [p for parts, _, _ in done for p in parts]
    files = {rel: sha for _, rel, sha in done}
    return partitions, files, {f.name: str(f.type) for f in schema}


def _reusable(root: Path, name: str, base: int | None) -> dict[str, Path]:
    """sha256 -> file of the base version, for hard-linking unchanged files."""
    if base is None:
        return {}
    folder = version_dir(root, name, base)
    return {sha: folder / rel for rel, sha in read_manifest(folder).files.items()}


def _check_latest(name: str, expected: int | None, latest: int | None) -> None:
    if expected is not None and latest != expected:
        now = "no version" if latest is None else f"v{latest}"
        raise ConflictError(
            f"dataset {name} moved from v{expected} to {now} while this update was being "
            "prepared; re-run it"
        )


def check_kind(latest: Manifest, *, features: bool) -> None:
    """UsageError when a version of the other kind (bars or a feature set) would follow
    ``latest``: one name holds one kind, so readers of either always get what they expect."""
    if (latest.source.kind == FEATURES_KIND) != features:
        held = "feature set versions" if latest.source.kind == FEATURES_KIND else "bar versions"
        raise UsageError(f"{latest.name} holds {held}; publish this under another name")


def publish(
    root: Path,
    name: str,
    frame: pl.DataFrame,
    *,
    interval: str,
    source: SourceInfo,
    parent: int | None = None,
    notes: dict[str, object] | None = None,
    prices: str = RAW,
    wait: float = 0,
    expect_latest: int | None = None,
) -> PublishResult:
    """Publish ``frame`` as the next version of dataset ``name`` under ``root``.

    ``parent`` is the version the new one derives from (default: the latest); its unchanged data
    files are hard-linked. ``prices`` is what the vendor already adjusted the prices for
    (``manifest.PRICES``). When the content hash equals the latest version's, nothing is
    written and ``created`` is False. Holds the dataset lock (waiting up to ``wait`` seconds,
    else LockHeldError). DataError when ``frame`` does not fit the canonical schema.

    ``expect_latest`` guards a read-modify-write (such as an append): ``frame`` was derived from
    that version, so if another writer has published since, the new version would silently
    drop its bars. Then ConflictError, checked under the lock, unless ``frame`` equals the new
    latest version (an overlapping re-run of the same update is still "unchanged").
    """
    check_name(name)
    if interval not in INTERVALS:
        raise UsageError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}")
    prices = check_prices(prices)
    features = source.kind == FEATURES_KIND
    bars = conform(frame, features=features)
    with dataset_lock(root, name, wait=wait):
        versions = version_numbers(root, name)
        if versions:
            check_kind(read_manifest(version_dir(root, name, versions[-1])), features=features)
        if parent is not None and parent not in versions:
            have = ", ".join(f"v{v}" for v in versions) or "none"
            raise NotFoundError(f"parent version {name}@v{parent} not found (versions: {have})")
        latest = versions[-1] if versions else None
        base = parent if parent is not None else latest
        tmp = make_temp_dir(root, name, "publish")
        try:
            partitions, files, schema = _write_files(bars, tmp, _reusable(root, name, base))
            digest = content_hash(files, schema, interval, prices)
            if latest is not None:
                current = read_manifest(version_dir(root, name, latest))
                if current.content_hash == digest:
                    shutil.rmtree(tmp)
                    log.event("dataset.unchanged", ref=current.ref, rows=current.rows)
                    return PublishResult(current, created=False)
            _check_latest(name, expect_latest, latest)
            manifest = Manifest(
                name=name,
                version=next_version(root, name),
                parent=base,
                created_at=datetime.now(UTC).replace(microsecond=0),
                interval=interval,
                timezone=TIMEZONE,
                schema=schema,
                rows=bars.height,
                symbols=tuple(p.symbol for p in partitions),
                first_ts=min(p.first_ts for p in partitions),
                last_ts=max(p.last_ts for p in partitions),
                source=source,
                files=files,
                partitions=tuple(partitions),
                content_hash=digest,
                quantcli_version=__version__,
                notes=dict(notes or {}),
                prices=prices,
            )
            # The manifest goes last: a directory holding it is complete.
            write_new(tmp / MANIFEST, manifest.to_json().encode("utf-8"), 0o444)
            _install(tmp, root, name, manifest.version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.event(
            "dataset.published",
            ref=manifest.ref,
            parent=None if base is None else f"{name}@v{base}",
            rows=manifest.rows,
            files=len(files),
            last_bar=manifest.last_ts.isoformat(),
        )
        return PublishResult(manifest, created=True)


def _install(tmp: Path, root: Path, name: str, version: int) -> None:
    """Rename the complete temp directory ``tmp`` into place as ``name`` version ``version``."""
    fsync_dir(tmp)
    os.rename(tmp, version_dir(root, name, version))
    fsync_dir(root / name)


def publish_files(
    root: Path,
    name: str,
    files: Callable[[int], Mapping[str, bytes]],
    *,
    marker: str,
    existing: Callable[[Path], bool],
    wait: float = 0,
    what: str = "dataset",
    version: int | None = None,
) -> tuple[int, bool]:
    """Publish the files ``files(version)`` returns as the next version of ``name`` under
    ``root``, the same way as :func:`publish`: built in a temp directory, renamed into place
    under the lock. For versioned things that are not bars (models).

    ``files`` maps relative paths to bytes and must include ``marker``, which is written last
    (a version is visible once its marker exists). When ``existing`` is true for a version's
    directory, that version holds the same thing: nothing is written and ``(that version,
    False)`` is returned; else ``(new version, True)``.

    ``version`` fixes the new version's number (a version pulled from a remote keeps the number
    its manifest and every run pinning it carry); ConflictError when that number exists or
    existed here.
    """
    check_name(name)
    with dataset_lock(root, name, wait=wait, what=what):
        for v in version_numbers(root, name, marker):
            if existing(version_dir(root, name, v)):
                return v, False
        if version is None:
            version = next_version(root, name)
        elif version in (*version_numbers(root, name, marker), *removed_versions(root, name)):
            raise ConflictError(
                f"{name}@v{version} already exists here with other content (or was removed); "
                "it cannot be replaced"
            )
        tmp = make_temp_dir(root, name, "publish")
        try:
            contents = files(version)
            for rel in sorted(contents, key=lambda r: r == marker):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                write_new(target, contents[rel], 0o444)
            _install(tmp, root, name, version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.event(f"{what}.published", ref=f"{name}@v{version}", files=len(contents))
        return version, True
