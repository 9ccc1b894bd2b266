"""Instrument master (lots), tick sizes and rounding, derivative expiries."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError
from quantcli.market import instruments as ins
from quantcli.market import segments
from quantcli.market.instruments import (
    ROUND_DOWN,
    ROUND_NEAREST,
    ROUND_UP,
    Instrument,
    expiries,
    expiry_weekday,
    instrument_master,
    load_lot_file,
    load_master_csv,
    lot_size,
    monthly_expiry_nominal,
    round_to_lot,
    round_to_tick,
    round_to_tick_kernel,
    tick_size,
    tick_sizes,
)

INDICES = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50")

# --------------------------------------------------------------------------- lot sizes


@pytest.mark.parametrize(
    ("day", "lots"),
    [
        # facts doc: before 2024-11-20
        (date(2024, 11, 19), (25, 15, 25, 50, 10)),
        # from 2024-11-20 (monthlies switched after the 2025-01-30 expiry, per NSE's table)
        (date(2025, 2, 14), (75, 30, 65, 120, 25)),
        # July 2025 expiries: BANKNIFTY 35, MIDCPNIFTY 140
        (date(2025, 7, 15), (75, 35, 65, 140, 25)),
        # January 2026 expiries
        (date(2026, 1, 15), (65, 30, 60, 120, 25)),
    ],
)
def test_index_lot_sizes_match_the_facts_doc(day: date, lots: tuple[int, ...]) -> None:
    assert tuple(lot_size(s, day, "futures") for s in INDICES) == lots


@pytest.mark.parametrize(
    ("symbol", "day", "lot"),
    [
        ("NIFTY", date(2024, 4, 25), 50),  # April 2024 monthly keeps 50
        ("NIFTY", date(2024, 4, 26), 25),  # first contracts with 25
        ("NIFTY", date(2025, 1, 30), 25),  # last monthly with the old lot
        ("NIFTY", date(2025, 1, 31), 75),
        ("NIFTY", date(2025, 12, 30), 75),
        ("NIFTY", date(2025, 12, 31), 65),
        ("NIFTY", date(2020, 8, 3), 75),
        ("NIFTY", date(2021, 6, 24), 75),  # June 2021 monthly keeps 75 (circular 2021-03-31)
        ("NIFTY", date(2021, 6, 25), 50),
        ("BANKNIFTY", date(2023, 6, 29), 25),
        ("BANKNIFTY", date(2023, 6, 30), 15),
        ("FINNIFTY", date(2024, 6, 28), 25),
        ("RELIANCE", date(2020, 8, 3), 505),
        ("RELIANCE", date(2023, 3, 1), 250),
        ("RELIANCE", date(2026, 11, 25), 500),
        ("INFY", date(2022, 12, 29), 300),
        ("INFY", date(2022, 12, 30), 400),
        ("maruti", date(2026, 11, 25), 50),
        ("JSWSTEEL", date(2021, 3, 1), 2700),
        ("BAJAJ-AUTO", date(2026, 9, 1), 75),
    ],
)
def test_lot_size_boundaries(symbol: str, day: date, lot: int) -> None:
    assert lot_size(symbol, day, "options") == lot


@pytest.mark.parametrize("segment", ["equity", "delivery", "intraday", "EQUITY"])
def test_equity_cash_lot_is_one(segment: str) -> None:
    assert lot_size("ANYTHING", date(2020, 1, 1), segment) == 1


def test_lot_size_errors() -> None:
    with pytest.raises(UsageError, match="unknown segment"):
        lot_size("NIFTY", date(2025, 1, 1), "commodity")
    with pytest.raises(NotFoundError, match="NOSUCH"):
        lot_size("NOSUCH", date(2025, 1, 1), "futures")
    with pytest.raises(CoverageError, match="RELIANCE on 2024-01-01"):
        lot_size("RELIANCE", date(2024, 1, 1), "futures")
    with pytest.raises(CoverageError):
        lot_size("NIFTY", date(2019, 1, 1), "futures")


def test_bundled_master_windows_sit_on_expiry_boundaries() -> None:
    master = instrument_master()
    assert {i.symbol for i in master} >= {*INDICES, "RELIANCE", "INFY", "MARUTI", "JSWSTEEL"}
    for inst in master:
        assert inst.segment == "derivatives" and inst.lot_size > 0 and inst.source
        if inst.valid_to is not None:
            end = inst.valid_to
            assert end == monthly_expiry_nominal(end.year, end.month), inst
        if (inst.symbol, inst.valid_from) != ("NIFTYNXT50", date(2024, 4, 24)):  # launch day
            before = inst.valid_from - timedelta(days=1)
            assert before == monthly_expiry_nominal(before.year, before.month), inst


def test_instrument_covers() -> None:
    inst = Instrument("X", "derivatives", 10, None, date(2024, 1, 1), None, "test")
    assert inst.covers(date(2030, 1, 1)) and not inst.covers(date(2023, 12, 31))
    assert inst.price_band is None


MASTER_HEADER = "symbol,segment,lot_size,tick_size,price_band,valid_from,valid_to,source\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_master_csv_reads_comments_blanks_and_optional_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv",
        "# comment\n"
        + MASTER_HEADER
        + "abc,Derivatives,100,0.05,20,2024-01-01,2024-06-30,x\n\n"
        + "ABC,derivatives,50,,,2024-07-01,,y\n",
    )
    rows = load_master_csv(path)
    assert rows[0] == Instrument(
        "ABC", "derivatives", 100, 0.05, date(2024, 1, 1), date(2024, 6, 30), "x", 20.0
    )
    assert rows[1].valid_to is None and rows[1].tick_size is None
    assert lot_size("ABC", date(2025, 1, 1), "futures", master=rows) == 50


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("symbol,segment\n", "missing columns lot_size"),
        ("ABC,derivatives,x,,,2024-01-01,,s\n", "lot_size 'x' is not an integer"),
        ("ABC,derivatives,0,,,2024-01-01,,s\n", "lot_size must be positive"),
        ("ABC,derivatives,10,-1,,2024-01-01,,s\n", "tick_size must be a positive number"),
        ("ABC,derivatives,10,abc,,2024-01-01,,s\n", "tick_size 'abc' is not a number"),
        ("ABC,derivatives,10,,,2024-13-01,,s\n", "valid_from '2024-13-01' is not a YYYY-MM-DD"),
        (",derivatives,10,,,2024-01-01,,s\n", "symbol is empty"),
        ("ABC,derivatives,10,,,2024-02-01,2024-01-01,s\n", "valid_to is before valid_from"),
        ("ABC,derivatives,10\n", "expected 8 fields, found 3"),
    ],
)
def test_load_master_csv_errors(tmp_path: Path, body: str, message: str) -> None:
    text = body if body.startswith("symbol") else MASTER_HEADER + body
    path = write(tmp_path / "m.csv", text)
    with pytest.raises(DataError, match=message) as err:
        load_master_csv(path)
    assert str(path) in err.value.message


def test_load_master_csv_rejects_overlaps_empty_and_missing(tmp_path: Path) -> None:
    overlap = MASTER_HEADER + "A,derivatives,1,,,2024-01-01,,s\nA,derivatives,2,,,2024-06-01,,s\n"
    with pytest.raises(DataError, match="overlapping derivatives rows for A from 2024-06-01"):
        load_master_csv(write(tmp_path / "o.csv", overlap))
    with pytest.raises(DataError, match="empty instrument master"):
        load_master_csv(write(tmp_path / "e.csv", "# only a comment\n"))
    with pytest.raises(NotFoundError, match="no such file"):
        load_master_csv(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="cannot read as UTF-8"):
        load_master_csv(tmp_path / "bin.csv")


# --------------------------------------------------------------------------- fo_mktlots loader

# NSE's layout: space-padded cells, index rows, a stock section row, long-dated columns after
# the three serial months (values from the NOV-22 file, trimmed).
FO_ROWS = [
    ["UNDERLYING", "SYMBOL", "NOV-22", "DEC-22", "JAN-23", "MAR-23", "JUN-23"],
    ["NIFTY BANK", "BANKNIFTY", "25", "25", "25", "25", "25"],
    ["NIFTY 50", "NIFTY", "50", "50", "50", "50", "50"],
    ["Derivatives on Individual Securities", "Symbol", "NOV-22", "DEC-22", "JAN-23", "", ""],
    ["INFOSYS LIMITED", "INFY", "300", "300", "400", "", ""],
    ["JSW STEEL LIMITED", "JSWSTEEL", "1350", "1350", "1350", "", ""],
    ["GUJARAT STATE PETRO LTD", "GSPL", "2500", "", "", "", ""],
]


def nse_line(cells: list[str]) -> str:
    """Pad cells the way NSE's file does (36, 10 and 11 characters wide)."""
    widths = [36, 10] + [11] * (len(cells) - 2)
    return ",".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


