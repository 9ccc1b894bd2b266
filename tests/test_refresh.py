"""Recipes and `data refresh`: session planning, fetching from providers in order, publishing
one version, the provider matrix, failure semantics and exit codes."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.core.timezone import IST
from quantcli.errors import UsageError
from quantcli.market import calendar
from quantcli.ops.recipe import load_recipe, make_recipe, recipe_path, save_recipe
from quantcli.ops.refresh import last_completed_session, plan_sessions, refresh, refresh_lock
from quantcli.store.manifest import version_numbers
from quantcli.store.reader import open_dataset

SYMBOLS = ("AAA", "BBB", "CCC")
# 2025-01-29..2025-02-04: Saturday 2025-02-01 is the Union Budget special session.
WEEK = [date(2025, 1, 29), date(2025, 1, 30), date(2025, 1, 31), date(2025, 2, 1)]
NEXT = [date(2025, 2, 3), date(2025, 2, 4)]
LEGACY_TEMPLATE = "cm{date:%d}{MON}{date:%Y}bhav.csv.zip"


def price(symbol: str, day: date) -> float:
    """A deterministic close that moves a little every day (no suspected split)."""
    return 100.0 + 10 * SYMBOLS.index(symbol) + (day.toordinal() % 7) * 0.5


def legacy_zip(
    day: date, symbols: tuple[str, ...] = SYMBOLS, *, close: float | None = None
) -> bytes:
    """One session's legacy bhavcopy (cmDDMONYYYYbhav.csv inside a zip), in NSE's layout."""
    stamp = day.strftime("%d-%b-%Y").upper()
    lines = [
        "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
        "TOTALTRADES,ISIN,"
    ]
    for i, sym in enumerate(symbols):
        c = price(sym, day) if close is None else close
        lines.append(
            f"{sym},EQ,{c},{c + 1},{c - 1},{c},{c},{c - 0.5},{1000 + i},{c * 1000},{stamp},"
            f"{10 + i},INE{i:09d},"
        )
    lines.append(f"ZZZ,BE,50,51,49,50,50,50,10,500,{stamp},1,INE999999999,")
    buf = io.BytesIO()
    member = f"cm{day:%d}{stamp[3:6]}{day:%Y}bhav.csv"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, "\n".join(lines) + "\n")
    return buf.getvalue()


def drop(folder: Path, days: list[date], **kwargs: object) -> Path:
    """Write each day's legacy bhavcopy into the drop directory ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for day in days:
        stamp = day.strftime("%b").upper()
        (folder / f"cm{day:%d}{stamp}{day:%Y}bhav.csv.zip").write_bytes(
            legacy_zip(day, **kwargs)  # type: ignore[arg-type]
        )
    return folder


def set_recipe(cli, *providers: Path | str, start: str = "2025-01-29", extra: tuple[str, ...] = ()):
    args = ["data", "recipe", "set", "d", "--source", "bhavcopy-legacy", "--start", start]
    for p in providers:
        template = f"{p}/{LEGACY_TEMPLATE}" if isinstance(p, Path) else p
        args += ["--provider", template]
    res = cli(*args, *extra)
    assert res.exit_code == 0, res.stderr
    return res


def closes(store: Path, ref: str = "d") -> pl.DataFrame:
    return open_dataset(ref, store).frame().select("symbol", "ts", "close").sort("symbol", "ts")


# --- session planning --------------------------------------------------------------------------


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), IST)


def test_last_completed_session_waits_for_the_close() -> None:
    friday = date(2025, 1, 31)
    assert last_completed_session(at(friday, 15, 29)) == date(2025, 1, 30)
    assert last_completed_session(at(friday, 15, 30)) == friday
    # Judged in IST whatever zone the clock is given in: 10:00 UTC is 15:30 IST.
    assert last_completed_session(datetime(2025, 1, 31, 10, 0, tzinfo=UTC)) == friday
    # The budget Saturday is a session; the Sunday after it is not, nor Republic Day (Monday
    # 2026-01-26).
    assert last_completed_session(at(date(2025, 2, 2), 9, 0)) == date(2025, 2, 1)
    assert last_completed_session(at(date(2026, 1, 26), 20, 0)) == date(2026, 1, 23)


