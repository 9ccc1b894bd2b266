"""Yahoo Finance downloads: the classic CSV and yfinance's three-line header, NSE/BSE tickers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from quantcli.errors import DataError, UsageError
from quantcli.store.reader import open_dataset
from quantcli.store.sources import parse_source
from quantcli.store.sources.yahoo import CLOSE_NOTE, symbol_of

IST = ZoneInfo("Asia/Kolkata")
CORPUS = Path(__file__).parent / "corpus" / "yahoo"


def refused(res, code: int = 65) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and res.stdout == "", res.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("ticker", "symbol"),
    [
        ("RELIANCE.NS", "RELIANCE"),
        ("TCS.BO", "TCS"),
        ("M&M.NS", "M&M"),
        ("BAJAJ-AUTO.ns", "BAJAJ-AUTO"),
        ("^NSEI", "^NSEI"),
        ("AAPL", "AAPL"),
        (".NS", ".NS"),
    ],
)
def test_symbol_of(ticker: str, symbol: str) -> None:
    assert symbol_of(ticker) == symbol


def test_classic_download(cli, store: Path) -> None:
    path = CORPUS / "RELIANCE.NS.csv"
    res = cli("--json", "data", "ingest", "rel", "--source", "yahoo", str(path))
    assert res.exit_code == 0, res.stderr
    assert res.json()["ignored_columns"] == ["Adj Close"]
    version = open_dataset("rel", store)
    frame = version.lazy().collect()
    assert frame["symbol"].unique().to_list() == ["RELIANCE"]
    # The raw Close, not Adj Close (Adj Close is 1562.40 that day).
    first = frame.row(0, named=True)
    assert first["ts"] == datetime(2024, 7, 1, tzinfo=IST) and first["close"] == 1575.85
    assert frame.height == 4  # of 5 data lines: the "null" row is dropped
    notes = version.manifest.notes
    assert notes["yahoo_symbols"] == {"RELIANCE.NS": "RELIANCE"}
    assert notes["yahoo_empty_rows_dropped"] == {"RELIANCE": 1}
    assert notes["yahoo_close"] == CLOSE_NOTE and "not Adj Close" in CLOSE_NOTE
    assert version.manifest.source.kind == "yahoo"


def test_yfinance_multi_header_with_two_tickers(cli, store: Path) -> None:
    path = CORPUS / "yfinance_two.csv"
    res = cli("--json", "data", "ingest", "yf", "--source", "yahoo", str(path))
    assert res.exit_code == 0, res.stderr
    version = open_dataset("yf", store)
    frame = version.lazy().collect().sort("symbol", "ts")
    assert frame["symbol"].unique().sort().to_list() == ["RELIANCE", "TCS"]
    tcs = frame.filter(frame["symbol"] == "TCS")
    assert tcs["close"].to_list() == [3850.0, 3880.5]  # the day with empty TCS cells is dropped
    assert tcs["open"].to_list() == [3840.0, 3851.0]
    assert version.manifest.notes["yahoo_symbols"] == {"RELIANCE.NS": "RELIANCE", "TCS.BO": "TCS"}
    assert version.manifest.notes["yahoo_empty_rows_dropped"] == {"TCS": 1}


def test_yfinance_lines_in_errors_count_the_three_header_lines(tmp_path: Path) -> None:
    text = (CORPUS / "yfinance_two.csv").read_text().replace("3880.5", "inf")
    path = tmp_path / "yf.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=r"yf.csv:6: close: not a finite number: 'inf'"):
        parse_source("yahoo", [path], {})


def test_symbol_flag_and_its_limits(tmp_path: Path) -> None:
    parsed = parse_source("yahoo", [CORPUS / "RELIANCE.NS.csv"], {"symbol": "RIL"})
    assert parsed.frame["symbol"].unique().to_list() == ["RIL"]
    assert "yahoo_symbols" not in parsed.notes
    with pytest.raises(UsageError, match="--symbol names one symbol, but the file holds tickers"):
        parse_source("yahoo", [CORPUS / "yfinance_two.csv"], {"symbol": "X"})


def test_one_symbol_from_two_exchanges_is_refused(cli, tmp_path: Path) -> None:
    text = (CORPUS / "RELIANCE.NS.csv").read_text()
    (tmp_path / "RELIANCE.NS.csv").write_text(text)
    (tmp_path / "RELIANCE.BO.csv").write_text(text)
    res = cli(
        "data", "ingest", "x", "--source", "yahoo",
        str(tmp_path / "RELIANCE.NS.csv"), str(tmp_path / "RELIANCE.BO.csv"),
    )  # fmt: skip
    line = refused(res)
    assert "tickers RELIANCE.NS and RELIANCE.BO both map to symbol RELIANCE" in line


def test_index_ticker_with_empty_volume(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "^NSEI.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-07-01,24010.6,24164.0,23992.7,24141.95,24141.95,\n"
        "2024-07-02,24228.75,24236.35,24056.4,24123.85,24123.85,0\n"
    )
    assert refused(cli("data", "ingest", "i", "--source", "yahoo", str(path))).startswith(
        f"error: {path}:2: null: volume is null"
    )
    ok = cli("data", "ingest", "i", "--source", "yahoo", str(path), "--symbol", "NIFTY 50",
             "--volume-optional")  # fmt: skip
    assert ok.exit_code == 0, ok.stderr
    notes = open_dataset("i", store).manifest.notes
    assert notes["volume_missing_as_zero"] == {"NIFTY 50": 1}


def test_ticker_history_layout_and_unknown_columns(tmp_path: Path) -> None:
    path = tmp_path / "TCS.NS.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
        "2024-07-01 00:00:00+05:30,3900,3950,3890,3940,100,0.0,0.0\n"
    )
    parsed = parse_source("yahoo", [path], {})
    assert parsed.frame["ts"].to_list() == [datetime(2024, 7, 1, tzinfo=IST)]
    assert parsed.ignored_columns == ("Dividends", "Stock Splits")
    odd = tmp_path / "X.NS.csv"
    odd.write_text("Date,Open,High,Low,Close,Volume,Turnover\n2024-07-01,1,2,1,2,5,10\n")
    with pytest.raises(DataError, match="unexpected column 'Turnover' for the Yahoo Finance"):
        parse_source("yahoo", [odd], {})


def test_a_file_of_only_null_rows(tmp_path: Path) -> None:
    path = tmp_path / "X.NS.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n2024-07-01,null,null,null,null,null,null\n"
    )
    with pytest.raises(DataError, match=r"X.NS.csv: X.NS: no rows with data"):
        parse_source("yahoo", [path], {})


def test_yfinance_ticker_first_header_and_a_wide_file(tmp_path: Path) -> None:
    # group_by="ticker" puts the Ticker line first; 300 tickers make the header ~30 KB.
    tickers = [f"S{i:03d}.NS" for i in range(300)]
    fields = ["Open", "High", "Low", "Close", "Volume"]
    lines = [
        ",".join(["Ticker", *(t for t in tickers for _ in fields)]),
        ",".join(["Price", *(f for _ in tickers for f in fields)]),
        "Date" + "," * (len(tickers) * len(fields)),
        ",".join(["2024-07-01", *("10,12,9,11,500" for _ in tickers)]),
    ]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    assert len(lines[0]) > 8192
    parsed = parse_source("yahoo", [path], {})
    frame = parsed.frame
    assert frame.height == 300 and frame["symbol"][0] == "S000" and frame["close"][0] == 11.0
    assert frame["__row"].unique().to_list() == [4]
    assert len(parsed.notes["yahoo_symbols"]) == 300  # type: ignore[arg-type]


def test_yfinance_header_lines_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Price,Close,High\nTicker,A.NS\nDate,,\n2024-07-01,1,2\n")
    with pytest.raises(DataError, match="the Ticker line has 2 fields but the Price line 3"):
        parse_source("yahoo", [path], {})
