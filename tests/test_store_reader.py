"""open_dataset and DatasetVersion: lazy/arrow/relation reads filtered by symbol and time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import NotFoundError, UsageError
from quantcli.store.publish import publish
from quantcli.store.reader import TimeRange, open_dataset


@pytest.fixture
def version(store: Path):
    publish(store, "d", make_bars(["AAA", "BBB", "M&M"], extra=True), interval="1d", source=SOURCE)
    return open_dataset("d", store)


def test_open_dataset(version) -> None:
    assert (version.name, version.version, version.ref) == ("d", 1, "d@v1")
    assert version.path == version.root / "d" / "v1"
    assert version.manifest.rows == 90


def test_lazy_all_sorted(version) -> None:
    frame = version.lazy().collect()
    assert frame.height == 90
    assert frame.equals(frame.sort("symbol", "ts"))
    assert frame.schema["ts"] == TS_DTYPE
    assert frame.columns == ["symbol", "ts", "open", "high", "low", "close", "volume", "oi", "vwap"]


def test_lazy_symbols_and_columns(version) -> None:
    frame = version.lazy(["M&M", "AAA"], columns=["symbol", "close"]).collect()
    assert frame.columns == ["symbol", "close"]
    assert frame["symbol"].unique(maintain_order=True).to_list() == ["AAA", "M&M"]
    with pytest.raises(
        NotFoundError, match=r"symbol\(s\) ZZZ not in d@v1 \(symbols: AAA, BBB, M&M\)"
    ):
        version.lazy(["ZZZ"])
    assert version.lazy("BBB").collect()["symbol"].unique().to_list() == ["BBB"]
    with pytest.raises(UsageError, match="empty symbol list"):
        version.lazy([])
    with pytest.raises(UsageError, match=r"column\(s\) nope not in d@v1"):
        version.lazy(columns=["nope"])


def test_unknown_symbol_lists_a_few(store: Path) -> None:
    publish(
        store,
        "many",
        make_bars([f"S{i:02d}" for i in range(25)], days=2),
        interval="1d",
        source=SOURCE,
    )
    with pytest.raises(NotFoundError, match=r"S19 and 5 more\)"):
        open_dataset("many", store).lazy(["X"])


def test_date_bounds_are_whole_ist_days(version) -> None:
    frame = version.lazy(["AAA"], date(2019, 12, 31), date(2020, 1, 2)).collect()
    assert [t.date() for t in frame["ts"]] == [
        date(2019, 12, 31),
        date(2020, 1, 1),
        date(2020, 1, 2),
    ]


def test_datetime_bounds(version) -> None:
    # Naive = IST; aware values are converted. End is inclusive.
    naive = version.lazy(["AAA"], datetime(2020, 1, 1), datetime(2020, 1, 2)).collect()
    assert naive.height == 2
    utc = datetime(2019, 12, 31, 18, 30, tzinfo=UTC)  # = 2020-01-01 00:00 IST
    aware = version.lazy(["AAA"], start=utc, end=utc + timedelta(hours=1)).collect()
    assert aware["ts"].to_list() == naive["ts"].to_list()[:1]


def test_time_range_normalises() -> None:
    r = TimeRange.of(None, date(2020, 1, 1))
    assert r.start is None and not r.end_inclusive and r.end is not None
    assert r.end.isoformat() == "2020-01-02T00:00:00+05:30"
    assert TimeRange.of(None, None) == TimeRange(None, None, True)


def test_arrow(version) -> None:
    table = version.arrow(["BBB"], columns=["symbol", "ts", "volume"])
    assert table.num_rows == 30
    assert table.schema.field("symbol").type == pa.string()
    assert table.schema.field("ts").type == pa.timestamp("us", tz="Asia/Kolkata")
    assert table.schema.field("volume").type == pa.int64()


def test_relation(version) -> None:
    con = duckdb.connect()
    rel = version.relation(
        con, ["BBB", "AAA"], date(2020, 1, 1), date(2020, 1, 2), columns=["symbol", "close"]
    )
    rows = rel.fetchall()
    assert [r[0] for r in rows] == ["AAA", "AAA", "BBB", "BBB"]
    assert rel.columns == ["symbol", "close"]
    inclusive = version.relation(con, ["AAA"], end=datetime(2019, 12, 21))
    assert len(inclusive.fetchall()) == 2
    assert len(version.relation(con).fetchall()) == 90


def test_adjusted_applies_corporate_actions(store: Path) -> None:
    # JSWSTEEL's 10:1 split (ex-date 2017-01-04) is in the bundled corporate-actions table.
    bars = make_bars(["JSWSTEEL", "AAA"], start=date(2017, 1, 1), days=6)
    publish(store, "j", bars, interval="1d", source=SOURCE)
    v = open_dataset("j", store)
    raw = v.lazy(["JSWSTEEL"]).collect()
    adj = v.lazy(["JSWSTEEL"], adjusted=True).collect()
    before = raw["ts"].dt.date() < date(2017, 1, 4)
    assert (adj.filter(before)["close"] * 10 - raw.filter(before)["close"]).abs().max() < 1e-9
    assert adj.filter(~before)["close"].to_list() == raw.filter(~before)["close"].to_list()
    assert adj.filter(before)["volume"].to_list() == (raw.filter(before)["volume"] * 10).to_list()
    windowed = v.lazy(["JSWSTEEL"], date(2017, 1, 2), date(2017, 1, 2), adjusted=True).collect()
    assert windowed["close"].to_list() == adj.filter(pl.col("ts").dt.day() == 2)["close"].to_list()
    rel = v.relation(duckdb.connect(), ["JSWSTEEL"], adjusted=True, columns=["close"]).fetchall()
    assert [r[0] for r in rel] == adj["close"].to_list()
    assert v.lazy(adjusted=True).collect().height == 12


def test_symbol_stats(version) -> None:
    stats = version.symbol_stats()
    assert stats["symbol"].to_list() == ["AAA", "BBB", "M&M"]
    row = stats.row(0, named=True)
    assert row["rows"] == 30 and row["min_close"] == 101.0 and row["max_close"] == 130.0
    assert row["mean_volume"] == pytest.approx(1014.5)


def test_reads_symbols_across_shared_files(store: Path) -> None:
    # S02 and S34 end data files: S01+S02, S03+S34 and S35 are three files.
    symbols = ["S01", "S02", "S03", "S34", "S35"]
    publish(store, "c", make_bars(symbols, days=3), interval="1d", source=SOURCE)
    v = open_dataset("c", store)
    assert len(v.files()) == 3 and len(v.files(["S03", "S34"])) == 1
    frame = v.lazy(["S35", "S01", "S34"], columns=["symbol", "ts"]).collect()
    assert frame["symbol"].to_list() == ["S01"] * 3 + ["S34"] * 3 + ["S35"] * 3
    assert frame.equals(frame.sort("symbol", "ts"))
    rows = v.relation(duckdb.connect(), ["S34", "S01"], columns=["symbol"]).fetchall()
    assert [r[0] for r in rows] == ["S01"] * 3 + ["S34"] * 3
    assert v.lazy().collect().height == 15
