"""Corporate actions: NSE export parsing, the bundled and user tables, back-adjustment."""

from __future__ import annotations

import fcntl
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.core.dtypes import TS_DTYPE
from quantcli.errors import ConflictError, DataError, LockHeldError, NotFoundError
from quantcli.market import corporate_actions as ca
from quantcli.market.corporate_actions import (
    CorporateAction,
    actions_for,
    back_adjust,
    bundled_actions,
    import_actions,
    load_actions_csv,
    parse_actions_csv,
    parse_purpose,
    user_table,
)
from tests.conftest import load_sample

HEADER = (
    '"SYMBOL","COMPANY NAME","SERIES","PURPOSE","FACE VALUE","EX-DATE","RECORD DATE",'
    '"BC START DATE","BC END DATE"\n'
)


def nse_row(symbol: str, purpose: str, ex_date: str) -> str:
    return f'"{symbol}","{symbol} Ltd","EQ","{purpose}","10","{ex_date}","-","-","-"\n'


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


SPLIT = "Face Value Split (Sub-Division) - From Rs 10/- Per Share To Re 1/- Per Share"


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        (SPLIT, [("split", 10.0, 0.0)]),
        (
            "Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 2/- Per Share",
            [("split", 5.0, 0.0)],
        ),
        ("Bonus 1:1", [("bonus", 2.0, 0.0)]),
        ("Bonus 3:2", [("bonus", 2.5, 0.0)]),
        ("Dividend - Rs 12 Per Share", [("dividend", 1.0, 12.0)]),
        ("Interim Dividend - Rs 2.50 Per Share", [("dividend", 1.0, 2.5)]),
        ("Annual General Meeting/Dividend - Rs 80 Per Share", [("dividend", 1.0, 80.0)]),
        ("Dividend - Re 1 Per Share", [("dividend", 1.0, 1.0)]),
        (
            "Annual General Meeting/Dividend - Rs 4.75 Per Share/Special Dividend - Rs 3 Per Share",
            [("dividend", 1.0, 7.75)],
        ),
        ("Stock Split From Rs.10/- to Rs.1/-", [("split", 10.0, 0.0)]),
        ("Stock Split From Rs 2/- Per Share To Re 1/- Per Share", [("split", 2.0, 0.0)]),
        ("Sub-Division From Rs 10 To Rs 5", [("split", 2.0, 0.0)]),
        ("Split 1:5", [("split", 5.0, 0.0)]),
        ("Stock split 1:5", [("split", 5.0, 0.0)]),
        ("STOCK SPLIT 1 : 2", [("split", 2.0, 0.0)]),
        ("Split 5:1", [("split", 5.0, 0.0)]),
        ("Bonus Issue 1:2", [("bonus", 1.5, 0.0)]),
        ("Dividend - Rs 8 Per Share", [("dividend", 1.0, 8.0)]),
        ("Final Dividend Rs.3/- Per Share", [("dividend", 1.0, 3.0)]),
        ("Final Dividend - Rs. 8.50 Per Share", [("dividend", 1.0, 8.5)]),
        ("Special Dividend - Rs 20 Per Share", [("dividend", 1.0, 20.0)]),
        ("Interim Dividend - Re 0.50 Per Sh", [("dividend", 1.0, 0.5)]),
        ("2nd Interim Dividend - Rs 3 Per Share", [("dividend", 1.0, 3.0)]),
        ("AGM/Dividend - Rs 5 Per Share", [("dividend", 1.0, 5.0)]),
        (
            "Bonus 1:1 And Dividend - Rs 2 Per Share",
            [("bonus", 2.0, 0.0), ("dividend", 1.0, 2.0)],
        ),
        (
            "Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 5/- Per Share / "
            "Bonus 1:1",
            [("split", 2.0, 0.0), ("bonus", 2.0, 0.0)],
        ),
        ("Dividend - 50%", [("dividend", 1.0, 5.0)]),  # of the face value, Rs 10 here
        ("Annual General Meeting", []),
        ("AGM", []),
        ("EGM", []),
        ("Buyback", []),
        ("Buy Back of Shares", []),
        ("Special Dividend", []),
        ("Interest Payment", []),
        ("Annual General Meeting/Special Dividend", []),
    ],
)
def test_parse_purpose(purpose: str, expected: list[tuple[str, float, float]]) -> None:
    got = parse_purpose("X", date(2020, 1, 2), purpose, face_value=10.0)
    assert [(a.kind, a.ratio, a.amount) for a in got] == expected
    assert all(a.symbol == "X" and a.ex_date == date(2020, 1, 2) for a in got)


