"""The NSE trading calendar: published holidays, special sessions, coverage, vectorised checks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError
from quantcli.market import calendar as cal
from quantcli.market.calendar import IST, Holiday, Override, Session


def d(text: str) -> date:
    return date.fromisoformat(text)


def ist(day: str, hhmm: str) -> datetime:
    return datetime.combine(d(day), time.fromisoformat(hhmm), IST)


# --- NSE's published holiday lists ------------------------------------------------------------
# Source for every list: the NSE circulars "Trading holidays for the calendar year YYYY" as
# summarised in /work/shared/docs/india-market-facts.md (2025: NSE/CMTR/65587 of 2024-12-13;
# 2024: ref. 59917 of 2023-12-26, plus 2024-01-22, 2024-05-20 and 2024-11-20 added later; 2026:
# 2026-01-15 added by the circular of 2026-01-12).

NSE_HOLIDAYS = {
    2023: [
        "2023-01-26", "2023-03-07", "2023-03-30", "2023-04-04", "2023-04-07", "2023-04-14",
        "2023-05-01", "2023-06-29", "2023-08-15", "2023-09-19", "2023-10-02", "2023-10-24",
        "2023-11-14", "2023-11-27", "2023-12-25",
    ],
    2024: [
        "2024-01-22", "2024-01-26", "2024-03-08", "2024-03-25", "2024-03-29", "2024-04-11",
        "2024-04-17", "2024-05-01", "2024-05-20", "2024-06-17", "2024-07-17", "2024-08-15",
        "2024-10-02", "2024-11-01", "2024-11-15", "2024-11-20", "2024-12-25",
    ],
    2025: [
        "2025-02-26", "2025-03-14", "2025-03-31", "2025-04-10", "2025-04-14", "2025-04-18",
        "2025-05-01", "2025-08-15", "2025-08-27", "2025-10-02", "2025-10-21", "2025-10-22",
        "2025-11-05", "2025-12-25",
    ],
    2026: [
        "2026-01-15", "2026-01-26", "2026-03-03", "2026-03-26", "2026-03-31", "2026-04-03",
        "2026-04-14", "2026-05-01", "2026-05-28", "2026-06-26", "2026-09-14", "2026-10-02",
        "2026-10-20", "2026-11-10", "2026-11-24", "2026-12-25",
    ],
}  # fmt: skip


def test_holidays_2023_match_nse() -> None:
    assert [str(h.day) for h in cal.holidays(2023)] == NSE_HOLIDAYS[2023]


def test_holidays_2024_match_nse() -> None:
    assert [str(h.day) for h in cal.holidays(2024)] == NSE_HOLIDAYS[2024]


def test_holidays_2025_match_nse() -> None:
    assert [str(h.day) for h in cal.holidays(2025)] == NSE_HOLIDAYS[2025]


def test_holidays_2026_match_nse() -> None:
    assert [str(h.day) for h in cal.holidays(2026)] == NSE_HOLIDAYS[2026]


@pytest.mark.parametrize("year", sorted(NSE_HOLIDAYS))
def test_published_years_have_names_and_are_closed(year: int) -> None:
    for holiday in cal.holidays(year):
        assert holiday.name and holiday.name != cal.UNNAMED_HOLIDAY
        assert holiday.day.weekday() < 5
        # A holiday is a session only when a Muhurat session runs that evening.
        assert cal.is_session(holiday.day) == (holiday.day in {d("2024-11-01"), d("2025-10-21")})


def test_holiday_names() -> None:
    assert Holiday(d("2024-01-22"), "Special holiday (Shri Ram Lalla Pran Pratishtha)") in (
        cal.holidays(2024)
    )
    assert Holiday(d("2012-11-13"), "Diwali Laxmi Pujan") in cal.holidays(2012)
    assert cal.holidays(2026)[0] == Holiday(
        d("2026-01-15"), "Municipal Corporation elections in Maharashtra"
    )


def test_years_before_the_table_use_xbom_with_a_generic_name() -> None:
    older = cal.holidays(2009)
    assert older and {h.name for h in older} == {cal.UNNAMED_HOLIDAY}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # exchange-calendars vs pandas 3.1
def test_xbom_alone_matches_the_lists_but_misses_every_special_session() -> None:
    """Why the override table exists: measured against exchange-calendars 4.13.2."""
    import exchange_calendars as xcals

    xbom = xcals.get_calendar("XBOM", start="1997-01-01")
    assert xbom.regular_holidays is None  # XBOM carries no holiday names
    for year, listed in NSE_HOLIDAYS.items():
        weekdays = pl.date_range(date(year, 1, 1), date(year, 12, 31), eager=True)
        closed = [str(x) for x in weekdays if x.weekday() < 5 and not xbom.is_session(x)]
        assert closed == listed
    for special in ("2023-11-12", "2024-01-20", "2024-03-02", "2024-05-18", "2025-02-01"):
        assert not xbom.is_session(special)
        assert cal.is_session(d(special))


# --- special sessions and hours -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "kind", "windows"),
    [
        ("2023-11-12", "muhurat", [("18:15", "19:15")]),
        ("2024-11-01", "muhurat", [("18:00", "19:00")]),
        ("2025-10-21", "muhurat", [("13:45", "14:45")]),
        ("2024-01-20", "special", [("09:15", "15:30")]),
        ("2024-03-02", "dr_drill", [("09:15", "10:00"), ("11:30", "12:30")]),
        ("2024-05-18", "dr_drill", [("09:15", "10:00"), ("11:30", "12:30")]),
        ("2025-02-01", "budget", [("09:15", "15:30")]),
        ("2026-02-01", "budget", [("09:15", "15:30")]),
        ("2026-01-16", "regular", [("09:15", "15:30")]),
        # Historical special sessions (sources in the override table).
        ("2012-04-28", "special", [("11:15", "12:45")]),  # NSE circular 032/2012
        ("2010-02-06", "special", [("11:00", "12:30")]),
        ("2014-03-22", "special", [("11:15", "12:45")]),
        ("2003-03-22", "special", [("11:00", "13:00")]),  # before the sample's first bar
        ("2004-04-17", "special", [("11:00", "12:04"), ("12:34", "14:00")]),  # halted 12:04
        ("2018-11-07", "muhurat", [("17:30", "18:30")]),
        ("2012-11-13", "muhurat", [("15:45", "17:00")]),  # a weekday XBOM keeps open all day
        ("2013-11-03", "muhurat", [("18:15", "19:30")]),
        # Normal days XBOM closes: NSE traded on 2004-01-01, and on 2013-11-14, not 11-15.
        ("2004-01-01", "regular", [("09:15", "15:30")]),
        ("2013-11-14", "regular", [("09:15", "15:30")]),
    ],
)
def test_session_hours(day: str, kind: str, windows: list[tuple[str, str]]) -> None:
    expected = tuple((ist(day, a), ist(day, b)) for a, b in windows)
    assert cal.session(d(day)) == Session(d(day), expected, kind)
    assert cal.session_open(d(day)) == expected[0][0]
    assert cal.session_close(d(day)) == expected[-1][1]
    assert cal.session_open(d(day)).utcoffset() == timedelta(hours=5, minutes=30)


def test_pre_open() -> None:
    assert cal.pre_open(d("2026-01-16")) == (ist("2026-01-16", "09:00"), ist("2026-01-16", "09:08"))
    assert cal.pre_open(d("2025-10-21")) == (ist("2025-10-21", "13:30"), ist("2025-10-21", "13:45"))
    assert cal.pre_open(d("2023-11-12")) is None  # not recorded in the table
    assert cal.pre_open(d("2012-04-28")) == (ist("2012-04-28", "11:00"), ist("2012-04-28", "11:08"))
    assert cal.pre_open(d("2004-04-17")) is None


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        ("2026-01-15", "Municipal Corporation elections in Maharashtra"),
        ("2024-05-20", "General elections to the Lok Sabha (Mumbai)"),
        ("2026-01-17", "Saturday"),
        ("2026-01-18", "Sunday"),
        ("2013-11-15", "Trading holiday"),  # XBOM's 2013-11-14 holiday, moved a day
    ],
)
def test_closed_days(day: str, reason: str) -> None:
    assert not cal.is_session(d(day))
    assert cal.closure_reason(d(day)) == reason
    with pytest.raises(NotFoundError, match=f"{day} is not an NSE session"):
        cal.session(d(day))
    with pytest.raises(NotFoundError):
        cal.settlement_date(d(day))


def test_next_and_previous_session() -> None:
    assert cal.next_session(d("2026-01-14")) == d("2026-01-16")
    assert cal.next_session(d("2026-01-31")) == d("2026-02-01")  # Sunday budget session
    assert cal.previous_session(d("2024-01-23")) == d("2024-01-20")
    assert cal.previous_session(d("2024-11-04")) == d("2024-11-01")  # Muhurat evening


def test_sessions_range() -> None:
    assert cal.sessions(d("2024-01-19"), d("2024-01-23")) == [
        d("2024-01-19"),
        d("2024-01-20"),
        d("2024-01-23"),
    ]
    assert cal.sessions(d("2024-01-21"), d("2024-01-22")) == []
    with pytest.raises(UsageError, match="after end"):
        cal.sessions(d("2024-02-01"), d("2024-01-01"))


@pytest.mark.parametrize(
    ("trade", "settles"),
    [
        ("2023-01-25", "2023-01-30"),  # T+2: 01-26 holiday, then Fri 01-27 and Mon 01-30
        ("2022-12-30", "2023-01-03"),  # T+2 over a weekend
        ("2023-01-27", "2023-01-30"),  # T+1 from 2023-01-27
        ("2024-01-19", "2024-01-23"),  # skips the Saturday session and the 01-22 holiday
        ("2024-03-01", "2024-03-04"),  # a DR-drill Saturday is a settlement holiday
        ("2024-03-02", "2024-03-04"),
        ("2024-11-01", "2024-11-04"),  # Muhurat trades settle on the next working day
        # NSE's note for the 2015 budget Saturday: trades of 02-27 and 02-28 settle on 03-03.
        ("2015-02-27", "2015-03-03"),
        ("2015-02-28", "2015-03-03"),
        # NDTV Profit on Diwali 2012: trades of 11-12 and of the 11-13 Muhurat hour settle
        # together on 11-16 (11-13 and 11-14 are holidays).
        ("2012-11-12", "2012-11-16"),
        ("2012-11-13", "2012-11-16"),
    ],
)
def test_settlement_date(trade: str, settles: str) -> None:
    assert cal.settlement_date(d(trade)) == d(settles)


# --- coverage ---------------------------------------------------------------------------------


def test_coverage() -> None:
    assert cal.coverage() == (d("1997-01-01"), d("2026-12-31"))
    assert cal.sessions(d("1997-01-01"), d("1997-01-03"))[0] == d("1997-01-01")


def test_beyond_coverage_is_an_error_not_a_guess() -> None:
    with pytest.raises(CoverageError) as info:
        cal.is_session(d("2027-01-04"))
    assert str(info.value).startswith(
        "2027-01-04 is beyond the NSE calendar's coverage (1997-01-01..2026-12-31); "
    )
    assert "2027 trading holidays are not in this calendar yet" in str(info.value)
    with pytest.raises(CoverageError, match="before the NSE calendar's coverage"):
        cal.is_session(d("1996-12-31"))
    with pytest.raises(CoverageError, match="no session after 2026-12-31"):
        cal.next_session(d("2026-12-31"))
    with pytest.raises(CoverageError, match="no session before 1997-01-01"):
        cal.previous_session(d("1997-01-01"))
    with pytest.raises(CoverageError, match="settlement day of 2026-12-31"):
        cal.settlement_date(d("2026-12-31"))
    with pytest.raises(CoverageError):
        cal.sessions(d("2026-12-01"), d("2027-01-31"))
    for year in (1996, 2027):
        with pytest.raises(CoverageError, match=f"year {year}"):
            cal.holidays(year)


def test_import_is_cheap() -> None:
    code = (
        "import sys\nimport quantcli.market.calendar\n"
        "print(','.join(m for m in ('exchange_calendars', 'pandas', 'polars') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- invariants (hypothesis) --------------------------------------------------------------------

days_in_coverage = st.dates(min_value=date(1997, 1, 1), max_value=date(2026, 12, 31))


@settings(max_examples=300, deadline=None)
@given(days_in_coverage)
def test_sessions_avoid_holidays_and_weekends_unless_special(day: date) -> None:
    if cal.is_session(day) and (day.weekday() >= 5 or cal.calendar().holidays.get(day)):
        assert day in cal.calendar().specials
    if day.weekday() < 5 and day not in cal.calendar().holidays:
        assert cal.is_session(day)


@settings(max_examples=300, deadline=None)
@given(days_in_coverage.filter(lambda x: date(1997, 1, 1) < x < date(2026, 12, 31)))
def test_next_previous_consistency(day: date) -> None:
    prev, nxt = cal.previous_session(day), cal.next_session(day)
    assert prev < day < nxt
    assert cal.next_session(prev) == (day if cal.is_session(day) else nxt)
    assert cal.previous_session(nxt) == (day if cal.is_session(day) else prev)
    assert not any(cal.is_session(prev + timedelta(days=i)) for i in range(1, (day - prev).days))


@settings(max_examples=200, deadline=None)
@given(days_in_coverage, st.integers(min_value=0, max_value=60))
def test_sessions_sorted_unique_and_complete(start: date, span: int) -> None:
    end = min(start + timedelta(days=span), date(2026, 12, 31))
    found = cal.sessions(start, end)
    assert found == sorted(set(found))
    every_day = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    assert found == [x for x in every_day if cal.is_session(x)]


# --- vectorised checks ----------------------------------------------------------------------------


def test_session_mask() -> None:
    days = pl.Series("day", [d("2026-01-15"), d("2026-01-16"), None, d("2026-02-01")], pl.Date)
    mask = cal.session_mask(days)
    assert mask.name == "day"
    assert mask.to_list() == [False, True, None, True]
    stamps = pl.Series([ist("2024-03-02", "09:15"), ist("2024-03-03", "09:15")])
    assert cal.session_mask(stamps).to_list() == [True, False]
    assert cal.session_mask(pl.Series([], dtype=pl.Date)).to_list() == []
    with pytest.raises(CoverageError, match="2027-01-01 is beyond"):
        cal.session_mask(pl.Series([d("2026-12-31"), d("2027-01-01")]))
    with pytest.raises(CoverageError, match="1996-12-31 is before"):
        cal.session_mask(pl.Series([d("1996-12-31")]))


BAR_CASES = [
    ("2026-01-16", "09:10", True),  # pre-open is not the normal market
    ("2026-01-16", "09:15", False),
    ("2026-01-16", "15:25", False),
    ("2026-01-16", "15:30", True),
    ("2026-01-15", "10:00", True),  # holiday
    ("2026-01-17", "10:00", True),  # Saturday
    ("2024-03-02", "09:55", False),
    ("2024-03-02", "10:00", True),  # between the DR drill's two windows
    ("2024-03-02", "11:30", False),
    ("2024-03-02", "12:25", False),
    ("2024-03-02", "12:30", True),
    ("2023-11-12", "18:10", True),
    ("2023-11-12", "18:15", False),
    ("2023-11-12", "19:10", False),
    ("2024-11-01", "09:15", True),  # Diwali: only the Muhurat hour trades
    ("2024-11-01", "18:00", False),
    ("2004-04-17", "12:10", True),  # trading halted 12:04-12:34
    ("2004-04-17", "12:35", False),
    ("2012-11-13", "10:00", True),  # Diwali 2012: only the afternoon Muhurat session
    ("2012-11-13", "16:00", False),
]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_bars_outside_sessions(unit: str) -> None:
    stamps = pl.Series("ts", [ist(a, b) for a, b, _ in BAR_CASES]).dt.cast_time_unit(unit)
    expected = [outside for _, _, outside in BAR_CASES]
    result = cal.bars_outside_sessions(stamps, "5m")
    assert result.name == "ts"
    assert result.to_list() == expected
    # The same instants in UTC, and as naive IST wall-clock times.
    assert cal.bars_outside_sessions(stamps.dt.convert_time_zone("UTC"), "5m").to_list() == (
        expected
    )
    naive = stamps.dt.replace_time_zone(None)
    assert cal.bars_outside_sessions(naive, "1m").to_list() == expected


def test_daily_bars_check_only_the_date() -> None:
    stamps = pl.Series([ist("2026-01-15", "00:00"), ist("2026-01-16", "00:00")])
    assert cal.bars_outside_sessions(stamps, "1d").to_list() == [True, False]


def test_bars_outside_sessions_errors() -> None:
    with pytest.raises(UsageError, match="unknown interval '2m'"):
        cal.bars_outside_sessions(pl.Series([ist("2026-01-16", "09:15")]), "2m")
    with pytest.raises(DataError, match="expected a Datetime series"):
        cal.bars_outside_sessions(pl.Series([1, 2]), "5m")
    with pytest.raises(CoverageError, match="2027-01-04 is beyond"):
        cal.bars_outside_sessions(pl.Series([ist("2027-01-04", "09:15")]), "5m")


def test_missing_sessions() -> None:
    days = pl.Series([d("2024-01-18"), d("2024-01-19"), d("2024-01-23")])
    assert cal.missing_sessions(days, d("2024-01-18"), d("2024-01-24")) == [
        d("2024-01-20"),
        d("2024-01-24"),
    ]
    stamps = pl.Series([ist("2024-01-20", "09:15"), ist("2024-01-23", "15:25")])
    assert cal.missing_sessions(stamps, d("2024-01-20"), d("2024-01-23")) == []


# --- the real intraday bars prove the override table --------------------------------------------


def test_real_intraday_bars_fit_the_calendar(shared_data: Path) -> None:
    for symbol in ("INFY", "RELIANCE"):
        frame = pl.read_csv(
            shared_data / "nse_intraday_5min" / f"{symbol}.csv", try_parse_dates=True
        )
        # Every bar of 2023-10-09, 2024-01-17 and 2024-04-26 is duplicated in the source; that
        # is the ingest's concern, so keep one copy of each bar.
        ts = frame["date"].dt.convert_time_zone("Asia/Kolkata").unique().sort()
        assert cal.bars_outside_sessions(ts, "5m").sum() == 0, symbol
        first, last = ts.min(), ts.max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        assert cal.missing_sessions(ts, first.date(), last.date()) == [], symbol
        per_day = ts.dt.date().value_counts(name="bars")
        bars = dict(zip(per_day["date"].to_list(), per_day["bars"].to_list(), strict=True))
        assert bars[d("2023-11-12")] == 12  # Muhurat, Sunday 18:15-19:15
        assert bars[d("2024-01-20")] == 75  # Saturday full session
        assert bars[d("2024-03-02")] == bars[d("2024-05-18")] == 21  # DR drills
        assert d("2024-01-22") not in bars and d("2024-05-20") not in bars


# Every session the real daily bars show is in the calendar (none is left unrecorded). These
# special sessions carry hours that no NSE circular or press report seen here confirms: they come
# from pandas_market_calendars PR #479/#481 (announced or observed session bounds) and the table
# flags them "HOURS UNVERIFIED" in their source.
UNVERIFIED_HOURS = {
    "2003-10-25", "2003-11-15", "2004-04-17", "2004-10-09", "2004-11-12", "2005-06-04",
    "2005-11-01", "2005-11-26", "2006-04-29", "2006-06-25", "2006-10-21", "2007-11-09",
    "2008-10-28", "2009-10-17", "2010-11-05", "2012-01-07", "2012-03-03", "2012-09-08",
    "2013-05-11", "2013-11-03",
}  # fmt: skip
DAILY_SYMBOLS = ("MARUTI", "JSWSTEEL", "BAJAJ-AUTO")


def _daily_days(folder: Path, symbol: str) -> pl.Series:
    return pl.read_csv(folder / f"{symbol}.csv")["Date"].str.to_date("%d-%m-%Y")


@pytest.mark.parametrize("symbol", DAILY_SYMBOLS)
def test_sample_daily_bars_fit_the_calendar(sample_dir: Path, symbol: str) -> None:
    """2003-2020 daily bars: every bar is on a session and only MARUTI's gap is missing."""
    days = _daily_days(sample_dir, symbol)
    assert days.filter(~cal.session_mask(days)).to_list() == []
    first, last = days.min(), days.max()
    assert isinstance(first, date) and isinstance(last, date)
    missing = cal.missing_sessions(days, first, last)
    # MARUTI's source file has a gap from 2013-12-27 to 2014-05-06 (it misses 2014-03-22 too).
    assert all(d("2013-12-27") <= x <= d("2014-05-06") for x in missing), symbol


