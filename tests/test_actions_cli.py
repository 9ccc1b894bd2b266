"""`quantcli actions import` and `quantcli actions list`."""

from __future__ import annotations

from pathlib import Path

from startup import modules_loaded

HEADER = (
    '"SYMBOL","COMPANY NAME","SERIES","PURPOSE","FACE VALUE","EX-DATE","RECORD DATE",'
    '"BC START DATE","BC END DATE"\n'
)


def export(path: Path, *rows: tuple[str, str, str]) -> Path:
    lines = [f'"{s}","{s} Ltd","EQ","{p}","10","{d}","-","-","-"\n' for s, p, d in rows]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def test_import_then_list(cli, store: Path, tmp_path: Path) -> None:
    src = export(
        tmp_path / "ca.csv",
        ("INFY", "Interim Dividend - Rs 2.50 Per Share", "23-Oct-2019"),
        ("INFY", "Annual General Meeting", "20-Jun-2019"),
    )
    res = cli("--json", "actions", "import", str(src))
    assert res.exit_code == 0, res.stderr
    payload = res.json()
    assert payload["added"] == 1 and payload["duplicates"] == 0 and payload["total"] == 1
    assert payload["table"] == str(store / "_meta" / "corporate_actions.csv")
    assert payload["skipped"] == [
        {"row": 3, "symbol": "INFY", "purpose": "Annual General Meeting", "reason": "agm"}
    ]

    again = cli("actions", "import", str(src))
    assert again.exit_code == 0
    assert "skipped 1 row(s) that adjust no price (agm 1)" in again.stderr
    assert "0 added, 1 duplicate(s), 1 skipped, 1 total" in again.stdout

    listed = cli("--json", "actions", "list")
    assert [(a["symbol"], a["kind"]) for a in listed.json()] == [
        ("BAJAJ-AUTO", "bonus"),
        ("INFY", "dividend"),
        ("JSWSTEEL", "split"),
    ]
    only = cli("--json", "actions", "list", "infy").json()
    assert only == [
        {"symbol": "INFY", "ex_date": "2019-10-23", "kind": "dividend", "ratio": 1.0, "amount": 2.5}
    ]


def test_list_renders_a_table(cli) -> None:
    res = cli("actions", "list", "JSWSTEEL")
    assert res.exit_code == 0
    assert "Corporate actions" in res.stdout and "2017-01-04" in res.stdout
    assert "BAJAJ-AUTO" not in res.stdout


def test_quiet_import_prints_no_narration(cli, tmp_path: Path) -> None:
    src = export(
        tmp_path / "ca.csv", ("TCS", "Bonus 1:1", "31-May-2018"), ("TCS", "AGM", "1-Jan-2018")
    )
    res = cli("--quiet", "actions", "import", str(src))
    assert res.exit_code == 0 and res.stderr == ""
    assert "1 added" in res.stdout


def test_import_errors(cli, tmp_path: Path) -> None:
    bad = export(tmp_path / "bad.csv", ("TCS", "Bonus 1:1", "31/05/2018"))
    res = cli("actions", "import", str(bad))
    assert res.exit_code == 65
    assert res.stderr.count("\n") == 1 and f"{bad}:2: TCS: EX-DATE" in res.stderr

    missing = cli("actions", "import", str(tmp_path / "absent.csv"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr

    cli("actions", "import", str(export(tmp_path / "a.csv", ("TCS", "Bonus 1:1", "31-May-2018"))))
    conflict = export(tmp_path / "c.csv", ("TCS", "Bonus 1:2", "31-May-2018"))
    res = cli("actions", "import", str(conflict))
    assert res.exit_code == 1 and "conflicts with the stored one" in res.stderr


def test_actions_help_imports_no_heavy_library() -> None:
    heavy = ("polars", "numpy", "duckdb", "numba", "pandas", "exchange_calendars")
    assert modules_loaded([["actions", "--help"]], heavy) == []


# Real-looking PURPOSE texts of NSE's export: what each imports.
PURPOSES = [
    ("Face Value Split (Sub-Division) - From Rs 10/- Per Share To Rs 2/- Per Share", "split", 5.0),
    ("Stock Split From Rs.10/- to Rs.1/-", "split", 10.0),
    ("Split 1:5", "split", 5.0),
    ("Stock split 1:5", "split", 5.0),
    ("Bonus 1:1", "bonus", 2.0),
    ("Bonus 3:2", "bonus", 2.5),
    ("Dividend - Rs 8 Per Share", "dividend", 8.0),
    ("Interim Dividend - Rs 2.50 Per Share", "dividend", 2.5),
    ("Final Dividend Rs.3/- Per Share", "dividend", 3.0),
    ("AGM/Dividend - Rs 5 Per Share", "dividend", 5.0),
]


def test_common_purposes_import(cli, tmp_path: Path) -> None:
    rows = [(f"S{i}", purpose, "02-Jan-2020") for i, (purpose, _, _) in enumerate(PURPOSES)]
    rows.append(("BOTH", "Bonus 1:1 And Dividend - Rs 2 Per Share", "02-Jan-2020"))
    rows += [
        ("X1", "Annual General Meeting", "02-Jan-2020"),
        ("X2", "AGM", "02-Jan-2020"),
        ("X3", "Buyback", "02-Jan-2020"),
        ("X4", "Special Dividend", "02-Jan-2020"),
    ]
    res = cli("actions", "import", str(export(tmp_path / "ca.csv", *rows)))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("11 added, 0 duplicate(s), 4 skipped")
    assert "(agm 2, buyback 1, dividend without an amount 1)" in res.stderr
    listed = {(a["symbol"], a["kind"]): a for a in cli("--json", "actions", "list").json()}
    for i, (_, kind, value) in enumerate(PURPOSES):
        got = listed[(f"S{i}", kind)]
        assert (got["amount"] if kind == "dividend" else got["ratio"]) == value
    assert listed[("BOTH", "bonus")]["ratio"] == 2.0
    assert listed[("BOTH", "dividend")]["amount"] == 2.0


def test_unreadable_purpose_refuses_the_whole_file(cli, store: Path, tmp_path: Path) -> None:
    src = export(
        tmp_path / "ca.csv",
        ("TCS", "Bonus 1:1", "31-May-2018"),
        ("INFY", "Consolidation of Shares", "02-Jan-2020"),
    )
    res = cli("actions", "import", str(src))
    assert res.exit_code == 65
    assert res.stderr.strip() == (
        f"error: {src}:3: cannot read PURPOSE 'Consolidation of Shares' for INFY "
        "(fix or remove the row)"
    )
    assert not (store / "_meta" / "corporate_actions.csv").exists()


def test_rights_are_refused_unless_skipped(cli, store: Path, tmp_path: Path) -> None:
    src = export(
        tmp_path / "ca.csv",
        ("TCS", "Bonus 1:1", "31-May-2018"),
        ("INFY", "Rights 1:5 @ premium Rs 100", "02-Jan-2020"),
    )
    res = cli("actions", "import", str(src))
    assert res.exit_code == 65
    assert f"{src}:3: INFY: rights issue in PURPOSE" in res.stderr
    assert "--skip-rights" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (store / "_meta" / "corporate_actions.csv").exists()
    res = cli("--json", "actions", "import", "--skip-rights", str(src))
    assert res.exit_code == 0
    assert res.json()["added"] == 1
    assert res.json()["skipped"][0]["reason"] == "rights"
