"""The synthetic generator: deterministic, valid OHLC, NSE sessions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import UsageError
from quantcli.market import calendar
from quantcli.store.schema import REQUIRED
from quantcli.store.sources import parse_source
from quantcli.store.sources.synthetic import generate, symbol_names


def test_shape_schema_and_sessions() -> None:
    frame = parse_source("synthetic", [], {"symbols": "3", "days": "20", "end": "2024-06-28"}).frame
    assert frame.height == 60
    assert dict(frame.schema) == REQUIRED
    days = frame["ts"].dt.date().unique().sort().to_list()
    assert days == calendar.sessions(date(2024, 1, 1), date(2024, 6, 28))[-20:]
    assert frame["symbol"].unique().sort().to_list() == ["SYN0001", "SYN0002", "SYN0003"]
    assert frame.equals(frame.sort("symbol", "ts"))


def test_default_end_is_calendar_end() -> None:
    frame = parse_source("synthetic", [], {"symbols": "1", "days": "5"}).frame
    first, last = calendar.coverage()
    assert frame["ts"].dt.date().to_list() == calendar.sessions(first, last)[-5:]


def test_same_seed_same_data_other_seed_differs() -> None:
    a = generate(4, 50, 7, date(2020, 1, 1))
    b = generate(4, 50, 7, date(2020, 1, 1))
    c = generate(4, 50, 8, date(2020, 1, 1))
    assert a.equals(b)
    assert not a.equals(c)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), symbols=st.integers(1, 5), days=st.integers(1, 400))
def test_bars_are_always_valid(seed: int, symbols: int, days: int) -> None:
    frame = generate(symbols, days, seed, date(2026, 12, 31))
    ok = frame.select(
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("a"),
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("b"),
        (pl.col("low") > 0).all().alias("c"),
        (pl.col("volume") >= 0).all().alias("d"),
    )
    assert all(ok.row(0))


def test_symbol_names_sort_in_order() -> None:
    names = symbol_names(12000)
    assert names == sorted(names) and names[0] == "SYN00001"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"symbols": "x"}, "--symbols must be an integer"),
        ({"days": "0"}, "--days must be positive"),
        ({"seed": "-1"}, "--seed must be positive"),
        ({"end": "31-12-2026"}, "--end: expected a date YYYY-MM-DD, got '31-12-2026'"),
        ({"days": "100000"}, "--days 100000: the calendar has only"),
        ({"map.x": "ts"}, "takes no --map"),
        ({"series": "EQ"}, "does not take option"),
    ],
)
def test_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_source("synthetic", [], options)


def test_takes_no_files(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x")
    with pytest.raises(UsageError, match="takes no files"):
        parse_source("synthetic", [path], {})


@pytest.mark.parametrize(("days", "word"), [(61, "beyond"), (-1, "before")])
def test_end_outside_the_calendar_is_a_coverage_error(
    cli, store: Path, days: int, word: str
) -> None:

    first, last = calendar.coverage()
    end = (last + timedelta(days=days) if days > 0 else first + timedelta(days=days)).isoformat()
    res = cli("data", "ingest", "syn", "--source", "synthetic", "--days", "5", "--end", end)
    assert res.exit_code == 1, res.stderr
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"error: --end {end} is {word} the NSE calendar's coverage")
    assert not (store / "syn").exists()


def test_end_on_the_last_covered_day_and_the_default_agree(cli) -> None:

    last = calendar.coverage()[1]
    base = ["--json", "data", "ingest"]
    options = ["--source", "synthetic", "--symbols", "2", "--days", "5"]
    default = cli(*base, "a", *options).json()
    explicit = cli(*base, "b", *options, "--end", last.isoformat()).json()
    assert default["content_hash"] == explicit["content_hash"]