@given(
    st.dates(min_value=date(2020, 1, 1), max_value=date(2025, 12, 1)),
    st.integers(min_value=0, max_value=40),
)
def test_planned_sessions_are_the_calendars(start: date, span: int) -> None:
    recipe = make_recipe("d", "bhavcopy-legacy", ["/drop/cm{date:%Y%m%d}.zip"], start=start)
    until = calendar.previous_session(start + timedelta(days=span + 1))
    if until < start:
        return
    plan = plan_sessions(Path("/nonexistent"), recipe, until=until, now=at(until, 23, 59))
    assert plan.sessions == tuple(calendar.sessions(start, until))
    assert all(calendar.is_session(d) for d in plan.sessions)
    weekend = [d for d in plan.sessions if d.weekday() >= 5]
    assert all(d in calendar.calendar().specials for d in weekend)


def test_plan_refuses_what_it_cannot_fetch(store: Path) -> None:
    recipe = make_recipe("d", "bhavcopy-legacy", ["/drop/cm{date:%Y%m%d}.zip"])
    with pytest.raises(UsageError, match=r"has no version yet.*--start DATE"):
        plan_sessions(store, recipe, now=at(date(2025, 2, 4), 18, 0))
    with pytest.raises(UsageError, match=r"--until 2025-02-05 is after the last completed"):
        plan_sessions(store, recipe, until=date(2025, 2, 5), now=at(date(2025, 2, 4), 18, 0))


# --- recipes -----------------------------------------------------------------------------------


def test_recipe_set_show_and_data_show(cli, store: Path, tmp_path: Path) -> None:
    set_recipe(cli, drop(tmp_path / "drop", WEEK))
    assert cli("data", "refresh", "d", "--until", "2025-01-31").exit_code == 0
    url = (
        "https://user:pw@mirror.example/eq/{date:%Y}/{MON}/cm{date:%d}{MON}{date:%Y}bhav.csv.zip"
        "?token=s3cret"
    )
    res = set_recipe(cli, url, tmp_path / "drop", extra=("--symbols", "bbb,aaa", "--series", "eq"))
    assert "recipe for d: bhavcopy-legacy from 2 providers" in res.stdout
    shown = cli("--json", "data", "recipe", "show", "d")
    assert shown.exit_code == 0
    doc = shown.json()
    assert doc["providers"][0] == (
        "https://***@mirror.example/eq/{date:%Y}/{MON}/cm{date:%d}{MON}{date:%Y}bhav.csv.zip"
        "?token=***"
    )
    assert doc["providers"][1] == f"{tmp_path / 'drop'}/{LEGACY_TEMPLATE}"
    assert doc["symbols"] == ["AAA", "BBB"] and doc["series"] == "EQ"
    assert doc["provider_matrix"][doc["providers"][1]]["sessions_served"] == 3
    text = cli("data", "recipe", "show", "d")
    assert "s3cret" not in text.stdout + shown.stdout and "pw@" not in text.stdout
    assert "provider 2" in text.stdout and "sessions served" in text.stdout
    # The stored recipe keeps the credentials it needs to fetch; nothing prints them.
    assert "s3cret" in recipe_path(store, "d").read_text()
    got = cli("--json", "data", "show", "d")
    assert got.json()["recipe"]["providers"] == doc["providers"]
    assert "s3cret" not in got.stdout
    assert "refresh recipe" in cli("data", "show", "d").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "bhavcopy-legacy", "--provider", "https://x/{day:%Y}.zip"], "unknown field"),
        (["--source", "bhavcopy-legacy", "--provider", "https://x/{date:%Y.zip"], "--provider"),
        (["--source", "bhavcopy-legacy", "--provider", "https://x/static.zip"], "same file"),
        (["--source", "nifty", "--provider", "https://x/{date:%Y%m%d}"], "--source must be one of"),
        (
            ["--source", "bhavcopy-udiff", "--provider", "/d/{date:%Y%m%d}", "--symbols", "A,,B"],
            "--symbols",
        ),
        (
            [
                "--source",
                "bhavcopy-udiff",
                "--provider",
                "/d/{date:%Y%m%d}",
                "--start",
                "2025-13-01",
            ],
            "--start",
        ),
    ],
)
def test_bad_recipe_is_one_line_and_writes_nothing(
    cli, store: Path, args: list[str], message: str
) -> None:
    res = cli("data", "recipe", "set", "d", *args)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert not recipe_path(store, "d").exists()


