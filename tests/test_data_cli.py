"""`quantcli data` list/show/diff/tag/rm/gc/verify/query through the CLI (exit codes, --json)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.files import make_temp_dir
from quantcli.store.publish import publish


@pytest.fixture
def root(store: Path) -> Path:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    changed = make_bars(days=31).with_columns(
        pl.when(pl.col("symbol") == "BBB").then(pl.col("close") + 1).otherwise(pl.col("close"))
    )
    publish(store, "d", changed, interval="1d", source=SOURCE)
    bars = make_bars(["X"]).with_columns(pl.col("ts") + pl.duration(hours=9, minutes=15))
    publish(store, "intra", bars, interval="5m", source=SOURCE)
    return store


def test_list(cli, root: Path) -> None:
    res = cli("--json", "data", "list")
    assert res.exit_code == 0
    doc = res.json()
    assert [d["name"] for d in doc] == ["d", "intra"]
    assert doc[0]["version"] == 2 and doc[0]["versions"] == [1, 2] and doc[0]["rows"] == 93
    assert doc[0]["symbols"] == 3 and doc[0]["first_ts"] == "2019-12-20T00:00:00+05:30"
    text = cli("data", "list", "--help")
    assert text.exit_code == 0
    table = cli("data", "list")
    assert table.exit_code == 0 and "v2" in table.stdout and "2020-01-19" in table.stdout
    assert "09:15" in table.stdout


def test_list_versions(cli, root: Path) -> None:
    cli("data", "tag", "d@v1", "first")
    doc = cli("--json", "data", "list", "d").json()
    assert [v["version"] for v in doc] == [1, 2]
    assert doc[0]["tags"] == ["first"] and doc[1]["parent"] == 1 and doc[0]["source"] == "test"
    res = cli("data", "list", "d")
    assert res.exit_code == 0 and "first" in res.stdout
    missing = cli("data", "list", "nope")
    assert missing.exit_code == 1 and "dataset 'nope' not found" in missing.stderr


def test_list_empty_store(cli) -> None:
    assert cli("--json", "data", "list").json() == []


def test_show(cli, root: Path) -> None:
    doc = cli("--json", "data", "show", "d@v1").json()
    assert doc["manifest"]["version"] == 1 and doc["manifest"]["rows"] == 90
    assert doc["symbols"][0] == {
        "symbol": "AAA",
        "rows": 30,
        "first_ts": "2019-12-20T00:00:00+05:30",
        "last_ts": "2020-01-18T00:00:00+05:30",
        "min_close": 101.0,
        "max_close": 130.0,
        "mean_volume": 1014.5,
    }
    res = cli("data", "show", "d")
    assert res.exit_code == 0 and "d@v2" in res.stdout and "per symbol" in res.stdout
    assert "09:15" in cli("data", "show", "intra").stdout
    bad = cli("data", "show", "d@v7")
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "d@v7 not found" in bad.stderr


def test_diff(cli, root: Path) -> None:
    doc = cli("--json", "data", "diff", "d@v1", "d@v2").json()
    assert doc["totals"] == {"added": 3, "removed": 0, "changed": 30, "unchanged": 60}
    assert doc["identical"] is False and doc["columns_added"] == []
    res = cli("data", "diff", "d@v1", "d")
    assert res.exit_code == 0 and "total" in res.stdout
    cols = cli("data", "diff", "d", "intra")
    assert cols.exit_code == 0


def test_diff_reports_columns(cli, store: Path) -> None:
    publish(store, "a", make_bars(), interval="1d", source=SOURCE)
    publish(store, "b", make_bars(extra=True), interval="1d", source=SOURCE)
    res = cli("data", "diff", "a", "b")
    assert "columns added: oi, vwap" in res.stdout


def test_tag_and_refs(cli, root: Path) -> None:
    res = cli("--json", "data", "tag", "d@v1", "paper-2026q4")
    assert res.exit_code == 0 and res.json() == {
        "name": "d",
        "tag": "paper-2026q4",
        "version": 1,
        "previous": None,
    }
    assert cli("--json", "data", "show", "d@paper-2026q4").json()["manifest"]["version"] == 1
    moved = cli("data", "tag", "d@v2", "paper-2026q4")
    assert moved.exit_code == 1 and "use --force" in moved.stderr
    ok = cli("data", "tag", "d@v2", "paper-2026q4", "--force")
    assert ok.exit_code == 0 and "moved from v1" in ok.stdout
    digest = cli("--json", "data", "show", "d@v1").json()["manifest"]["content_hash"]
    assert cli("--json", "data", "show", f"d@{digest[:6]}").json()["manifest"]["version"] == 1
    assert cli("data", "tag", "d", "v3").exit_code == 2
    cli("data", "tag", "d", "other")
    deleted = cli("--json", "data", "tag", "d", "paper-2026q4", "--delete")
    assert deleted.json()["deleted"] is True and deleted.json()["version"] == 2
    assert "removed tag other" in cli("data", "tag", "d", "other", "--delete").stdout


def test_tag_delete_unknown(cli, root: Path) -> None:
    res = cli("data", "tag", "d", "nope", "--delete")
    assert res.exit_code == 1 and "no tag 'nope' in d" in res.stderr


def test_rm(cli, root: Path) -> None:
    refused = cli("data", "rm", "d@v1")
    assert refused.exit_code == 2 and "without --force" in refused.stderr
    cli("data", "tag", "d@v1", "keep")
    tagged = cli("data", "rm", "d@v1")
    assert "it is tagged keep" in tagged.stderr
    res = cli("--json", "data", "rm", "d@v1", "--force")
    assert res.exit_code == 0 and res.json()["removed"] == "d@v1"
    gone = cli("data", "show", "d@v1")
    assert gone.exit_code == 1 and "was removed" in gone.stderr
    assert cli("data", "rm", "d@v2", "--force").stdout.strip() == "removed d@v2"
    assert "dataset 'd' not found" in cli("data", "list", "d").stderr


def test_gc(cli, root: Path) -> None:
    tmp = make_temp_dir(root, "d", "publish")
    res = cli("--json", "data", "gc", "--dry-run")
    assert res.json() == {
        "dry_run": True,
        "temp_removed": [f".tmp/{tmp.name}"],
        "temp_in_use": [],
        "versions_removed": [],
    }
    assert "would remove" in cli("data", "gc", "--dry-run").stdout
    assert "removed .tmp/" in cli("data", "gc").stdout and not tmp.exists()
    assert "nothing to collect" in cli("data", "gc").stdout
    doc = cli("--json", "data", "gc", "--keep-last", "1").json()
    assert doc["versions_removed"] == ["d@v1"]
    assert cli("data", "gc", "--keep-last", "0").exit_code == 2


def test_gc_reports_locked(cli, root: Path) -> None:
    from quantcli.core.lock import dataset_lock

    tmp = make_temp_dir(root, "d", "publish")
    with dataset_lock(root, "d"):
        res = cli("data", "gc")
    assert res.exit_code == 0 and f"kept .tmp/{tmp.name}" in res.stdout


def test_verify(cli, root: Path) -> None:
    doc = cli("--json", "data", "verify").json()
    assert doc["ok"] is True and [v["ref"] for v in doc["versions"]] == ["d@v1", "d@v2", "intra@v1"]
    assert "d@v1: ok (1 file)" in cli("data", "verify", "d@v1").stdout
    victim = sorted((root / "d" / "v1" / "data").rglob("*.parquet"))[0]
    victim.unlink()
    res = cli("--json", "data", "verify", "d@v1")
    assert res.exit_code == 1 and res.json()["ok"] is False
    assert "error: d@v1: missing data/" in res.stderr
    assert cli("data", "verify").exit_code == 1


def test_verify_empty_store(cli) -> None:
    res = cli("data", "verify")
    assert res.exit_code == 0 and "no versions to verify" in res.stdout


def test_query_table_and_json(cli, root: Path) -> None:
    sql = "SELECT symbol, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol"
    res = cli("data", "query", sql, "--dataset", "d@v1")
    assert res.exit_code == 0 and "AAA" in res.stdout and "30" in res.stdout
    doc = cli("--json", "data", "query", sql, "-d", "d@v1").json()
    assert doc["columns"] == ["symbol", "n"] and doc["rows"][0] == {"symbol": "AAA", "n": 30}
    assert doc["types"] == ["VARCHAR", "BIGINT"]  # DuckDB's SQL types
    many = cli("data", "query", "SELECT * FROM bars", "-d", "d", "--limit", "5")
    assert "showing the first 5 rows; more exist" in many.stderr
    assert many.stdout.count("AAA") == 5
    # Exactly as many rows as the limit: nothing more to announce.
    assert cli("data", "query", "SELECT * FROM bars", "-d", "d", "--limit", "93").stderr == ""
    assert (
        "more exist"
        in cli("data", "query", "SELECT * FROM bars", "-d", "d", "--limit", "92").stderr
    )


def test_query_aliases(cli, root: Path) -> None:
    sql = "SELECT count(*) AS n FROM bars JOIN old USING (symbol, ts) WHERE bars.close <> old.close"
    doc = cli("--json", "data", "query", sql, "-d", "d", "-d", "old=d@v1").json()
    assert doc["rows"] == [{"n": 30}]


def test_query_outputs(cli, root: Path, tmp_path: Path) -> None:
    sql = "SELECT symbol, close FROM bars ORDER BY symbol, ts LIMIT 3"
    csv = cli("data", "query", sql, "-d", "d", "--format", "csv")
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0] == "symbol,close"
    js = cli("data", "query", sql, "-d", "d", "--format", "json")
    assert json.loads(js.stdout)[0] == {"symbol": "AAA", "close": 101.0}
    for suffix in ("csv", "json", "parquet"):
        out = tmp_path / f"r.{suffix}"
        res = cli("data", "query", sql, "-d", "d", "-o", str(out))
        assert res.exit_code == 0 and out.is_file() and "wrote 3 rows" in res.stderr
    assert pl.read_parquet(tmp_path / "r.parquet").height == 3
    explicit = tmp_path / "r.txt"
    assert cli("data", "query", sql, "-d", "d", "-f", "csv", "-o", str(explicit)).exit_code == 0
    assert explicit.read_text().startswith("symbol,close")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["SELECT 1"], 2, "give the dataset to query with --dataset"),
        (["SELECT 1", "-d", "d", "-f", "xml"], 2, "unknown --format"),
        (["SELECT 1", "-d", "d", "-f", "parquet"], 2, "--format parquet needs --output"),
        (["SELECT 1", "-d", "d", "-f", "table", "-o", "x.csv"], 2, "--output needs --format"),
        (["SELECT 1", "-d", "d", "-o", "x.dat"], 2, "cannot tell the format of x.dat"),
        (["SELECT 1", "-d", "nope"], 1, "dataset 'nope' not found"),
        (["SELECT broken FROM", "-d", "d"], 1, "SQL error: Parser Error"),
        (["COPY bars TO '/tmp/quantcli-cli.csv'", "-d", "d"], 1, "not COPY"),
        (["SELECT * FROM read_csv('/etc/passwd')", "-d", "d"], 1, "query refused"),
        (["ATTACH '/tmp/quantcli-cli.db'", "-d", "d"], 1, "not ATTACH"),
    ],
)
def test_query_errors(cli, root: Path, args: list[str], code: int, message: str) -> None:
    res = cli("data", "query", *args)
    assert res.exit_code == code
    assert message in res.stderr and res.stderr.count("\n") == 1
