"""Validation checks: each finding's severity, location and message; the refusal line."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import DataError
from quantcli.market import calendar
from quantcli.store.sources import FILE_COL, ROW_COL, parse_source
from quantcli.store.validate import (
    CHECKS,
    Finding,
    ValidationReport,
    refuse,
    show_ts,
    sort_bars,
    validate_frame,
)

IST = ZoneInfo("Asia/Kolkata")


def bars(
    days: list[date] | None = None,
    *,
    symbol: str = "AAA",
    located: bool = True,
    **columns: list[object],
) -> pl.DataFrame:
    """Daily bars on the given sessions (default: 5 sessions from 2024-01-01), valid prices."""
    days = days or calendar.sessions(date(2024, 1, 1), date(2024, 1, 31))[:5]
    n = len(days)
    data: dict[str, object] = {
        "symbol": [symbol] * n,
        "ts": [datetime(d.year, d.month, d.day, tzinfo=IST) for d in days],
        "open": [100.0] * n,
        "high": [101.0] * n,
        "low": [99.0] * n,
        "close": [100.5] * n,
        "volume": [1000] * n,
    }
    data.update(columns)
    frame = pl.DataFrame(data).with_columns(pl.col("ts").cast(TS_DTYPE))
    if located:
        frame = frame.with_columns(
            pl.lit(0, dtype=pl.Int32).alias(FILE_COL),
            pl.int_range(1, n + 1, dtype=pl.Int64).alias(ROW_COL),
        )
    return frame


def check(frame: pl.DataFrame, interval: str = "1d", **kw: object) -> ValidationReport:
    return validate_frame(frame, interval=interval, files=("in.csv",), **kw)  # type: ignore[arg-type]


def test_clean_bars_have_no_findings() -> None:
    report = check(bars())
    assert report.ok and report.counts == {} and report.first() is None
    assert report.rows == 5 and report.symbols == 1
    assert report.summary() == ""
    refuse(report, allow_warnings=False)


def test_missing_and_mistyped_columns() -> None:
    frame = bars().drop("volume").with_columns(pl.col("open").cast(pl.Int64))
    report = check(frame)
    assert report.counts == {"columns": 2}
    assert report.findings[0].message == "open is Int64, expected Float64; volume is missing"


def test_nulls_and_nans() -> None:
    report = check(bars(close=[100.5, None, float("nan"), 100.5, 100.5]))
    assert report.counts == {"null": 2}
    messages = [(f.row, f.message) for f in report.findings]
    assert messages == [(2, "close is null"), (3, "close is NaN")]


def test_non_positive_negative_volume_and_ohlc() -> None:
    report = check(
        bars(
            open=[100.0, 0.0, 100.0, 100.0, 100.0],
            low=[99.0, 0.0, 99.0, 102.0, 99.0],
            volume=[1, 1, 1, 1, -3],
        )
    )
    assert report.counts == {"non_positive_price": 2, "negative_volume": 1, "ohlc": 1}
    first = report.first()
    assert first is not None and first.row == 2 and first.check == "non_positive_price"
    ohlc = next(f for f in report.findings if f.check == "ohlc")
    assert ohlc.row == 4 and "need low <= open, close <= high" in ohlc.message
    assert ohlc.file == "in.csv" and ohlc.symbol == "AAA"


def test_duplicates_point_at_the_first_row() -> None:
    days = calendar.sessions(date(2024, 1, 1), date(2024, 1, 31))[:3]
    frame = bars([days[0], days[1], days[1], days[2], days[1]])
    report = check(frame)
    assert report.counts == {"duplicate": 2}
    dup = [f for f in report.findings if f.check == "duplicate"]
    assert [f.row for f in dup] == [3, 5]
    assert dup[0].message == f"duplicate bar (AAA, {days[1]}), first at row 2"
    assert dup[0].line() == f"in.csv:3: duplicate: duplicate bar (AAA, {days[1]}), first at row 2"


def test_duplicate_across_files_names_the_other_file() -> None:
    a = bars(located=True)
    b = bars(located=True).head(1).with_columns(pl.lit(1, dtype=pl.Int32).alias(FILE_COL))
    report = validate_frame(pl.concat([a, b]), interval="1d", files=("a.csv", "b.csv"))
    (finding,) = report.findings
    assert finding.file == "b.csv" and finding.message.endswith("first at row 1 of a.csv")


def test_unlocated_findings_have_no_file() -> None:
    report = check(bars(located=False, volume=[1, 1, -1, 1, 1]))
    (finding,) = report.findings
    assert finding.file is None and finding.row is None
    assert finding.line() == "negative_volume: volume is -1"
    with pytest.raises(DataError, match=r"^negative_volume: volume is -1$"):
        refuse(report, allow_warnings=True)


def test_unlocated_duplicates() -> None:
    days = calendar.sessions(date(2024, 1, 1), date(2024, 1, 31))[:2]
    report = check(bars([days[0], days[0], days[1]], located=False))
    (finding,) = report.findings
    assert finding.message == f"duplicate bar (AAA, {days[0]})"


def test_daily_stamp_must_be_midnight() -> None:
    frame = bars().with_columns(pl.col("ts") + timedelta(hours=9, minutes=15))
    report = check(frame)
    assert report.counts == {"daily_stamp": 5}
    assert "daily bar stamped 09:15" in report.findings[0].message


def test_non_session_day_is_a_warning_missing_sessions_too() -> None:
    days = [date(2024, 1, 5), date(2024, 1, 6), date(2024, 1, 9)]  # Fri, Sat, Tue
    report = check(bars(days))
    assert report.ok
    assert report.counts == {"non_session_day": 1, "missing_session": 1}
    off = next(f for f in report.findings if f.check == "non_session_day")
    assert off.severity == "warning" and off.row == 2 and "2024-01-06 (Sat)" in off.message
    gap = next(f for f in report.findings if f.check == "missing_session")
    assert gap.ts == date(2024, 1, 8) and gap.symbol == "AAA"
    assert "1 session(s) without a bar between 2024-01-05 and 2024-01-09" in gap.message


def test_missing_session_lists_at_most_five_days() -> None:
    report = check(bars([date(2024, 1, 1), date(2024, 1, 31)]))
    (gap,) = report.findings
    assert report.counts == {"missing_session": 20}
    assert gap.message.endswith(", ...")


def intraday(times: list[datetime], symbol: str = "INFY") -> pl.DataFrame:
    n = len(times)
    return bars(
        [t.date() for t in times],
        symbol=symbol,
        ts=[t.replace(tzinfo=IST) for t in times],
    ).head(n)


def test_intraday_outside_hours_is_an_error() -> None:
    frame = intraday([datetime(2024, 1, 2, 9, 15), datetime(2024, 1, 2, 16, 0)])
    report = check(frame, interval="5m")
    assert report.counts == {"outside_hours": 1}
    assert report.findings[0].message == (
        "bar at 2024-01-02 16:00+05:30 is outside the session's trading hours"
    )


def test_intraday_special_sessions_are_sessions() -> None:
    frame = intraday([datetime(2023, 11, 12, 18, 15), datetime(2024, 1, 20, 9, 15)])
    assert check(frame, interval="5m").counts.get("outside_hours") is None


def test_bars_outside_calendar_coverage() -> None:
    first, _ = calendar.coverage()
    old = first - timedelta(days=3)
    report = check(bars([old]))
    assert report.counts == {"calendar_coverage": 1}
    assert "not checked" in report.findings[0].message


def test_suspected_split_unless_a_corporate_action_explains_it() -> None:
    days = calendar.sessions(date(2017, 1, 2), date(2017, 1, 6))
    prices = {"open": [1640.0, 1645.0, 166.75, 165.0], "high": [1650.0, 1650.0, 170.0, 170.0]}
    prices |= {"low": [1630.0, 1640.0, 160.0, 160.0], "close": [1645.0, 1644.55, 163.05, 166.0]}
    unknown = check(bars(days[:4], symbol="NOSUCHCO", **prices))
    assert unknown.counts == {"suspected_split": 1}
    (finding,) = unknown.findings
    assert finding.severity == "warning" and finding.ts == datetime(2017, 1, 4, tzinfo=IST)
    assert "-89.9%" in finding.message and "1644.55 -> 166.75" in finding.message
    known = check(bars(days[:4], symbol="JSWSTEEL", **prices))  # bundled 10:1 split
    assert known.counts == {}
    assert check(bars(days[:4], symbol="NOSUCHCO", **prices), split_threshold=0.95).ok


def test_refuse_line_summarises_counts() -> None:
    report = check(bars(volume=[-1, -1, 1, 1, 1]))
    with pytest.raises(DataError) as info:
        refuse(report, allow_warnings=False)
    assert info.value.message == (
        "in.csv:1: negative_volume: volume is -1 (and 1 more: 2 negative_volume)"
    )
    assert info.value.exit_code == 65


def test_refuse_warnings_only_unless_allowed() -> None:
    report = check(bars([date(2024, 1, 6), date(2024, 1, 8)]))
    assert report.ok and report.warnings == 1
    with pytest.raises(DataError, match="pass --allow-warnings"):
        refuse(report, allow_warnings=False)
    refuse(report, allow_warnings=True)


def test_errors_come_before_warnings_and_first_is_earliest() -> None:
    report = ValidationReport(
        rows=3,
        symbols=1,
        findings=(
            Finding("warning", "missing_session", "w", order=(0, 1)),
            Finding("error", "ohlc", "late", order=(1, 5)),
            Finding("error", "null", "early", order=(0, 9)),
        ),
        counts={"missing_session": 1, "ohlc": 1, "null": 1},
    )
    first = report.first()
    assert first is not None and first.message == "early"
    assert report.summary() == "1 null, 1 ohlc, 1 missing_session"
    assert report.errors == 2 and report.warnings == 1


def test_max_examples_caps_findings_not_counts() -> None:
    report = validate_frame(bars(volume=[-1] * 5), interval="1d", files=("x",), max_examples=2)
    assert report.counts == {"negative_volume": 5} and len(report.findings) == 2


def test_sort_bars_is_stable_and_skips_sorted() -> None:
    frame = bars()
    assert sort_bars(frame) is frame
    shuffled = pl.concat([frame.tail(2), frame.head(3)])
    assert sort_bars(shuffled).equals(frame)


def test_to_dict_is_json_ready() -> None:
    report = check(bars(volume=[-1, 1, 1, 1, 1]))
    doc = report.to_dict()
    assert doc["errors"] == 1 and doc["counts"] == {"negative_volume": 1}
    finding = doc["findings"][0]  # type: ignore[index]
    assert finding["ts"] == "2024-01-01T00:00:00+05:30" and finding["file"] == "in.csv"


def test_show_ts() -> None:
    assert show_ts(None, "1d") == ""
    assert show_ts(date(2024, 1, 2), "1d") == "2024-01-02"
    assert show_ts(datetime(2024, 1, 2, tzinfo=IST), "1d") == "2024-01-02"
    assert show_ts(datetime(2024, 1, 2, 9, 15, tzinfo=IST), "1d") == "2024-01-02 09:15+05:30"


def test_every_check_has_a_severity() -> None:
    assert set(CHECKS.values()) == {"error", "warning"}


def test_real_intraday_duplicates_are_found(shared_data: Path) -> None:
    files = sorted((shared_data / "nse_intraday_5min").glob("*.csv"))
    parsed = parse_source("csv", files, {})
    report = validate_frame(sort_bars(parsed.frame), interval="5m", files=parsed.files)
    assert report.counts == {"duplicate": 450}
    days = {f.ts.date() for f in report.findings if isinstance(f.ts, datetime)}
    assert days <= {date(2023, 10, 9), date(2024, 1, 17), date(2024, 4, 26)}
    first = report.first()
    assert first is not None and first.file is not None and first.file.endswith("INFY.csv")
    assert (
        first.row == 5102 and "(INFY, 2023-10-09 09:15+05:30), first at row 5027" in first.message
    )


def test_real_daily_sample_findings(sample_dir: Path) -> None:
    parsed = parse_source("nifty50", sorted(sample_dir.glob("*.csv")), {})
    report = validate_frame(sort_bars(parsed.frame), interval="1d", files=parsed.files)
    assert report.counts["duplicate"] == 9  # 3 days repeated in each file
    assert report.counts["missing_session"] >= 1
    assert "suspected_split" not in report.counts  # JSWSTEEL split, BAJAJ-AUTO bonus on record


# --------------------------------------------------------------------------- stale prev_close


def split_history(tmp_path: Path) -> tuple[Path, list[date]]:
    """ABC's daily bars around a 1:5 split on its 6th session, raw prices, no prev_close."""
    days = calendar.sessions(date(2019, 3, 1), date(2019, 3, 31))[:10]
    lines = ["date,open,high,low,close,volume"]
    for i, day in enumerate(days):
        price = 500.0 + i if i < 5 else 100.0 + i / 5
        lines.append(f"{day},{price},{price + 1},{price - 1},{price},1000")
    path = tmp_path / "ABC.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, days