def test_every_diwali_session_since_2003_has_a_bar(sample_dir: Path) -> None:
    days = set(_daily_days(sample_dir, "MARUTI").to_list())
    specials = cal.calendar().specials
    muhurat = sorted(x for x, row in specials.items() if row.kind == "muhurat" and x.year < 2020)
    assert [x.year for x in muhurat] == list(range(2003, 2020))  # one Diwali session a year
    assert set(muhurat) <= days
    # A Muhurat hour trades far less than a full day: under 30% of the year's median volume,
    # except 2003, the year MARUTI listed.
    frame = pl.read_csv(sample_dir / "MARUTI.csv").with_columns(
        day=pl.col("Date").str.to_date("%d-%m-%Y")
    )
    medians = frame.group_by(year=pl.col("day").dt.year()).agg(pl.col("Volume").median())
    median = dict(zip(medians["year"].to_list(), medians["Volume"].to_list(), strict=True))
    volume = dict(zip(frame["day"].to_list(), frame["Volume"].to_list(), strict=True))
    assert all(volume[x] < 0.3 * median[x.year] for x in muhurat if x.year > 2003)


def test_shared_daily_bars_fit_the_calendar(shared_data: Path) -> None:
    for symbol in DAILY_SYMBOLS:
        days = _daily_days(shared_data / "nse_daily", symbol)
        assert days.filter(~cal.session_mask(days)).to_list() == [], symbol
    index = pl.read_csv(shared_data / "nse_index_daily" / "NIFTY50.csv", try_parse_dates=True)
    assert index["Date"].filter(~cal.session_mask(index["Date"])).to_list() == []
    assert cal.missing_sessions(index["Date"], d("2015-01-01"), d("2019-08-30")) == []