FO_MKTLOTS = "".join(nse_line(row) + "\n" for row in FO_ROWS)


def test_load_lot_file_builds_expiry_windows(tmp_path: Path) -> None:
    rows = load_lot_file(write(tmp_path / "fo_mktlots.csv", FO_MKTLOTS))
    by_symbol: dict[str, list[Instrument]] = {}
    for inst in rows:
        by_symbol.setdefault(inst.symbol, []).append(inst)
    (nifty,) = by_symbol["NIFTY"]  # MAR-23/JUN-23 long-dated columns are not used
    assert (nifty.lot_size, nifty.valid_from, nifty.valid_to) == (
        50,
        date(2022, 10, 28),
        date(2023, 1, 26),
    )
    assert nifty.source == "fo_mktlots.csv NOV-22..JAN-23"
    infy = by_symbol["INFY"]
    assert [(i.lot_size, i.valid_from, i.valid_to) for i in infy] == [
        (300, date(2022, 10, 28), date(2022, 12, 29)),
        (400, date(2022, 12, 30), date(2023, 1, 26)),
    ]
    (gspl,) = by_symbol["GSPL"]
    assert gspl.valid_to == date(2022, 11, 24)
    # the loaded rows agree with the bundled master where both have figures
    for symbol in ("NIFTY", "INFY", "JSWSTEEL", "BANKNIFTY"):
        for day in (date(2022, 11, 1), date(2023, 1, 10)):
            assert lot_size(symbol, day, "futures", master=rows) == lot_size(symbol, day, "futures")