def test_recipe_show_without_recipe(cli) -> None:
    res = cli("data", "recipe", "show", "d")
    assert res.exit_code == 1 and "has no refresh recipe" in res.stderr
    assert cli("data", "refresh", "d").exit_code == 1


def test_recipe_round_trip_and_replace(store: Path) -> None:
    first = make_recipe("d", "bhavcopy-udiff", ["/a/{date:%Y%m%d}.zip"], series="eq,be")
    save_recipe(store, first)
    assert load_recipe(store, "d") == first
    second = make_recipe("d", "bhavcopy-legacy", ["/b/{date:%Y%m%d}.zip"], start=date(2025, 1, 2))
    save_recipe(store, second)
    assert load_recipe(store, "d") == second and second.digest != first.digest
    recipe_path(store, "d").write_text("{not json")
    with pytest.raises(Exception, match="unreadable recipe"):
        load_recipe(store, "d")


# --- refresh -----------------------------------------------------------------------------------


def test_refresh_publishes_missing_sessions_once(cli, store: Path, tmp_path: Path) -> None:
    folder = drop(tmp_path / "drop", WEEK + NEXT)
    set_recipe(cli, folder)
    dry = cli("--json", "data", "refresh", "d", "--until", "2025-01-31", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.json()["sessions"] == ["2025-01-29", "2025-01-30", "2025-01-31"]
    assert dry.json()["providers"] == [f"{folder}/{LEGACY_TEMPLATE}"]
    assert not (store / "d" / "v1").exists() and dry.json()["provider_matrix"] == {}
    text = cli("data", "refresh", "d", "--until", "2025-01-31", "--dry-run")
    assert "would fetch 3 session(s) 2025-01-29..2025-01-31" in text.stdout

    res = cli("--json", "data", "refresh", "d", "--until", "2025-02-01")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["version"] == 1 and doc["rows_added"] == 12 and doc["rows"] == 12
    assert list(doc["published"]) == ["2025-01-29", "2025-01-30", "2025-01-31", "2025-02-01"]
    manifest = open_dataset("d", store).manifest
    assert manifest.parent is None and manifest.source.kind == "bhavcopy"
    served = manifest.notes["refresh"]["served"]  # type: ignore[index]
    assert served["2025-02-01"] == f"{folder}/{LEGACY_TEMPLATE}"
    assert next(f.path for f in manifest.source.files).startswith("2025-01-29 ")
    assert set(open_dataset("d", store).frame()["series"]) == {"EQ"}

    again = cli("data", "refresh", "d", "--until", "2025-02-01")
    assert again.exit_code == 0 and "d is up to date (last bar 2025-02-01" in again.stdout
    assert not (store / "d" / "v2").exists()
    assert cli("--json", "data", "refresh", "d", "--until", "2025-01-31").json()["up_to_date"]

    more = cli("--json", "data", "refresh", "d", "--until", "2025-02-04")
    assert more.exit_code == 0, more.stderr
    assert more.json()["version"] == 2 and more.json()["rows_added"] == 6
    latest = open_dataset("d", store)
    assert latest.manifest.parent == 1 and latest.manifest.rows == 18
    frame = closes(store)
    assert frame.height == frame.unique(["symbol", "ts"]).height == 18
    matrix = cli("--json", "data", "recipe", "show", "d").json()["provider_matrix"]
    stats = matrix[f"{folder}/{LEGACY_TEMPLATE}"]
    assert stats["sessions_served"] == 6 and stats["successes"] == 6 and stats["failures"] == 0


def test_fallback_provider_serves_and_is_recorded(cli, store: Path, tmp_path: Path) -> None:
    primary = drop(tmp_path / "primary", WEEK[:2])
    mirror = drop(tmp_path / "mirror", WEEK)
    set_recipe(cli, primary, mirror)
    res = cli("--json", "data", "refresh", "d", "--until", "2025-01-31")
    assert res.exit_code == 0, res.stderr
    first, second = (f"{p}/{LEGACY_TEMPLATE}" for p in (primary, mirror))
    assert res.json()["published"] == {
        "2025-01-29": first,
        "2025-01-30": first,
        "2025-01-31": second,
    }
    matrix = res.json()["provider_matrix"]
    assert matrix[first]["sessions_served"] == 2 and matrix[first]["failures"] == 1
    assert matrix[second]["sessions_served"] == 1 and matrix[second]["attempts"] == 1
    table = cli("data", "recipe", "show", "d").stdout
    assert "sessions served" in table and "mean latency s" in table


def test_symbols_filter(cli, store: Path, tmp_path: Path) -> None:
    set_recipe(cli, drop(tmp_path / "drop", WEEK), extra=("--symbols", "CCC,AAA"))
    assert cli("data", "refresh", "d", "--until", "2025-01-30").exit_code == 0
    assert sorted(set(closes(store)["symbol"])) == ["AAA", "CCC"]


def test_missing_session_publishes_the_prefix_then_resumes(
    cli, store: Path, tmp_path: Path
) -> None:
    folder = drop(tmp_path / "drop", [WEEK[0], WEEK[1], WEEK[3]])  # 2025-01-31 is missing
    set_recipe(cli, folder)
    res = cli("--json", "data", "refresh", "d", "--until", "2025-02-01")
    assert res.exit_code == 69, res.stderr
    assert "2025-01-31: no provider delivered the session" in res.stderr
    assert "published d@v1 with the 2 session(s) through 2025-01-29" not in res.stderr
    assert "published d@v1 with the 2 session(s) through 2025-01-30" in res.stderr
    doc = res.json()
    assert doc["error"]["exit_code"] == 69 and list(doc["published"]) == WEEK_ISO[:2]
    assert open_dataset("d", store).manifest.last_ts.date() == WEEK[1]
    drop(folder, [WEEK[2]])
    assert cli("data", "refresh", "d", "--until", "2025-02-01").exit_code == 0
    resumed = closes(store)
    assert open_dataset("d", store).manifest.parent == 1

    other = tmp_path / "other"
    other.mkdir()
    once = cli(
        "--root",
        str(other),
        "data",
        "recipe",
        "set",
        "d",
        "--source",
        "bhavcopy-legacy",
        "--start",
        "2025-01-29",
        "--provider",
        f"{folder}/{LEGACY_TEMPLATE}",
    )
    assert once.exit_code == 0
    assert cli("--root", str(other), "data", "refresh", "d", "--until", "2025-02-01").exit_code == 0
    assert closes(other).equals(resumed)


WEEK_ISO = [d.isoformat() for d in WEEK]


def test_bad_data_publishes_nothing(cli, store: Path, tmp_path: Path) -> None:
    folder = drop(tmp_path / "drop", WEEK[:2])
    drop(folder, [WEEK[2]], close=-5.0)
    set_recipe(cli, folder)
    res = cli("data", "refresh", "d", "--until", "2025-01-31")
    assert res.exit_code == 65, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: 2025-01-31 from {folder}/{LEGACY_TEMPLATE}:2: non_positive_price: open is "
        "-5.0, not positive (and 11 more: 12 non_positive_price)"
    ]
    assert not (store / "d" / "v1").exists()
    assert not any((store / ".tmp").iterdir())


