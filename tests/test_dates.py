"""One date parser for every command: the same YYYY-MM-DD rule and the same one-line error,
naming the flag or argument, from each command that takes a date."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.core.dates import parse_date
from quantcli.errors import UsageError

# Spellings people and scripts produce: other separators, no zero padding, ISO's basic and
# week forms (which date.fromisoformat accepts), days that do not exist, words.
BAD = ["2024/03/01", "2024-3-1", "20240301", "2024-W09-5", "2024-02-30", "tomorrow", ""]

# Each command and flag that takes a date, with the other arguments it needs; {} is the date.
TRAIN = ["model", "train", "m", "--features", "fs", "--label", "direction:5", "--model", "baseline"]
TRAIN_DATES = ["--seed", "1", "--train-from", "2020-01-01", "--train-to", "2020-12-31"]
COMMANDS = [
    ("--from", ["backtest", "-d", "x", "-s", "sma_cross", "--from", "{}"]),
    ("--to", ["backtest", "-d", "x", "-s", "sma_cross", "--to", "{}"]),
    ("--from", ["calendar", "sessions", "--from", "{}", "--to", "2024-03-04"]),
    ("--to", ["calendar", "sessions", "--from", "2024-03-01", "--to", "{}"]),
    ("DATE", ["calendar", "is-session", "{}"]),
    ("DATE", ["calendar", "next", "{}"]),
    ("--date", ["charges", "--buy", "1@100", "--date", "{}"]),
    ("--end", ["data", "ingest", "syn", "--source", "synthetic", "--end", "{}"]),
    # A repeated option's last value wins, so the bad date overrides a good one.
    *((flag, [*TRAIN, *TRAIN_DATES, flag, "{}"]) for flag in ("--train-from", "--train-to")),
    ("--test-to", [*TRAIN, *TRAIN_DATES, "--test-to", "{}"]),
]


def expected(flag: str, text: str) -> str:
    return f"{flag}: expected a date YYYY-MM-DD, got {text!r}"


@given(st.dates())
def test_every_date_reads_back(day: date) -> None:
    assert parse_date(day.isoformat(), "--from") == day


@given(st.text(max_size=12))
def test_anything_else_is_one_usage_error(text: str) -> None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        assert parse_date(text, "--to") == day
        return
    with pytest.raises(UsageError) as info:
        parse_date(text, "--to")
    assert info.value.message == expected("--to", text)
    assert info.value.exit_code == 2


def test_none_is_no_date() -> None:
    assert parse_date(None, "--to") is None


@pytest.mark.parametrize(("flag", "args"), COMMANDS)
@pytest.mark.parametrize("text", ["2024/03/01", "2024-02-30"])
def test_each_command_reports_a_bad_date_in_one_line(
    cli, store: Path, flag: str, args: list[str], text: str
) -> None:
    words = [text if a == "{}" else a for a in args]
    res = cli(*words)
    assert res.exit_code == 2, res.stderr
    assert res.stderr == f"error: {expected(flag, text)}\n"
    assert res.stdout == ""
    assert list(store.iterdir()) == []  # nothing written

    res = cli("--json", *words)
    assert res.exit_code == 2
    error = json.loads(res.stdout)["error"]
    assert (error["type"], error["message"], error["exit_code"]) == (
        "UsageError",
        expected(flag, text),
        2,
    )


@pytest.mark.parametrize("text", BAD)
def test_every_spelling_but_yyyy_mm_dd_is_refused(cli, text: str) -> None:
    res = cli("calendar", "is-session", text)
    assert res.exit_code == 2
    assert res.stderr == f"error: {expected('DATE', text)}\n"


def test_a_stored_config_s_dates_use_the_same_rule() -> None:
    from quantcli.backtest.config import BacktestConfig

    config = BacktestConfig.from_dict({"dataset": "d", "strategy": "s", "end": "2024-03-01"})
    assert config.end == date(2024, 3, 1)
    with pytest.raises(UsageError, match=re.escape(expected("start", "2024/03/01"))):
        BacktestConfig.from_dict({"dataset": "d", "strategy": "s", "start": "2024/03/01"})
