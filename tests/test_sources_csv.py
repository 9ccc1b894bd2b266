"""Generic CSV and Parquet sources: column mapping, dates, time zones, symbols, bad input."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import DataError, NotFoundError, UsageError
from quantcli.store.sources import FILE_COL, KINDS, ROW_COL, parse_source

IST = ZoneInfo("Asia/Kolkata")
CORPUS = Path(__file__).parent / "corpus"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_kinds_registered() -> None:
    assert KINDS == ("csv", "parquet", "nifty50", "bhavcopy", "yahoo", "synthetic")


def test_unknown_kind_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown source kind 'xls'"):
        parse_source("xls", [tmp_path / "a.xls"], {})
    with pytest.raises(UsageError, match="at least one input file"):
        parse_source("csv", [], {})
    with pytest.raises(NotFoundError, match="no such file"):
        parse_source("csv", [tmp_path / "nope.csv"], {})


def test_canonical_names_and_symbol_from_stem() -> None:
    parsed = parse_source("csv", [CORPUS / "good.csv"], {})
    frame = parsed.frame
    assert frame.columns == [
        "symbol",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        FILE_COL,
        ROW_COL,
    ]
    assert frame["symbol"].to_list() == ["good", "good"]
    assert frame.schema["ts"] == TS_DTYPE
    assert frame["ts"][0] == datetime(2024, 1, 1, tzinfo=IST)
    assert frame[ROW_COL].to_list() == [2, 3]  # editor lines: the header is line 1
    assert parsed.files == (str(CORPUS / "good.csv"),)
    assert parsed.inputs == (CORPUS / "good.csv",)


def test_map_symbol_option_and_ignored_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        "Date,Open Price,High,Low,Close Price,Qty,Note\n"
        "02-01-2024,10,11,9,10.5,100,a\n03-01-2024,10.5,11,10,10.8,1.5E+02,b\n",
    )
    options = {
        "map.Date": "ts",
        "map.Open Price": "open",
        "map.High": "high",
        "map.Low": "low",
        "map.Close Price": "close",
        "map.Qty": "volume",
        "symbol": "ABC",
    }
    parsed = parse_source("csv", [path], options)
    assert parsed.frame["symbol"].unique().to_list() == ["ABC"]
    assert parsed.frame["volume"].to_list() == [100, 150]
    assert parsed.frame["ts"][1] == datetime(2024, 1, 3, tzinfo=IST)
    assert parsed.ignored_columns == ("Note",)


def test_symbol_column_and_symbol_override(tmp_path: Path) -> None:
    path = write(
        tmp_path / "many.csv",
        "symbol,ts,open,high,low,close,volume,series\n"
        " AAA ,2024-01-02,1,2,1,2,5,EQ\nBBB,2024-01-02,1,2,1,2,5,\n",
    )
    frame = parse_source("csv", [path], {}).frame
    assert frame["symbol"].to_list() == ["AAA", "BBB"]
    assert frame["series"].to_list() == ["EQ", None]
    forced = parse_source("csv", [path], {"symbol": "ZZZ"}).frame
    assert forced["symbol"].unique().to_list() == ["ZZZ"]


def test_aware_timestamps_converted_to_ist(tmp_path: Path) -> None:
    path = write(
        tmp_path / "utc.csv",
        "timestamp,open,high,low,close,volume\n2024-01-02T03:45:00+00:00,1,2,1,2,5\n",
    )
    frame = parse_source("csv", [path], {}).frame
    assert frame["ts"][0] == datetime(2024, 1, 2, 9, 15, tzinfo=IST)


def test_naive_timestamps_in_given_timezone(tmp_path: Path) -> None:
    path = write(tmp_path / "ny.csv", "ts,open,high,low,close,volume\n2024-01-02 09:30,1,2,1,2,5\n")
    frame = parse_source("csv", [path], {"timezone": "UTC"}).frame
    assert frame["ts"][0] == datetime(2024, 1, 2, 15, 0, tzinfo=IST)
    with pytest.raises(DataError, match="ts:"):
        parse_source("csv", [path], {"timezone": "Not/AZone"})


def test_explicit_date_format(tmp_path: Path) -> None:
    path = write(tmp_path / "us.csv", "ts,open,high,low,close,volume\n01/02/2024,1,2,1,2,5\n")
    frame = parse_source("csv", [path], {"date_format": "%m/%d/%Y"}).frame
    assert frame["ts"][0] == datetime(2024, 1, 2, tzinfo=IST)
    with pytest.raises(
        DataError, match=r"us.csv:2: ts: cannot parse '01/02/2024' with --date-format"
    ):
        parse_source("csv", [path], {"date_format": "%d.%m.%Y"})


def test_delimiter_option(tmp_path: Path) -> None:
    semi = CORPUS / "semicolon.csv"
    assert parse_source("csv", [semi], {"delimiter": ";"}).frame.height == 1
    tabbed = write(
        tmp_path / "t.tsv", "ts\topen\thigh\tlow\tclose\tvolume\n2024-01-02\t1\t2\t1\t2\t5\n"
    )
    assert parse_source("csv", [tabbed], {"delimiter": "tab"}).frame.height == 1
    with pytest.raises(UsageError, match="one character"):
        parse_source("csv", [semi], {"delimiter": ";;"})
    with pytest.raises(DataError, match="separated by tab"):
        parse_source("csv", [tabbed], {})


def test_bad_options(tmp_path: Path) -> None:
    good = CORPUS / "good.csv"
    with pytest.raises(UsageError, match="does not take option"):
        parse_source("csv", [good], {"series": "EQ"})
    with pytest.raises(UsageError, match="'closing' is not a canonical column"):
        parse_source("csv", [good], {"map.close": "closing"})
    path = write(
        tmp_path / "two.csv", "ts,close,Close,open,high,low,volume\n2024-01-02,1,1,1,1,1,1\n"
    )
    with pytest.raises(DataError, match="two columns map to 'close'"):
        parse_source("csv", [path], {})  # close and Close match case-insensitively
    with pytest.raises(DataError, match="two columns map to 'close'"):
        parse_source("csv", [path], {"map.Close": "close", "map.close": "close"})


def test_integer_columns_refuse_fractions(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "ts,open,high,low,close,volume\n2024-01-02,1,2,1,2,5.5\n")
    with pytest.raises(DataError, match=r"f.csv:2: volume: not an integer: '5.5'"):
        parse_source("csv", [path], {})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wrong_columns.csv", r"wrong_columns.csv: missing column\(s\) ts, open"),
        ("bad_date.csv", r"bad_date.csv:4: ts: cannot parse '2024-13-45'"),
        ("empty.csv", r"empty.csv: empty file"),
        ("header_only.csv", r"header_only.csv: no data rows"),
        ("semicolon.csv", r"semicolon.csv: the header is separated by ';'"),
        ("truncated.csv", r"truncated.csv:4: last row has 3 of 6 fields"),
        ("non_utf8.csv", r"non_utf8.csv:3: not UTF-8 text: byte 0xc9"),
        ("not_a_number.csv", r"not_a_number.csv:3: volume: not a number: '1.2k'"),
        ("extra_fields.csv", r"extra_fields.csv:3: 7 fields but the header has 6"),
    ],
)
def test_parse_errors_name_file_and_row(name: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        parse_source("csv", [CORPUS / name], {})
    assert "\n" not in info.value.message


def test_non_utf8_header_and_unreadable_csv(tmp_path: Path) -> None:
    bad = tmp_path / "h.csv"
    bad.write_bytes(b"d\xe9te,open\n1,2\n")
    with pytest.raises(DataError, match=r"h.csv: not UTF-8 text: byte 0xe9 in the header"):
        parse_source("csv", [bad], {})
    quoted = write(tmp_path / "q.csv", 'ts,open\n"2024-01-02,1\n')
    with pytest.raises(DataError, match=r"q.csv"):
        parse_source("csv", [quoted], {})


def test_parquet_source(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {
            "Date": [datetime(2024, 1, 2), datetime(2024, 1, 3)],
            "open": [1.0, 2.0],
            "high": [2, 3],
            "low": [1.0, 2.0],
            "close": [2.0, 3.0],
            "volume": [5, 6],
        }
    ).write_parquet(path)
    frame = parse_source("parquet", [path], {"map.Date": "ts", "symbol": "PQ"}).frame
    assert frame["symbol"].to_list() == ["PQ", "PQ"]
    assert frame["high"].dtype == pl.Float64
    assert frame["ts"][1] == datetime(2024, 1, 3, tzinfo=IST)
    assert frame[ROW_COL].to_list() == [1, 2]


def test_parquet_dates_aware_and_text(tmp_path: Path) -> None:
    base = {"open": [1.0], "high": [2.0], "low": [1.0], "close": [2.0], "volume": [5]}
    dated = tmp_path / "d.parquet"
    pl.DataFrame({"ts": [datetime(2024, 1, 2).date()], **base}).write_parquet(dated)
    aware = tmp_path / "a.parquet"
    pl.DataFrame({"ts": [datetime(2024, 1, 2, 3, 45)], **base}).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC")
    ).write_parquet(aware)
    text = tmp_path / "t.parquet"
    pl.DataFrame({"ts": ["02-01-2024"], **base}).write_parquet(text)
    got = [parse_source("parquet", [p], {}).frame["ts"][0] for p in (dated, aware, text)]
    assert got == [
        datetime(2024, 1, 2, tzinfo=IST),
        datetime(2024, 1, 2, 9, 15, tzinfo=IST),
        datetime(2024, 1, 2, tzinfo=IST),
    ]


def test_parquet_errors(tmp_path: Path) -> None:
    junk = write(tmp_path / "junk.parquet", "not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable Parquet file"):
        parse_source("parquet", [junk], {})
    empty = tmp_path / "e.parquet"
    pl.DataFrame({"ts": [], "open": []}, schema={"ts": pl.Date, "open": pl.Float64}).write_parquet(
        empty
    )
    with pytest.raises(DataError, match=r"e.parquet: no data rows"):
        parse_source("parquet", [empty], {})


def test_intraday_shared_files_parse(shared_data: Path) -> None:
    files = sorted((shared_data / "nse_intraday_5min").glob("*.csv"))
    frame = parse_source("csv", files, {}).frame
    assert frame["symbol"].unique().sort().to_list() == ["INFY", "RELIANCE"]
    first = frame.filter(pl.col("symbol") == "INFY")["ts"][0]
    assert first == datetime(2023, 7, 3, 9, 15, tzinfo=IST)


def test_single_column_and_unterminated_last_line(tmp_path: Path) -> None:
    single = write(tmp_path / "one.csv", "close\n1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) symbol|missing column\(s\) ts"):
        parse_source("csv", [single], {})
    whole = write(tmp_path / "w.csv", "ts,open,high,low,close,volume\n2024-01-02,1,2,1,2,5")
    assert parse_source("csv", [whole], {}).frame.height == 1


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "BB", "C-1"]),
            st.dates(date(1990, 1, 1), date(2030, 12, 31)),
            st.decimals("0.01", "99999.99", places=2),
            st.integers(0, 10**12),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    path = tmp_path_factory.mktemp("rt") / "bars.csv"
    lines = ["symbol,ts,open,high,low,close,volume"]
    lines += [f"{s},{d.isoformat()},{p},{p},{p},{p},{v}" for s, d, p, v in rows]
    path.write_text("\n".join(lines) + "\n")
    frame = parse_source("csv", [path], {}).frame
    assert frame["symbol"].to_list() == [r[0] for r in rows]
    assert frame["ts"].dt.date().to_list() == [r[1] for r in rows]
    assert frame["close"].to_list() == [float(r[2]) for r in rows]
    assert frame["volume"].to_list() == [r[3] for r in rows]
    assert frame[ROW_COL].to_list() == list(range(2, len(rows) + 2))


def test_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "win.csv"
    path.write_bytes(b"\xef\xbb\xbfts,open,high,low,close,volume\r\n2024-01-02,1,2,1,2,5\r\n")
    frame = parse_source("csv", [path], {}).frame
    assert frame["volume"].to_list() == [5] and frame["ts"][0] == datetime(2024, 1, 2, tzinfo=IST)
