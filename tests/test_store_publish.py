"""publish: schema conformance, determinism, idempotence, copy-on-write, atomic writes."""

from __future__ import annotations

import os
import tempfile
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import SOURCE, make_bars

from quantcli import __version__
from quantcli.core import files as files_mod
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.files import atomic_write_bytes
from quantcli.errors import ConflictError, DataError, NotFoundError, UsageError
from quantcli.store import publish as publish_mod
from quantcli.store.manifest import (
    InputFile,
    Manifest,
    SourceInfo,
    read_manifest,
    version_dir,
    version_numbers,
)
from quantcli.store.publish import conform, data_path, publish
from quantcli.store.reader import open_dataset


def test_publish_writes_a_complete_version(store: Path) -> None:
    source = SourceInfo("csv", (InputFile("a.csv", "ab" * 32, 12),), {"tz": "IST"})
    res = publish(store, "demo", make_bars(), interval="1d", source=source, notes={"k": 1})
    m = res.manifest
    assert res.created and m.version == 1 and m.parent is None
    assert m.rows == 90 and m.symbols == ("AAA", "BBB", "CCC")
    assert m.first_ts == datetime.fromisoformat("2019-12-20T00:00:00+05:30")
    assert m.last_ts.date() == date(2020, 1, 18)
    assert m.interval == "1d" and m.timezone == "Asia/Kolkata"
    assert list(m.schema) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert m.schema["ts"] == "timestamp[us, tz=Asia/Kolkata]"
    assert m.quantcli_version == __version__ and m.notes == {"k": 1} and m.source == source
    folder = version_dir(store, "demo", 1)
    assert read_manifest(folder) == m
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o444
    assert Manifest.from_json(m.to_json()) == m
    # No symbol ends a chunk here, so the three share one content-named file.
    [(rel, sha)] = m.files.items()
    path = folder / rel
    assert rel == data_path(sha) == f"data/{sha[:16]}.parquet"
    assert sha == publish_mod.hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_mode & 0o777 == 0o444
    for part in m.partitions:
        assert part.path == rel and part.bytes == path.stat().st_size and part.rows == 30
    # Small files are one row group (symbols and years merge until MIN_ROW_GROUP_ROWS rows).
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    assert not list((store / ".tmp").iterdir())


@pytest.mark.parametrize(
    ("min_rows", "groups"),
    [(5, [7, 365, 366, 62, 7, 365, 366, 62]), (10, [372, 366, 62, 372, 366, 62])],
)
def test_row_groups_break_between_years_and_symbols(
    store: Path, monkeypatch: pytest.MonkeyPatch, min_rows: int, groups: list[int]
) -> None:
    monkeypatch.setattr(publish_mod, "MIN_ROW_GROUP_ROWS", min_rows)
    bars = make_bars(["A", "B"], start=date(2018, 12, 25), days=800)
    m = publish(store, "d", bars, interval="1d", source=SOURCE).manifest
    [rel] = m.files
    meta = pq.ParquetFile(version_dir(store, "d", 1) / rel).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
    names = [meta.schema.column(c).name for c in range(meta.num_columns)]
    stats = [meta.row_group(i).column(names.index("symbol")).statistics for i in range(len(groups))]
    half = len(groups) // 2  # a cut between symbols: no group mixes A and B
    assert [(st.min, st.max) for st in stats] == [("A", "A")] * half + [("B", "B")] * half
    ts = [meta.row_group(i).column(names.index("ts")).statistics for i in range(len(groups))]
    assert all(st.has_min_max for st in ts)


SYMBOLS = ["S01", "S02", "S03", "S34", "S35"]  # ends_chunk: S02 and S34


