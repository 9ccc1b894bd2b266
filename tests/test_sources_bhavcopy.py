"""NSE bhavcopies: legacy and UDiFF layouts, plain and zipped, series filter."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quantcli.errors import DataError
from quantcli.store.sources import FILE_COL, ROW_COL, parse_source

BHAV = Path(__file__).parent / "corpus" / "bhavcopy"
LEGACY = sorted(BHAV.glob("cm*"))
UDIFF = sorted(BHAV.glob("BhavCopy_*"))


def days(frame: pl.DataFrame) -> list[date]:
    return sorted(set(frame["ts"].dt.date().to_list()))


def test_fixture_layouts_are_exact() -> None:
    legacy = (BHAV / "cm03JUL2024bhav.csv").read_text().splitlines()
    assert legacy[0].endswith("ISIN,") and all(line.endswith(",") for line in legacy)
    udiff = (BHAV / "BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv").read_text().splitlines()
    assert len(udiff[0].split(",")) == 34
    assert all(len(line.split(",")) == 34 for line in udiff)


def test_legacy_plain_and_zipped() -> None:
    parsed = parse_source("bhavcopy", LEGACY, {})
    frame = parsed.frame
    assert days(frame) == [date(2024, 7, 3), date(2024, 7, 4), date(2024, 7, 5)]
    assert sorted(frame["symbol"].unique()) == ["INFY", "RELIANCE", "TCS"]
    assert set(frame["series"]) == {"EQ"}
    assert parsed.files[-1].endswith("cm05JUL2024bhav.csv.zip!cm05JUL2024bhav.csv")
    assert parsed.inputs == tuple(LEGACY)
    infy = frame.filter(pl.col("symbol") == "INFY").row(0, named=True)
    assert infy["prev_close"] == 1645.1 and infy["close"] == 1660.5
    assert infy["volume"] == 1551644 and infy["trades"] == 41936
    assert infy[ROW_COL] == 2 and infy[FILE_COL] == 0


def test_udiff_plain_and_zipped() -> None:
    frame = parse_source("bhavcopy", UDIFF, {}).frame
    assert days(frame) == [date(2024, 7, 8), date(2024, 7, 9), date(2024, 7, 10)]
    tcs = frame.filter(pl.col("symbol") == "TCS").sort("ts")
    assert tcs["close"].to_list() == [4015.75, 4040.2, 4031.9]
    assert tcs["prev_close"][1] == tcs["close"][0]


def test_series_filter() -> None:
    everything = parse_source("bhavcopy", LEGACY, {"series": "ALL"}).frame
    assert set(everything["series"]) == {"EQ", "BE", "GB"}
    two = parse_source("bhavcopy", UDIFF, {"series": "eq,be"}).frame
    assert set(two["series"]) == {"EQ", "BE"}
    # Rows keep their file row numbers after filtering.
    be = two.filter(pl.col("series") == "BE")
    assert be[ROW_COL].unique().to_list() == [5]


def test_not_a_bhavcopy_and_empty_zip(tmp_path: Path) -> None:
    other = tmp_path / "x.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"x.csv: not a bhavcopy"):
        parse_source("bhavcopy", [other], {})
    archive = tmp_path / "y.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(DataError, match=r"y.zip: zip archive holds no .csv file"):
        parse_source("bhavcopy", [archive], {})


def test_bad_value_in_zip_member_names_member(tmp_path: Path) -> None:
    text = (BHAV / "cm03JUL2024bhav.csv").read_text().replace("1643.45", "16x3.45")
    archive = tmp_path / "cm03JUL2024bhav.csv.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cm03JUL2024bhav.csv", text)
    with pytest.raises(DataError, match=r"zip!cm03JUL2024bhav.csv:2: open: not a number"):
        parse_source("bhavcopy", [archive], {})