def test_load_lot_file_section_row_without_months_and_gapped_lots(tmp_path: Path) -> None:
    text = (
        "UNDERLYING,SYMBOL,AUG-26,SEP-26,OCT-26\n"
        "NIFTY 50,NIFTY,65,65,65\n"
        "Derivatives on Individual Securities,,,\n"
        "RELIANCE INDUSTRIES LTD,RELIANCE,500,,500\n"
        " , , , \n"
        "\n"
    )
    rows = load_lot_file(write(tmp_path / "lots.csv", text))
    reliance = [i for i in rows if i.symbol == "RELIANCE"]
    assert [(i.valid_from, i.valid_to) for i in reliance] == [
        (date(2026, 7, 29), date(2026, 8, 25)),
        (date(2026, 9, 30), date(2026, 10, 27)),
    ]


@pytest.mark.parametrize(
    ("text", "message", "row"),
    [
        ("SYMBOL,LOT\nA,1\n", "not an NSE market-lots file", 1),
        ("UNDERLYING,SYMBOL,NOV-2022\n", "bad expiry month 'NOV-2022'", 1),
        ("UNDERLYING,SYMBOL,,\n", "no expiry month columns", 1),
        ("UNDERLYING,SYMBOL,NOV-22\nX,ABC,lots\n", "ABC: lot size 'lots' is not an integer", 2),
        ("UNDERLYING,SYMBOL,NOV-22\nX,,10\n", "missing SYMBOL", 2),
        ("UNDERLYING,SYMBOL,NOV-22\nDerivatives on Individual Securities,Symbol,XYZ\n", "bad", 2),
    ],
)
def test_load_lot_file_errors(tmp_path: Path, text: str, message: str, row: int) -> None:
    path = write(tmp_path / "lots.csv", text)
    with pytest.raises(DataError, match=message) as err:
        load_lot_file(path)
    assert err.value.path == str(path) and err.value.row == row


def test_load_lot_file_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty market-lots file"):
        load_lot_file(write(tmp_path / "lots.csv", "\n\n"))


# --------------------------------------------------------------------------- ticks


