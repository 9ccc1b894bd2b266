"""`quantcli calendar import`: NSE's holiday list for 2027 extends the store's calendar, strictly
validated, kept in <root>/_meta/calendar/, and used by every command and library entry point
given that root; `is-session` exit 3 outside coverage and the coverage-end warning."""

from __future__ import annotations

import math
import random
import tempfile
import warnings
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import ConflictError, CoverageError, DataError
from quantcli.market import calendar as cal

# NSE's list as downloaded (Sr. No, Date, Day, Description), with one Saturday holiday listed.
NSE_2027 = (
    "Sr. No,Date,Day,Description\n"
    "1,26-Jan-2027,Tuesday,Republic Day\n"
    "2,06-Mar-2027,Saturday,Mahashivratri\n"
    "3,22-Mar-2027,Monday,Holi\n"
    "4,29-Oct-2027,Friday,Diwali Laxmi Pujan\n"
)
# The same year with special sessions (and the calendar_overrides.csv column spellings).
WITH_SESSIONS = (
    "date,kind,description,windows\n"
    "2027-01-26,holiday,Republic Day,\n"
    "2027-03-22,holiday,Holi,\n"
    "2027-10-29,holiday,Diwali Laxmi Pujan,\n"
    "2027-10-29,muhurat,Muhurat trading,18:00-19:00\n"
    "2027-02-06,budget,Budget day session,09:15-15:30\n"
)