def test_wrong_session_file_is_bad_data_after_the_prefix(cli, store: Path, tmp_path: Path) -> None:
    folder = drop(tmp_path / "drop", WEEK[:2])
    (folder / "cm31JAN2025bhav.csv.zip").write_bytes(legacy_zip(WEEK[0]))
    set_recipe(cli, folder)
    res = cli("data", "refresh", "d", "--until", "2025-01-31")
    assert res.exit_code == 65, res.stderr
    assert "not this session" in res.stderr and "published d@v1" in res.stderr
    assert open_dataset("d", store).manifest.rows == 6


def test_lock_held_exits_75(cli, store: Path, tmp_path: Path) -> None:
    set_recipe(cli, drop(tmp_path / "drop", WEEK))
    with refresh_lock(store, "d"):
        res = cli("data", "refresh", "d", "--until", "2025-01-31")
    assert res.exit_code == 75 and "try again later" in res.stderr
    assert not (store / "d" / "v1").exists()
    assert cli("data", "refresh", "d", "--until", "2025-01-31").exit_code == 0


def test_until_after_the_last_completed_session_is_usage(cli, tmp_path: Path) -> None:
    set_recipe(cli, drop(tmp_path / "drop", WEEK))
    tomorrow = (datetime.now(IST).date() + timedelta(days=1)).isoformat()
    res = cli("data", "refresh", "d", "--until", tomorrow)
    assert res.exit_code == 2 and "after the last completed session" in res.stderr
    assert cli("data", "refresh", "d", "--until", "2025-13-40").exit_code == 2


