"""SQL over pinned dataset versions in a sandboxed, in-process DuckDB connection.

Each dataset becomes a view over exactly its manifest's files. Then the connection is locked
down: external access off (no other file, no extension, no network), only those files allowed,
configuration locked so the query cannot undo it, and only SELECT statements accepted, because
DuckDB would otherwise let COPY overwrite an allowed file. Results are written by the Python side
(atomically), never by DuckDB.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from quantcli.core.files import atomic_write_bytes
from quantcli.core.timezone import TIMEZONE
from quantcli.errors import QuantcliError, UsageError
from quantcli.store.reader import (
    DatasetVersion,
    open_dataset,
    read_failure,
    sql_ident,
    sql_string,
)

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa

T = TypeVar("T")

DEFAULT_VIEW = "bars"
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FORMATS = ("csv", "json", "parquet")


@dataclass(frozen=True)
class FileView:
    """A view over Parquet files that are not a dataset version (the model audit log): the
    SELECT defining it and the files it reads, which the sandbox allows."""

    sql: str
    files: tuple[Path, ...]


def parse_dataset_options(values: Sequence[str], *, required: bool = True) -> dict[str, str]:
    """``--dataset`` values -> {view name: reference}. The one unnamed reference is ``bars``;
    none at all is a UsageError when ``required``."""
    views: dict[str, str] = {}
    for value in values:
        alias, eq, ref = value.partition("=")
        if not eq:
            alias, ref = DEFAULT_VIEW, value
            if DEFAULT_VIEW in views:
                raise UsageError(
                    f"only one --dataset may be unnamed (it is the view {DEFAULT_VIEW!r}); "
                    f"name the others with --dataset ALIAS=REF: {value!r}"
                )
        elif not ALIAS_RE.match(alias):
            raise UsageError(f"invalid view name {alias!r} in --dataset {value!r}")
        if alias in views:
            raise UsageError(f"view {alias!r} is given twice in --dataset")
        views[alias] = ref
    if not views and required:
        raise UsageError("give the dataset to query with --dataset REF (it becomes the view bars)")
    return views


def sandbox(
    views: Mapping[str, DatasetVersion], extra: Mapping[str, FileView] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection exposing ``views`` and the ``extra`` file views, and able
    to read nothing else."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET TimeZone = {sql_string(TIMEZONE)}")
    # DuckDB draws a progress bar on stdout for queries over 2 s, into `-f csv > file` too.
    con.execute("SET enable_progress_bar = false")
    allowed: list[str] = []
    for alias, version in views.items():
        try:
            # Binding the view reads the files' footers: a damaged one fails here already.
            con.execute(f"CREATE VIEW {sql_ident(alias)} AS SELECT * FROM {version.parquet_sql()}")
        except duckdb.Error as exc:
            damage = read_failure([version], exc)
            if damage is None:
                raise
            raise damage from exc
        allowed.extend(str(f) for f in version.files())
    for alias, file_view in (extra or {}).items():
        con.execute(f"CREATE VIEW {sql_ident(alias)} AS {file_view.sql}")
        allowed.extend(str(f) for f in file_view.files)
    con.execute(f"SET allowed_paths = [{', '.join(sql_string(p) for p in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _not_the_files() -> tuple[type[Exception], ...]:
    """DuckDB's errors in the SQL itself (typos, unknown names, bad casts) and an interrupt,
    which a damaged data file does not cause: no reason to re-hash the files behind them."""
    import duckdb

    return (
        duckdb.InterruptException,
        duckdb.ParserException,
        duckdb.BinderException,
        duckdb.CatalogException,
        duckdb.ConversionException,
        duckdb.OutOfRangeException,
        duckdb.NotImplementedException,
    )


def execute(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    consume: Callable[[duckdb.DuckDBPyRelation], T],
    versions: Sequence[DatasetVersion] = (),
) -> T:
    """Run read-only ``sql`` on a sandboxed connection; ``consume`` the last statement's result
    (DuckDB errors while it runs become QuantcliError, and IntegrityError when they come from
    a damaged data file of ``versions``)."""
    import duckdb

    if not sql.strip():
        raise UsageError("empty SQL query")
    try:
        statements = con.extract_statements(sql)
        for statement in statements:
            if statement.type != duckdb.StatementType.SELECT:
                kind = statement.type.name
                raise QuantcliError(
                    f"query refused: only SELECT statements may run, not {kind} "
                    "(the query sandbox cannot write files or change settings)"
                )
        result = None
        for statement in statements:
            result = con.sql(statement.query)
        if result is None:
            raise UsageError("the SQL query has no statement")
        return consume(result)
    except duckdb.PermissionException as exc:
        raise QuantcliError(
            f"query refused: {_first_line(exc)} (queries read only the --dataset views)"
        ) from exc
    except duckdb.Error as exc:
        damage = read_failure(versions, exc, rehash=not isinstance(exc, _not_the_files()))
        if damage is not None:
            raise damage from exc
        raise QuantcliError(f"SQL error: {_first_line(exc)}") from exc


@dataclass(frozen=True)
class QueryRows:
    """A query result as Python values: column names, DuckDB's SQL type of each, the rows;
    ``more`` when the query has rows beyond a limit that were not fetched."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    more: bool = False


