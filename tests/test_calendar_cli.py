"""`quantcli calendar`: holidays, sessions, is-session (cron exit codes) and next."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, tzinfo

import pytest

import quantcli.core.timezone


def test_holidays_table(cli) -> None:
    res = cli("calendar", "holidays", "2026")
    assert res.exit_code == 0
    assert "NSE trading holidays 2026" in res.stdout
    assert "2026-01-15" in res.stdout and "Municipal Corporation elections" in res.stdout


def test_holidays_json(cli) -> None:
    res = cli("--json", "calendar", "holidays", "2024")
    assert res.exit_code == 0
    rows = res.json()
    assert len(rows) == 17
    assert rows[0] == {
        "date": "2024-01-22",
        "weekday": "Mon",
        "name": "Special holiday (Shri Ram Lalla Pran Pratishtha)",
    }


def test_holidays_beyond_coverage(cli) -> None:
    res = cli("calendar", "holidays", "2027")
    assert res.exit_code == 1
    assert "year 2027 is outside the NSE calendar's coverage" in res.stderr


def test_sessions_json_with_special_kinds(cli) -> None:
    res = cli("--json", "calendar", "sessions", "--from", "2024-03-01", "--to", "2024-03-04")
    assert res.exit_code == 0
    rows = res.json()
    assert [r["date"] for r in rows] == ["2024-03-01", "2024-03-02", "2024-03-04"]
    drill = rows[1]
    assert drill["kind"] == "dr_drill" and drill["weekday"] == "Sat"
    assert drill["windows"] == [
        {"open": "2024-03-02T09:15:00+05:30", "close": "2024-03-02T10:00:00+05:30"},
        {"open": "2024-03-02T11:30:00+05:30", "close": "2024-03-02T12:30:00+05:30"},
    ]


def test_sessions_table(cli) -> None:
    res = cli("calendar", "sessions", "--from", "2023-11-10", "--to", "2023-11-13")
    assert res.exit_code == 0
    assert "muhurat" in res.stdout and "18:15-19:15" in res.stdout
    assert "(3)" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2024/03/01", "--to", "2024-03-04"],
            "--from: expected a date YYYY-MM-DD, got '2024/03/01'",
        ),
        (
            ["--from", "2024-03-01", "--to", "2024-02-30"],
            "--to: expected a date YYYY-MM-DD, got '2024-02-30'",
        ),
        (["--from", "2024-03-05", "--to", "2024-03-04"], "after end"),
    ],
)
def test_sessions_usage_errors(cli, args: list[str], message: str) -> None:
    res = cli("calendar", "sessions", *args)
    assert res.exit_code == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_is_session_exit_codes(cli) -> None:
    yes = cli("calendar", "is-session", "2026-02-01")
    assert yes.exit_code == 0
    assert yes.stdout.strip() == "2026-02-01 (Sun) is an NSE session: budget, 09:15-15:30 IST"
    no = cli("calendar", "is-session", "2026-01-15")
    assert no.exit_code == 1
    assert "is not an NSE session: Municipal Corporation elections in Maharashtra" in no.stdout
    assert no.stderr == ""


def test_is_session_quiet(cli) -> None:
    for args in (
        ["calendar", "is-session", "--quiet", "2026-01-17"],
        ["-q", "calendar", "is-session", "2026-01-17"],
    ):
        res = cli(*args)
        assert (res.exit_code, res.stdout) == (1, "")
    res = cli("calendar", "is-session", "-q", "2026-01-16")
    assert (res.exit_code, res.stdout) == (0, "")


def test_is_session_json(cli) -> None:
    res = cli("--json", "calendar", "is-session", "2024-03-02")
    assert res.exit_code == 0
    assert res.json() == {
        "date": "2024-03-02",
        "session": True,
        "kind": "dr_drill",
        "hours": "09:15-10:00, 11:30-12:30",
    }
    res = cli("--json", "calendar", "is-session", "2026-01-18")
    assert res.exit_code == 1
    assert res.json() == {"date": "2026-01-18", "session": False, "reason": "Sunday"}


@pytest.mark.parametrize(
    ("day", "code", "message"),
    [
        ("2026-1-4", 2, "DATE: expected a date YYYY-MM-DD, got '2026-1-4'"),
        ("tomorrow", 2, "DATE: expected a date YYYY-MM-DD, got 'tomorrow'"),
        (
            "2027-01-04",
            3,
            "2027-01-04 is beyond the NSE calendar's coverage (1997-01-01..2026-12-31)",
        ),
    ],
)
def test_is_session_errors(cli, day: str, code: int, message: str) -> None:
    res = cli("calendar", "is-session", day)
    assert res.exit_code == code
    assert message in res.stderr


def test_next_with_date(cli) -> None:
    res = cli("calendar", "next", "2026-01-14")
    assert res.exit_code == 0
    assert res.stdout.strip() == (
        "next NSE session after 2026-01-14: 2026-01-16 (Fri), 09:15-15:30 IST (regular)"
    )
    res = cli("--json", "calendar", "next", "2025-10-20")
    assert res.json()["date"] == "2025-10-21"
    assert res.json()["open"] == "2025-10-21T13:45:00+05:30"
    assert res.json()["close"] == "2025-10-21T14:45:00+05:30"
    assert res.json()["kind"] == "muhurat" and res.json()["after"] == "2025-10-20"


def test_next_defaults_to_today_in_ist(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls(2024, 1, 19, 20, 0, tzinfo=tz)

    monkeypatch.setattr(quantcli.core.timezone, "datetime", Frozen)
    res = cli("--json", "calendar", "next")
    assert res.exit_code == 0
    assert (res.json()["after"], res.json()["date"]) == ("2024-01-19", "2024-01-20")


def test_next_at_end_of_coverage(cli) -> None:
    res = cli("calendar", "next", "2026-12-31")
    assert res.exit_code == 1
    assert "no session after 2026-12-31" in res.stderr


@pytest.mark.parametrize(
    "sub", ["holidays", "sessions", "is-session", "next", "coverage", "import"]
)
def test_subcommand_help_imports_no_heavy_library(sub: str) -> None:
    code = (
        "import sys\nfrom quantcli.cli import app\n"
        f"try:\n    app(['calendar', {sub!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('exchange_calendars', 'pandas', 'polars')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