def split_actions(tmp_path: Path, day: date) -> Path:
    path = tmp_path / "ca.csv"
    path.write_text(f"SYMBOL,PURPOSE,EX-DATE\nABC,Split 1:5,{day:%d-%b-%Y}\n", encoding="utf-8")
    return path


def prev_close_on(root: Path, ref: str, day: date) -> float:
    from quantcli.store.reader import open_dataset

    frame = open_dataset(ref, root).lazy().collect()
    row = frame.filter(pl.col("ts").dt.date() == day).row(0, named=True)
    return float(row["prev_close"])


def test_prev_close_derived_before_an_action_is_flagged_and_rederived(
    cli, store: Path, tmp_path: Path
) -> None:
    path, days = split_history(tmp_path)
    ex = days[5]
    res = cli("data", "ingest", "abc", str(path), "--allow-warnings")
    assert res.exit_code == 0 and "suspected_split" in res.stderr
    assert prev_close_on(store, "abc", ex) == 504.0  # derived: no split on record yet
    clean = cli("--json", "data", "validate", "abc").json()
    assert "stale_prev_close" not in clean["counts"]

    assert cli("actions", "import", str(split_actions(tmp_path, ex))).exit_code == 0
    res = cli("--json", "data", "validate", "abc")
    assert res.exit_code == 0  # a warning
    report = res.json()
    assert report["counts"] == {"stale_prev_close": 1}
    (finding,) = report["findings"]
    assert finding["message"] == (
        f"(ABC, {ex}) prev_close 504.0 is the previous close unadjusted for the split/bonus "
        "(ratio 5) on record, expected 100.8 (derived before the action was imported?); "
        "re-derive them as a new version with `quantcli data rederive NAME`"
    )

    from quantcli.store.reader import open_dataset

    old = open_dataset("abc@v1", store)
    old_hash, old_files = old.manifest.content_hash, sorted(old.path.rglob("*"))
    old_bytes = [p.read_bytes() for p in old_files if p.is_file()]
    res = cli("--json", "data", "rederive", "abc")
    assert res.exit_code == 0, res.stderr
    assert res.json() == {"ref": "abc@v1", "rederived": 1, "created": "abc@v2"}
    new = open_dataset("abc", store)
    assert (new.version, new.manifest.parent) == (2, 1)
    assert new.manifest.notes["prev_close_rederived"] == 1
    assert prev_close_on(store, "abc@v2", ex) == pytest.approx(504.0 / 5)
    assert prev_close_on(store, "abc@v2", days[6]) == prev_close_on(store, "abc@v1", days[6])
    # the old version is untouched, byte for byte
    again = open_dataset("abc@v1", store)
    assert again.manifest.content_hash == old_hash and prev_close_on(store, "abc@v1", ex) == 504
    assert [p.read_bytes() for p in sorted(again.path.rglob("*")) if p.is_file()] == old_bytes
    assert cli("--json", "data", "validate", "abc").json()["counts"] == {}
    res = cli("data", "rederive", "abc")
    assert res.exit_code == 0 and res.stdout.strip() == "unchanged: no stale prev_close in abc@v2"
    res = cli("data", "rederive", "abc@v1")
    assert res.exit_code == 1
    assert "abc@v1 is not the latest version of abc (abc@v2)" in res.stderr