def _rows(relation: duckdb.DuckDBPyRelation, limit: int | None) -> QueryRows:
    columns, types = tuple(relation.columns), tuple(str(t) for t in relation.types)
    if limit is None:
        return QueryRows(columns, types, relation.fetchall())
    # One row past the limit says whether more exist; DuckDB stops producing rows there, so a
    # huge (or endless) result is never materialised to print its first rows.
    rows = relation.limit(limit + 1).fetchall()
    return QueryRows(columns, types, rows[:limit], more=len(rows) > limit)


def _query(
    root: Path,
    sql: str,
    datasets: Sequence[str],
    consume: Callable[[Any], T],
    extra: Mapping[str, FileView] | None,
) -> T:
    parsed = parse_dataset_options(datasets, required=not extra)
    clash = sorted(set(parsed) & set(extra or {}))
    if clash:
        raise UsageError(f"view {clash[0]!r} is both a --dataset alias and a built-in view")
    views = {alias: open_dataset(ref, root) for alias, ref in parsed.items()}
    con = sandbox(views, extra)
    try:
        return execute(con, sql, consume, tuple(views.values()))
    finally:
        con.close()


def run_query(
    root: Path, sql: str, datasets: Sequence[str], extra: Mapping[str, FileView] | None = None
) -> pa.Table:
    """Run ``sql`` over the ``--dataset`` references (``REF`` or ``ALIAS=REF``) under ``root``
    and the ``extra`` views (such as the model audit log); the result as an Arrow table (any
    DuckDB type, any size: for files and for Python)."""
    return _query(root, sql, datasets, lambda relation: relation.to_arrow_table(), extra)


def query_frame(
    root: Path, sql: str, datasets: Sequence[str], extra: Mapping[str, FileView] | None = None
) -> pl.DataFrame:
    """:func:`run_query`'s result as a polars frame, for files and csv/json/parquet text."""
    return _query(root, sql, datasets, _frame, extra)


def _frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    import polars as pl

    # DuckDB hands its result to polars directly (Arrow's C stream: no pyarrow import). A
    # column of a type polars cannot read that way (INTERVAL, UNION, TIMETZ, ..., or a list or
    # struct holding one) is written as DuckDB prints it.
    names = relation.columns
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise QuantcliError(
            f"the result has more than one column named {twice!r}; give each column its own "
            "name (AS ...) for csv, json or parquet output"
        )
    readable = [_polars_reads(t) for t in relation.types]
    if not all(readable):
        columns = [
            sql_ident(name) if ok else f"{sql_ident(name)}::VARCHAR AS {sql_ident(name)}"
            for name, ok in zip(relation.columns, readable, strict=True)
        ]
        relation = relation.project(", ".join(columns))
    return pl.DataFrame(relation)


def _polars_reads(kind: Any) -> bool:
    """Whether polars reads DuckDB type ``kind`` (a DuckDBPyType) from DuckDB's stream."""
    if kind.id in _NESTED_TYPES:
        return all(_polars_reads(child) for _, child in kind.children if hasattr(child, "id"))
    return kind.id in _DIRECT_TYPES


_NESTED_TYPES = frozenset({"list", "struct", "map", "array"})
# DuckDB type ids (DuckDBPyType.id) polars imports from DuckDB's Arrow stream as they are.
_DIRECT_TYPES = frozenset(
    {
        "boolean",
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "float",
        "double",
        "decimal",
        "varchar",
        "date",
        "time",
        "timestamp",
        "timestamp with time zone",
        "timestamp_ms",
        "timestamp_ns",
        "timestamp_s",
    }
)


def query_rows(
    root: Path,
    sql: str,
    datasets: Sequence[str],
    extra: Mapping[str, FileView] | None = None,
    *,
    limit: int | None = None,
) -> QueryRows:
    """:func:`run_query`'s result as Python rows, for printing: no Arrow or polars import, which
    saves a reading command ~0.1-0.3 s of start-up. With ``limit`` only the first ``limit``
    rows are fetched (memory stays bounded whatever the result's size)."""
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {limit}")
    return _query(root, sql, datasets, lambda relation: _rows(relation, limit), extra)


def encode(frame: pl.DataFrame, fmt: str) -> bytes:
    """A query result as CSV, JSON (an array of records) or Parquet bytes."""
    if fmt == "parquet":
        sink = io.BytesIO()
        frame.write_parquet(sink, compression="zstd")
        return sink.getvalue()
    if fmt == "csv":
        return frame.write_csv().encode("utf-8")
    if fmt == "json":
        return frame.write_json().encode("utf-8")
    raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_result(frame: pl.DataFrame, fmt: str, path: Path) -> None:
    """Write a query result to ``path`` atomically (readers never see a partial file)."""
    write_encoded(encode(frame, fmt), path)


def write_encoded(data: bytes, path: Path) -> None:
    """Write bytes :func:`encode` made to ``path`` atomically."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise QuantcliError(f"cannot write {path}: {exc.strerror or exc}") from exc
