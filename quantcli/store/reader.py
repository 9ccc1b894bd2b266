"""Reading a pinned dataset version: polars, Arrow or DuckDB, filtered by symbol and time.

Files are taken from the manifest, never found by globbing. A file holds a run of whole
symbols in (symbol, ts) order, so the files of a selection read in manifest order are sorted, and
row-group statistics on symbol and ts let polars and DuckDB skip the other symbols and years.

A damaged store is an IntegrityError naming the file and pointing to ``data verify``, never a
reader's traceback: opening a version checks that each data file exists with the size its
manifest records (a stat per file, not a re-hash), and an error of polars, pyarrow or DuckDB
while reading the files is traced to the file that is damaged (see :func:`reading`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from quantcli.core.timezone import IST, TIMEZONE
from quantcli.errors import IntegrityError, NotFoundError, QuantcliError, UsageError
from quantcli.store.catalog import resolve_version
from quantcli.store.manifest import Manifest, read_manifest, version_dir

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa

    from quantcli.market.corporate_actions import CorporateAction

# Arrow type names in manifest.json -> DuckDB types, declared so nothing is inferred.
DUCKDB_TYPES = {
    "string": "VARCHAR",
    f"timestamp[us, tz={TIMEZONE}]": "TIMESTAMPTZ",
    "double": "DOUBLE",
    "int64": "BIGINT",
}
MAX_LISTED = 20


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TimeRange:
    """``[start, end]`` in IST; a date bound covers the whole IST day."""

    start: datetime | None
    end: datetime | None
    end_inclusive: bool

    @classmethod
    def of(cls, start: date | datetime | None, end: date | datetime | None) -> TimeRange:
        """Normalise the bounds; a naive datetime is read as IST."""

        def at(value: date | datetime) -> datetime:
            if isinstance(value, datetime):
                aware = value if value.tzinfo is not None else value.replace(tzinfo=IST)
                return aware.astimezone(IST)
            return datetime.combine(value, time(0), tzinfo=IST)

        lo = None if start is None else at(start)
        if end is None:
            return cls(lo, None, True)
        if isinstance(end, datetime):
            return cls(lo, at(end), True)
        return cls(lo, at(end + timedelta(days=1)), False)


@dataclass(frozen=True)
class DatasetVersion:
    """One resolved, immutable dataset version."""

    name: str
    version: int
    path: Path
    manifest: Manifest

    @property
    def root(self) -> Path:
        """The store root the version lives in."""
        return self.path.parent.parent

    @property
    def ref(self) -> str:
        """The pinned reference ``NAME@vN``."""
        return self.manifest.ref

    def select_symbols(self, symbols: Sequence[str] | str | None) -> tuple[str, ...]:
        """The requested symbols (all when None; a str is one symbol), checked against the
        version: NotFoundError naming the unknown ones."""
        if symbols is None:
            return self.manifest.symbols
        wanted = (symbols,) if isinstance(symbols, str) else tuple(dict.fromkeys(symbols))
        if not wanted:
            raise UsageError("an empty symbol list selects nothing; pass None for all symbols")
        known = set(self.manifest.symbols)
        unknown = [s for s in wanted if s not in known]
        if unknown:
            listed = ", ".join(self.manifest.symbols[:MAX_LISTED])
            more = len(self.manifest.symbols) - MAX_LISTED
            listed += f" and {more} more" if more > 0 else ""
            raise NotFoundError(
                f"symbol(s) {', '.join(unknown)} not in {self.ref} (symbols: {listed})"
            )
        return wanted

    def damaged(self, rel: str, problem: str) -> IntegrityError:
        """The error for data file ``rel`` of this version, which ``problem`` describes."""
        return IntegrityError(
            f"data file of {self.ref} {problem}; run `quantcli data verify {self.ref}`",
            path=str(self.path / rel),
        )

    def check_files(self) -> None:
        """IntegrityError unless every data file of the manifest exists with its recorded size.

        A stat per file: it catches missing, truncated and rewritten files when a version is
        opened; a change that keeps the size is found by :func:`reading` or ``data verify``.
        """
        sizes = {p.path: p.bytes for p in self.manifest.partitions}
        for rel in self.manifest.files:
            try:
                size = (self.path / rel).stat().st_size
            except FileNotFoundError:
                raise self.damaged(rel, "is missing") from None
            except OSError as exc:
                raise self.damaged(rel, f"cannot be read ({exc.strerror})") from None
            expected = sizes.get(rel)
            if expected is not None and size != expected:
                problem = f"is {size:,} bytes, not the {expected:,} its manifest records"
                raise self.damaged(rel, f"{problem} (truncated or changed)")

    def actions(self, symbols: Sequence[str] | str | None = None) -> list[CorporateAction]:
        """The corporate actions on record (bundled and the store's) that apply to this
        version's prices, for ``symbols`` (all of the version's if None): what its vendor has
        already adjusted for is left out (see quantcli.store.manifest.partition_actions)."""
        from quantcli.market.corporate_actions import actions_for
        from quantcli.store.manifest import partition_actions

        on_record = actions_for(self.select_symbols(symbols), self.root)
        return partition_actions(on_record, self.manifest.prices)[0]

    def files(self, symbols: Sequence[str] | str | None = None) -> list[Path]:
        """The data files holding ``symbols`` (all when None), in manifest (symbol) order."""
        chosen = None if symbols is None else self.select_symbols(symbols)
        paths = dict.fromkeys(p.path for p in self.manifest.partitions_for(chosen))
        return [self.path / p for p in paths]

    def _columns(self, columns: Sequence[str] | None) -> list[str]:
        have = list(self.manifest.schema)
        if columns is None:
            return have
        unknown = [c for c in columns if c not in have]
        if unknown:
            raise UsageError(
                f"column(s) {', '.join(unknown)} not in {self.ref} (columns: {', '.join(have)})"
            )
        return list(columns)

    def lazy(
        self,
        symbols: Sequence[str] | str | None = None,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        *,
        adjusted: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        """The bars as a polars LazyFrame sorted by (symbol, ts).

        ``start``/``end`` are inclusive; a date means the whole IST day. ``adjusted`` applies
        split/bonus/dividend back-adjustment from the corporate-actions table (those actions
        the vendor has not already adjusted the prices for).
        """
        import polars as pl

        from quantcli.store.schema import column_dtype

        selected = self._columns(columns)
        files = self.files(symbols)
        schema = {c: column_dtype(c) for c in self.manifest.schema}
        lf = pl.scan_parquet(
            [str(f) for f in files], schema=schema, hive_partitioning=False, glob=False
        )
        if symbols is not None:
            # A file may hold other symbols too; their row groups are skipped on statistics.
            lf = lf.filter(pl.col("symbol").is_in(self.select_symbols(symbols)))
        if adjusted:
            from quantcli.market.corporate_actions import back_adjust

            lf = back_adjust(lf, self.actions(symbols))
        bounds = TimeRange.of(start, end)
        if bounds.start is not None:
            lf = lf.filter(pl.col("ts") >= bounds.start)
        if bounds.end is not None:
            upper = (
                pl.col("ts") <= bounds.end if bounds.end_inclusive else pl.col("ts") < bounds.end
            )
            lf = lf.filter(upper)
        return lf.select(selected)

    def frame(
        self,
        symbols: Sequence[str] | str | None = None,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        *,
        adjusted: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """:meth:`lazy`, collected: the bars as a polars DataFrame sorted by (symbol, ts).

        A data file that cannot be read is an IntegrityError naming it (see :func:`reading`).
        """
        with reading(self):
            return self.lazy(symbols, start, end, adjusted=adjusted, columns=columns).collect()

    def arrow(
        self,
        symbols: Sequence[str] | str | None = None,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        *,
        adjusted: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The bars as an Arrow table in the on-disk types, sorted by (symbol, ts)."""
        from quantcli.store.publish import arrow_schema

        frame = self.frame(symbols, start, end, adjusted=adjusted, columns=columns)
        return frame.to_arrow().cast(arrow_schema(frame.columns))

    def parquet_sql(self, symbols: Sequence[str] | str | None = None) -> str:
        """A ``read_parquet`` call over the manifest's files with every column type declared."""
        files = ", ".join(sql_string(str(f)) for f in self.files(symbols))
        types = ", ".join(
            f"{sql_string(c)}: {sql_string(DUCKDB_TYPES[t])}"
            for c, t in self.manifest.schema.items()
        )
        return f"read_parquet([{files}], hive_partitioning=false, bound_schema={{{types}}})"

    def relation(
        self,
        con: duckdb.DuckDBPyConnection,
        symbols: Sequence[str] | str | None = None,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        *,
        adjusted: bool = False,
        columns: Sequence[str] | None = None,
    ) -> duckdb.DuckDBPyRelation:
        """The bars as a DuckDB relation on ``con``, ordered by (symbol, ts)."""
        if adjusted:
            return con.from_arrow(self.arrow(symbols, start, end, adjusted=True, columns=columns))
        selected = ", ".join(sql_ident(c) for c in self._columns(columns))
        bounds = TimeRange.of(start, end)
        where = []
        if symbols is not None:
            listed = ", ".join(sql_string(s) for s in self.select_symbols(symbols))
            where.append(f"symbol IN ({listed})")
        if bounds.start is not None:
            where.append(f"ts >= {sql_string(bounds.start.isoformat())}::TIMESTAMPTZ")
        if bounds.end is not None:
            op = "<=" if bounds.end_inclusive else "<"
            where.append(f"ts {op} {sql_string(bounds.end.isoformat())}::TIMESTAMPTZ")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return con.sql(
            f"SELECT {selected} FROM {self.parquet_sql(symbols)}{clause} ORDER BY symbol, ts"
        )

    def symbol_stats(self) -> pl.DataFrame:
        """Per symbol: rows, first/last ts, min/max close and mean volume."""
        import polars as pl

        with reading(self):
            return (
                self.lazy(columns=["symbol", "ts", "close", "volume"])
                .group_by("symbol", maintain_order=True)
                .agg(
                    pl.len().alias("rows"),
                    pl.col("ts").first().alias("first_ts"),
                    pl.col("ts").last().alias("last_ts"),
                    pl.col("close").min().alias("min_close"),
                    pl.col("close").max().alias("max_close"),
                    pl.col("volume").mean().alias("mean_volume"),
                )
                .collect()
            )