@pytest.mark.parametrize(
    ("purpose", "ignored"),
    [
        ("AGM", ["agm"]),
        ("Annual General Meeting/Special Dividend", ["agm", "dividend without an amount"]),
        ("Buyback", ["buyback"]),
    ],
)
def test_non_adjusting_parts_are_named(purpose: str, ignored: list[str]) -> None:
    assert ca.read_purpose(purpose) == ([], ignored)


@pytest.mark.parametrize(
    "purpose",
    [
        "Stock split",
        "Consolidation of shares 10:1",
        "Demerger",
        "Bonus 1-1",
        "Split 2:2",
        "Dividend - 50%",  # no face value to take the percentage of
        "Dividend - Rs Eight Per Share",
        "Amalgamation/Dividend - Rs 2 Per Share",
        "",
    ],
)
def test_unreadable_purposes_are_refused(purpose: str) -> None:
    with pytest.raises(ValueError, match=r"PURPOSE|changes nothing"):
        parse_purpose("X", date(2020, 1, 2), purpose)


def test_rights_are_refused_unless_skipped() -> None:
    rights = "Rights 1:5 @ premium Rs 100"
    with pytest.raises(ca.RightsIssueError, match="--skip-rights"):
        parse_purpose("X", date(2020, 1, 2), rights)
    assert ca.read_purpose(rights, skip_rights=True) == ([], ["rights"])
    assert ca.read_purpose(f"Bonus 1:1/{rights}", skip_rights=True) == (
        [("bonus", 2.0, 0.0)],
        ["rights"],
    )


_spaces = st.sampled_from(["", " ", "  "])


@given(
    word=st.sampled_from(["Split", "split", "Stock Split", "STOCK SPLIT", "Bonus", "bonus"]),
    a=st.integers(min_value=1, max_value=1000),
    b=st.integers(min_value=1, max_value=1000),
    s1=_spaces,
    s2=_spaces,
    s3=_spaces,
)
def test_ratio_grammar(word: str, a: int, b: int, s1: str, s2: str, s3: str) -> None:
    purpose = f"{word}{s1 or ' '}{a}{s2}:{s3}{b}"
    if "split" in word.lower():
        if a == b:
            with pytest.raises(ValueError, match="changes nothing"):
                parse_purpose("X", date(2020, 1, 2), purpose)
            return
        expected = [("split", max(a, b) / min(a, b), 0.0)]
    else:
        expected = [("bonus", (a + b) / b, 0.0)]
    got = parse_purpose("X", date(2020, 1, 2), purpose)
    assert [(x.kind, x.ratio, x.amount) for x in got] == expected


@given(
    before=st.sampled_from([10, 5, 2, 1]),
    after=st.sampled_from([5, 2, 1, 0.5, 0.1]),
    rupee=st.sampled_from(["Rs", "Rs.", "Re", "Re.", "INR", "rs"]),
    tail=st.sampled_from(["", "/-", "/- Per Share", " Per Share", "/- Per Equity Share"]),
)
def test_face_value_split_grammar(before: int, after: float, rupee: str, tail: str) -> None:
    purpose = (
        f"Face Value Split (Sub-Division) - From {rupee} {before}{tail} To {rupee} {after}{tail}"
    )
    (got,) = parse_purpose("X", date(2020, 1, 2), purpose)
    assert got.kind == "split" and got.ratio == before / after


