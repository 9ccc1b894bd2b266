"""A --root that is a file, lies under a file, or cannot be written: one line and a non-zero
exit on every command, never a traceback or an "empty store"."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.files import make_temp_dir
from quantcli.store.publish import publish

CORPUS = Path(__file__).parent / "corpus"


def _actions_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ca.csv"
    path.write_text(
        '"SYMBOL","COMPANY NAME","SERIES","PURPOSE","FACE VALUE","EX-DATE","RECORD DATE",'
        '"BC START DATE","BC END DATE"\n'
        '"INFY","Infosys","EQ","Dividend - Rs 2 Per Share","5","23-Oct-2019","-","-","-"\n'
    )
    return path


def _commands(tmp_path: Path) -> list[list[str]]:
    runs = str(tmp_path / "runs")
    return [
        ["data", "list"],
        ["data", "list", "d"],
        ["data", "show", "d"],
        ["data", "diff", "d", "d"],
        ["data", "tag", "d", "t"],
        ["data", "tag", "d", "t", "--delete"],
        ["data", "rm", "d", "--force"],
        ["data", "gc"],
        ["data", "verify"],
        ["data", "query", "SELECT 1", "-d", "d"],
        ["data", "ingest", "d", str(CORPUS / "good.csv")],
        ["data", "validate", "d"],
        ["actions", "import", str(_actions_csv(tmp_path))],
        ["actions", "list"],
        ["backtest", "--dataset", "d", "--strategy", "buy_and_hold", "--runs-dir", runs],
        ["backtest", "list", "--runs-dir", runs],
        ["calendar", "holidays", "2026"],
        ["charges", "--buy", "1@100", "--date", "2024-01-02"],
    ]


@pytest.mark.parametrize("where", ["file", "under-a-file"])
@pytest.mark.parametrize("json_output", [False, True])
def test_a_root_that_is_not_a_directory_fails_every_command(
    cli, tmp_path: Path, where: str, json_output: bool
) -> None:
    file = tmp_path / "not-a-store"
    file.write_text("x\n")
    root = file if where == "file" else file / "store"
    for args in _commands(tmp_path):
        res = cli(*(["--json"] if json_output else []), *args, root=root)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: the store root {root} "), args
        assert "is not a directory" in lines[0] and "--root" in lines[0]
        if json_output:
            assert '"type": "UsageError"' in res.stdout
        else:
            assert res.stdout == ""
    assert file.read_text() == "x\n"  # the file is left alone


def test_a_dataset_entry_that_is_a_file_is_one_line(cli, store: Path) -> None:
    """A write the store cannot make (here: <root>/d is a file) is one line naming the path."""
    (store / "d").write_text("not a dataset\n")
    res = cli("data", "ingest", "d", str(CORPUS / "good.csv"))
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {store / 'd'}")
    assert "Traceback" not in res.stderr


def test_a_runs_dir_that_is_a_file_is_one_line(cli, store: Path, tmp_path: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    runs = tmp_path / "runs"
    runs.write_text("")
    res = cli("backtest", "--dataset", "d", "--strategy", "buy_and_hold", "--runs-dir", str(runs))
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {runs}: ")


def test_debug_shows_the_traceback(cli, store: Path) -> None:
    (store / "d").write_text("not a dataset\n")
    with pytest.raises(OSError):
        cli("--debug", "data", "ingest", "d", str(CORPUS / "good.csv"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_root_reads_but_refuses_writes_in_one_line(
    cli, store: Path, tmp_path: Path
) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    make_temp_dir(store, "d", "publish")  # something for gc to collect
    for path in [store, *store.rglob("*")]:
        if path.is_dir():
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert cli("data", "show", "d").exit_code == 0
        assert cli("data", "query", "SELECT count(*) FROM bars", "-d", "d").exit_code == 0
        writes = [
            ["data", "ingest", "e", str(CORPUS / "good.csv")],
            ["data", "tag", "d", "t"],
            ["data", "rm", "d", "--force"],
            ["data", "gc"],
            ["actions", "import", str(_actions_csv(tmp_path))],
        ]
        for args in writes:
            res = cli(*args)
            assert res.exit_code == 1, (args, res.stderr)
            assert res.stderr.count("\n") == 1 and "Permission denied" in res.stderr, args
            assert f"check the permissions of the store {store}" in res.stderr, args
    finally:
        for path in [store, *store.rglob("*")]:
            if path.is_dir():
                path.chmod(stat.S_IRWXU)