def open_dataset(ref: str, root: Path) -> DatasetVersion:
    """The version ``ref`` (NAME, NAME@latest, NAME@v3, NAME@<hash prefix>, NAME@<tag>) names."""
    name, version = resolve_version(root, ref)
    path = version_dir(root, name, version)
    dataset = DatasetVersion(name, version, path, read_manifest(path))
    dataset.check_files()
    return dataset


def read_failure(
    versions: Sequence[DatasetVersion], exc: BaseException, *, rehash: bool = True
) -> IntegrityError | None:
    """The IntegrityError naming the damaged data file behind a reader's error ``exc``, or None
    when the files of ``versions`` are intact (the error is not the store's).

    Readers name the file in most errors; otherwise, with ``rehash``, the files are hashed
    against their manifests, which costs a full read but only once something has failed.
    """
    from quantcli.core.hashing import sha256_file

    # Only the first line: DuckDB goes on to quote the statement, which lists every file.
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for version in versions:
        for rel in version.manifest.files:
            if str(version.path / rel) in first:
                return version.damaged(rel, f"cannot be read ({first})")
    if rehash:
        for version in versions:
            for rel, digest in version.manifest.files.items():
                try:
                    changed = sha256_file(version.path / rel) != digest
                except OSError as err:
                    return version.damaged(rel, f"cannot be read ({err.strerror})")
                if changed:
                    return version.damaged(
                        rel, "has changed (its sha256 differs from the manifest's)"
                    )
    return None


@contextmanager
def reading(*versions: DatasetVersion) -> Iterator[None]:
    """Run a read of ``versions``' data files, turning the reader's error (polars, pyarrow) on
    a damaged file into the IntegrityError naming it; any other error passes unchanged."""
    try:
        yield
    except QuantcliError:
        raise
    except Exception as exc:
        damage = read_failure(versions, exc)
        if damage is None:
            raise
        raise damage from exc