@pytest.mark.parametrize(
    ("price", "day", "kind", "tick"),
    [
        (100.0, date(2024, 6, 7), "equity", 0.05),  # before 2024-06-10: 0.05 for all
        (100.0, date(2024, 6, 10), "equity", 0.01),
        (249.99, date(2024, 6, 10), "equity", 0.01),
        (250.0, date(2024, 6, 10), "equity", 0.05),
        (100.0, date(2024, 7, 5), "stock_futures", 0.05),  # futures followed on 2024-07-08
        (100.0, date(2024, 7, 8), "stock_futures", 0.01),
        (4_000.0, date(2025, 4, 15), "stock_futures", 0.10),
        (25_000.0, date(2025, 4, 14), "equity", 0.05),
        (249.99, date(2025, 4, 15), "equity", 0.01),
        (250.0, date(2025, 4, 15), "equity", 0.05),
        (1_000.0, date(2025, 4, 15), "equity", 0.05),  # ">1,000-5,000" starts above 1,000
        (1_000.05, date(2025, 4, 15), "equity", 0.10),
        (5_000.0, date(2025, 4, 15), "equity", 0.10),
        (5_000.5, date(2025, 4, 15), "equity", 0.50),
        (10_000.0, date(2025, 4, 15), "equity", 0.50),
        (20_000.0, date(2025, 4, 15), "equity", 1.00),
        (20_001.0, date(2025, 4, 15), "equity", 5.00),
        (24_000.0, date(2025, 1, 1), "index_futures", 0.05),
        (15_000.0, date(2025, 6, 1), "index_futures", 0.05),
        (30_000.0, date(2025, 6, 1), "index_futures", 0.10),
        (24_000.0, date(2025, 6, 1), "index_futures", 0.10),
        (55_000.0, date(2025, 6, 1), "index_futures", 0.20),
        (3.5, date(2026, 1, 1), "options", 0.05),
        (0.0, date(2026, 1, 1), "equity", 0.01),
    ],
)
def test_tick_size(price: float, day: date, kind: str, tick: float) -> None:
    assert tick_size(price, day, kind) == tick


def test_tick_size_errors() -> None:
    with pytest.raises(UsageError, match="unknown tick kind"):
        tick_size(100.0, date(2025, 1, 1), "bonds")
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(DataError, match="price must be finite"):
            tick_size(bad, date(2025, 1, 1))
    with pytest.raises(DataError, match="prices must be finite"):
        tick_sizes(np.array([1.0, math.nan]), date(2025, 1, 1))
    with pytest.raises(DataError):
        tick_sizes(np.array([-1.0]), date(2025, 1, 1))
    assert tick_sizes(np.array([], dtype=np.float64), date(2025, 1, 1)).shape == (0,)


prices = st.floats(min_value=0.0, max_value=100_000.0, allow_nan=False)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2027, 12, 31))
kinds = st.sampled_from(sorted(ins.TICK_SCHEDULES))


@given(st.lists(prices, max_size=30), days, kinds)
def test_tick_sizes_matches_scalar(values: list[float], day: date, kind: str) -> None:
    vector = tick_sizes(np.array(values, dtype=np.float64), day, kind)
    assert vector.tolist() == [tick_size(p, day, kind) for p in values]


@given(days, kinds)
def test_tick_tables_change_only_on_the_schedules_change_dates(day: date, kind: str) -> None:
    # Between two change dates one table holds, and it gives tick_size's ticks.
    changes = ins.tick_changes(kind)
    assert list(changes) == sorted(changes)
    assert list(changes) == [era[0] for era in ins.TICK_SCHEDULES[kind][1:]]
    era_start = max([c for c in changes if c <= day], default=date(2000, 1, 1))
    assert ins.tick_table(day, kind) == ins.tick_table(max(era_start, date(2000, 1, 1)), kind)
    bounds, ticks = ins.tick_table(day, kind)
    assert len(ticks) == len(bounds) + 1
    for k, tick in enumerate(ticks):
        price = bounds[k] if k < len(bounds) else 1e6
        assert tick_size(price, day, kind) == tick
    with pytest.raises(UsageError, match="unknown tick kind 'bonds'"):
        ins.tick_changes("bonds")


def test_segment_rules_and_their_errors() -> None:
    rules = {s: segments.segment_rules(s) for s in ("delivery", "intraday", "futures", "options")}
    assert [r.funding for r in rules.values()] == ["cash", "margin", "margin", "premium"]
    assert [r.shortable for r in rules.values()] == [False, True, True, True]
    assert [r.marked_to_market for r in rules.values()] == [False, False, True, False]
    assert [r.square_off for r in rules.values()] == [None, segments.MIS_SQUARE_OFF, None, None]
    with pytest.raises(UsageError, match="unknown segment 'bonds'"):
        segments.segment_rules("bonds")


