"""Ingest end to end: sources into versions, refusal of bad data, append, idempotence."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import ConflictError, DataError, NotFoundError, UsageError
from quantcli.store.ingest import drop_exact_duplicates, infer_interval, ingest, merge_append
from quantcli.store.manifest import InputFile, SourceInfo
from quantcli.store.publish import publish
from quantcli.store.reader import open_dataset

IST = ZoneInfo("Asia/Kolkata")
CORPUS = Path(__file__).parent / "corpus"
MALFORMED = [
    "wrong_columns.csv",
    "bad_date.csv",
    "nan_price.csv",
    "negative_price.csv",
    "negative_volume.csv",
    "ohlc.csv",
    "duplicates.csv",
    "empty.csv",
    "header_only.csv",
    "semicolon.csv",
    "truncated.csv",
    "non_utf8.csv",
    "not_a_number.csv",
    "extra_fields.csv",
    "missing_volume.csv",
    "inf_price.csv",
    "overflow_volume.csv",
    "two_digit_year.csv",
    "off_grid.csv",
]


def write_csv(path: Path, rows: list[tuple[str, str, float, int]]) -> Path:
    """symbol, ISO date, close, volume -> a canonical CSV with a consistent OHLC."""
    lines = ["symbol,ts,open,high,low,close,volume"]
    lines += [f"{s},{d},{c},{c + 1},{c - 1},{c},{v}" for s, d, c, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_nothing_written(root: Path) -> None:
    entries = {p.name for p in root.iterdir()} if root.exists() else set()
    tmp = root / ".tmp"
    assert not (entries - {".tmp"}), entries
    assert not tmp.exists() or not any(tmp.iterdir())


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_input_one_line_exit_65_nothing_written(cli, store: Path, name: str) -> None:
    res = cli("data", "ingest", "bad", "--source", "csv", str(CORPUS / name))
    assert res.exit_code == 65, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {CORPUS / name}")
    assert res.stdout == ""
    assert_nothing_written(store)


def test_sample_needs_dedupe_and_warnings_then_is_idempotent(
    cli, store: Path, sample_dir: Path
) -> None:
    files = [str(p) for p in sorted(sample_dir.glob("*.csv"))]
    base = ["data", "ingest", "nse", "--source", "nifty50", *files]
    refused = cli(*base)
    assert refused.exit_code == 65
    assert "BAJAJ-AUTO.csv:731: duplicate: duplicate bar (BAJAJ-AUTO, 2011-05-06)" in refused.stderr
    assert refused.stderr.rstrip().endswith(
        "pass --drop-duplicates to drop the 9 exactly repeated bar(s)"
    )
    assert_nothing_written(store)
    warned = cli(*base, "--drop-duplicates")
    assert warned.exit_code == 65 and "pass --allow-warnings" in warned.stderr
    made = cli(*base, "--drop-duplicates", "--allow-warnings")
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("created nse@v1: 10,786 rows, 3 symbols, 1d bars")
    assert "warning:" in made.stderr and "missing_session" in made.stderr
    again = cli(*base, "--drop-duplicates", "--allow-warnings")
    assert again.exit_code == 0 and again.stdout.strip() == "unchanged, v1 (same content as nse@v1)"
    manifest = open_dataset("nse", store).manifest
    assert manifest.notes["exact_duplicates_dropped"] == {
        "BAJAJ-AUTO": 3,
        "JSWSTEEL": 3,
        "MARUTI": 3,
    }
    assert "missing_session" in manifest.notes["warnings_accepted"]  # type: ignore[operator]
    assert manifest.source.kind == "nifty50"
    assert [Path(f.path).name for f in manifest.source.files] == [
        "BAJAJ-AUTO.csv",
        "JSWSTEEL.csv",
        "MARUTI.csv",
    ]
    assert manifest.source.options == {}
    assert {"vwap", "turnover", "deliverable_volume"} <= set(manifest.schema)


def test_intraday_duplicates_refused_with_file_row_and_count(
    cli, store: Path, shared_data: Path
) -> None:
    files = [str(p) for p in sorted((shared_data / "nse_intraday_5min").glob("*.csv"))]
    res = cli("data", "ingest", "intra", "--source", "csv", *files)
    assert res.exit_code == 65
    line = res.stderr.strip()
    assert line == (
        f"error: {files[0]}:5102: duplicate: duplicate bar (INFY, 2023-10-09 09:15+05:30), "
        "first at row 5027 (and 449 more: 450 duplicate); "
        "pass --drop-duplicates to drop the 450 exactly repeated bar(s)"
    )
    assert_nothing_written(store)
    ok = cli("--json", "data", "ingest", "intra", "--source", "csv", *files, "--drop-duplicates")
    assert ok.exit_code == 0, ok.stderr
    doc = ok.json()
    assert doc["interval"] == "5m" and doc["rows"] == 37149 - 450
    assert doc["duplicates_dropped"] == {"INFY": 225, "RELIANCE": 225}
    assert doc["validation"]["counts"] == {}


def test_bhavcopy_both_formats_one_dataset(cli, store: Path) -> None:
    files = [str(p) for p in sorted((CORPUS / "bhavcopy").iterdir())]
    res = cli("--json", "data", "ingest", "bhav", "--source", "bhavcopy", *files)
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["rows"] == 18 and doc["symbols"] == 3 and doc["validation"]["counts"] == {}
    frame = open_dataset("bhav", store).lazy().collect()
    assert frame["ts"].dt.date().n_unique() == 6
    assert set(frame["series"]) == {"EQ"}
    be = cli("data", "ingest", "bhavbe", "--source", "bhavcopy", "--series", "BE", *files)
    assert be.exit_code == 0 and "1 symbol," in be.stdout


def test_synthetic_deterministic_and_json(cli, store: Path) -> None:
    args = ["--json", "data", "ingest", "syn", "--source", "synthetic"]
    args += ["--symbols", "3", "--days", "40", "--seed", "9"]
    first = cli(*args).json()
    assert first["created"] and first["version"] == 1 and first["rows"] == 120
    again = cli(*args).json()
    assert not again["created"] and again["content_hash"] == first["content_hash"]
    other = cli("--json", "data", "ingest", "syn2", "--source", "synthetic", *args[6:]).json()
    assert other["content_hash"] == first["content_hash"]
    manifest = open_dataset("syn", store).manifest
    assert manifest.source == SourceInfo(
        "synthetic", (), {"symbols": "3", "days": "40", "seed": "9"}
    )


def test_map_and_date_format_through_cli(cli, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "ACME.csv"
    path.write_text("Day,O,H,L,Close Price,Qty\n02/01/2024,10,11,9,10.5,100\n")
    res = cli(
        "data", "ingest", "acme", "--source", "csv", str(path),
        "--map", "Day=ts", "--map", "O=open", "--map", "H=high", "--map", "L=low",
        "--map", "Close Price=close", "--map", "Qty=volume", "--date-format", "%d/%m/%Y",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    frame = open_dataset("acme", store).lazy().collect()
    assert frame["ts"].to_list() == [datetime(2024, 1, 2, tzinfo=IST)]
    assert frame["symbol"].to_list() == ["ACME"]
    manifest = open_dataset("acme", store).manifest
    assert manifest.source.options["map.Close Price"] == "close"
    assert manifest.source.options["date_format"] == "%d/%m/%Y"
    bad = cli("data", "ingest", "acme", "--source", "csv", str(path), "--map", "Day")
    assert bad.exit_code == 2 and "expected SOURCE=canonical" in bad.stderr


def test_append_adds_rows_then_conflicts_then_replace(tmp_path: Path, store: Path) -> None:
    v1 = write_csv(tmp_path / "v1.csv", [("A", "2024-01-01", 10, 1), ("A", "2024-01-02", 11, 2)])
    r1 = ingest(store, "d", "csv", [v1], options={})
    assert (r1.version, r1.created, r1.parent) == (1, True, None)
    more = write_csv(
        tmp_path / "more.csv",
        [("A", "2024-01-02", 11, 2), ("A", "2024-01-03", 12, 3), ("B", "2024-01-03", 5, 9)],
    )
    r2 = ingest(store, "d", "csv", [more], options={}, append=True)
    assert (r2.version, r2.parent, r2.rows, r2.input_rows) == (2, 1, 4, 3)
    again = ingest(store, "d", "csv", [more], options={}, append=True)
    assert not again.created and again.version == 2
    clash = write_csv(
        tmp_path / "clash.csv",
        [("A", "2024-01-02", 11.5, 2), ("A", "2024-01-03", 12.5, 3), ("B", "2024-01-03", 6, 9)],
    )
    with pytest.raises(ConflictError) as info:
        ingest(store, "d", "csv", [clash], options={}, append=True)
    message = info.value.message
    assert "append conflicts with d@v2: 3 bar(s) differ (A 2, B 1)" in message
    assert "first A 2024-01-02 00:00 open 11.0 in d@v2 vs 11.5 new" in message
    assert "--on-conflict replace" in message
    versions = sorted(v.name for v in (store / "d").iterdir() if v.name.startswith("v"))
    assert versions == ["v1", "v2"]
    r3 = ingest(store, "d", "csv", [clash], options={}, append=True, on_conflict="replace")
    assert (r3.version, r3.parent, r3.rows) == (3, 2, 4)
    assert r3.conflicts_replaced == {"A": 2, "B": 1}
    manifest = open_dataset("d@v3", store).manifest
    assert manifest.notes["conflicts_replaced"] == {"A": 2, "B": 1}
    closes = open_dataset("d@v3", store).lazy().collect().sort("symbol", "ts")["close"].to_list()
    assert closes == [10.0, 11.5, 12.5, 6.0]


def test_append_keeps_optional_columns_and_checks_interval(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("symbol,ts,open,high,low,close,volume,vwap\nA,2024-01-01,1,2,1,2,5,1.5\n")
    ingest(store, "o", "csv", [path], options={})
    plain = write_csv(tmp_path / "p.csv", [("A", "2024-01-01", 2, 5), ("A", "2024-01-02", 2.5, 6)])
    with pytest.raises(ConflictError):
        ingest(store, "o", "csv", [plain], options={}, append=True)  # open differs (1 vs 2)
    same = tmp_path / "s.csv"
    same.write_text("symbol,ts,open,high,low,close,volume\nA,2024-01-02,1,2,1,2,5\n")
    report = ingest(store, "o", "csv", [same], options={}, append=True)
    frame = open_dataset(report.ref, store).lazy().collect()
    assert frame["vwap"].to_list() == [1.5, None]
    intraday = tmp_path / "i.csv"
    intraday.write_text("symbol,ts,open,high,low,close,volume\nA,2024-01-03 09:15:00,1,2,1,2,5\n")
    with pytest.raises(ConflictError, match="cannot append 5m bars to o@v2, which holds 1d bars"):
        ingest(store, "o", "csv", [intraday], options={}, append=True, interval="5m")


def test_append_needs_a_dataset(tmp_path: Path, store: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [("A", "2024-01-01", 10, 1)])
    with pytest.raises(NotFoundError, match="--append needs an existing dataset"):
        ingest(store, "nothing", "csv", [path], options={}, append=True)


def test_usage_errors(cli, tmp_path: Path, store: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [("A", "2024-01-01", 10, 1)])
    with pytest.raises(UsageError, match="--on-conflict"):
        ingest(store, "x", "csv", [path], options={}, on_conflict="merge")
    with pytest.raises(UsageError, match="--interval must be one of"):
        ingest(store, "x", "csv", [path], options={}, interval="2d")
    assert cli("data", "ingest", "_bad", "--source", "csv", str(path)).exit_code == 2
    assert cli("data", "ingest", "x", "--source", "xls", str(path)).exit_code == 2
    assert_nothing_written(store)


def frame_at(stamps: list[datetime], symbol: str = "A") -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": [symbol] * len(stamps), "ts": stamps},
        schema={"symbol": pl.String, "ts": pl.Datetime("us")},
    ).with_columns(pl.col("ts").dt.replace_time_zone("Asia/Kolkata").cast(TS_DTYPE))


@pytest.mark.parametrize(("minutes", "expected"), [(1, "1m"), (5, "5m"), (15, "15m"), (60, "1h")])
def test_infer_interval(minutes: int, expected: str) -> None:
    stamps = [datetime(2024, 1, 2, 9, 15) + timedelta(minutes=minutes * i) for i in range(4)]
    stamps.append(stamps[-1])  # a repeated bar has no spacing and does not count
    assert infer_interval(frame_at(stamps)) == expected


def test_infer_interval_daily_and_unknown() -> None:
    assert infer_interval(frame_at([datetime(2024, 1, 2), datetime(2024, 1, 3)])) == "1d"
    assert infer_interval(frame_at([])) == "1d"
    odd = frame_at([datetime(2024, 1, 2, 9, 15), datetime(2024, 1, 2, 9, 22)])
    with pytest.raises(UsageError, match="commonest spacing 7 min"):
        infer_interval(odd)
    lonely = frame_at([datetime(2024, 1, 2, 9, 15), datetime(2024, 1, 3, 9, 15)])
    with pytest.raises(UsageError, match="no two bars in one day"):
        infer_interval(lonely)


def test_drop_exact_duplicates_keeps_differing_repeats() -> None:
    stamps = [
        datetime(2024, 1, 2),
        datetime(2024, 1, 2),
        datetime(2024, 1, 2),
        datetime(2024, 1, 3),
    ]
    frame = frame_at(stamps).with_columns(pl.Series("close", [1.0, 1.0, 2.0, 3.0]))
    kept, dropped = drop_exact_duplicates(frame)
    assert kept["close"].to_list() == [1.0, 2.0, 3.0] and dropped == {"A": 1}


def test_merge_append_without_conflicts_keeps_old_rows() -> None:
    old = frame_at([datetime(2024, 1, 2)]).with_columns(pl.lit(1.0).alias("close"))
    new = frame_at([datetime(2024, 1, 2), datetime(2024, 1, 3)]).with_columns(
        pl.lit(1.0).alias("close")
    )
    merged, conflicts = merge_append(old, new, on_conflict="fail", ref="x@v1")
    assert merged.height == 2 and conflicts == {}


def test_validate_command(cli, store: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [("A", "2024-01-01", 10, 1), ("A", "2024-01-02", 11, 1)])
    assert cli("data", "ingest", "ok", str(path)).exit_code == 0
    res = cli("data", "validate", "ok")
    assert res.exit_code == 0 and "ok@v1: 2 rows, 1 symbols: no findings" in res.stdout
    # A version published around ingest's checks (publish does not check OHLC).
    bad = pl.DataFrame(
        {
            "symbol": ["A", "A"],
            "ts": [date(2024, 1, 1), date(2024, 1, 3)],
            "open": [10.0, 10.0],
            "high": [9.0, 11.0],
            "low": [8.0, 9.0],
            "close": [9.5, 10.0],
            "volume": [1, 1],
        }
    )
    publish(store, "bad", bad, interval="1d", source=SourceInfo("test", (InputFile("x", "0", 1),)))
    res = cli("data", "validate", "bad@v1")
    assert res.exit_code == 65
    assert "ohlc" in res.stdout and "missing_session" in res.stdout
    assert "2024-01-01 " in res.stdout and "00:00:00" not in res.stdout
    assert (
        res.stderr.strip() == "error: bad@v1: 1 error-level finding(s): 1 ohlc, 1 missing_session"
    )
    doc = cli("--json", "data", "validate", "bad").json()
    assert doc["ref"] == "bad@v1" and doc["counts"] == {"ohlc": 1, "missing_session": 1}
    capped = cli(
        "--json", "data", "validate", "bad", "--max-examples", "1", "--split-threshold", "0.01"
    )
    counts = capped.json()["counts"]
    assert counts == {"ohlc": 1, "missing_session": 1, "suspected_split": 1}
    json.dumps(doc)


def test_ingest_library_refuses_with_data_error(tmp_path: Path, store: Path) -> None:
    with pytest.raises(DataError, match=r"ohlc.csv:3: ohlc:"):
        ingest(store, "x", "csv", [CORPUS / "ohlc.csv"], options={})


def test_cli_append_replace_and_ignored_columns(cli, store: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("symbol,ts,open,high,low,close,volume,note\nA,2024-01-01,1,2,1,2,5,x\n")
    made = cli("data", "ingest", "r", str(first))
    assert made.exit_code == 0 and "ignored column(s): note" in made.stderr
    second = write_csv(tmp_path / "b.csv", [("A", "2024-01-01", 2, 5)])
    clash = cli("data", "ingest", "r", str(second), "--append")
    assert clash.exit_code == 1 and "append conflicts with r@v1" in clash.stderr
    res = cli("data", "ingest", "r", str(second), "--append", "--on-conflict", "replace")
    assert res.exit_code == 0, res.stderr
    assert "A: replaced 1 conflicting bar(s)" in res.stderr
    assert res.stdout.startswith("created r@v2: 1 rows, 1 symbol,")


@settings(max_examples=40, deadline=None)
@given(
    old_days=st.sets(st.integers(0, 30), min_size=1, max_size=15),
    new_days=st.sets(st.integers(0, 30), min_size=1, max_size=15),
    bump=st.booleans(),
)
def test_merge_append_properties(old_days: set[int], new_days: set[int], bump: bool) -> None:
    def frame(days: set[int], extra: float) -> pl.DataFrame:
        stamps = [datetime(2024, 1, 1) + timedelta(days=d) for d in sorted(days)]
        return frame_at(stamps).with_columns((pl.col("ts").dt.day() + extra).alias("close"))

    old, new = frame(old_days, 0.0), frame(new_days, 0.5 if bump else 0.0)
    overlap = old_days & new_days
    if bump and overlap:
        with pytest.raises(ConflictError):
            merge_append(old, new, on_conflict="fail", ref="x@v1")
    merged, conflicts = merge_append(old, new, on_conflict="replace", ref="x@v1")
    assert merged.height == len(old_days | new_days)
    assert merged["ts"].is_sorted() and merged["ts"].n_unique() == merged.height
    assert sum(conflicts.values()) == (len(overlap) if bump else 0)

    # New values win on the overlap; old-only bars are kept unchanged.
    def closes(f: pl.DataFrame) -> dict[datetime, float]:
        return dict(zip(f["ts"], f["close"], strict=True))

    assert closes(merged) == {**closes(old), **closes(new)}


def _publish_during_append(monkeypatch: pytest.MonkeyPatch, store: Path, frame: pl.DataFrame):
    """Make the next append see another writer publish ``frame`` between its read and publish."""
    import quantcli.store.ingest as ingest_mod

    real = ingest_mod.merge_append

    def racing(*args: object, **kwargs: object):
        merged = real(*args, **kwargs)  # type: ignore[arg-type]
        publish(store, "d", frame, interval="1d", source=SourceInfo("other writer"))
        return merged

    monkeypatch.setattr(ingest_mod, "merge_append", racing)


def test_append_refuses_when_another_writer_published_meanwhile(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = write_csv(tmp_path / "v1.csv", [("A", "2024-01-01", 10, 1)])
    ingest(store, "d", "csv", [v1], options={})
    v1_bars = open_dataset("d", store).lazy().collect()
    other = v1_bars.vstack(v1_bars.with_columns(pl.lit("B").alias("symbol")))
    _publish_during_append(monkeypatch, store, other)
    more = write_csv(tmp_path / "more.csv", [("A", "2024-01-02", 11, 2)])
    with pytest.raises(ConflictError) as info:
        ingest(store, "d", "csv", [more], options={}, append=True)
    assert info.value.message == (
        "dataset d moved from v1 to v2 while this update was being prepared; re-run it"
    )
    assert sorted(p.name for p in (store / "d").iterdir() if p.name.startswith("v")) == [
        "v1",
        "v2",
    ]
    assert not any((store / ".tmp").iterdir())
    monkeypatch.undo()
    # The re-run builds on v2 and keeps the other writer's bar.
    report = ingest(store, "d", "csv", [more], options={}, append=True)
    assert (report.version, report.parent, report.rows) == (3, 2, 3)


def test_overlapping_identical_appends_are_unchanged(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = write_csv(tmp_path / "v1.csv", [("A", "2024-01-01", 10, 1)])
    ingest(store, "d", "csv", [v1], options={})
    more = write_csv(tmp_path / "more.csv", [("A", "2024-01-02", 11, 2)])
    # Another run of the same append (as an overlapping cron job) publishes v2 first.
    v1_bars = open_dataset("d", store).lazy().collect()
    same = v1_bars.vstack(
        v1_bars.with_columns(
            pl.col("ts").dt.offset_by("1d"),
            open=pl.lit(11.0),
            high=pl.lit(12.0),
            low=pl.lit(10.0),
            close=pl.lit(11.0),
            volume=pl.lit(2, dtype=pl.Int64),
            prev_close=pl.lit(10.0),  # the append derives it from the first bar
        )
    )
    _publish_during_append(monkeypatch, store, same)
    report = ingest(store, "d", "csv", [more], options={}, append=True)
    assert (report.version, report.created, report.rows) == (2, False, 2)


# --------------------------------------------------------------------------- prev_close


def test_daily_ingest_derives_prev_close_from_the_previous_bar(tmp_path: Path, store: Path) -> None:
    rows = [("A", "2024-01-01", 10, 1), ("A", "2024-01-02", 11, 2), ("B", "2024-01-02", 50, 3)]
    ingest(store, "d", "csv", [write_csv(tmp_path / "a.csv", rows)], options={})
    version = open_dataset("d", store)
    frame = version.lazy().collect()
    # The first bar of each symbol has no previous close; B's is not A's last.
    assert frame["prev_close"].to_list() == [None, 10.0, None]
    assert version.manifest.notes == {"prev_close_derived": 1}


def test_derived_prev_close_is_the_adjusted_base_price_on_a_split(
    tmp_path: Path, store: Path
) -> None:
    # JSWSTEEL's split Rs 10 -> Re 1 (ex 2017-01-04) is in the bundled corporate actions.
    rows = [("JSWSTEEL", "2017-01-03", 1900, 1), ("JSWSTEEL", "2017-01-04", 190, 10)]
    ingest(store, "j", "csv", [write_csv(tmp_path / "j.csv", rows)], options={})
    frame = open_dataset("j", store).lazy().collect()
    assert frame["prev_close"].to_list() == [None, 190.0]


def test_given_prev_close_is_kept_and_only_gaps_are_filled(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "symbol,ts,open,high,low,close,volume,prev_close\n"
        "A,2024-01-01,10,11,9,10,1,9.5\n"
        "A,2024-01-02,11,12,10,11,2,\n"
        "A,2024-01-03,12,13,11,12,3,10.9\n"
    )
    ingest(store, "p", "csv", [path], options={})
    version = open_dataset("p", store)
    assert version.lazy().collect()["prev_close"].to_list() == [9.5, 10.0, 10.9]
    assert version.manifest.notes == {"prev_close_derived": 1}


def test_append_derives_prev_close_from_the_parent_version(tmp_path: Path, store: Path) -> None:
    ingest(
        store,
        "d",
        "csv",
        [write_csv(tmp_path / "v1.csv", [("A", "2024-01-01", 10, 1)])],
        options={},
    )
    more = write_csv(tmp_path / "v2.csv", [("A", "2024-01-02", 12, 1)])
    ingest(store, "d", "csv", [more], options={}, append=True)
    assert open_dataset("d", store).lazy().collect()["prev_close"].to_list() == [None, 10.0]


def test_intraday_bars_get_no_derived_prev_close(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "A,2024-01-01 09:15,10,11,9,10,1\n"
        "A,2024-01-01 09:20,10,11,9,10.5,1\n"
    )
    ingest(store, "i", "csv", [path], options={})
    version = open_dataset("i", store)
    assert version.manifest.interval == "5m"
    assert "prev_close" not in version.lazy().collect().columns


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C"]),
            st.floats(min_value=1.0, max_value=1e5, allow_nan=False),
            st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e5, allow_nan=False)),
        ),
        max_size=30,
    )
)
def test_fill_prev_close_keeps_given_values_and_fills_the_rest_from_the_previous_bar(
    rows: list[tuple[str, float, float | None]],
) -> None:
    from quantcli.store.ingest import fill_prev_close

    rows = sorted(rows, key=lambda r: r[0])  # (symbol, ts) order: ts follow the list order
    start = datetime(2024, 1, 1, tzinfo=IST)
    frame = pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": [start + timedelta(days=i) for i in range(len(rows))],
            "close": [r[1] for r in rows],
            "prev_close": [r[2] for r in rows],
        },
        schema={"symbol": pl.String, "ts": TS_DTYPE, "close": pl.Float64, "prev_close": pl.Float64},
    )
    # No split or bonus is recorded for these symbols, so the derived value is the raw close.
    filled, count = fill_prev_close(frame, None)
    got = filled["prev_close"].to_list()
    for i, (symbol, _, given_value) in enumerate(rows):
        previous = rows[i - 1][1] if i > 0 and rows[i - 1][0] == symbol else None
        assert got[i] == (given_value if given_value is not None else previous)
    assert (
        count
        == sum(g is None for g in frame["prev_close"].to_list()) - filled["prev_close"].null_count()
    )
    assert filled.drop("prev_close").equals(frame.drop("prev_close"))


def test_duplicate_errors_name_the_flag_that_fixes_them(cli, store: Path, tmp_path: Path) -> None:
    rows = [("A", "2024-01-01", 10, 1), ("A", "2024-01-01", 10, 1)]
    rows += [("A", "2024-01-02", 11, 1), ("A", "2024-01-02", 12, 1)]
    exact_and_differing = write_csv(tmp_path / "d.csv", rows)
    refused = cli("data", "ingest", "d", str(exact_and_differing))
    assert refused.exit_code == 65
    assert refused.stderr.strip().endswith(
        "; pass --drop-duplicates to drop the 1 exactly repeated bar(s)"
    )
    still = cli("data", "ingest", "d", str(exact_and_differing), "--drop-duplicates")
    assert still.exit_code == 65 and len(still.stderr.strip().splitlines()) == 1
    assert f"{exact_and_differing}:5: duplicate: duplicate bar (A, 2024-01-02)" in still.stderr
    assert "the repeated bars differ, which --drop-duplicates does not resolve" in still.stderr
    differing = cli("data", "ingest", "d", str(CORPUS / "duplicates.csv"))
    assert "--drop-duplicates does not resolve" in differing.stderr
    assert_nothing_written(store)
    # An append's overlap with the stored bars is a conflict, fixed by --on-conflict.
    base = write_csv(tmp_path / "b.csv", [("A", "2024-01-01", 10, 1)])
    assert cli("data", "ingest", "d", str(base)).exit_code == 0
    other = write_csv(tmp_path / "o.csv", [("A", "2024-01-01", 10.5, 1)])
    clash = cli("data", "ingest", "d", str(other), "--append")
    assert clash.exit_code == 1 and "pass --on-conflict replace" in clash.stderr
