"""`quantcli charges`: breakdown table, JSON schema, breakeven and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantcli.commands.charges import parse_fill
from quantcli.errors import UsageError

HEAVY = ("polars", "numpy", "duckdb", "numba", "pandas", "exchange_calendars")


def test_round_trip_json(cli) -> None:
    res = cli(
        "--json",
        "charges",
        "--segment",
        "delivery",
        "--buy",
        "100@1500",
        "--sell",
        "100@1520",
        "--date",
        "2025-06-02",
    )
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["segment"] == "delivery" and doc["date"] == "2025-06-02"
    assert doc["broker"] == "zerodha"
    # worked example in tests/test_charges.py: buy 177.94 + sell 172.84 = 350.78
    assert doc["buy"]["charges"]["total"] == pytest.approx(177.94)
    assert doc["sell"]["charges"]["dp"] == pytest.approx(15.34)
    assert doc["buy"]["turnover"] == 150000.0 and doc["sell"]["quantity"] == 100.0
    assert doc["charges"]["total"] == pytest.approx(350.78)
    assert doc["charges"]["stt"] == pytest.approx(302.0)
    assert doc["gross_pnl"] == pytest.approx(2000.0)
    assert doc["net_pnl"] == pytest.approx(1649.22)
    assert doc["breakeven_price"] == pytest.approx(1503.49)
    assert doc["breakeven_points"] == pytest.approx(3.49)


def test_table_output(cli) -> None:
    res = cli(
        "charges",
        "--segment",
        "intraday",
        "--buy",
        "100@1500",
        "--sell",
        "100@1520",
        "--date",
        "2025-06-02",
    )
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    for text in ("brokerage", "stt", "turnover", "302,000.00", "33.54", "67.10", "100.64"):
        assert text in out
    assert "net P&L: 1,899.36" in out  # 2000 - (33.54 + 67.10)
    assert "points to break even: 1.01" in out


def test_single_side_breakeven(cli) -> None:
    res = cli(
        "--json", "charges", "--segment", "options", "--sell", "75@100", "--date", "2025-06-02"
    )
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["buy"] is None and doc["sell"]["charges"]["total"] == pytest.approx(34.72)
    assert doc["breakeven_price"] == pytest.approx(99.17)
    assert doc["breakeven_points"] == pytest.approx(0.83)
    assert "net_pnl" not in doc


def test_single_side_without_breakeven_prints_none(cli) -> None:
    res = cli("charges", "--segment", "options", "--sell", "1@0.05", "--date", "2025-06-02")
    assert res.exit_code == 0, res.stderr
    assert "breakeven price: none" in res.stdout


def test_profile_file_and_percent(cli, tmp_path: Path) -> None:
    res = cli(
        "--json", "charges", "--buy", "100@1500", "--date", "2025-06-02", "--broker", "percent"
    )
    assert res.json()["buy"]["charges"]["brokerage"] == 750.0
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "mine"\n[delivery]\npercent = 0.1\n[intraday]\n[futures]\n[options]\nflat = 5\n'
    )
    res = cli(
        "--json", "charges", "--buy", "100@1500", "--date", "2025-06-02", "--broker", str(path)
    )
    assert res.exit_code == 0 and res.json()["broker"] == "mine"
    assert res.json()["buy"]["charges"]["brokerage"] == 150.0


def test_default_date_is_today(cli) -> None:
    res = cli("--json", "charges", "--buy", "1@100")
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--segment", "cash", "--buy", "1@1"], 2, "unknown segment 'cash'"),
        (["--buy", "0@1500"], 2, "quantity must be positive"),
        (["--buy", "-5@1500"], 2, "quantity must be positive"),
        (["--sell", "5@0"], 2, "price must be positive"),
        (["--buy", "100x1500"], 2, "expected QTY@PRICE"),
        (["--buy", "a@b"], 2, "expected QTY@PRICE"),
        ([], 2, "give --buy"),
        (["--buy", "1@1", "--sell", "2@1"], 2, "quantities differ"),
        (
            ["--buy", "1@1", "--date", "2025-13-01"],
            2,
            "--date: expected a date YYYY-MM-DD, got '2025-13-01'",
        ),
        (["--buy", "1@1", "--date", "2009-12-31"], 1, "no charge rates for 2009-12-31"),
        (["--buy", "1@1", "--broker", "nobody"], 1, "unknown broker profile"),
    ],
)
def test_bad_input_is_one_line(cli, args, code, message) -> None:
    res = cli("charges", *args)
    assert res.exit_code == code
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_malformed_profile_names_file_and_key(cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[delivery]\nbrokerage = 1\n')
    res = cli("charges", "--buy", "1@1", "--date", "2025-06-02", "--broker", str(path))
    assert res.exit_code == 65
    line = res.stderr.strip()
    assert str(path) in line and "delivery.brokerage" in line and "\n" not in line


def test_parse_fill() -> None:
    assert parse_fill("100@1500.5", "--buy") == (100.0, 1500.5)
    with pytest.raises(UsageError, match="--sell"):
        parse_fill("inf@1", "--sell")


def test_charges_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from quantcli.cli import app\n"
        "try:\n"
        "    app(['charges', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize("start", [[], ["--from", "2009-12-01"]])
def test_backtest_before_the_rate_table_names_the_from_flag(
    cli, store: Path, tmp_path: Path, start: list[str]
) -> None:
    from datetime import date

    from store_helpers import SOURCE, make_bars

    from quantcli.market.charges import rate_coverage
    from quantcli.store.publish import publish

    first = rate_coverage()
    publish(
        store,
        "early",
        make_bars(["AAA"], start=date(2009, 11, 2), days=90),
        interval="1d",
        source=SOURCE,
    )
    runs = tmp_path / "runs"
    args = ["backtest", "--dataset", "early", "--strategy", "buy_and_hold", "--runs-dir", str(runs)]
    res = cli(*args, *start)
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("error: no charge rates for 2009-")
    assert res.stderr.rstrip().endswith(f"start the backtest there with --from {first}")
    assert not runs.exists() or not any(runs.iterdir())
    # The hint works: from the first covered date the same run succeeds.
    assert cli(*args, "--from", first.isoformat()).exit_code == 0
