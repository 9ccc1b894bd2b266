"""Differences between two dataset versions: bars added, removed and changed per symbol.

Bars are matched on (symbol, ts). A symbol whose data file has the same hash in both versions
is unchanged without being read, which makes diffs of copy-on-write versions cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantcli.store.reader import DatasetVersion, reading
from quantcli.store.schema import ALL_COLUMNS

if TYPE_CHECKING:
    import polars as pl

KEYS = ("symbol", "ts")


@dataclass(frozen=True)
class SymbolDiff:
    """Counts of bars for one symbol: only in B (added), only in A (removed), in both."""

    symbol: str
    added: int
    removed: int
    changed: int
    unchanged: int


@dataclass(frozen=True)
class DiffResult:
    """The per-symbol differences from version ``a`` to version ``b``."""

    a: str
    b: str
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]
    symbols: tuple[SymbolDiff, ...]

    def total(self, field: str) -> int:
        """The sum of one count (added, removed, changed, unchanged) over all symbols."""
        return sum(int(getattr(s, field)) for s in self.symbols)

    @property
    def identical(self) -> bool:
        """Whether B holds exactly A's bars and columns."""
        return not (
            self.columns_added
            or self.columns_removed
            or any(s.added or s.removed or s.changed for s in self.symbols)
        )


def _hash_by_symbol(v: DatasetVersion) -> dict[str, str]:
    return {p.symbol: v.manifest.files[p.path] for p in v.manifest.partitions}


def diff(a: DatasetVersion, b: DatasetVersion) -> DiffResult:
    """Compare ``b`` with ``a`` (joined on symbol and ts, values compared null-aware)."""
    import polars as pl

    cols_a, cols_b = list(a.manifest.schema), list(b.manifest.schema)
    common = [c for c in cols_a if c in cols_b]
    hashes_a, hashes_b = _hash_by_symbol(a), _hash_by_symbol(b)
    rows_a = {p.symbol: p.rows for p in a.manifest.partitions}
    same = {s for s, h in hashes_a.items() if hashes_b.get(s) == h and cols_a == cols_b}
    results = {s: SymbolDiff(s, 0, 0, 0, rows_a[s]) for s in same}
    in_a = [s for s in hashes_a if s not in same]
    in_b = [s for s in hashes_b if s not in same]
    if in_a or in_b:
        left = a.lazy(in_a, columns=common) if in_a else pl.LazyFrame(schema=_schema(common))
        right = b.lazy(in_b, columns=common) if in_b else pl.LazyFrame(schema=_schema(common))
        values = [c for c in common if c not in KEYS]
        joined = left.with_columns(pl.lit(True).alias("_a")).join(
            right.with_columns(pl.lit(True).alias("_b")),
            on=list(KEYS),
            how="full",
            coalesce=True,
            suffix="_b",
        )
        differs = pl.any_horizontal(
            [pl.col(c).ne_missing(pl.col(f"{c}_b")) for c in values] or [pl.lit(False)]
        )
        both = pl.col("_a").is_not_null() & pl.col("_b").is_not_null()
        with reading(a, b):
            counts = (
                joined.group_by("symbol")
                .agg(
                    pl.col("_a").is_null().sum().alias("added"),
                    pl.col("_b").is_null().sum().alias("removed"),
                    (both & differs).sum().alias("changed"),
                    (both & ~differs).sum().alias("unchanged"),
                )
                .collect()
            )
        for row in counts.iter_rows(named=True):
            results[row["symbol"]] = SymbolDiff(
                row["symbol"], row["added"], row["removed"], row["changed"], row["unchanged"]
            )
    return DiffResult(
        a=a.ref,
        b=b.ref,
        columns_added=tuple(c for c in cols_b if c not in cols_a),
        columns_removed=tuple(c for c in cols_a if c not in cols_b),
        symbols=tuple(results[s] for s in sorted(results)),
    )


def _schema(columns: list[str]) -> dict[str, pl.DataType]:
    return {c: ALL_COLUMNS[c] for c in columns}