def test_historical_special_sessions_are_sourced() -> None:
    """Pre-2019 sessions: hours cited from a circular or report, else flagged unverified."""
    rows = [r for r in cal.read_overrides() if r.day.year < 2019 and r.kind in cal.SESSION_KINDS]
    unverified = {str(r.day) for r in rows if r.source.startswith("HOURS UNVERIFIED")}
    assert unverified == UNVERIFIED_HOURS


# --- the override table and assembling ----------------------------------------------------------

HEADER = "date,kind,name,windows,pre_open,source\n"


def test_bundled_table_is_valid_and_cites_sources() -> None:
    rows = cal.read_overrides()
    assert rows and all(row.source for row in rows)
    assert {row.kind for row in rows} <= {"holiday", *cal.SESSION_KINDS}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2024-13-01,holiday,X,,,s\n", "bad date '2024-13-01'"),
        ("2024-03-01,closed,X,,,s\n", "unknown kind 'closed'"),
        ("2024-03-01,holiday,,,,s\n", "needs a name and a source"),
        ("2024-03-01,holiday,X,,,\n", "needs a name and a source"),
        ("2024-03-02,special,X,9:15-10:00,,s\n", "bad hours '9:15-10:00'"),
        ("2024-03-02,special,X,09:15-25:00,,s\n", "bad hours '09:15-25:00'"),
        ("2024-03-02,special,X,10:00-09:15,,s\n", "start is not before end"),
        ("2024-03-01,holiday,X,09:15-10:00,,s\n", "a holiday row has no hours"),
        ("2024-03-02,holiday,X,,,s\n", "falls on a weekend"),
        ("2024-03-02,special,X,,,s\n", "needs one or two windows"),
        ("2024-03-02,special,X,09:15-10:00 10:30-11:00 11:30-12:00,,s\n", "one or two windows"),
        ("2024-03-02,special,X,11:30-12:30 09:15-10:00,,s\n", "overlap or are unsorted"),
        ("2024-03-01,holiday,X,,,s\n2024-03-01,holiday,Y,,,s\n", "listed twice"),
        ("2027-01-01,holiday,X,,,s\n", "outside 1997-01-01..2026-12-31"),
        ("2024-03-01,regular,X,09:15-15:30,,s\n", "a regular row has no hours"),
        ("2024-03-01,holiday,X\n", "needs a name and a source"),
        ("2024-03-01,holiday,X,,,s,extra\n", "too many columns"),
        ("2024-03-02,regular,X,,,s\n", "regular day 2024-03-02 falls on a weekend"),
        ("2024-03-01,holiday,X,,,s\n2024-03-01,regular,Y,,,s\n", "listed twice"),
        ("2024-03-01,regular,X,,,s\n2024-03-01,holiday,Y,,,s\n", "listed twice"),
        ("2024-03-02,special,X,09:15-10:00,,s\n2024-03-02,budget,Y,09:15-15:30,,s\n", "twice"),
    ],
)
def test_bad_override_rows(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        cal.read_overrides(path)
    assert str(info.value).startswith(f"{path}:")


def test_bad_override_header(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text("date,kind,name\n", encoding="utf-8")
    with pytest.raises(DataError, match="expected columns"):
        cal.read_overrides(path)


def test_assemble_adds_holidays_and_special_sessions() -> None:
    monday, tuesday, saturday = d("2024-03-04"), d("2024-03-05"), d("2024-03-09")
    wednesday = d("2024-03-06")  # closed in the base calendar, reopened by a "regular" row
    base = [monday, tuesday]
    overrides = [
        Override(tuesday, "holiday", "Late-announced holiday", (), None, "circular"),
        Override(wednesday, "regular", "Trading day", (), None, "bars"),
        Override(
            saturday, "special", "Saturday session", ((time(9, 15), time(15, 30)),), None, "c"
        ),
    ]
    built = cal.assemble(base, overrides)
    assert monday in built.session_set and saturday in built.session_set
    assert tuesday not in built.session_set
    assert built.holidays[tuesday] == "Late-announced holiday"
    assert built.holidays[d("2024-03-01")] == cal.UNNAMED_HOLIDAY  # a weekday XBOM lacks
    assert saturday not in built.settlement_days and monday in built.settlement_days
    assert wednesday in built.settlement_days and wednesday not in built.holidays
    assert list(built.sessions) == sorted(built.session_set)


# --------------------------------------------------------------------------- XBOM session cache


def test_xbom_sessions_are_cached_and_rebuilt_when_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTCLI_CACHE_DIR", str(tmp_path / "cache"))
    built = cal.xbom_sessions()  # builds with exchange-calendars and writes the cache
    (path,) = (tmp_path / "cache").iterdir()
    assert path.name.startswith("xbom-") and path.read_text().endswith("end\n")
    assert cal.xbom_sessions() == built  # read back
    path.write_text(path.read_text()[:100])  # truncated: no end mark
    assert cal.xbom_sessions() == built and path.read_text().endswith("end\n")
    path.write_text("2024-01-02\n2024-01-01\nend\n")  # not sorted: rebuilt
    assert cal.xbom_sessions() == built


def test_xbom_sessions_without_a_writable_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("QUANTCLI_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert cal.xbom_sessions()[:2] == [date(1997, 1, 1), date(1997, 1, 2)]


def test_warm_cache_spares_exchange_calendars(tmp_path: Path) -> None:
    env = {**os.environ, "QUANTCLI_CACHE_DIR": str(tmp_path)}
    code = (
        "import sys\n"
        "from quantcli.market import calendar as c\n"
        "c.calendar()\n"
        "print('LOADED=' + ','.join(m for m in ('exchange_calendars', 'pandas') "
        "if m in sys.modules))\n"
    )
    argv = [sys.executable, "-c", code]
    runs = [
        subprocess.run(argv, env=env, capture_output=True, text=True, check=True) for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["LOADED=exchange_calendars,pandas", "LOADED="]


def test_fingerprint_changes_with_the_override_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cal.fingerprint()
    assert first == cal.fingerprint() and len(first) == 64
    edited = tmp_path / "overrides.csv"
    edited.write_bytes(cal.OVERRIDES_CSV.read_bytes() + b"\n")
    monkeypatch.setattr(cal, "OVERRIDES_CSV", edited)
    assert cal.fingerprint() != first
