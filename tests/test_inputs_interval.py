"""Intraday bars must sit on the interval's grid, and ``--interval`` must agree with the data."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import DataError
from quantcli.store.ingest import check_grid
from quantcli.store.reader import open_dataset
from quantcli.store.sources import parse_source

HEADER = "ts,open,high,low,close,volume\n"


def write_bars(path: Path, stamps: list[str]) -> Path:
    path.write_text(HEADER + "".join(f"{s},10,11,9,10.5,100\n" for s in stamps))
    return path


def every(start: str, minutes: int, count: int) -> list[str]:
    first = datetime.fromisoformat(start)
    return [(first + timedelta(minutes=minutes * i)).isoformat(sep=" ") for i in range(count)]


def refused(res, code: int) -> str:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and res.stdout == "", res.stderr
    return lines[0]


def test_a_bar_off_the_5m_grid_is_refused(cli, store: Path, tmp_path: Path) -> None:
    stamps = every("2024-01-02 09:15", 5, 6)
    stamps[3] = "2024-01-02 09:17:00"
    path = write_bars(tmp_path / "A.csv", stamps)
    line = refused(cli("data", "ingest", "a", str(path)), 65)
    assert line.startswith(
        f"error: {path}:5: ts: bar at 2024-01-02 09:17 is off the 5m grid of the session "
        "opening at 09:15 (1 such bar(s); wrong --interval"
    )
    assert not (store / "a").exists()


def test_bars_stamped_at_their_close_are_off_the_grid(cli, tmp_path: Path) -> None:
    path = write_bars(tmp_path / "A.csv", every("2024-01-02 09:16", 5, 10))
    line = refused(cli("data", "ingest", "a", str(path)), 65)
    assert f"{path}:2: ts: bar at 2024-01-02 09:16" in line and "(10 such bar(s);" in line


@pytest.mark.parametrize(
    ("interval", "good", "bad"),
    [
        ("1m", every("2024-01-02 09:15", 1, 3), "2024-01-02 09:16:30"),
        ("15m", every("2024-01-02 09:15", 15, 3), "2024-01-02 10:05:00"),
        ("1h", every("2024-01-02 09:15", 60, 3), "2024-01-02 13:00:00"),
    ],
)
def test_the_grid_of_each_interval(
    cli, tmp_path: Path, interval: str, good: list[str], bad: str
) -> None:
    assert cli("data", "ingest", "g", str(write_bars(tmp_path / "A.csv", good))).exit_code == 0
    path = write_bars(tmp_path / "B.csv", [*good, bad])
    line = refused(cli("data", "ingest", "b", "--interval", interval, str(path)), 65)
    assert f"is off the {interval} grid of the session opening at 09:15" in line


def test_special_sessions_anchor_the_grid_at_their_own_opens(
    cli, store: Path, tmp_path: Path
) -> None:
    # Muhurat trading 2023-11-12 opened at 18:15; the DR drill of 2024-03-02 reopened at 11:30.
    good = [
        *every("2023-11-12 18:15", 5, 12),
        *every("2024-03-02 09:15", 5, 9),
        *every("2024-03-02 11:30", 5, 12),
    ]
    # (--allow-warnings: the sessions between the two days have no bars)
    path = write_bars(tmp_path / "A.csv", good)
    res = cli("--json", "data", "ingest", "s", str(path), "--allow-warnings")
    assert res.exit_code == 0, res.stderr
    assert res.json()["interval"] == "5m"
    assert set(res.json()["validation"]["counts"]) == {"missing_session"}
    for stamp, opening in (("2023-11-12 18:17:00", "18:15"), ("2024-03-02 11:32:00", "11:30")):
        path = write_bars(tmp_path / "B.csv", [*good, stamp])
        line = refused(cli("data", "ingest", "b", str(path), "--allow-warnings"), 65)
        assert f"grid of the session opening at {opening}" in line


def test_daily_data_ingested_as_intraday_is_refused(cli, store: Path, tmp_path: Path) -> None:
    path = write_bars(tmp_path / "A.csv", ["2024-01-01", "2024-01-02", "2024-01-03"])
    line = refused(cli("data", "ingest", "a", "--interval", "5m", str(path)), 2)
    assert line == (
        "error: --interval 5m contradicts the data: every bar is at 00:00, so the bars are "
        "daily (pass --interval 1d, or leave it out to infer it)"
    )
    assert not (store / "a").exists()


@pytest.mark.parametrize(("data", "given"), [(5, "1d"), (5, "15m"), (15, "5m"), (5, "1m")])
def test_an_interval_the_spacing_contradicts_is_refused(
    cli, tmp_path: Path, data: int, given: str
) -> None:
    path = write_bars(tmp_path / "A.csv", every("2024-01-02 09:15", data, 8))
    line = refused(cli("data", "ingest", "a", "--interval", given, str(path)), 2)
    assert line.startswith(
        f"error: --interval {given} contradicts the data: bars within a day are {data}m apart"
    )


def test_sparse_bars_take_the_given_interval(cli, store: Path, tmp_path: Path) -> None:
    # One bar a day cannot show its interval; on the 1h grid it is accepted as given.
    path = write_bars(tmp_path / "A.csv", ["2024-01-02 10:15", "2024-01-03 13:15"])
    assert cli("data", "ingest", "a", "--interval", "1h", str(path)).exit_code == 0
    assert open_dataset("a", store).manifest.interval == "1h"


@settings(max_examples=40, deadline=None)
@given(
    step=st.sampled_from([1, 5, 15, 60]),
    offsets=st.lists(st.integers(0, 374), min_size=1, max_size=30),
)
def test_grid_check_accepts_exactly_the_multiples_of_the_step(
    tmp_path_factory: pytest.TempPathFactory, step: int, offsets: list[int]
) -> None:
    interval = {1: "1m", 5: "5m", 15: "15m", 60: "1h"}[step]
    opening = datetime(2024, 1, 2, 9, 15)
    stamps = sorted({(opening + timedelta(minutes=m)).isoformat(sep=" ") for m in offsets})
    path = write_bars(tmp_path_factory.mktemp("g") / "A.csv", stamps)
    parsed = parse_source("csv", [path], {})
    if all(m % step == 0 for m in offsets):
        check_grid(parsed.frame, interval, parsed.files)
    else:
        with pytest.raises(DataError, match=f"off the {interval} grid"):
            check_grid(parsed.frame, interval, parsed.files)
