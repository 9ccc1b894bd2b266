"""The charge stack: worked examples to the paisa, effective dating, profiles, the frame API.

Every expected number below is derived by hand from the published rates (the comments show the
arithmetic) and written as a literal, so the tests do not depend on the implementation. Rounding
as on a contract note: STT to the nearest rupee, the rest to the paisa, halves up; GST is 18% of
the rounded brokerage + exchange charge + SEBI fee; DP is Rs 13 + 18% GST = 15.34 per delivery
sell. Zerodha's tariff: delivery brokerage 0; intraday/futures min(0.03%, Rs 20); options Rs 20.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError
from quantcli.market import charges as ch
from quantcli.market.charges import (
    CHARGE_COMPONENTS,
    RATE_FIELDS,
    BrokerageRule,
    ChargeBreakdown,
    Segment,
    Side,
    breakeven_price,
    charge_rates,
    charges_frame,
    fill_charges,
    load_profile,
    load_rate_table,
    rate_coverage,
    rate_schedule,
    round_trip,
)

PRE = date(2023, 6, 1)  # before the 2024-10-01 revisions
POST = date(2025, 6, 2)  # after them

# (segment, side, quantity, price, day, (brokerage, stt, exchange, sebi, stamp, gst, dp), total)
WORKED = [
    # --- delivery, 2025-06-02: buy 100 @ 1500 (turnover 1,50,000) ---
    # STT 0.1% = 150; exchange 0.00297% = 4.455 -> 4.46; SEBI 0.0001% = 0.15;
    # stamp 0.015% = 22.50; GST 18% x (0 + 4.46 + 0.15) = 0.8298 -> 0.83; total 177.94
    ("delivery", "buy", 100, 1500, POST, (0, 150, 4.46, 0.15, 22.50, 0.83, 0), 177.94),
    # sell 100 @ 1520 (turnover 1,52,000): STT 152; exchange 4.5144 -> 4.51; SEBI 0.152 -> 0.15;
    # GST 18% x 4.66 = 0.8388 -> 0.84; DP 13 x 1.18 = 15.34; total 172.84
    ("delivery", "sell", 100, 1520, POST, (0, 152, 4.51, 0.15, 0, 0.84, 15.34), 172.84),
    # --- delivery, 2023-06-01 (exchange 0.00322%) ---
    # buy: exchange 150000 x 0.00322% = 4.83; GST 18% x 4.98 = 0.8964 -> 0.90; total 178.38
    ("delivery", "buy", 100, 1500, PRE, (0, 150, 4.83, 0.15, 22.50, 0.90, 0), 178.38),
    # sell: exchange 152000 x 0.00322% = 4.8944 -> 4.89; GST 18% x 5.04 = 0.9072 -> 0.91
    ("delivery", "sell", 100, 1520, PRE, (0, 152, 4.89, 0.15, 0, 0.91, 15.34), 173.29),
    # --- intraday, 2025-06-02 ---
    # buy 100 @ 1500: brokerage min(0.03% x 150000 = 45, 20) = 20; stamp 0.003% = 4.50;
    # GST 18% x (20 + 4.46 + 0.15) = 4.4298 -> 4.43; total 33.54
    ("intraday", "buy", 100, 1500, POST, (20, 0, 4.46, 0.15, 4.50, 4.43, 0), 33.54),
    # sell 100 @ 1520: STT 0.025% x 152000 = 38; GST 18% x 24.66 = 4.4388 -> 4.44; total 67.10
    ("intraday", "sell", 100, 1520, POST, (20, 38, 4.51, 0.15, 0, 4.44, 0), 67.10),
    # buy 10 @ 500 (turnover 5,000): brokerage 0.03% = 1.50 (under the cap);
    # exchange 0.1485 -> 0.15; SEBI 0.005 -> 0.01 (half up); stamp 0.15;
    # GST 18% x 1.66 = 0.2988 -> 0.30; total 2.11
    ("intraday", "buy", 10, 500, POST, (1.50, 0, 0.15, 0.01, 0.15, 0.30, 0), 2.11),
    # --- intraday, 2023-06-01 ---
    # buy: GST 18% x (20 + 4.83 + 0.15) = 4.4964 -> 4.50; total 33.98
    ("intraday", "buy", 100, 1500, PRE, (20, 0, 4.83, 0.15, 4.50, 4.50, 0), 33.98),
    # sell: GST 18% x 25.04 = 4.5072 -> 4.51; total 67.55
    ("intraday", "sell", 100, 1520, PRE, (20, 38, 4.89, 0.15, 0, 4.51, 0), 67.55),
    # --- futures, 2025-06-02 ---
    # buy 75 @ 24800 (turnover 18,60,000): brokerage min(558, 20) = 20;
    # exchange 0.00173% = 32.178 -> 32.18; SEBI 1.86; stamp 0.002% = 37.20;
    # GST 18% x 54.04 = 9.7272 -> 9.73; total 100.97
    ("futures", "buy", 75, 24800, POST, (20, 0, 32.18, 1.86, 37.20, 9.73, 0), 100.97),
    # sell 75 @ 24900 (turnover 18,67,500): STT 0.02% = 373.50 -> 374 (nearest rupee, half up);
    # exchange 32.30775 -> 32.31; SEBI 1.8675 -> 1.87; GST 18% x 54.18 = 9.7524 -> 9.75
    ("futures", "sell", 75, 24900, POST, (20, 374, 32.31, 1.87, 0, 9.75, 0), 437.93),
    # --- futures, 2023-06-01 ---
    # buy 50 @ 18500 (turnover 9,25,000): exchange 0.0019% = 17.575 -> 17.58;
    # SEBI 0.925 -> 0.93; stamp 18.50; GST 18% x 38.51 = 6.9318 -> 6.93; total 63.94
    ("futures", "buy", 50, 18500, PRE, (20, 0, 17.58, 0.93, 18.50, 6.93, 0), 63.94),
    # sell 50 @ 18600 (turnover 9,30,000): STT 0.0125% = 116.25 -> 116; exchange 17.67;
    # SEBI 0.93; GST 18% x 38.60 = 6.948 -> 6.95; total 161.55
    ("futures", "sell", 50, 18600, PRE, (20, 116, 17.67, 0.93, 0, 6.95, 0), 161.55),
    # --- options, 2025-06-02 (on premium) ---
    # buy 75 @ 120 (premium 9,000): brokerage flat 20; exchange 0.03503% = 3.1527 -> 3.15;
    # SEBI 0.009 -> 0.01; stamp 0.003% = 0.27; GST 18% x 23.16 = 4.1688 -> 4.17; total 27.60
    ("options", "buy", 75, 120, POST, (20, 0, 3.15, 0.01, 0.27, 4.17, 0), 27.60),
    # sell 75 @ 150 (premium 11,250): STT 0.1% = 11.25 -> 11; exchange 3.940875 -> 3.94;
    # SEBI 0.01125 -> 0.01; GST 18% x 23.95 = 4.311 -> 4.31; total 39.26
    ("options", "sell", 75, 150, POST, (20, 11, 3.94, 0.01, 0, 4.31, 0), 39.26),
    # --- options, 2023-06-01 ---
    # buy 50 @ 120 (premium 6,000): exchange 0.05% = 3.00; SEBI 0.006 -> 0.01; stamp 0.18;
    # GST 18% x 23.01 = 4.1418 -> 4.14; total 27.33
    ("options", "buy", 50, 120, PRE, (20, 0, 3.00, 0.01, 0.18, 4.14, 0), 27.33),
    # sell 50 @ 150 (premium 7,500): STT 0.0625% = 4.6875 -> 5; exchange 3.75; SEBI 0.0075 -> 0.01;
    # GST 18% x 23.76 = 4.2768 -> 4.28; total 33.04
    ("options", "sell", 50, 150, PRE, (20, 5, 3.75, 0.01, 0, 4.28, 0), 33.04),
    # --- 2026-04-06: Union Budget 2026 STT ---
    # futures sell 75 @ 24900: STT 0.05% x 18,67,500 = 933.75 -> 934; rest as on 2025-06-02
    ("futures", "sell", 75, 24900, date(2026, 4, 6), (20, 934, 32.31, 1.87, 0, 9.75, 0), 997.93),
    # options sell 75 @ 150: STT 0.15% x 11,250 = 16.875 -> 17; total 20+17+3.94+0.01+4.31
    ("options", "sell", 75, 150, date(2026, 4, 6), (20, 17, 3.94, 0.01, 0, 4.31, 0), 45.26),
    # --- 2019-06-03: futures STT 0.01%, SEBI Rs 10/crore ---
    # sell 75 @ 11900 (turnover 8,92,500): STT 89.25 -> 89; exchange 0.0019% = 16.9575 -> 16.96;
    # SEBI 0.8925 -> 0.89; GST 18% x 37.85 = 6.813 -> 6.81; total 133.66
    ("futures", "sell", 75, 11900, date(2019, 6, 3), (20, 89, 16.96, 0.89, 0, 6.81, 0), 133.66),
    # --- 2012-06-01: STT 0.125%, SEBI Rs 15/crore, service tax 12.36% ---
    # delivery sell 100 @ 500 (turnover 50,000): STT 62.5 -> 63; exchange 1.61;
    # SEBI 0.075 -> 0.08; tax 12.36% x 1.69 = 0.208884 -> 0.21; DP 13 x 1.1236 = 14.6068 -> 14.61
    ("delivery", "sell", 100, 500, date(2012, 6, 1), (0, 63, 1.61, 0.08, 0, 0.21, 14.61), 79.51),
    # --- 2020-09-01: SEBI fee halved to Rs 5/crore ---
    # intraday buy 100 @ 1000: exchange 3.22; SEBI 0.05; stamp 3.00;
    # GST 18% x 23.27 = 4.1886 -> 4.19; total 30.46
    ("intraday", "buy", 100, 1000, date(2020, 9, 1), (20, 0, 3.22, 0.05, 3.00, 4.19, 0), 30.46),
]


@pytest.mark.parametrize(("segment", "side", "qty", "price", "day", "parts", "total"), WORKED)
def test_worked_examples_to_the_paisa(segment, side, qty, price, day, parts, total) -> None:
    got = fill_charges(segment, side, qty, price, day)
    assert tuple(getattr(got, n) for n in CHARGE_COMPONENTS) == pytest.approx(parts, abs=1e-9)
    assert got.total == pytest.approx(total, abs=1e-9)


def test_round_trip_delivery() -> None:
    trip = round_trip(Segment.DELIVERY, 100, 1500, 1520, POST)
    # charges 177.94 + 172.84 = 350.78; gross 100 x 20 = 2000; net 1649.22
    assert trip.charges.total == pytest.approx(350.78)
    assert trip.gross_pnl == pytest.approx(2000.0)
    assert trip.net_pnl == pytest.approx(1649.22)
    # Breakeven sell 1503.49: turnover 1,50,349 -> STT 150, exchange 4.4654 -> 4.47, SEBI 0.15,
    # GST 18% x 4.62 = 0.8316 -> 0.83, DP 15.34: sell charges 170.79; 177.94 + 170.79 = 348.73
    # <= gross 349.00. At 1503.48 the gross is 348.00 < 348.73.
    assert trip.breakeven_sell_price == pytest.approx(1503.49)
    assert trip.breakeven_points == pytest.approx(3.49)
    assert trip.charges.to_dict()["stt"] == pytest.approx(302.0)


def test_breakeven_intraday_buy() -> None:
    # buy charges 33.54. Sell at 1501.01 (turnover 1,50,101): brokerage 20, STT 37.525 -> 38,
    # exchange 4.458 -> 4.46, SEBI 0.15, GST 4.43 = 67.04; gross 101 >= 100.58. At 1501.00 the
    # gross 100 < 100.58.
    assert breakeven_price("intraday", "buy", 100, 1500, POST) == pytest.approx(1501.01)


def test_breakeven_options_short() -> None:
    # sell 75 @ 100: 20 + STT 7.5 -> 8 + exchange 2.62725 -> 2.63 + SEBI 0.01 + GST 4.08 = 34.72.
    # Buy back at 99.17 (premium 7,437.75): 20 + 2.61 + 0.01 + stamp 0.22 + GST 4.07 = 26.91;
    # net 62.25 - 34.72 - 26.91 = 0.62 >= 0; at 99.18 net = 61.50 - 61.63 < 0.
    assert breakeven_price("options", Side.SELL, 75, 100, POST) == pytest.approx(99.17)


def test_breakeven_impossible_short() -> None:
    # 1 option sold at 0.05 cannot cover Rs 20 brokerage on each side
    assert breakeven_price("options", "sell", 1, 0.05, POST) is None


def test_breakeven_with_zero_charges_is_the_price() -> None:
    free = _profile_without_brokerage()
    # turnover 1 x 1 = 1: every statutory component rounds to 0 on both sides
    assert breakeven_price("futures", "buy", 1, 1.0, POST, free) == pytest.approx(1.0)


def test_no_breakeven_when_charges_outgrow_turnover() -> None:
    greedy = BrokerageRule(percent=200.0)
    profile = ch.BrokerProfile("greedy", greedy, greedy, greedy, greedy, dp=0.0)
    assert breakeven_price("intraday", "buy", 10, 100.0, POST, profile) is None
    trip = round_trip("intraday", 10, 100.0, 110.0, POST, profile)
    assert trip.breakeven_sell_price is None and trip.breakeven_points is None


def _profile_without_brokerage() -> ch.BrokerProfile:
    zero = BrokerageRule()
    return ch.BrokerProfile("free", zero, zero, zero, zero, dp=0.0)


def test_percent_profile() -> None:
    profile = load_profile("percent")
    # delivery buy 100 @ 1500: brokerage 0.5% = 750; GST 18% x (750 + 4.46 + 0.15) = 135.8298
    # -> 135.83; total 750 + 150 + 4.46 + 0.15 + 22.50 + 135.83 = 1062.94
    got = fill_charges("delivery", "buy", 100, 1500, POST, profile)
    assert got.brokerage == 750.0 and got.gst == pytest.approx(135.83)
    assert got.total == pytest.approx(1062.94)
    # DP Rs 20 + 18% = 23.60; options Rs 50 per order
    assert fill_charges("delivery", "sell", 1, 100, POST, profile).dp == pytest.approx(23.60)
    assert fill_charges("options", "buy", 75, 120, POST, profile).brokerage == 50.0


def test_effective_dating_boundaries() -> None:
    # futures sell 75 @ 24900: STT 0.0125% = 233.4375 -> 233 on 2024-09-30; 0.02% -> 374 a day on
    stt_before = fill_charges("futures", "sell", 75, 24900, date(2024, 9, 30)).stt
    stt_after = fill_charges("futures", "sell", 75, 24900, date(2024, 10, 1)).stt
    assert (stt_before, stt_after) == (233.0, 374.0)
    # delivery exchange 0.00322% -> 0.00297% on 2024-10-01 (rupees per 1,00,000 turnover)
    assert fill_charges("delivery", "buy", 1, 100000, date(2024, 9, 30)).exchange == 3.22
    assert fill_charges("delivery", "buy", 1, 100000, date(2024, 10, 1)).exchange == 2.97


def test_coverage() -> None:
    assert rate_coverage() == date(2010, 1, 1)
    fill_charges("delivery", "buy", 1, 100, date(2010, 1, 1))
    with pytest.raises(CoverageError, match="2009-12-31"):
        fill_charges("delivery", "buy", 1, 100, date(2009, 12, 31))


def test_charge_rates_vector() -> None:
    rates = charge_rates(Segment.INTRADAY, POST)
    assert rates.shape == (len(RATE_FIELDS),) and rates.dtype == np.float64
    named = dict(zip(RATE_FIELDS, rates.tolist(), strict=True))
    assert named["brokerage_rate"] == pytest.approx(0.0003)
    assert named["brokerage_cap"] == 20.0
    assert named["stt_sell"] == pytest.approx(0.00025)
    assert named["gst"] == pytest.approx(0.18)
    assert named["dp"] == 0.0
    assert charge_rates("delivery", POST)[RATE_FIELDS.index("dp")] == 13.0
    starts, table = rate_schedule(Segment.FUTURES, load_profile())
    assert starts[0] == np.datetime64("2010-01-01") and len(starts) == len(table)
    assert not table.flags.writeable


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bogus", "buy", 1, 1.0), "unknown segment"),
        (("delivery", "hold", 1, 1.0), "unknown side"),
        (("delivery", "buy", 0, 1.0), "quantity"),
        (("delivery", "buy", -5, 1.0), "quantity"),
        (("delivery", "buy", math.nan, 1.0), "quantity"),
        (("delivery", "buy", 1, 0.0), "price"),
        (("delivery", "buy", 1, math.inf), "price"),
    ],
)
def test_fill_charges_rejects_bad_input(args, message) -> None:
    with pytest.raises(UsageError, match=message):
        fill_charges(*args, POST)


def test_breakdown_arithmetic() -> None:
    a = ChargeBreakdown(1.1, 2, 0.1, 0.2, 0, 0.01, 0)
    b = ChargeBreakdown(0.1, 1, 0.2, 0.1, 1.5, 0.02, 15.34)
    assert (a + b).to_dict() == pytest.approx(
        {
            "brokerage": 1.2,
            "stt": 3,
            "exchange": 0.3,
            "sebi": 0.3,
            "stamp": 1.5,
            "gst": 0.03,
            "dp": 15.34,
            "total": 21.67,
        }
    )


# --------------------------------------------------------------------------- profiles

GOOD_PROFILE = """
name = "mine"
[delivery]
percent = 0.1
dp = 10
[intraday]
percent = 0.02
cap = 15
[futures]
flat = 5
percent = 0.01
[options]
flat = 10
"""


def test_profile_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD_PROFILE)
    profile = load_profile(str(path))
    assert profile.name == "mine" and profile.dp == 10.0
    assert profile.rule(Segment.INTRADAY) == BrokerageRule(percent=0.02, cap=15.0)
    # futures: flat 5 + 0.01% x 1,00,000 = 15 (no cap)
    assert fill_charges("futures", "buy", 1, 100000, POST, profile).brokerage == 15.0


def test_bundled_profiles() -> None:
    assert ch.bundled_profiles() == ("percent", "zerodha")
    zerodha = load_profile()
    assert zerodha is load_profile("zerodha")
    assert zerodha.options == BrokerageRule(flat=20.0)
    assert zerodha.intraday == BrokerageRule(percent=0.03, cap=20.0)
    assert zerodha.delivery == BrokerageRule() and zerodha.dp == 13.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = [", "malformed TOML"),
        ("extra = 1\n" + GOOD_PROFILE, "unknown key 'extra'"),
        (GOOD_PROFILE.replace("cap = 15", "ceiling = 15"), "unknown key 'intraday.ceiling'"),
        (GOOD_PROFILE.replace("flat = 10", "dp = 10"), "unknown key 'options.dp'"),
        (GOOD_PROFILE.replace("percent = 0.1", 'percent = "0.1"'), "delivery.percent"),
        (GOOD_PROFILE.replace("percent = 0.1", "percent = -0.1"), "delivery.percent"),
        (GOOD_PROFILE.replace("percent = 0.1", "percent = true"), "delivery.percent"),
        (GOOD_PROFILE.replace("cap = 15", "cap = inf"), "intraday.cap"),
        (GOOD_PROFILE.replace('name = "mine"', ""), "needs a string 'name'"),
        (GOOD_PROFILE.replace("[options]\nflat = 10", ""), "needs a table 'options'"),
    ],
)
def test_malformed_profile(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_profile(str(path))
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_unknown_profile() -> None:
    with pytest.raises(NotFoundError, match="unknown broker profile 'nope'"):
        load_profile("nope")
    with pytest.raises(NotFoundError, match="cannot read"):
        load_profile("/nonexistent/x.toml")


# --------------------------------------------------------------------------- rate table

HEADER = "component,segment,effective_from,percent,verified,source\n"


def _table_rows() -> str:
    rows = [
        f"{comp},all,2010-01-01,0.1,yes,x"
        for comp in ("stt_buy", "stt_sell", "exchange", "sebi", "stamp", "gst")
    ]
    return "\n".join(rows) + "\n"


def test_rate_table_minimal(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("# comment\n" + HEADER + _table_rows())
    table = load_rate_table(path)
    assert table.start == date(2010, 1, 1)
    assert table.series[("gst", Segment.OPTIONS)] == ((date(2010, 1, 1), 0.001),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a,b\n", "header must be"),
        (HEADER + "bogus,all,2010-01-01,1,yes,x\n", r"r\.csv:2: unknown component"),
        (HEADER + "sebi,cash,2010-01-01,1,yes,x\n", "unknown segment 'cash'"),
        (HEADER + "sebi,all,2010-13-01,1,yes,x\n", "bad effective_from"),
        (HEADER + "sebi,all,2010-01-01,x,yes,x\n", "bad effective_from or percent"),
        (HEADER + "sebi,all,2010-01-01,-1,yes,x\n", "percent must be >= 0"),
        (HEADER + "sebi,all,2010-01-01,1,yes,x\n", "no stt_buy rate"),
        (HEADER + _table_rows() + "sebi,delivery,2010-01-01,1,yes,x\n", "duplicate"),
    ],
)
def test_rate_table_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=message):
        load_rate_table(path)


def test_rate_table_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read rate table"):
        load_rate_table(tmp_path / "missing.csv")


def test_bundled_table_rows_have_sources() -> None:
    text = (Path(ch.__file__).parent / "data" / "charge_rates.csv").read_text()
    rows = [line for line in text.splitlines() if line and not line.startswith("#")][1:]
    assert rows and all(line.split(",")[4] in {"yes", "no"} for line in rows)
    assert all(line.rstrip().endswith('"') for line in rows)  # a quoted source on every row


# --------------------------------------------------------------------------- charges_frame


def test_charges_frame_matches_fill_charges() -> None:
    frame = pl.DataFrame(
        {
            "segment": [w[0] for w in WORKED],
            "side": [w[1] for w in WORKED],
            "quantity": [w[2] for w in WORKED],
            "price": [float(w[3]) for w in WORKED],
            "date": [w[4] for w in WORKED],
        }
    )
    out = charges_frame(frame)
    assert out.columns[:5] == frame.columns
    for i, (*_, parts, total) in enumerate(WORKED):
        got = tuple(out[f"charge_{n}"][i] for n in CHARGE_COMPONENTS)
        assert got == pytest.approx(parts, abs=1e-9)
        assert out["charge_total"][i] == pytest.approx(total, abs=1e-9)


def _fills(**overrides: list[object]) -> pl.DataFrame:
    data: dict[str, list[object]] = {
        "segment": ["delivery", "options"],
        "side": ["buy", "sell"],
        "quantity": [10, 75],
        "price": [100.0, 20.0],
        "date": [POST, POST],
    }
    data.update(overrides)
    return pl.DataFrame(data)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"segment": ["delivery", "cash"]}, DataError, "row 2: unknown segment"),
        ({"segment": [None, "options"]}, DataError, "row 1: unknown segment"),
        ({"side": ["buy", "short"]}, DataError, "row 2: side must be buy or sell"),
        ({"quantity": [10, 0]}, DataError, "row 2: quantity must be positive"),
        ({"quantity": [None, 1]}, DataError, "row 1: quantity must be positive"),
        ({"price": [-1.0, 1.0]}, DataError, "row 1: price must be positive"),
        ({"date": [POST, None]}, DataError, "row 2: date is missing"),
        ({"date": [POST, date(2005, 1, 3)]}, CoverageError, "row 2: no charge rates before"),
    ],
)
def test_charges_frame_errors(overrides, error, message) -> None:
    with pytest.raises(error, match=message):
        charges_frame(_fills(**overrides))


def test_charges_frame_missing_columns() -> None:
    with pytest.raises(DataError, match="lacks column"):
        charges_frame(_fills().drop("price"))


def test_charges_frame_with_profile_and_empty() -> None:
    out = charges_frame(_fills(), load_profile("percent"))
    # delivery buy 10 @ 100 with 0.5% brokerage = 5.00
    assert out["charge_brokerage"][0] == 5.0
    assert charges_frame(_fills().head(0)).height == 0


# --------------------------------------------------------------------------- invariants

_segments = st.sampled_from(list(Segment))
_sides = st.sampled_from(list(Side))
_days = st.dates(min_value=date(2010, 1, 1), max_value=date(2027, 12, 31))
_qty = st.integers(min_value=1, max_value=100_000)
_price = st.decimals(min_value="0.05", max_value="50000", places=2).map(float)


@settings(max_examples=300, deadline=None)
@given(segment=_segments, side=_sides, day=_days, qty=_qty, price=_price)
def test_charges_non_negative_and_total_is_sum(segment, side, day, qty, price) -> None:
    got = fill_charges(segment, side, qty, price, day)
    parts = [getattr(got, n) for n in CHARGE_COMPONENTS]
    assert all(p >= 0 for p in parts)
    assert got.total == round(sum(parts), 2)
    assert got.total == pytest.approx(sum(parts), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    segment=_segments,
    side=_sides,
    day=_days,
    qty=_qty,
    extra_qty=st.integers(min_value=0, max_value=10_000),
    price=_price,
    extra_price=st.decimals(min_value="0", max_value="1000", places=2).map(float),
    profile=st.sampled_from(["zerodha", "percent"]),
)
def test_components_monotone_in_turnover(
    segment, side, day, qty, extra_qty, price, extra_price, profile
) -> None:
    broker = load_profile(profile)
    base = fill_charges(segment, side, qty, price, day, broker)
    for q, p in ((qty + extra_qty, price), (qty, price + extra_price)):
        bigger = fill_charges(segment, side, q, p, day, broker)
        for name in CHARGE_COMPONENTS:
            assert getattr(bigger, name) >= getattr(base, name), name


def test_python_kernels_agree_with_compiled() -> None:
    # The interpreted bodies (``py_func``) must give what numba compiles; this also lets
    # coverage see the kernel lines, which run compiled everywhere else.
    frame = _fills(
        segment=["delivery", "futures"],
        side=["sell", "buy"],
        quantity=[3, 75],
        price=[99.95, 24800.0],
    )
    compiled = charges_frame(frame)
    rates = np.stack([charge_rates("delivery", POST), charge_rates("futures", POST)])
    starts = np.array([[0], [0]], dtype=np.int64)
    out = np.empty((2, len(CHARGE_COMPONENTS)))
    ch._frame_kernel.py_func(
        np.array([0, 1]),
        np.array([False, True]),
        np.array([3.0, 75.0]),
        np.array([99.95, 24800.0]),
        np.array([20241, 20241]),
        starts,
        np.array([1, 1]),
        rates[:, None, :],
        out,
    )
    for i, name in enumerate(CHARGE_COMPONENTS):
        assert out[:, i].tolist() == compiled[f"charge_{name}"].to_list()
    single = np.empty(len(CHARGE_COMPONENTS))
    ch.charges_kernel.py_func(rates[1], True, 75.0, 24800.0, single)
    assert single.tolist() == out[1].tolist()
    ch.charges_kernel.py_func(rates[0], False, 3.0, 99.95, single)
    assert single.tolist() == out[0].tolist()
    assert ch._round_half_up.py_func(4.455, 100.0) == 4.46


def test_charges_frame_charges_dp_once_per_scrip_and_day() -> None:
    frame = pl.DataFrame(
        {
            "segment": ["delivery"] * 4,
            "side": ["sell", "sell", "sell", "sell"],
            "quantity": [10, 5, 7, 3],
            "price": [100.0] * 4,
            "date": [POST, POST, POST, POST + timedelta(days=1)],
            "symbol": ["INFY", "INFY", "TCS", "INFY"],
        }
    )
    dp = charges_frame(frame)["charge_dp"].to_list()
    assert dp[0] > 0 and dp[1] == 0.0 and dp[2] == dp[0] and dp[3] == dp[0]
    # Without a symbol column every row is its own scrip.
    assert charges_frame(frame.drop("symbol"))["charge_dp"].to_list() == [dp[0]] * 4
