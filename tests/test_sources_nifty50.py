"""The NIFTY-50 daily layout, full and reduced (the bundled real sample)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from quantcli.errors import DataError
from quantcli.store.sources import parse_source

IST = ZoneInfo("Asia/Kolkata")

FULL = (
    "Date,Symbol,Series,Prev Close,Open,High,Low,Last,Close,VWAP,Volume,Turnover,Trades,"
    "Deliverable Volume,%Deliverble\n"
    "2000-01-03,MUNDRAPORT,EQ,440.0,770.0,1050.0,770.0,959.0,962.9,984.72,27294366,"
    "2.6877E+15,,9859619,0.3612\n"
    "2021-04-30,ADANIPORTS,EQ,730.7,728.0,737.45,720.3,721.0,723.75,727.76,10474373,"
    "7.6228E+14,121153,2868741,0.2739\n"
)


def test_reduced_sample_layout(sample_dir: Path) -> None:
    files = sorted(sample_dir.glob("*.csv"))
    parsed = parse_source("nifty50", files, {})
    frame = parsed.frame
    assert set(frame["symbol"].unique()) == {"MARUTI", "JSWSTEEL", "BAJAJ-AUTO"}
    assert {"vwap", "turnover", "deliverable_volume"} <= set(frame.columns)
    assert "Last" not in frame.columns and "%Deliverble" not in frame.columns
    first = frame.filter(pl.col("symbol") == "BAJAJ-AUTO").row(0, named=True)
    assert first["ts"] == datetime(2008, 5, 26, tzinfo=IST)
    assert first["turnover"] == pytest.approx(2.48124e14)
    assert first["volume"] == 3972485
    assert frame.height == sum(len(f.read_text().splitlines()) - 1 for f in files)


def test_full_layout(tmp_path: Path) -> None:
    path = tmp_path / "NIFTY50_all.csv"
    path.write_text(FULL)
    frame = parse_source("nifty50", [path], {}).frame
    assert frame["symbol"].to_list() == ["MUNDRAPORT", "ADANIPORTS"]
    assert frame["series"].to_list() == ["EQ", "EQ"]
    assert frame["prev_close"].to_list() == [440.0, 730.7]
    assert frame["trades"].to_list() == [None, 121153]
    assert frame["ts"][0] == datetime(2000, 1, 3, tzinfo=IST)


def test_unexpected_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text("Date,Open,High,Low,Close,Volume,Adj Close\n2024-01-02,1,2,1,2,3,2\n")
    with pytest.raises(DataError, match="unexpected column 'Adj Close' for the NIFTY-50 layout"):
        parse_source("nifty50", [path], {})


def test_index_file_parses(shared_data: Path) -> None:
    frame = parse_source("nifty50", [shared_data / "nse_index_daily" / "NIFTY50.csv"], {}).frame
    assert frame["symbol"].unique().to_list() == ["NIFTY50"]
    assert frame.height == 1154
