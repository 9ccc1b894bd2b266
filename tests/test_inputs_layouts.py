"""Common free layouts ingest without hand-editing: any-case names, extra header rows, index
files without volume, the symbol from a flag or a column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from quantcli.store.reader import open_dataset
from quantcli.store.sources import parse_source

IST = ZoneInfo("Asia/Kolkata")


def refused(res, code: int = 65) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and res.stdout == "", res.stderr
    return lines[0]


def test_column_names_match_in_any_case_and_spacing(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "TCS.csv"
    path.write_text(
        "DATE,Open,HIGH,low,Close,Adj Close,Volume,Prev Close,deliverable-volume\n"
        "2024-01-01,10,11,9,10.5,10.2,100,9.9,40\n"
    )
    res = cli("data", "ingest", "tcs", str(path))
    assert res.exit_code == 0, res.stderr
    assert "ignored column(s): Adj Close" in res.stderr
    row = open_dataset("tcs", store).lazy().collect().row(0, named=True)
    assert (row["symbol"], row["open"], row["close"], row["volume"]) == ("TCS", 10.0, 10.5, 100)
    assert (row["prev_close"], row["deliverable_volume"]) == (9.9, 40)
    assert row["ts"] == datetime(2024, 1, 1, tzinfo=IST)


def test_a_map_wins_over_a_same_named_column(tmp_path: Path) -> None:
    path = tmp_path / "TCS.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-01,10,11,9,10.5,10.2,100\n")
    frame = parse_source("csv", [path], {"map.Adj Close": "close"}).frame
    assert frame["close"].to_list() == [10.2]


def test_the_nifty50_layout_matches_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "TCS.csv"
    path.write_text("DATE,OPEN,HIGH,LOW,CLOSE,VOLUME,prev close\n2024-01-01,10,11,9,10.5,100,9\n")
    frame = parse_source("nifty50", [path], {}).frame
    assert frame["prev_close"].to_list() == [9.0]


def test_index_file_ingests_as_csv_without_a_map(cli, store: Path, shared_data: Path) -> None:
    path = shared_data / "nse_index_daily" / "NIFTY50.csv"
    res = cli("--json", "data", "ingest", "nifty", str(path), "--symbol", "NIFTY 50")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["rows"] == 1154 and doc["interval"] == "1d" and doc["validation"]["counts"] == {}
    frame = open_dataset("nifty", store).lazy().collect()
    assert frame["symbol"].unique().to_list() == ["NIFTY 50"]
    assert set(frame.columns) >= {"turnover", "prev_close"}


YFINANCE = (
    "Price,Close,High,Low,Open,Volume\n"
    "Ticker,RELIANCE.NS,RELIANCE.NS,RELIANCE.NS,RELIANCE.NS,RELIANCE.NS\n"
    "Date,,,,,\n"
    "2024-01-01,1295.5,1300.0,1290.0,1292.0,5000000\n"
    "2024-01-02,1290.0,x,1285.0,1294.0,6000000\n"
)


def test_skip_rows_skips_extra_header_rows(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "RELIANCE.csv"
    path.write_text(YFINANCE.replace(",x,", ",1299.0,"))
    res = cli("data", "ingest", "r", str(path), "--skip-rows", "2", "--map", "Price=ts")
    assert res.exit_code == 0, res.stderr
    frame = open_dataset("r", store).lazy().collect()
    assert frame["close"].to_list() == [1295.5, 1290.0] and frame["high"][1] == 1299.0
    manifest = open_dataset("r", store).manifest
    assert manifest.source.options["skip_rows"] == "2"


def test_skipped_rows_count_in_error_lines(cli, tmp_path: Path) -> None:
    path = tmp_path / "RELIANCE.csv"
    path.write_text(YFINANCE)
    line = refused(cli("data", "ingest", "r", str(path), "--skip-rows", "2", "--map", "Price=ts"))
    assert line == f"error: {path}:5: high: not a number: 'x'"


@pytest.mark.parametrize("value", ["-1", "-20"])
def test_skip_rows_must_be_a_count(cli, tmp_path: Path, value: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-01-01,1,2,1,2,5\n")
    assert "--skip-rows must be" in refused(
        cli("data", "ingest", "a", str(path), "--skip-rows", value), 2
    )


def test_skip_rows_is_a_csv_option(cli, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,1,2,5\n")
    res = cli("data", "ingest", "a", "--source", "nifty50", str(path), "--skip-rows", "1")
    assert refused(res, 2) == "error: source 'nifty50' does not take option(s): --skip-rows"


INDEX = (
    "Date,Open,High,Low,Close,Volume\n"
    "2024-01-01,21727.75,21834.35,21680.85,21741.9,\n"
    "2024-01-02,21751.35,21755.6,21555.65,21665.8,\n"
    "2024-01-03,21661.1,21677.0,21500.35,21517.35,250000\n"
)


def test_empty_index_volume_needs_the_flag_and_is_stored_as_zero(
    cli, store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "NIFTY.csv"
    path.write_text(INDEX)
    line = refused(cli("data", "ingest", "n", str(path)))
    assert line.startswith(f"error: {path}:2: null: volume is null")
    res = cli("data", "ingest", "n", str(path), "--volume-optional")
    assert res.exit_code == 0, res.stderr
    version = open_dataset("n", store)
    assert version.lazy().collect()["volume"].to_list() == [0, 0, 250000]
    assert version.manifest.notes["volume_missing_as_zero"] == {"NIFTY": 2}
    assert version.manifest.source.options["volume_optional"] == "true"


def test_an_absent_volume_column_with_the_flag(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "NIFTY.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-01-01,2,3,1,2\n")
    line = refused(cli("data", "ingest", "n", str(path)))
    assert "missing column(s) volume" in line and "--volume-optional" in line
    assert cli("data", "ingest", "n", str(path), "--volume-optional").exit_code == 0
    version = open_dataset("n", store)
    assert version.lazy().collect()["volume"].to_list() == [0]
    assert version.manifest.notes["volume_missing_as_zero"] == {"NIFTY": 1}


MANY = (
    "Ticker,Date,Open,High,Low,Close,Volume\nTCS,2024-01-01,1,2,1,2,5\nINFY,2024-01-01,3,4,3,4,6\n"
)


def test_symbol_from_a_column(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(MANY)
    res = cli("data", "ingest", "m", str(path), "--symbol-column", "Ticker")
    assert res.exit_code == 0, res.stderr
    frame = open_dataset("m", store).lazy().collect()
    assert frame["symbol"].to_list() == ["INFY", "TCS"]
    # Without it both rows are the file's symbol: two differing bars for one day.
    line = refused(cli("data", "ingest", "m2", str(path)))
    assert "duplicate bar (prices, 2024-01-01)" in line and "ignored" not in line


def test_symbol_column_errors(cli, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(MANY)
    missing = refused(cli("data", "ingest", "m", str(path), "--symbol-column", "Name"))
    assert missing.startswith(
        f"error: {path}: --symbol-column 'Name': no such column; found Ticker"
    )
    both = cli("data", "ingest", "m", str(path), "--symbol-column", "Ticker", "--symbol", "X")
    assert refused(both, 2) == "error: pass --symbol or --symbol-column, not both"


def test_symbol_flag_names_a_single_symbol_file(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "download (3).csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,1,2,5\n")
    assert cli("data", "ingest", "s", str(path), "--symbol", "HDFCBANK").exit_code == 0
    assert open_dataset("s", store).lazy().collect()["symbol"].to_list() == ["HDFCBANK"]