def write(tmp_path: Path, text: str, name: str = "holidays.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def imported(cli, store: Path, tmp_path: Path) -> Path:
    res = cli("calendar", "import", str(write(tmp_path, NSE_2027)))
    assert res.exit_code == 0, res.stderr
    return store


def test_import_extends_coverage_through_the_year(cli, store: Path, tmp_path: Path) -> None:
    assert cli("calendar", "is-session", "2027-01-04").exit_code == 3
    path = write(tmp_path, NSE_2027)
    res = cli("--json", "calendar", "import", str(path))
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert (out["year"], out["created"], out["holidays"], out["special_sessions"]) == (
        2027,
        True,
        3,
        0,
    )
    assert out["coverage"] == {"first": "1997-01-01", "last": "2027-12-31"}
    assert out["notes"] == [f"{path}:3: 2027-03-06 (Sat) is a weekend day, closed anyway"]
    assert (store / "_meta" / "calendar" / "2027.csv").is_file()
    text = cli("calendar", "import", str(path))
    assert text.exit_code == 0 and "note: " in text.stderr and "(Sat)" in text.stderr
    assert text.stdout.startswith("unchanged, 2027: 3 holiday(s)")


def test_round_trip_2027(cli, imported: Path) -> None:
    assert cli("calendar", "is-session", "2027-01-04").exit_code == 0
    no = cli("calendar", "is-session", "2027-01-26")
    assert (no.exit_code, no.stdout.strip()) == (
        1,
        "2027-01-26 (Tue) is not an NSE session: Republic Day",
    )
    assert cli("calendar", "is-session", "2027-03-06").exit_code == 1  # a Saturday
    rows = cli("--json", "calendar", "holidays", "2027").json()
    assert [(r["date"], r["name"]) for r in rows] == [
        ("2027-01-26", "Republic Day"),
        ("2027-03-22", "Holi"),
        ("2027-10-29", "Diwali Laxmi Pujan"),
    ]
    days = cli("--json", "calendar", "sessions", "--from", "2027-01-22", "--to", "2027-01-27")
    assert [r["date"] for r in days.json()] == ["2027-01-22", "2027-01-25", "2027-01-27"]
    nxt = cli("--json", "calendar", "next", "2026-12-31").json()
    assert (nxt["date"], nxt["kind"]) == ("2027-01-01", "regular")
    cover = cli("--json", "calendar", "coverage").json()
    assert (cover["last"], cover["bundled_last"], cover["imported_years"]) == (
        "2027-12-31",
        "2026-12-31",
        [2027],
    )
    assert cli("calendar", "is-session", "2028-01-03").exit_code == 3


def test_special_sessions_and_replace(cli, imported: Path, tmp_path: Path) -> None:
    other = write(tmp_path, WITH_SESSIONS, "sessions.csv")
    res = cli("calendar", "import", str(other))
    assert res.exit_code == 1
    assert "2027 is already imported with a different list" in res.stderr
    assert "--replace" in res.stderr
    assert cli("calendar", "is-session", "2027-02-06").exit_code == 1  # unchanged
    res = cli("calendar", "import", "--replace", str(other))
    assert res.exit_code == 0 and res.stdout.startswith("replaced 2027: 3 holiday(s), 2 special")
    budget = cli("--json", "calendar", "is-session", "2027-02-06").json()
    assert (budget["kind"], budget["hours"]) == ("budget", "09:15-15:30")
    muhurat = cli("--json", "calendar", "is-session", "2027-10-29").json()
    assert (muhurat["kind"], muhurat["hours"]) == ("muhurat", "18:00-19:00")


def test_other_roots_and_the_bundled_calendar_are_untouched(
    cli, imported: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert cli("calendar", "is-session", "2027-01-04", root=other).exit_code == 3
    with pytest.raises(CoverageError):
        cal.is_session(date(2027, 1, 4))
    with cal.using_store(imported):
        assert cal.is_session(date(2027, 1, 4))
        assert cal.coverage() == (date(1997, 1, 1), date(2027, 12, 31))
    assert cal.coverage()[1] == date(2026, 12, 31)


def test_fingerprint_covers_the_imports(cli, store: Path, tmp_path: Path) -> None:
    bundled = cal.fingerprint()
    with cal.using_store(store):
        assert cal.fingerprint() == bundled  # nothing imported yet
    assert cli("calendar", "import", str(write(tmp_path, NSE_2027))).exit_code == 0
    with cal.using_store(store):
        first = cal.fingerprint()
    assert first != bundled
    other = write(tmp_path, WITH_SESSIONS, "sessions.csv")
    assert cli("calendar", "import", "--replace", str(other)).exit_code == 0
    with cal.using_store(store):
        assert cal.fingerprint() not in (bundled, first)


def test_next_year_needs_the_year_before(cli, imported: Path, tmp_path: Path) -> None:
    y2029 = write(tmp_path, "date,description\n2029-01-26,Republic Day\n")
    res = cli("calendar", "import", str(y2029))
    assert res.exit_code == 65
    assert res.stderr.strip() == (
        f"error: {y2029}:2: 2029 does not follow the calendar's coverage, which ends "
        "2027-12-31: import 2028 first"
    )
    y2028 = write(tmp_path, "date,description\n2028-01-26,Republic Day\n", "y2028.csv")
    assert cli("calendar", "import", str(y2028)).exit_code == 0
    assert cli("calendar", "import", str(y2029)).exit_code == 0
    assert cli("--json", "calendar", "coverage").json()["imported_years"] == [2027, 2028, 2029]


@pytest.mark.parametrize(
    ("body", "row", "message"),
    [
        (
            "date,description\n2026-12-25,Christmas\n",
            2,
            "2026 is in the bundled calendar (through 2026-12-31): a holiday list extends it "
            "from 2027",
        ),
        ("date,description\n\n2028-01-26,Republic Day\n", 3, "import 2027 first"),
        ("date,description\n2028-01-26,Republic Day\n", 2, "import 2027 first"),
        ("date,description\n2027-01-26,Republic Day\n2028-01-26,R\n", 3, "covers one year"),
        ("date,description\n2027-1-26,Republic Day\n", 2, "bad date '2027-1-26'"),
        ("date,description\n26/01/2027,Republic Day\n", 2, "bad date '26/01/2027'"),
        ("date,day,description\n2027-01-26,Monday,Republic Day\n", 2, "is a Tuesday, not"),
        ("date,description\n2027-01-26,Republic Day\n2027-01-26,Again\n", 3, "listed twice"),
        ("date,description\n2027-01-26,\n", 2, "needs a name"),
        ("date,description,windows\n2027-01-26,Republic Day,09:15-10:00\n", 2, "has no hours"),
        ("date,kind,description\n2027-02-06,budget,Budget\n", 2, "one or two windows"),
        ("date,kind,description,windows\n2027-02-06,budget,B,10:00-09:15\n", 2, "start is not"),
        ("date,kind,description,windows\n2027-02-06,budget,B,9:15-15:30\n", 2, "bad hours"),
        (
            "date,kind,description,windows\n2027-02-06,budget,B,11:00-12:00 09:15-10:00\n",
            2,
            "overlap or are unsorted",
        ),
        ("date,kind,description\n2027-02-08,regular,Trading day\n", 2, "unknown kind 'regular'"),
        ("date,kind,description\n2027-02-08,closed,X\n", 2, "unknown kind 'closed'"),
        ("date,holiday_name\n2027-01-26,Republic Day\n", 1, "unknown column 'holiday_name'"),
        ("date,day\n2027-01-26,Tuesday\n", 1, "missing column 'description'"),
        ("date,description\n2027-01-26,Republic Day,extra\n", 2, "expected 2 fields, found 3"),
    ],
)
def test_bad_lists_are_refused_with_file_and_line(
    cli, store: Path, tmp_path: Path, body: str, row: int, message: str
) -> None:
    path = write(tmp_path, body)
    res = cli("calendar", "import", str(path))
    assert res.exit_code == 65
    assert res.stderr.startswith(f"error: {path}:{row}: ")
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (store / "_meta" / "calendar").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty file"),
        ("date,description\n", "no holidays listed"),
    ],
)
def test_empty_lists_are_refused(cli, tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    res = cli("calendar", "import", str(path))
    assert res.exit_code == 65 and message in res.stderr


def test_a_directory_or_missing_file(cli, tmp_path: Path) -> None:
    res = cli("calendar", "import", str(tmp_path))
    assert res.exit_code == 65 and "is a directory" in res.stderr
    res = cli("calendar", "import", str(tmp_path / "nope.csv"))
    assert res.exit_code == 1 and "no such file" in res.stderr


def test_a_root_that_is_a_file_is_one_line(cli, tmp_path: Path) -> None:
    root = tmp_path / "afile"
    root.write_text("")
    for args in (
        ("calendar", "import", str(write(tmp_path, NSE_2027))),
        ("calendar", "is-session", "2026-06-01"),
    ):
        res = cli(*args, root=root)
        assert res.exit_code == 2
        assert res.stderr == (
            f"error: the store root {root} is not a directory; give --root a directory\n"
        )
    assert root.read_text() == ""


def test_a_gap_in_the_stored_years_is_one_line(cli, imported: Path) -> None:
    folder = imported / "_meta" / "calendar"
    (folder / "2027.csv").rename(folder / "2028.csv")
    res = cli("calendar", "is-session", "2026-06-01")
    assert res.exit_code == 65
    assert "2027 is missing" in res.stderr


@settings(max_examples=15, deadline=None)
@given(
    listed=st.sets(st.dates(min_value=date(2027, 1, 1), max_value=date(2027, 12, 31)), min_size=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_an_imported_year_answers_as_listed(listed: set[date], seed: int) -> None:
    """Past XBOM's end a day is a session exactly when it is a weekday not listed, whatever the
    rows' order; the stored table depends only on the list."""
    rows = sorted(listed)
    random.Random(seed).shuffle(rows)
    with tempfile.TemporaryDirectory() as folder:
        root, path = Path(folder) / "store", Path(folder) / "list.csv"
        path.write_text(
            "date,description\n" + "".join(f"{d},Holiday {d}\n" for d in rows), encoding="utf-8"
        )
        result = cal.import_year(root, path)
        path.write_text(
            "date,description\n" + "".join(f"{d},Holiday {d}\n" for d in sorted(listed)),
            encoding="utf-8",
        )
        assert not cal.import_year(root, path).created  # same list, other order
        weekdays = sorted(d for d in listed if d.weekday() < 5)
        assert result.holidays == len(weekdays)
        with cal.using_store(root), warnings.catch_warnings():
            warnings.simplefilter("ignore", cal.CoverageWarning)
            for day in (date(2027, 1, 1) + timedelta(days=n) for n in range(365)):
                assert cal.is_session(day) == (day.weekday() < 5 and day not in listed)
            assert [h.day for h in cal.holidays(2027)] == weekdays


# --- is-session outside coverage, and the coverage-end warning ---------------------------------


def test_is_session_exit_codes_tell_closed_from_unknown(cli) -> None:
    assert cli("calendar", "is-session", "-q", "2026-06-01").exit_code == 0
    assert cli("calendar", "is-session", "-q", "2026-06-06").exit_code == 1
    beyond = cli("calendar", "is-session", "2027-01-04")
    assert beyond.exit_code == 3 and "beyond the NSE calendar's coverage" in beyond.stderr
    assert "quantcli calendar import FILE" in beyond.stderr
    assert cli("calendar", "is-session", "1996-12-31").exit_code == 3
    shown = " ".join(cli("calendar", "is-session", "--help").stdout.split())
    assert "3 if DAY is outside the calendar's coverage" in shown


WARNING = (
    "warning: NSE calendar coverage ends 2026-12-31; import next year's holidays with "
    "`quantcli calendar import FILE`"
)


def test_dates_near_the_coverage_end_warn_once(cli) -> None:
    res = cli("calendar", "sessions", "--from", "2026-12-01", "--to", "2026-12-31")
    assert res.exit_code == 0
    assert res.stderr.strip() == WARNING  # asked about several dates, printed once
    assert cli("calendar", "is-session", "2026-12-01").stderr.strip() == WARNING
    assert cli("calendar", "is-session", "2026-11-30").stderr == ""  # 31 days before the end
    assert cli("-q", "calendar", "is-session", "2026-12-01").stderr == ""


def test_the_warning_moves_with_the_coverage(cli, imported: Path) -> None:
    assert cli("calendar", "is-session", "2026-12-15").stderr == ""
    res = cli("calendar", "is-session", "2027-12-15")
    assert "coverage ends 2027-12-31" in res.stderr


def test_next_without_a_date_warns_by_today(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, tzinfo

    import quantcli.core.timezone

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls(2026, 12, 20, 10, 0, tzinfo=tz)

    monkeypatch.setattr(quantcli.core.timezone, "datetime", Frozen)
    res = cli("calendar", "next")
    assert res.exit_code == 0 and res.stderr.strip() == WARNING


def test_the_warning_from_python() -> None:
    with pytest.warns(cal.CoverageWarning, match="coverage ends 2026-12-31"):
        cal.is_session(date(2026, 12, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", cal.CoverageWarning)
        cal.is_session(date(2026, 12, 1) - timedelta(days=1))  # no warning


# --- ingest and backtest of 2027 bars -------------------------------------------------------


def bars_csv(tmp_path: Path, days: list[date]) -> Path:
    lines = ["date,open,high,low,close,volume"]
    for i, day in enumerate(days):
        price = 100 + 10 * math.sin(i / 5)
        lines.append(f"{day},{price:.2f},{price + 1:.2f},{price - 1:.2f},{price + 0.5:.2f},1000")
    path = tmp_path / "SYN.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def backtest_2027(cli, tmp_path: Path):
    return cli(
        "--json", "backtest", "--dataset", "syn", "--strategy", "sma_cross",
        "-p", "fast=3", "-p", "slow=8", "-p", "qty=1",
        "--runs-dir", str(tmp_path / "runs"), "--from", "2027-01-01",
    )  # fmt: skip


def test_2027_bars_are_refused_before_the_import_and_taken_after(
    cli, store: Path, tmp_path: Path
) -> None:
    days = [date(2027, 1, 1) + timedelta(days=n) for n in range(90)]
    with cal.using_store(store):
        assert cal.coverage()[1] == date(2026, 12, 31)
    weekdays = [d for d in days if d.weekday() < 5]
    path = bars_csv(tmp_path, weekdays)
    before = cli("data", "ingest", "syn", str(path))
    assert before.exit_code == 65 and "calendar_coverage" in before.stderr
    assert not (store / "syn").exists()
    # accepted as a warning, the backtest still refuses the days the calendar does not know
    assert cli("data", "ingest", "syn", str(path), "--allow-warnings").exit_code == 0
    refused = backtest_2027(cli, tmp_path)
    assert refused.exit_code == 1 and "beyond the NSE calendar's coverage" in refused.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

    assert cli("calendar", "import", str(write(tmp_path, NSE_2027))).exit_code == 0
    # Republic Day and Holi 2027 have bars: bars on days with no session
    res = cli("data", "ingest", "syn", str(path))
    assert res.exit_code == 65 and "non_session_day" in res.stderr and "2027-01-26" in res.stderr
    with cal.using_store(store):
        sessions = [d for d in days if cal.is_session(d)]
    assert len(sessions) == len(weekdays) - 2
    res = cli("--json", "data", "ingest", "syn", str(bars_csv(tmp_path, sessions)))
    assert res.exit_code == 0, res.stderr
    assert res.json()["validation"]["counts"] == {}
    run = backtest_2027(cli, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert run.json()["bars"] == len(sessions)


def test_synthetic_2027_bars_after_the_import(cli, imported: Path) -> None:
    res = cli(
        "--json", "data", "ingest", "syn", "--source", "synthetic", "--symbols", "2",
        "--days", "300", "--end", "2027-06-30",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    from quantcli.store.reader import open_dataset

    bars = open_dataset("syn", imported).lazy().collect()
    last = bars["ts"].max()
    assert last is not None and last.date() == date(2027, 6, 30)  # type: ignore[union-attr]


def test_library_entry_points_use_their_roots_calendar(imported: Path, tmp_path: Path) -> None:
    from quantcli.store.ingest import ingest
    from quantcli.store.sources import parse_source
    from quantcli.store.validate import validate_frame

    with cal.using_store(imported):
        days = cal.sessions(date(2027, 1, 1), date(2027, 3, 31))
    path = bars_csv(tmp_path, days)
    report = ingest(imported, "syn", "csv", [path], options={})
    assert report.created and report.validation.counts == {}
    with pytest.raises(DataError, match="calendar_coverage"):
        ingest(tmp_path / "bare", "syn", "csv", [path], options={})
    frame = parse_source("csv", [path], {}).frame
    assert validate_frame(frame, interval="1d", root=imported).counts == {}
    assert "calendar_coverage" in validate_frame(frame, interval="1d").counts


def test_import_conflict_error_is_a_conflict(store: Path, tmp_path: Path) -> None:
    cal.import_year(store, write(tmp_path, NSE_2027))
    with pytest.raises(ConflictError):
        cal.import_year(store, write(tmp_path, WITH_SESSIONS, "b.csv"))


def test_import_while_the_store_metadata_is_locked_exits_75(
    cli, store: Path, tmp_path: Path
) -> None:
    import fcntl

    lock = store / "_meta" / ".lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = cli("calendar", "import", str(write(tmp_path, NSE_2027)))
        assert res.exit_code == 75 and "try again later" in res.stderr
    assert not (store / "_meta" / "calendar").exists()
    assert cli("calendar", "import", str(write(tmp_path, NSE_2027))).exit_code == 0