@pytest.mark.parametrize(
    "purpose",
    ["Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 0/- Per Share", "Bonus 0:1"],
)
def test_parse_purpose_rejects_zero_terms(purpose: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        parse_purpose("X", date(2020, 1, 2), purpose)


def test_load_actions_csv_recognises_and_skips(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ca.csv",
        nse_row("jswsteel", SPLIT, "04-Jan-2017"),
        "\n",
        nse_row("BAJAJ-AUTO", "Bonus 1:1", "08-Sep-2010"),
        nse_row("INFY", "Annual General Meeting", "20-Jun-2019"),
        nse_row("INFY", "Interim Dividend - Rs 2.50 Per Share", "2019-10-23"),
    )
    parsed = parse_actions_csv(path)
    assert [(a.symbol, a.ex_date, a.kind) for a in parsed.actions] == [
        ("JSWSTEEL", date(2017, 1, 4), "split"),
        ("BAJAJ-AUTO", date(2010, 9, 8), "bonus"),
        ("INFY", date(2019, 10, 23), "dividend"),
    ]
    assert parsed.skipped == (ca.SkippedRow(5, "INFY", "Annual General Meeting", "agm"),)
    assert [n for n, _ in parsed.rows] == [2, 4, 6]
    assert load_actions_csv(path) == list(parsed.actions)


def test_load_actions_csv_accepts_bom_and_minimal_columns(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text("\ufeffSYMBOL,PURPOSE,EX-DATE\nABC,Bonus 1:2,01-Feb-2021\n", encoding="utf-8")
    assert load_actions_csv(path) == [CorporateAction("ABC", date(2021, 2, 1), "bonus", 1.5, 0.0)]


@pytest.mark.parametrize(
    ("rows", "header", "message", "row"),
    [
        ([nse_row("ABC", "Bonus 1:1", "31-Feb-2017")], HEADER, "ABC: EX-DATE '31-Feb-2017'", 2),
        ([nse_row("ABC", "Bonus 1:1", "")], HEADER, "is not a date", 2),
        ([nse_row("", "Bonus 1:1", "01-Jan-2017")], HEADER, "empty SYMBOL", 2),
        (['"ABC","x"\n'], HEADER, "expected 9 fields, found 2", 2),
        ([nse_row("ABC", "Bonus 0:1", "01-Jan-2017")], HEADER, "bonus terms must be positive", 2),
        ([], "SYMBOL,PURPOSE\n", "missing columns EX-DATE", 1),
    ],
)
def test_load_actions_csv_errors(
    tmp_path: Path, rows: list[str], header: str, message: str, row: int
) -> None:
    path = write(tmp_path / "bad.csv", *rows, header=header)
    with pytest.raises(DataError, match=message) as err:
        load_actions_csv(path)
    assert (err.value.path, err.value.row) == (str(path), row)
    assert err.value.exit_code == 65


def test_load_actions_csv_empty_missing_and_binary(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty file"):
        load_actions_csv(write(tmp_path / "e.csv", header=""))
    with pytest.raises(NotFoundError, match="no such file"):
        load_actions_csv(tmp_path / "absent.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DataError, match="cannot read as UTF-8"):
        load_actions_csv(tmp_path / "b.csv")


# --------------------------------------------------------------------------- tables


def test_bundled_actions_are_the_samples_real_events() -> None:
    assert bundled_actions() == [
        CorporateAction("BAJAJ-AUTO", date(2010, 9, 8), "bonus", 2.0, 0.0),
        CorporateAction("JSWSTEEL", date(2017, 1, 4), "split", 10.0, 0.0),
    ]


def test_actions_for_merges_user_table_and_filters(store: Path) -> None:
    assert actions_for(None) == bundled_actions()
    assert actions_for(["jswsteel"], store) == [bundled_actions()[1]]
    import_actions(
        store,
        write(
            store.parent / "user.csv",
            nse_row("INFY", "Dividend - Rs 12 Per Share", "01-Jun-2020"),
            # a correction of the bundled row (same symbol, ex-date and kind) wins
            nse_row("BAJAJ-AUTO", "Bonus 1:2", "08-Sep-2010"),
        ),
    )
    got = actions_for(None, store)
    assert [(a.symbol, a.kind, a.ratio, a.amount) for a in got] == [
        ("BAJAJ-AUTO", "bonus", 1.5, 0.0),
        ("INFY", "dividend", 1.0, 12.0),
        ("JSWSTEEL", "split", 10.0, 0.0),
    ]
    assert actions_for(["INFY", "MARUTI"], store) == [got[1]]


def test_import_is_idempotent_and_atomic(store: Path) -> None:
    src = write(
        store.parent / "ca.csv",
        nse_row("INFY", "Dividend - Rs 12 Per Share", "01-Jun-2020"),
        nse_row("INFY", "Annual General Meeting", "01-Jun-2020"),
        nse_row("TCS", "Bonus 1:1", "31-May-2018"),
    )
    first = import_actions(store, src)
    assert (first.added, first.duplicates, first.total) == (2, 0, 2)
    assert [s.purpose for s in first.skipped] == ["Annual General Meeting"]
    table = user_table(store)
    content = table.read_text()
    again = import_actions(store, src)
    assert (again.added, again.duplicates, again.total) == (0, 2, 2)
    assert table.read_text() == content  # untouched
    # the same action spelled differently is a duplicate too
    other = write(store.parent / "b.csv", nse_row("TCS", "BONUS  1 : 1", "2018-05-31"))
    assert import_actions(store, other).duplicates == 1
    # the stored table is in NSE's format, sorted, with no temp file left behind
    assert content.splitlines()[0] == HEADER.strip()
    assert [a.symbol for a in load_actions_csv(table)] == ["INFY", "TCS"]
    assert sorted(p.name for p in table.parent.iterdir()) == [".lock", "corporate_actions.csv"]
    assert first.to_dict()["skipped"] == [
        {"row": 3, "symbol": "INFY", "purpose": "Annual General Meeting", "reason": "agm"}
    ]


def test_import_conflict_is_refused(store: Path) -> None:
    import_actions(store, write(store.parent / "a.csv", nse_row("TCS", "Bonus 1:1", "31-May-2018")))
    before = user_table(store).read_text()
    bad = write(store.parent / "b.csv", nse_row("TCS", "Bonus 1:2", "31-May-2018"))
    with pytest.raises(ConflictError, match=r"b\.csv:2: TCS bonus ex 2018-05-31 conflicts"):
        import_actions(store, bad)
    assert user_table(store).read_text() == before


def test_import_refuses_while_locked(store: Path) -> None:
    src = write(store.parent / "a.csv", nse_row("TCS", "Bonus 1:1", "31-May-2018"))
    lock = store / "_meta" / ".lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(LockHeldError, match="locked by another process"):
            import_actions(store, src)
    assert import_actions(store, src).added == 1


# --------------------------------------------------------------------------- back-adjustment


def sample_bars(sample_dir: Path, symbol: str) -> pl.DataFrame:
    """The bundled NSE daily sample in the canonical bar schema."""
    return load_sample(symbol)


def on(frame: pl.DataFrame, day: date) -> dict[str, object]:
    return frame.filter(pl.col("ts").dt.date() == day).row(0, named=True)


@pytest.mark.parametrize(
    ("symbol", "before", "ex_date", "ratio", "close_before", "open_ex"),
    [
        ("JSWSTEEL", date(2017, 1, 3), date(2017, 1, 4), 10.0, 1644.55, 166.75),
        ("BAJAJ-AUTO", date(2010, 9, 7), date(2010, 9, 8), 2.0, 2997.40, 1501.30),
    ],
)
def test_back_adjust_removes_the_gap_in_the_real_sample(
    sample_dir: Path,
    symbol: str,
    before: date,
    ex_date: date,
    ratio: float,
    close_before: float,
    open_ex: float,
) -> None:
    bars = sample_bars(sample_dir, symbol)
    assert bars.schema["ts"] == TS_DTYPE
    raw_prev = on(bars, before)
    assert raw_prev["close"] == close_before
    assert on(bars, ex_date)["open"] / close_before < 0.6  # the unadjusted gap

    adjusted = back_adjust(bars.lazy(), actions_for([symbol])).collect()
    assert adjusted.columns == bars.columns and adjusted.schema == bars.schema
    assert adjusted["ts"].to_list() == bars["ts"].to_list()  # order kept
    prev = on(adjusted, before)
    assert prev["close"] == pytest.approx(close_before / ratio)
    assert abs(open_ex / prev["close"] - 1) < 0.03  # small overnight move
    assert prev["volume"] == raw_prev["volume"] * ratio
    assert prev["deliverable_volume"] == raw_prev["deliverable_volume"] * ratio
    assert prev["vwap"] == pytest.approx(raw_prev["vwap"] / ratio)
    # the ex-date bar and everything after it are untouched
    after = bars.filter(pl.col("ts").dt.date() >= ex_date)
    assert adjusted.filter(pl.col("ts").dt.date() >= ex_date).equals(after)


def test_back_adjust_leaves_other_symbols_and_dividends_alone(sample_dir: Path) -> None:
    maruti = sample_bars(sample_dir, "MARUTI")
    jsw = sample_bars(sample_dir, "JSWSTEEL")
    both = pl.concat([maruti, jsw])
    dividend = CorporateAction("MARUTI", date(2015, 7, 1), "dividend", 1.0, 25.0)
    adjusted = back_adjust(both.lazy(), [*actions_for(None), dividend]).collect()
    assert adjusted.filter(pl.col("symbol") == "MARUTI").equals(maruti)
    assert back_adjust(both.lazy(), [dividend]).collect().equals(both)
    assert back_adjust(both.lazy(), []).collect().equals(both)


def test_back_adjust_compounds_successive_and_same_day_actions() -> None:
    days = [date(2020, 1, d) for d in (1, 2, 3, 6)]
    bars = pl.DataFrame(
        {
            "symbol": ["ABC"] * 4,
            "ts": pl.Series(days).cast(pl.Datetime("us")).dt.replace_time_zone("Asia/Kolkata"),
            "open": [400.0, 200.0, 100.0, 100.0],
            "high": [400.0, 200.0, 100.0, 100.0],
            "low": [400.0, 200.0, 100.0, 100.0],
            "close": [400.0, 200.0, 100.0, 100.0],
            "volume": [1, 3, 5, 7],
            "prev_close": [400.0, 400.0, 200.0, 100.0],
            "oi": [10, 10, 10, 10],
            "trades": [9, 9, 9, 9],
        },
        schema_overrides={"volume": pl.Int64, "oi": pl.Int64, "trades": pl.Int64},
    )
    actions = [
        CorporateAction("ABC", date(2020, 1, 2), "bonus", 2.0, 0.0),
        CorporateAction("ABC", date(2020, 1, 3), "split", 2.0, 0.0),
        CorporateAction("ABC", date(2020, 1, 6), "split", 1.0, 0.0),  # a no-op ratio
        CorporateAction("XYZ", date(2020, 1, 3), "split", 5.0, 0.0),
    ]
    out = back_adjust(bars.lazy(), actions).collect()
    assert out["close"].to_list() == [100.0, 100.0, 100.0, 100.0]
    assert out["prev_close"].to_list() == [100.0, 200.0, 200.0, 100.0]
    assert out["volume"].to_list() == [4, 6, 5, 7]
    assert out["oi"].to_list() == [40, 20, 10, 10]
    assert out["trades"].to_list() == [9, 9, 9, 9]  # a count of trades does not scale
    assert out.schema == bars.schema
