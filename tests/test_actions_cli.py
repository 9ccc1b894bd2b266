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
    assert payload["skipped"] == [{"row": 3, "symbol": "INFY", "purpose": "Annual General Meeting"}]
    assert "skipped unknown purpose 'Annual General Meeting'" in res.stderr

    again = cli("actions", "import", str(src))
    assert again.exit_code == 0
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
