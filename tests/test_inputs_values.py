"""Cell values are taken literally: non-finite numbers, UTC offsets, two-digit years, lines."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import DataError
from quantcli.store.reader import open_dataset
from quantcli.store.sources import parse_source

IST = ZoneInfo("Asia/Kolkata")
HEADER = "ts,open,high,low,close,volume\n"
GOOD = "2024-01-01,10,11,9,10.5,100\n"

NON_FINITE = ["inf", "-inf", "Infinity", "-INF", "+inf", "nan", "NaN", "NAN", "-nan", "1e999"]


def refused(res, code: int = 65) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and res.stdout == "", res.stderr
    return lines[0]


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_non_finite_numbers_are_refused_naming_file_line_and_column(
    cli, store: Path, tmp_path: Path, value: str, column: str
) -> None:
    cells = {"open": "10", "high": "11", "low": "9", "close": "10.5", "volume": "100"}
    cells[column] = value
    path = tmp_path / "x.csv"
    path.write_text(HEADER + GOOD + "2024-01-02," + ",".join(cells.values()) + "\n")
    line = refused(cli("data", "ingest", "x", str(path)))
    assert line == f"error: {path}:3: {column}: not a finite number: {value!r}"
    assert not (store / "x").exists()


@pytest.mark.parametrize(
    ("source", "name", "text"),
    [
        ("nifty50", "A.csv", "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,1,inf,5\n"),
        (
            "yahoo",
            "A.NS.csv",
            "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-01,1,2,1,NaN,1.9,5\n",
        ),
    ],
)
def test_non_finite_refused_in_the_fixed_layouts(
    cli, tmp_path: Path, source: str, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    line = refused(cli("data", "ingest", "x", "--source", source, str(path)))
    assert line.startswith(f"error: {path}:2: close: not a finite number")


def test_non_finite_refused_in_bhavcopy_and_parquet(tmp_path: Path) -> None:
    corpus = Path(__file__).parent / "corpus" / "bhavcopy" / "cm03JUL2024bhav.csv"
    lines = corpus.read_text().splitlines(keepends=True)
    fields = lines[1].split(",")
    fields[5] = "Infinity"  # CLOSE
    bhav = tmp_path / "cm03JUL2024bhav.csv.gz"
    bhav.write_bytes(gzip.compress("".join([lines[0], ",".join(fields)]).encode(), mtime=0))
    with pytest.raises(DataError, match=r"cm03JUL2024bhav.csv.gz:2: close: not a finite number"):
        parse_source("bhavcopy", [bhav], {})
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "open": [1.0, float("nan")],
            "high": [2.0, 2.0],
            "low": [1.0, 1.0],
            "close": [2.0, 2.0],
            "volume": [5, 6],
        }
    )
    parquet = tmp_path / "p.parquet"
    frame.write_parquet(parquet)
    with pytest.raises(DataError, match=r"p.parquet:2: open: not a finite number: nan"):
        parse_source("parquet", [parquet], {})


@settings(max_examples=50, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_is_stored_exactly_or_refused(
    tmp_path_factory: pytest.TempPathFactory, value: float
) -> None:
    path = tmp_path_factory.mktemp("f") / "f.csv"
    path.write_text(f"ts,open,high,low,close,volume\n2024-01-01,{value!r},1,1,1,1\n")
    try:
        frame = parse_source("csv", [path], {}).frame
    except DataError as exc:
        assert not pl.Series([value]).is_finite().all()
        assert "open: not a finite number" in exc.message
    else:
        assert frame["open"].to_list() == [value]


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-02T03:45:00Z",
        "2024-01-02T03:45:00.000Z",
        "2024-01-02 03:45:00Z",
        "2024-01-02T03:45:00+00:00",
        "2024-01-02 03:45:00+0000",
        "2024-01-02T09:15:00+05:30",
        "2024-01-02 09:15+05:30",
        "2024-01-01T22:45:00-05:00",
        "2024-01-02T12:45:00+09:00",
    ],
)
def test_utc_offsets_are_converted_to_ist(cli, store: Path, tmp_path: Path, stamp: str) -> None:
    path = tmp_path / "A.csv"
    later = stamp.replace(":45:", ":50:").replace(":15:", ":20:").replace("09:15+", "09:20+")
    path.write_text(HEADER + f"{stamp},1,2,1,2,5\n{later},1,2,1,2,6\n")
    res = cli("--json", "data", "ingest", "utc", str(path))
    assert res.exit_code == 0, res.stderr
    frame = open_dataset("utc", store).lazy().collect()
    assert frame["ts"].to_list() == [
        datetime(2024, 1, 2, 9, 15, tzinfo=IST),
        datetime(2024, 1, 2, 9, 20, tzinfo=IST),
    ]
    assert res.json()["interval"] == "5m"


def test_mixed_offsets_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "A.csv"
    path.write_text(
        HEADER + "2024-01-02T03:45:00Z,1,2,1,2,5\n2024-01-02T09:20:00+05:30,1,2,1,2,6\n"
    )
    frame = parse_source("csv", [path], {}).frame
    assert frame["ts"].dt.minute().to_list() == [15, 20]


@pytest.mark.parametrize("stamp", ["02-01-24", "24-01-02", "2-1-24", "02-01-24 09:15", "024-01-02"])
def test_two_digit_years_are_refused_with_the_fix(cli, tmp_path: Path, stamp: str) -> None:
    path = tmp_path / "A.csv"
    path.write_text(HEADER + f"{stamp},1,2,1,2,5\n")
    line = refused(cli("data", "ingest", "y", str(path)))
    assert line.startswith(f"error: {path}:2: ts: {stamp!r} has a two-digit year")
    assert "--date-format with %y" in line


def test_an_explicit_two_digit_year_format_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "A.csv"
    path.write_text(HEADER + "02-01-24,1,2,1,2,5\n02-01-99,1,2,1,2,5\n")
    frame = parse_source("csv", [path], {"date_format": "%d-%m-%y"}).frame
    assert frame["ts"].dt.year().to_list() == [2024, 1999]


# --------------------------------------------------------------------------- line numbers


@settings(max_examples=25, deadline=None)
@given(bad=st.integers(0, 40), skip=st.integers(0, 3), blanks=st.sets(st.integers(0, 40)))
def test_error_lines_are_the_lines_an_editor_shows(
    tmp_path_factory: pytest.TempPathFactory, bad: int, skip: int, blanks: set[int]
) -> None:
    lines = ["ts,open,high,low,close,volume"] + ["# extra header,,,,,"] * skip
    for i in range(41):
        if i in blanks:
            lines.append("")
        lines.append(f"2024-01-{i % 28 + 1:02d},1,2,1,2,{'x' if i == bad else 5}")
    path = tmp_path_factory.mktemp("l") / "l.csv"
    path.write_text("\n".join(lines) + "\n")
    expected = next(n for n, text in enumerate(lines, start=1) if text.endswith(",x"))
    with pytest.raises(DataError) as info:
        parse_source("csv", [path], {"skip_rows": str(skip)})
    assert info.value.row == expected
    assert info.value.message.startswith(f"{path}:{expected}: volume: not a number")
