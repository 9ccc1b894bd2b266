"""Input files are taken literally: paths not patterns, directories, archives, line endings."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from quantcli.store.reader import open_dataset
from quantcli.store.sources import parse_source

HEADER = "ts,open,high,low,close,volume\n"
NIFTY50_HEADER = "Date,Open,High,Low,Close,Volume\n"
YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def bars(days: int, *, yahoo: bool = False) -> str:
    """``days`` rows of valid daily bars on consecutive calendar days from 1990-01-01 (for
    parsing only: most are not sessions)."""
    first = date(1990, 1, 1)
    adjusted = ",100.5" if yahoo else ""
    return "".join(
        f"{first + timedelta(days=i)},100,101,99,100.5{adjusted},{1000 + i}\n" for i in range(days)
    )


def assert_refused(res, exit_code: int, *fragments: str) -> None:
    assert res.exit_code == exit_code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("name", ["[ab].csv", "x*.csv", "?.csv", "{a,b}.csv"])
def test_glob_characters_in_a_file_name_are_literal(
    cli, store: Path, tmp_path: Path, name: str
) -> None:
    # Files a pattern would match, holding other bars: none of them may be read.
    (tmp_path / "a.csv").write_text(HEADER + "2024-01-03,1,2,1,2,5\n2024-01-04,1,2,1,2,5\n")
    (tmp_path / "b.csv").write_text(HEADER + "2024-01-05,1,2,1,2,5\n")
    (tmp_path / "xyz.csv").write_text(HEADER + "2024-01-08,1,2,1,2,5\n")
    literal = tmp_path / name
    literal.write_text(HEADER + "2024-01-02,7,8,6,7.5,9\n")
    res = cli("--json", "data", "ingest", "lit", str(literal))
    assert res.exit_code == 0, res.stderr
    assert res.json()["rows"] == 1
    version = open_dataset("lit", store)
    frame = version.lazy().collect()
    assert frame["close"].to_list() == [7.5] and frame["symbol"].to_list() == [literal.stem]
    [recorded] = version.manifest.source.files
    assert recorded.path == str(literal) and recorded.size == literal.stat().st_size


def test_glob_characters_in_a_parquet_name_are_literal(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"ts": ["2024-01-02"], "open": [1.0], "high": [2.0], "low": [1.0], "close": [2.0]}
    ).with_columns(volume=pl.lit(5))
    frame.write_parquet(tmp_path / "a.parquet")
    frame.with_columns(volume=pl.lit(9)).write_parquet(tmp_path / "[ab].parquet")
    parsed = parse_source("parquet", [tmp_path / "[ab].parquet"], {})
    assert parsed.frame["volume"].to_list() == [9]


def test_a_missing_file_is_one_line_naming_it(cli, store: Path, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(HEADER + "2024-01-02,1,2,1,2,5\n")
    missing = tmp_path / "[a].csv"  # a pattern that would match a.csv
    assert_refused(cli("data", "ingest", "m", str(missing)), 1, f"{missing}: no such file")
    assert not (store / "m").exists()


def test_a_directory_given_as_a_file_says_so(cli, store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bhav"
    folder.mkdir()
    (folder / "a.csv").write_text(HEADER + "2024-01-02,1,2,1,2,5\n")
    for source in ("csv", "nifty50", "bhavcopy", "yahoo", "parquet"):
        res = cli("data", "ingest", "d", "--source", source, str(folder))
        assert_refused(res, 2, f"{folder}: is a directory, not a file")
    assert not (store / "d").exists()


# --------------------------------------------------------------------------- line endings


def test_cr_only_line_endings_are_read(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"ts,open,high,low,close,volume\r2024-01-01,1,2,1,2,5\r2024-01-02,2,3,1,2,6\r")
    res = cli("--json", "data", "ingest", "mac", str(path))
    assert res.exit_code == 0, res.stderr
    assert open_dataset("mac", store).lazy().collect()["volume"].to_list() == [5, 6]
    bad = tmp_path / "macbad.csv"
    bad.write_bytes(b"ts,open,high,low,close,volume\r2024-01-01,1,2,1,2,5\r2024-01-02,x,3,1,2,6\r")
    assert_refused(cli("data", "ingest", "mac2", str(bad)), 65, f"{bad}:3: open: not a number")


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text(HEADER + "2024-01-01,1,2,1,2,5\n\n2024-01-02,1,2,1,2,6\n\n\n")
    frame = parse_source("csv", [path], {}).frame
    assert frame["volume"].to_list() == [5, 6] and frame["__row"].to_list() == [2, 4]


def test_quoted_line_breaks_keep_editor_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "ts,open,high,low,close,volume,note\n"
        '2024-01-01,1,2,1,2,5,"two\nlines"\n'
        "2024-01-02,1,2,1,2,x,\n"
    )
    with pytest.raises(Exception, match=r"q.csv:4: volume: not a number: 'x'"):
        parse_source("csv", [path], {})


# --------------------------------------------------------------------------- archives


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


SOURCES = {
    # source: (header, rows maker, file name)
    "csv": (HEADER, bars, "TCS.csv"),
    "nifty50": (NIFTY50_HEADER, bars, "TCS.csv"),
    "yahoo": (YAHOO_HEADER, lambda n: bars(n, yahoo=True), "TCS.NS.csv"),
}


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("rows", [2, 200_000])  # small, and > 6 MB decompressed
@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_valid_archives_read_in_every_tabular_source(
    tmp_path: Path, source: str, rows: int, kind: str
) -> None:
    header, make, name = SOURCES[source]
    text = header + make(rows)
    if rows > 2:
        assert len(text) > 6_000_000
    path = tmp_path / f"{name}.{kind}"
    path.write_bytes(gz(text) if kind == "gz" else zipped({name: text}))
    parsed = parse_source(source, [path], {})
    assert parsed.frame.height == rows
    assert parsed.frame["symbol"].unique().to_list() == ["TCS"]
    assert parsed.frame["__row"][-1] == rows + 1
    plain = tmp_path / name
    plain.write_text(text)
    assert parsed.frame.drop("__file").equals(
        parse_source(source, [plain], {}).frame.drop("__file")
    )


def test_gz_bhavcopy_reads_like_the_plain_file(tmp_path: Path) -> None:
    corpus = Path(__file__).parent / "corpus" / "bhavcopy"
    plain = corpus / "cm03JUL2024bhav.csv"
    packed = tmp_path / "cm03JUL2024bhav.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    got = parse_source("bhavcopy", [packed], {}).frame
    assert got.drop("__file").equals(parse_source("bhavcopy", [plain], {}).frame.drop("__file"))


@pytest.mark.parametrize("source", ["csv", "nifty50", "bhavcopy", "yahoo"])
def test_damaged_archives_are_one_line_in_every_source(
    cli, store: Path, tmp_path: Path, source: str
) -> None:
    text = YAHOO_HEADER + bars(5000, yahoo=True)
    whole_gz, whole_zip = gz(text), zipped({"TCS.csv": text})
    cases = {
        "cut.csv.gz": (whole_gz[: len(whole_gz) // 2], "gzip data ends early (file truncated?)"),
        "bad.csv.gz": (whole_gz[:10] + b"\x00" * 40 + whole_gz[50:], "corrupt gzip data"),
        "named.csv.gz": (text.encode(), "named .gz but not gzip data"),
        "cut.zip": (whole_zip[: len(whole_zip) // 2], "not a readable zip archive"),
        "bad.zip": (whole_zip[:60] + b"\xff" * 200 + whole_zip[260:], "corrupt zip member"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        res = cli("data", "ingest", "arc", "--source", source, str(path))
        assert_refused(res, 65, f"{path}: ", message)
    assert not (store / "arc").exists()


def test_truncation_inside_a_valid_gz_is_found_in_the_decompressed_text(
    cli, tmp_path: Path
) -> None:
    path = tmp_path / "TCS.csv.gz"
    path.write_bytes(gz(HEADER + "2024-01-01,1,2,1,2,5\n2024-01-02,1,2"))
    assert_refused(cli("data", "ingest", "t", str(path)), 65, f"{path}:3: last row has 3 of 6")


def test_zip_members_are_labelled_and_each_is_a_symbol(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    path.write_bytes(
        zipped(
            {
                "TCS.csv": HEADER + "2024-01-02,1,2,1,2,5\n",
                "INFY.csv": HEADER + "2024-01-02,1,2,1,2,x\n",
                "readme.txt": "not a table",
            }
        )
    )
    assert_refused(cli("data", "ingest", "z", str(path)), 65, f"{path}!INFY.csv:2: volume")


def test_cr_only_corpus_file_reads_like_the_good_one() -> None:
    corpus = Path(__file__).parent / "corpus"
    mac = parse_source("csv", [corpus / "cr_only.csv"], {}).frame
    good = parse_source("csv", [corpus / "good.csv"], {}).frame
    assert mac.drop("symbol").equals(good.drop("symbol"))


def test_a_fifo_given_as_a_file_is_refused(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert_refused(cli("data", "ingest", "p", str(fifo)), 2, f"{fifo}: not a regular file")


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_a_large_bhavcopy_archive_reads(tmp_path: Path, kind: str) -> None:
    header = "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
    header += "TOTALTRADES,ISIN,\n"
    rows = "".join(
        f"S{i:06d},EQ,100.5,101.25,99.5,100.75,100.7,100.1,{1000 + i},100750.0,03-JUL-2024,"
        f"{10 + i % 50},INE{i:09d},\n"
        for i in range(80_000)
    )
    text = header + rows
    assert len(text) > 6_000_000
    name = "cm03JUL2024bhav.csv"
    path = tmp_path / f"{name}.{kind}"
    path.write_bytes(gz(text) if kind == "gz" else zipped({name: text}))
    frame = parse_source("bhavcopy", [path], {}).frame
    assert frame.height == 80_000 and frame["__row"][-1] == 80_001
    assert frame["volume"].sum() == sum(1000 + i for i in range(80_000))


def test_the_default_symbol_is_the_file_name_taken_literally(tmp_path: Path) -> None:
    folder = tmp_path / "a!b"
    folder.mkdir()
    plain = folder / "M!M.csv"
    plain.write_text(HEADER + "2024-01-02,1,2,1,2,5\n")
    packed = tmp_path / "x.zip"
    packed.write_bytes(zipped({"nested/TCS.csv": HEADER + "2024-01-02,1,2,1,2,5\n"}))
    frame = parse_source("csv", [plain, packed], {}).frame
    assert frame["symbol"].to_list() == ["M!M", "TCS"]


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux /proc")
def test_an_unreadable_file_is_one_line_naming_it(cli) -> None:
    # /proc/self/mem is a regular file whose read fails (EIO): any OSError on reading.
    res = cli("data", "ingest", "u", "/proc/self/mem")
    assert_refused(res, 1, "/proc/self/mem: cannot read: Input/output error")