def test_default_until_is_the_last_completed_session(cli, tmp_path: Path) -> None:
    set_recipe(cli, drop(tmp_path / "drop", WEEK), start="2025-01-29")
    doc = cli("--json", "data", "refresh", "d", "--dry-run").json()
    assert doc["until"] == last_completed_session(datetime.now(IST)).isoformat()
    assert doc["sessions"][:4] == WEEK_ISO


def test_recipe_and_dry_run_do_not_import_httpx(store: Path, tmp_path: Path) -> None:
    from startup import modules_loaded

    recipe = make_recipe("d", "bhavcopy-legacy", [f"{tmp_path}/{LEGACY_TEMPLATE}"], start=WEEK[0])
    save_recipe(store, recipe)
    root = ["--root", str(store)]
    runs = [[*root, "data", "recipe", "show", "d"], [*root, "data", "refresh", "--help"]]
    runs.append([*root, "data", "refresh", "d", "--until", "2025-01-31", "--dry-run"])
    assert modules_loaded(runs, ("httpx", "httpx_retries")) == []


@settings(max_examples=8)
@given(stops=st.lists(st.integers(min_value=0, max_value=len(WEEK + NEXT) - 1), max_size=3))
def test_refreshing_in_steps_gives_the_rows_of_one_refresh(
    stops: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    days = WEEK + NEXT
    tmp = tmp_path_factory.mktemp("steps")
    template = f"{drop(tmp / 'drop', days)}/{LEGACY_TEMPLATE}"
    for root in (tmp / "steps", tmp / "once"):
        save_recipe(root, make_recipe("d", "bhavcopy-legacy", [template], start=days[0]))
    for stop in sorted(stops):
        refresh(tmp / "steps", "d", until=days[stop])
        refresh(tmp / "steps", "d", until=days[stop])  # a re-run adds nothing
    refresh(tmp / "steps", "d", until=days[-1])
    refresh(tmp / "once", "d", until=days[-1])
    assert closes(tmp / "steps").equals(closes(tmp / "once"))
    assert len(version_numbers(tmp / "steps", "d")) == len({*stops, len(days) - 1})
