"""Text from data and users prints as typed: never rich markup (``[/x]`` used to crash a table,
``[bold]`` vanished) and never emoji codes (``:fire:`` became an emoji)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantcli.output import literal, stdout, table

NASTY = "[bold]:fire:[/x]"


@pytest.fixture
def root(cli, store: Path, tmp_path: Path) -> Path:
    """A store whose one symbol is NASTY, ingested through the CLI (one bar repeated)."""
    src = tmp_path / "bars.csv"
    src.write_text(
        "date,open,high,low,close,volume\n"
        "2024-01-01,100,101,99,100.5,1000\n"
        "2024-01-02,100.5,102,100,101,1200\n"
        "2024-01-02,100.5,102,100,101,1200\n"
    )
    res = cli("data", "ingest", "d", str(src), "--symbol", NASTY, "--drop-duplicates")
    assert res.exit_code == 0, res.stderr
    # The warning names the symbol as it is.
    assert f"warning: {NASTY}: dropped 1 exactly repeated bar(s)" in res.stderr
    return store


def _plain(text: str) -> None:
    assert "\N{FIRE}" not in text and "\x1b[" not in text


def test_symbol_in_show_query_and_backtest(cli, root: Path, tmp_path: Path) -> None:
    show = cli("data", "show", "d")
    assert show.exit_code == 0 and NASTY in show.stdout
    query = cli("data", "query", "SELECT DISTINCT symbol FROM bars", "-d", "d")
    assert query.exit_code == 0 and NASTY in query.stdout
    runs = str(tmp_path / "runs")
    run = cli("backtest", "--dataset", "d", "--strategy", "buy_and_hold", "--runs-dir", runs)
    assert run.exit_code == 0, run.stderr
    _plain(show.stdout + query.stdout + run.stdout)


@pytest.mark.parametrize("cell", ["[/x]", "[bold]y[/bold]", ":fire:", "[link=x]a", "\\[z]"])
def test_query_cells(cli, root: Path, cell: str) -> None:
    quoted = cell.replace("'", "''")
    res = cli("data", "query", f"SELECT '{quoted}' AS \"{quoted}\"", "-d", "d")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.count(cell) == 2  # the header and the cell
    _plain(res.stdout)


@pytest.mark.parametrize("tag", ["[/x]", ":fire:", "[bold]t"])
def test_tags_and_names_in_error_messages(cli, root: Path, tag: str) -> None:
    res = cli("data", "tag", "d", tag)
    assert res.exit_code == 2 and res.stderr.startswith(f"error: invalid tag {tag!r}")
    missing = cli("data", "show", f"d@{tag}")
    assert missing.exit_code in (1, 2) and tag in missing.stderr
    _plain(res.stderr + missing.stderr)


def test_file_names_in_error_messages(cli, root: Path, tmp_path: Path) -> None:
    ghost = tmp_path / f"{NASTY}.csv"
    res = cli("data", "ingest", "e", str(ghost))
    assert res.exit_code != 0 and str(ghost) in res.stderr
    _plain(res.stderr)


def test_the_table_builder_and_consoles(capsys: pytest.CaptureFixture[str]) -> None:
    console = stdout()
    console.print(table(NASTY, [NASTY], [[NASTY], [":smile:"]]))
    console.print(NASTY)
    console.print(literal("error: ", "bold red") + literal(NASTY))
    out = capsys.readouterr().out
    assert out.count(NASTY) == 5 and ":smile:" in out and f"error: {NASTY}" in out
    _plain(out)