def test_files_are_runs_of_whole_symbols(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [s for s in SYMBOLS if publish_mod.ends_chunk(s)] == ["S02", "S34"]
    m = publish(store, "d", make_bars(SYMBOLS), interval="1d", source=SOURCE).manifest
    by_file: dict[str, list[str]] = {}
    for part in m.partitions:
        by_file.setdefault(part.path, []).append(part.symbol)
    assert list(by_file.values()) == [["S01", "S02"], ["S03", "S34"], ["S35"]]
    # Reading the files in manifest order gives (symbol, ts) order.
    frame = pl.concat(pl.read_parquet(version_dir(store, "d", 1) / rel) for rel in by_file)
    keys = frame.select("symbol", "ts")
    assert keys.equals(keys.sort("symbol", "ts")) and frame.height == 150
    # A file also ends once it holds CHUNK_ROWS rows.
    monkeypatch.setattr(publish_mod, "CHUNK_ROWS", 60)
    m = publish(store, "e", make_bars(["A", "B", "C", "D"]), interval="1d", source=SOURCE).manifest
    paths = [p.path for p in m.partitions]
    assert paths[0] == paths[1] != paths[2] == paths[3] and len(m.files) == 2


def test_odd_symbol_names_round_trip(store: Path) -> None:
    publish(store, "d", make_bars(["M&M", "A/B", "Ω'1"]), interval="1d", source=SOURCE)
    version = open_dataset("d", store)
    assert version.manifest.symbols == ("A/B", "M&M", "Ω'1")
    assert version.lazy(["Ω'1"]).collect()["symbol"].unique().to_list() == ["Ω'1"]
    assert len(version.relation(duckdb.connect(), ["A/B", "Ω'1"]).fetchall()) == 60


def test_determinism_same_bytes_in_two_roots(tmp_path: Path) -> None:
    frame = make_bars(extra=True)
    a = publish(tmp_path / "a", "x", frame, interval="1d", source=SOURCE).manifest
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    b = publish(tmp_path / "b", "x", shuffled, interval="1d", source=SOURCE).manifest
    assert a.content_hash == b.content_hash and a.files == b.files
    for rel in a.files:
        left = (tmp_path / "a" / "x" / "v1" / rel).read_bytes()
        assert left == (tmp_path / "b" / "x" / "v1" / rel).read_bytes()


def test_idempotent_republish_creates_no_version(store: Path) -> None:
    first = publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    again = publish(store, "d", make_bars(), interval="1d", source=SourceInfo("other"))
    assert not again.created and again.manifest == first.manifest
    assert version_numbers(store, "d") == [1]
    assert not list((store / ".tmp").iterdir())
    # Same bars, another interval label: a different content.
    assert publish(store, "d", make_bars(), interval="1h", source=SOURCE).created


def test_copy_on_write_hard_links_unchanged_files(store: Path) -> None:
    v1 = publish(store, "d", make_bars(SYMBOLS), interval="1d", source=SOURCE).manifest
    changed = make_bars(SYMBOLS).with_columns(
        pl.when(pl.col("symbol") == "S03").then(pl.col("close") + 1).otherwise(pl.col("close"))
    )
    v2 = publish(store, "d", changed, interval="1d", source=SOURCE).manifest
    assert v2.version == 2 and v2.parent == 1
    old = {p.symbol: p.path for p in v1.partitions}
    new = {p.symbol: p.path for p in v2.partitions}
    for sym in SYMBOLS:
        a = (version_dir(store, "d", 1) / old[sym]).stat()
        b = (version_dir(store, "d", 2) / new[sym]).stat()
        # Only the file holding S03 (with S34) is rewritten; the others are hard links.
        rewritten = sym in ("S03", "S34")
        assert (a.st_ino != b.st_ino) == rewritten and b.st_nlink == (1 if rewritten else 2)


def test_link_failure_falls_back_to_a_copy(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = publish(store, "d", make_bars(SYMBOLS), interval="1d", source=SOURCE).manifest

    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(publish_mod.os, "link", no_link)
    changed = make_bars(SYMBOLS, seed=1)[:5].vstack(make_bars(SYMBOLS)[5:])
    v2 = publish(store, "d", changed, interval="1d", source=SOURCE).manifest
    assert len(set(v1.files.values()) & set(v2.files.values())) == 2  # copied, not linked
    for part in v2.partitions:
        assert (version_dir(store, "d", 2) / part.path).stat().st_nlink == 1


def test_explicit_parent(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE)
    v3 = publish(store, "d", make_bars(seed=2), interval="1d", source=SOURCE, parent=1)
    assert v3.manifest.parent == 1
    with pytest.raises(
        NotFoundError, match=r"parent version d@v9 not found \(versions: v1, v2, v3\)"
    ):
        publish(store, "d", make_bars(seed=3), interval="1d", source=SOURCE, parent=9)


def test_expect_latest_guards_a_read_modify_write(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    v2 = publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE, expect_latest=1)
    assert v2.created and v2.manifest.version == 2
    with pytest.raises(ConflictError, match=r"^dataset d moved from v1 to v2 while this update"):
        publish(store, "d", make_bars(seed=2), interval="1d", source=SOURCE, expect_latest=1)
    assert version_numbers(store, "d") == [1, 2]
    assert not list((store / ".tmp").iterdir())
    # Content equal to the new latest is "unchanged", not a conflict.
    same = publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE, expect_latest=1)
    assert not same.created and same.manifest.version == 2
    with pytest.raises(ConflictError, match=r"moved from v7 to v2"):
        publish(store, "d", make_bars(seed=3), interval="1d", source=SOURCE, expect_latest=7)
    with pytest.raises(ConflictError, match=r"moved from v1 to no version"):
        publish(store, "new", make_bars(), interval="1d", source=SOURCE, expect_latest=1)


def test_failure_while_writing_leaves_nothing(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> bytes:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(publish_mod, "_encode", boom)
    with pytest.raises(RuntimeError):
        publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    assert version_numbers(store, "d") == []
    assert not list((store / ".tmp").iterdir())


@pytest.mark.parametrize(
    ("name", "interval"), [("_meta", "1d"), (".x", "1d"), ("a@b", "1d"), ("ok", "2d")]
)
def test_bad_name_or_interval(store: Path, name: str, interval: str) -> None:
    with pytest.raises(UsageError):
        publish(store, name, make_bars(), interval=interval, source=SOURCE)


def test_conform_casts_safe_types() -> None:
    frame = make_bars(extra=True).with_columns(
        pl.col("symbol").cast(pl.Categorical),
        pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"),
        pl.col("open").cast(pl.Float32),
        pl.col("high").cast(pl.Int32).cast(pl.Int64),
        pl.col("volume").cast(pl.UInt32),
        pl.col("oi").cast(pl.Int16),
        series=pl.lit(None),
    )
    out = conform(frame)
    assert out.schema["symbol"] == pl.String and out.schema["ts"] == TS_DTYPE
    assert out.schema["open"] == pl.Float64 and out.schema["high"] == pl.Float64
    assert out.schema["volume"] == pl.Int64 and out.schema["oi"] == pl.Int64
    assert out.schema["series"] == pl.String
    assert out["ts"][0] == make_bars()["ts"][0]
    assert out.columns[:2] == ["symbol", "ts"] and out.columns[-1] == "series"


def test_conform_date_ts_becomes_ist_midnight() -> None:
    out = conform(make_bars().with_columns(pl.col("ts").dt.date()))
    assert out["ts"].to_list() == make_bars()["ts"].to_list()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.with_columns(bogus=pl.lit(1)), "unknown column"),
        (lambda f: f.drop("close"), "missing required column"),
        (lambda f: f.head(0), "no rows"),
        (lambda f: f.with_columns(pl.col("volume").cast(pl.Float64)), "no safe cast"),
        (lambda f: f.with_columns(pl.col("ts").dt.replace_time_zone(None)), "no safe cast"),
        (lambda f: f.with_columns(pl.col("close").cast(pl.String)), "no safe cast"),
        (lambda f: f.with_columns(pl.col("symbol").cast(pl.Int64, strict=False)), "no safe cast"),
        (lambda f: f.with_columns(pl.col("volume").cast(pl.UInt64)), "no safe cast"),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 4)
                .then(None)
                .otherwise(pl.col("close"))
                .alias("close")
            ),
            "null close in row 4",
        ),
        (lambda f: pl.concat([f, f.tail(1)]), "duplicate bar for symbol 'CCC'"),
    ],
)
def test_conform_rejects(change: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        conform(change(make_bars()))  # type: ignore[operator]


def test_conform_error_is_exit_65(store: Path) -> None:
    with pytest.raises(DataError) as info:
        publish(store, "d", make_bars().drop("open"), interval="1d", source=SOURCE)
    assert info.value.exit_code == 65


def test_atomic_write_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"

    def fail(src: object, dst: object) -> None:
        raise OSError("nope")

    monkeypatch.setattr(files_mod.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"three")
    assert target.read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["f.json"]


_bar_rows = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "M&M", "Z-1"]),
        st.integers(min_value=0, max_value=3000),  # day offset (spans several years)
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
        st.integers(min_value=0, max_value=10**12),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=30, deadline=None)
@given(rows=_bar_rows, seed=st.integers(0, 2**16))
def test_round_trip_and_order_independence(
    rows: list[tuple[str, int, float, int]], seed: int
) -> None:
    from datetime import timedelta

    frame = pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": [datetime(2015, 1, 1) + timedelta(days=r[1]) for r in rows],
            "open": [r[2] for r in rows],
            "high": [r[2] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[2] for r in rows],
            "volume": [r[3] for r in rows],
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("Asia/Kolkata"))
    with tempfile.TemporaryDirectory() as tmp:
        a = publish(Path(tmp) / "a", "p", frame, interval="1d", source=SOURCE).manifest
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        b = publish(Path(tmp) / "b", "p", shuffled, interval="1d", source=SOURCE).manifest
        assert a.content_hash == b.content_hash
        back = open_dataset("p", Path(tmp) / "a").lazy().collect()
        assert back.equals(conform(frame))
        assert a.rows == len(rows) and sum(p.rows for p in a.partitions) == len(rows)
        assert a.first_ts == back["ts"].min() and a.last_ts == back["ts"].max()
