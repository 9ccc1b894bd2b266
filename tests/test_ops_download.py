"""Download checks: a zip with one CSV of the expected layout for the session asked for."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from httpserver import (
    legacy_csv,
    legacy_name,
    legacy_zip,
    udiff_csv,
    udiff_name,
    udiff_zip,
    zipped,
)

from quantcli.ops.download import BadDownload, bhavcopy_check, check_download
from quantcli.store.sources import parse_source

DAY = date(2024, 7, 5)


def test_legacy_and_udiff_pass_and_give_the_csv_ingest_reads(tmp_path: Path) -> None:
    legacy = check_download(DAY, legacy_zip(DAY), "legacy")
    assert legacy == legacy_csv(DAY).encode()
    assert check_download(DAY, udiff_zip(DAY), "udiff") == udiff_csv(DAY).encode()
    assert bhavcopy_check("udiff")(DAY, udiff_zip(DAY)) == udiff_csv(DAY).encode()
    path = tmp_path / legacy_name(DAY)
    path.write_bytes(legacy)
    frame = parse_source("bhavcopy", [path], {}).frame
    assert frame.height == 3
    assert set(frame["ts"].dt.date()) == {DAY}


def problem(day: date, content: bytes, kind: str = "legacy") -> BadDownload:
    with pytest.raises(BadDownload) as info:
        check_download(day, content, kind)  # type: ignore[arg-type]
    error = info.value
    assert error.exit_code == 65
    assert error.day == day
    assert str(error).startswith(f"{day.isoformat()}: ")
    assert "\n" not in str(error)
    return error


def test_an_html_page_served_as_the_file() -> None:
    error = problem(DAY, b"<html><body>Resource not found</body></html>")
    assert error.problem == (
        "not a zip archive (it starts '<html><body>Resource not found</body></h')"
    )


def test_a_truncated_zip() -> None:
    content = legacy_zip(DAY)
    error = problem(DAY, content[: len(content) // 2])
    assert "not a readable zip archive" in error.problem
    assert "truncated?" in error.problem


def test_exactly_one_csv_member() -> None:
    two = zipped({legacy_name(DAY): legacy_csv(DAY), "extra.csv": legacy_csv(DAY)})
    assert problem(DAY, two).problem == (
        f"expected one CSV in the zip, found 2: {legacy_name(DAY)}, extra.csv"
    )
    none = zipped({"readme.txt": "nothing here"})
    assert problem(DAY, none).problem == "zip archive holds no .csv file"


def test_a_changed_layout() -> None:
    error = problem(DAY, udiff_zip(DAY), "legacy")
    assert error.problem == (
        f"{udiff_name(DAY)}: the layout changed: expected legacy bhavcopy, found UDiFF bhavcopy"
    )
    assert not error.wrong_session
    error = problem(DAY, legacy_zip(DAY), "udiff")
    assert "expected UDiFF bhavcopy, found legacy bhavcopy" in error.problem


def test_not_a_bhavcopy_at_all() -> None:
    error = problem(DAY, zipped({"x.csv": "date,open,close\n2024-07-05,1,2\n"}))
    assert error.problem.startswith("x.csv: not a bhavcopy: expected legacy (SYMBOL, TIMESTAMP")


def test_the_wrong_session() -> None:
    other = date(2024, 7, 4)
    error = problem(DAY, zipped({legacy_name(DAY): legacy_csv(other)}))
    assert error.wrong_session
    assert error.problem == f"{legacy_name(DAY)}: the file is for 2024-07-04, not this session"
    mixed = legacy_csv(DAY) + legacy_csv(other).split("\n", 1)[1]
    error = problem(DAY, zipped({legacy_name(DAY): mixed}))
    assert "the file is for 2024-07-04, 2024-07-05, not this session" in error.problem
    error = problem(DAY, zipped({udiff_name(DAY): udiff_csv(other)}), "udiff")
    assert error.wrong_session


def test_a_csv_cut_mid_row_and_a_bad_date() -> None:
    text = legacy_csv(DAY)
    error = problem(DAY, zipped({legacy_name(DAY): text[: text.rindex(",") - 3]}))
    assert error.problem.startswith(legacy_name(DAY))
    assert not error.wrong_session
    bad = text.replace("05-JUL-2024", "2024-07-05", 1)
    error = problem(DAY, zipped({legacy_name(DAY): bad}))
    assert error.problem == (
        f"{legacy_name(DAY)}: '2024-07-05' in legacy bhavcopy's date column is not a date"
    )