def test_lot_rows_are_the_masters_windows_in_date_order() -> None:
    assert ins.lot_rows("RELIANCE", "delivery") == ()
    rows = ins.lot_rows("nifty", "futures")
    assert [r.valid_from for r in rows] == sorted(r.valid_from for r in rows)
    for row in rows:
        assert lot_size("NIFTY", row.valid_from, "futures") == row.lot_size
    with pytest.raises(NotFoundError, match="no derivative lot size known for NOSUCH"):
        ins.lot_rows("NOSUCH", "options")
    with pytest.raises(UsageError, match="unknown segment 'commodity'"):
        ins.lot_rows("NIFTY", "commodity")


# --------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("price", "tick", "mode", "expected"),
    [
        (100.15, 0.05, "nearest", 100.15),
        (100.149, 0.05, "nearest", 100.15),
        (100.124, 0.05, "nearest", 100.1),
        (100.125, 0.05, "nearest", 100.15),  # halves go up
        (100.11, 0.05, "up", 100.15),
        (100.19, 0.05, "down", 100.15),
        (100.15, 0.05, "up", 100.15),  # 100.15 / 0.05 is 2002.9999999999998 in floats
        (100.15, 0.05, "down", 100.15),
        (0.07, 0.01, "nearest", 0.07),
        (20_003.0, 5.0, "nearest", 20_005.0),
        (1_234.56, 0.1, "down", 1_234.5),
        (-3.02, 0.05, "nearest", -3.0),
        (-3.025, 0.05, "nearest", -3.05),  # halves away from zero
        (100.0 * 1.0005, 0.05, "up", 100.05),  # 100.05000000000001: binary noise, not a tick
        (100.15 - 1e-12, 0.05, "down", 100.15),
        (100.15 + 1e-6, 0.05, "up", 100.2),
        (37_457.99, 0.0025, "down", 37_457.99),  # a quotient too large for the snap
        (20_566.635, 0.005, "nearest", 20_566.635),
        (1e-300, 0.05, "up", 0.0),
    ],
)
def test_round_to_tick(price: float, tick: float, mode: str, expected: float) -> None:
    assert round_to_tick(price, tick, mode) == expected


def test_round_to_tick_kernel_skips_a_missing_tick() -> None:
    assert round_to_tick_kernel(100.07, 0.0, ROUND_UP) == 100.07
    assert round_to_tick_kernel(100.07, math.nan, ROUND_DOWN) == 100.07
    assert math.isnan(round_to_tick_kernel(math.nan, 0.05, ROUND_NEAREST))
    assert round_to_tick_kernel.py_func(100.0, 5e-324, ROUND_UP) == 100.0  # uncountable
    assert math.copysign(1.0, round_to_tick(-0.01, 0.05)) == -1.0  # -0.0, like a decimal


def test_round_to_tick_errors() -> None:
    with pytest.raises(UsageError, match="unknown rounding mode"):
        round_to_tick(1.0, 0.05, "banker")
    with pytest.raises(UsageError, match="tick must be a positive number"):
        round_to_tick(1.0, 0.0)
    with pytest.raises(UsageError):
        round_to_tick(1.0, math.nan)
    with pytest.raises(DataError, match="price must be finite"):
        round_to_tick(math.inf, 0.05)


ticks = st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0])
modes = st.sampled_from(["nearest", "up", "down"])


@given(prices, ticks, modes)
def test_round_to_tick_properties(price: float, tick: float, mode: str) -> None:
    rounded = round_to_tick(price, tick, mode)
    assert round_to_tick(rounded, tick, mode) == rounded  # idempotent
    steps = rounded / tick
    assert abs(steps - round(steps)) < 1e-6  # a multiple of the tick
    slack = 1e-9 * max(1.0, abs(price))
    if mode == "nearest":
        assert abs(rounded - price) <= tick / 2 + slack
    elif mode == "up":
        assert price - slack <= rounded < price + tick + slack
    else:
        assert price - tick - slack < rounded <= price + slack


@pytest.mark.parametrize(
    ("quantity", "lot", "expected"),
    [(149, 75, 75), (150, 75, 150), (74, 75, 0), (-149, 75, -75), (0, 25, 0), (7, 1, 7)],
)
def test_round_to_lot(quantity: int, lot: int, expected: int) -> None:
    assert round_to_lot(quantity, lot) == expected


def test_round_to_lot_rejects_bad_lot() -> None:
    for bad in (0, -25):
        with pytest.raises(UsageError, match="lot must be a positive integer"):
            round_to_lot(100, bad)