def test_a_prev_close_the_source_adjusted_is_not_stale(tmp_path: Path) -> None:
    from quantcli.market.corporate_actions import import_actions

    days = calendar.sessions(date(2019, 3, 1), date(2019, 3, 31))[:3]
    root = tmp_path / "store"
    import_actions(root, split_actions(tmp_path, days[1]))
    given = bars(
        days,
        symbol="ABC",
        open=[500.0, 100.0, 100.0],
        high=[501.0, 101.0, 101.0],
        low=[499.0, 99.0, 99.0],
        close=[500.0, 100.0, 100.0],
        prev_close=[None, 100.0, 100.0],
    )
    assert "stale_prev_close" not in check(given, root=root).counts
    raw = given.with_columns(pl.Series("prev_close", [None, 500.0, 100.0]))
    report = check(raw, root=root)
    assert report.counts == {"stale_prev_close": 1}
    assert report.findings[0].row == 2 and report.findings[0].file == "in.csv"
    assert check(raw).counts == {"suspected_split": 1}  # without the store, no action on record


def test_rederive_with_nothing_stale_or_intraday_bars(cli, store: Path, tmp_path: Path) -> None:
    res = cli(
        "data", "ingest", "syn", "--source", "synthetic", "--symbols", "1", "--days", "5",
        "--end", "2019-03-29",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert cli("--json", "data", "rederive", "syn").json() == {
        "ref": "syn@v1",
        "rederived": 0,
        "created": None,
    }
    assert not (store / "syn" / "v2").exists()
    assert cli("data", "rederive", "nope").exit_code == 1
    path = tmp_path / "INTRA.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n"
        "2019-03-29 09:15:00,10,11,9,10,5\n2019-03-29 09:20:00,10,11,9,10,5\n",
        encoding="utf-8",
    )
    assert cli("data", "ingest", "intra", str(path)).exit_code == 0
    res = cli("data", "rederive", "intra")
    assert res.exit_code == 2 and "intra@v1 holds 5m bars; prev_close is daily" in res.stderr
