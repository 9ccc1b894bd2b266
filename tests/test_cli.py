"""The CLI shell: global options, errors at the edge, fast start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from startup import modules_loaded

from quantcli import __version__
from quantcli.errors import DataError, LockHeldError, QuantcliError, UsageError
from quantcli.settings import resolve_root

HEAVY = ("tensorflow", "sklearn", "duckdb", "numba", "pandas", "exchange_calendars")
FRAME_LIBRARIES = ("polars", "pyarrow", "numba")


def test_version(cli) -> None:
    res = cli("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"quantcli {__version__}"


def test_unknown_option_is_usage_error(cli) -> None:
    assert cli("--bogus").exit_code == 2


@pytest.mark.parametrize(
    "args", [["--help"], ["data", "--help"], ["calendar", "--help"], ["backtest", "--help"]]
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    # Not even rich: help is plain click text, and rich loads only where a command draws.
    assert modules_loaded([args], (*HEAVY, "polars", "pyarrow", "rich")) == []


def test_error_hierarchy_exit_codes() -> None:
    assert QuantcliError("x").exit_code == 1
    assert UsageError("x").exit_code == 2
    assert DataError("bad", path="a.csv", row=3).message == "a.csv:3: bad"
    assert DataError("bad", path="a.csv").message == "a.csv: bad"
    assert LockHeldError("x").exit_code == 75


def test_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTCLI_ROOT", raising=False)
    assert resolve_root("/x/y") == Path("/x/y")
    assert resolve_root(None, cwd=tmp_path) == tmp_path / "datasets"
    (tmp_path / "quantcli.toml").write_text('[store]\nroot = "data/store"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert resolve_root(None, cwd=sub) == tmp_path / "data/store"
    monkeypatch.setenv("QUANTCLI_ROOT", "/env/root")
    assert resolve_root(None, cwd=sub) == Path("/env/root")


def test_bad_config_is_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTCLI_ROOT", raising=False)
    (tmp_path / "quantcli.toml").write_text("[store\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        resolve_root(None, cwd=tmp_path)
    (tmp_path / "quantcli.toml").write_text("[store]\nroot = 3\n")
    with pytest.raises(UsageError, match="must be a string"):
        resolve_root(None, cwd=tmp_path)


def test_reading_commands_import_no_frame_library(store: Path) -> None:
    # `data list` and a table-format `data query` read manifests and run DuckDB: polars and
    # pyarrow (~0.2 and ~0.1 s to import) are only for writing data and csv/json/parquet output.
    from store_helpers import SOURCE, make_bars

    from quantcli.store.publish import publish

    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    root = ["--root", str(store)]
    query = ["data", "query", "SELECT count(*) AS n FROM bars", "-d", "d"]
    assert modules_loaded([[*root, "data", "list"], [*root, *query]], FRAME_LIBRARIES) == []
