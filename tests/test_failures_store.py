"""A damaged store (a data file missing, truncated or changed) fails every reading command with
one line naming the file and pointing to `quantcli data verify`, and leaves nothing behind."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from store_helpers import SOURCE, make_bars

from quantcli.errors import IntegrityError
from quantcli.store.manifest import version_dir, version_numbers
from quantcli.store.publish import publish
from quantcli.store.reader import open_dataset, read_failure, reading
from quantcli.store.verify import verify

BARS = make_bars(["AAA", "BBB"], days=40)


def _write(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)  # data files are published read-only
    path.write_bytes(data)


def _missing(path: Path) -> None:
    path.unlink()


def _truncated(path: Path) -> None:
    _write(path, path.read_bytes()[: path.stat().st_size // 2])


def _rewritten(path: Path) -> None:
    """Another Parquet file in its place (different bars, so a different size)."""
    BARS.head(3).write_parquet(path)


def _footer_flipped(path: Path) -> None:
    """One byte of the footer changed, the size kept: only reading (or hashing) finds it."""
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    _write(path, bytes(data))


def _page_flipped(path: Path) -> None:
    """One byte of the compressed data changed, the size kept."""
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    _write(path, bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": _missing,
    "truncated": _truncated,
    "rewritten": _rewritten,
    "footer-flipped": _footer_flipped,
}
# What the one line says for each kind of damage.
SAYS = {
    "missing": ("is missing",),
    "truncated": ("bytes, not the",),
    "rewritten": ("bytes, not the",),
    "footer-flipped": ("has changed", "cannot be read"),
}


def damage(store: Path, kind: str) -> Path:
    """Publish ``d`` with an intact v1 and a v2 whose data file gets ``kind`` of damage."""
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    publish(store, "d", BARS.with_columns(pl.col("close") + 1), interval="1d", source=SOURCE)
    victim = open_dataset("d@v2", store).files()[0]
    DAMAGE[kind](victim)
    return victim


@pytest.fixture
def truncated(store: Path) -> Path:
    """The store holding ``d``, whose v2 data file is truncated; returns that file."""
    return damage(store, "truncated")


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    runs = str(tmp_path / "runs")
    more = tmp_path / "more.csv"
    more.write_text("date,open,high,low,close,volume\n2020-03-02,1,2,0.5,1.5,10\n")
    return {
        "query": ["data", "query", "SELECT count(*) AS n FROM bars", "-d", "d"],
        "query-csv": ["data", "query", "SELECT sum(close) FROM bars", "-d", "d", "-f", "csv"],
        "query-file": ["data", "query", "SELECT * FROM bars", "-d", "d", "-o", f"{runs}.csv"],
        "show": ["data", "show", "d"],
        "validate": ["data", "validate", "d"],
        "diff": ["data", "diff", "d@v1", "d@v2"],
        "backtest": [
            "backtest",
            "--dataset",
            "d",
            "--strategy",
            "buy_and_hold",
            "--runs-dir",
            runs,
        ],
        "append": ["data", "ingest", "d", str(more), "--symbol", "AAA", "--append"],
    }


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize(
    "command",
    ["query", "query-csv", "query-file", "show", "validate", "diff", "backtest", "append"],
)
def test_every_reading_command_names_the_damaged_file(
    cli, store: Path, tmp_path: Path, kind: str, command: str
) -> None:
    victim = damage(store, kind)
    res = cli(*_commands(tmp_path)[command])
    assert res.exit_code == 1, res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {victim}: data file of d@v2 ")
    assert lines[0].endswith("; run `quantcli data verify d@v2`")
    assert any(words in lines[0] for words in SAYS[kind]), lines[0]
    assert "Traceback" not in res.stdout + res.stderr
    # Nothing left behind: no new version, no temp directory, no run, no result file.
    assert version_numbers(store, "d") == [1, 2]
    assert not (store / ".tmp").exists() or not any((store / ".tmp").iterdir())
    assert not (tmp_path / "runs").exists() and not (tmp_path / "runs.csv").exists()


def test_damage_is_a_json_error_with_the_file(cli, truncated: Path) -> None:
    victim = truncated
    res = cli("--json", "data", "show", "d")
    assert res.exit_code == 1
    error = json.loads(res.stdout)["error"]
    assert error["type"] == "IntegrityError" and error["file"] == str(victim)
    assert error["exit_code"] == 1 and error["row"] is None
    assert "quantcli data verify d@v2" in error["message"]


def test_other_versions_and_verify_still_work(cli, truncated: Path) -> None:
    assert cli("data", "show", "d@v1").exit_code == 0
    assert cli("data", "query", "SELECT count(*) FROM bars", "-d", "d@v1").exit_code == 0
    assert cli("data", "list").exit_code == 0  # manifests only
    res = cli("data", "verify", "d@v2")
    assert res.exit_code == 1 and f"d@v2: changed data/{truncated.name}" in res.stdout
    # The damaged version can still be removed, which is one way out.
    assert cli("data", "rm", "d@v2", "--force").exit_code == 0
    assert cli("data", "show", "d").exit_code == 0


def test_same_size_change_in_the_data_is_found_on_read(store: Path) -> None:
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    version = open_dataset("d", store)
    victim = version.files()[0]
    _page_flipped(victim)
    version = open_dataset("d", store)  # the size is right: opening cannot tell
    with pytest.raises(IntegrityError, match="has changed") as info:
        version.frame()
    assert info.value.path == str(victim)
    assert "quantcli data verify d@v1" in info.value.message


def test_an_error_that_is_not_the_stores_passes_unchanged(store: Path) -> None:
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    version = open_dataset("d", store)
    assert read_failure([version], ValueError("boom")) is None
    with pytest.raises(ValueError, match="boom"), reading(version):
        raise ValueError("boom")
    # Errors that name the file say what the reader said.
    named = read_failure([version], OSError(f"cannot open {version.files()[0]}\nLINE 1: ..."))
    assert named is not None and "cannot be read (cannot open" in named.message


def test_publish_does_not_link_a_damaged_base_file(store: Path) -> None:
    """A new version reuses (hard-links) its parent's unchanged files, but not one that no
    longer holds the bytes its name promises."""
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    victim = open_dataset("d", store).files()[0]
    _truncated(victim)
    publish(store, "d", BARS.with_columns(pl.col("volume") + 1), interval="1d", source=SOURCE)
    publish(store, "d", BARS, interval="1d", source=SOURCE)  # v1's content again, as v3
    fresh = version_dir(store, "d", 3) / victim.relative_to(version_dir(store, "d", 1))
    assert fresh.stat().st_ino != victim.stat().st_ino
    assert [r.ok for r in verify(store, "d@v3")] == [True]


def test_reproduce_on_a_damaged_store_names_the_file(cli, store: Path, tmp_path: Path) -> None:
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    runs = tmp_path / "runs"
    args = ["--json", "backtest", "--dataset", "d", "--strategy", "buy_and_hold"]
    saved = cli(*args, "--runs-dir", str(runs))
    assert saved.exit_code == 0, saved.stderr
    victim = open_dataset("d", store).files()[0]
    _footer_flipped(victim)
    res = cli("backtest", "reproduce", saved.json()["run_dir"])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {victim}: data file of d@v1 has changed")
    assert sorted(p.name for p in runs.iterdir()) == [saved.json()["run_id"]]


def test_sql_mistakes_are_not_blamed_on_the_files(cli, store: Path) -> None:
    """A typo is an SQL error even over a damaged version: language errors are not traced to
    the files (which would re-hash them all on every typo)."""
    publish(store, "d", BARS, interval="1d", source=SOURCE)
    _page_flipped(open_dataset("d", store).files()[0])
    res = cli("data", "query", "SELECT nope FROM bars", "-d", "d")
    assert res.exit_code == 1 and res.stderr.startswith("error: SQL error: Binder Error")