@given(st.integers(-(10**9), 10**9), st.integers(1, 5_000))
def test_round_to_lot_properties(quantity: int, lot: int) -> None:
    rounded = round_to_lot(quantity, lot)
    assert round_to_lot(rounded, lot) == rounded
    assert rounded % lot == 0
    assert abs(rounded) <= abs(quantity) < abs(rounded) + lot
    assert rounded == 0 or (rounded > 0) == (quantity > 0)


# --------------------------------------------------------------------------- expiries


def test_monthly_expiry_nominal_and_weekday() -> None:
    assert monthly_expiry_nominal(2024, 5) == date(2024, 5, 30)  # Thursday
    assert monthly_expiry_nominal(2025, 8) == date(2025, 8, 28)  # last Thursday before the switch
    assert monthly_expiry_nominal(2025, 9) == date(2025, 9, 30)  # Tuesday from 2025-09-01
    assert monthly_expiry_nominal(2025, 12) == date(2025, 12, 30)
    assert expiry_weekday(date(2025, 8, 31)) == 3 and expiry_weekday(date(2025, 9, 1)) == 1


def test_monthly_expiries_roll_back_on_holidays() -> None:
    got = expiries("NIFTY", date(2023, 3, 1), date(2023, 7, 31))
    # 2023-03-30 and 2023-06-29 were NSE holidays: expiry on the previous session
    assert got == [
        date(2023, 3, 29),
        date(2023, 4, 27),
        date(2023, 5, 25),
        date(2023, 6, 28),
        date(2023, 7, 27),
    ]
    assert expiries("RELIANCE", date(2026, 11, 1), date(2026, 11, 30)) == [date(2026, 11, 23)]
    # 2024-03-28 was a session (Good Friday 2024-03-29 was the holiday): no roll-back
    assert expiries("NIFTY", date(2024, 3, 1), date(2024, 3, 31)) == [date(2024, 3, 28)]


def test_monthly_expiries_match_circular_dates() -> None:
    # expiry dates named in the NSE lot-size circulars (see instruments.csv sources)
    got = expiries("NIFTY", date(2024, 5, 1), date(2025, 12, 31))
    for day in (date(2024, 5, 30), date(2025, 1, 30), date(2025, 2, 27), date(2025, 12, 30)):
        assert day in got
    assert date(2025, 7, 31) in expiries("BANKNIFTY", date(2025, 7, 1), date(2025, 7, 31))


def test_weekly_expiries_nifty() -> None:
    august = expiries("NIFTY", date(2024, 8, 1), date(2024, 8, 31), weekly=True)
    # 2024-08-15 (Independence Day) rolls back to Wednesday 2024-08-14
    assert august == [
        date(2024, 8, 1),
        date(2024, 8, 8),
        date(2024, 8, 14),
        date(2024, 8, 22),
        date(2024, 8, 29),
    ]
    switch = expiries("NIFTY", date(2025, 8, 25), date(2025, 9, 10), weekly=True)
    assert switch == [date(2025, 8, 28), date(2025, 9, 2), date(2025, 9, 9)]
    # before weeklies existed only the monthly expiry remains
    assert expiries("NIFTY", date(2018, 1, 1), date(2018, 1, 31), weekly=True) == [
        date(2018, 1, 25)
    ]


def test_weekly_expiries_other_underlyings() -> None:
    assert expiries("RELIANCE", date(2026, 10, 1), date(2026, 10, 31), weekly=True) == [
        date(2026, 10, 27)
    ]
    assert expiries("BANKNIFTY", date(2024, 12, 1), date(2024, 12, 31), weekly=True) == [
        date(2024, 12, 26)
    ]
    with pytest.raises(CoverageError, match="weekly expiries of FINNIFTY"):
        expiries("FINNIFTY", date(2024, 1, 1), date(2024, 12, 31), weekly=True)


def test_expiries_edges() -> None:
    assert expiries("NIFTY", date(2024, 2, 1), date(2024, 1, 1)) == []
    # last month the calendar covers: no look-ahead into 2027
    assert expiries("NIFTY", date(2026, 12, 1), date(2026, 12, 31)) == [date(2026, 12, 29)]
    with pytest.raises(CoverageError):
        expiries("NIFTY", date(2027, 1, 1), date(2027, 2, 28))
