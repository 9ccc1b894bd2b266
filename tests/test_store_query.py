"""The DuckDB query sandbox: views over pinned versions, nothing else readable or writable."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from store_helpers import SOURCE, make_bars

from quantcli.errors import QuantcliError, UsageError
from quantcli.store.publish import publish
from quantcli.store.query import (
    encode,
    parse_dataset_options,
    query_frame,
    run_query,
    write_result,
)


@pytest.fixture
def root(store: Path) -> Path:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    changed = make_bars().with_columns(
        pl.when(pl.col("symbol") == "BBB").then(pl.col("close") + 1).otherwise(pl.col("close"))
    )
    publish(store, "d", changed, interval="1d", source=SOURCE)
    return store


def test_query_bars(root: Path) -> None:
    table = run_query(
        root,
        "SELECT symbol, count(*) AS n, min(ts)::DATE AS first, typeof(ts) AS t "
        "FROM bars GROUP BY ALL ORDER BY symbol",
        ["d@v1"],
    )
    rows = table.to_pylist()
    assert [r["symbol"] for r in rows] == ["AAA", "BBB", "CCC"]
    assert rows[0]["n"] == 30 and str(rows[0]["first"]) == "2019-12-20"
    assert rows[0]["t"] == "TIMESTAMP WITH TIME ZONE"


def test_aliases_join_two_versions(root: Path) -> None:
    table = run_query(
        root,
        "SELECT n.symbol, count(*) AS changed FROM bars n JOIN old o USING (symbol, ts) "
        "WHERE n.close <> o.close GROUP BY 1",
        ["d", "old=d@v1"],
    )
    assert table.to_pylist() == [{"symbol": "BBB", "changed": 30}]


def test_no_progress_bar_on_stdout(root: Path) -> None:
    sql = "SELECT current_setting('enable_progress_bar') AS bar"
    assert run_query(root, sql, ["d"]).to_pylist() == [{"bar": False}]


def test_multiple_statements_return_the_last(root: Path) -> None:
    assert run_query(root, "SELECT 1 AS a; SELECT 2 AS b", ["d"]).to_pylist() == [{"b": 2}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COPY bars TO '/tmp/quantcli-x.csv'", "only SELECT statements may run, not COPY"),
        ("COPY (SELECT 1) TO '{file}' (USE_TMP_FILE false)", "not COPY"),
        ("SELECT * FROM read_csv('/etc/passwd')", r"query refused: .*/etc/passwd"),
        ("SELECT * FROM read_text('/etc/hostname')", "query refused"),
        ("SELECT * FROM glob('/etc/*')", "query refused"),
        ("ATTACH '/tmp/quantcli-y.db'", "not ATTACH"),
        ("SET enable_external_access = true", "not SET"),
        ("INSTALL httpfs", "not LOAD"),
        ("CREATE TABLE t AS SELECT 1", "not CREATE"),
        ("EXPORT DATABASE '/tmp/quantcli-exp'", "not EXPORT"),
        ("SELECT * FROM read_parquet('{other}')", "query refused"),
        ("SELEC 1", "SQL error: Parser Error"),
        ("SELECT nope FROM bars", "SQL error: Binder Error"),
    ],
)
def test_sandbox_refuses(root: Path, tmp_path: Path, sql: str, message: str) -> None:
    publish(root, "other", make_bars(["ZZZ"]), interval="1d", source=SOURCE)
    other = next((root / "other" / "v1" / "data").rglob("*.parquet"))
    mine = next((root / "d" / "v1" / "data").rglob("*.parquet"))
    before = mine.read_bytes()
    with pytest.raises(QuantcliError, match=message):
        run_query(root, sql.format(file=mine, other=other), ["d@v1"])
    assert mine.read_bytes() == before
    assert not Path("/tmp/quantcli-x.csv").exists()
    assert not Path("/tmp/quantcli-y.db").exists()


def test_empty_sql(root: Path) -> None:
    with pytest.raises(UsageError, match="empty SQL"):
        run_query(root, "  ", ["d"])
    with pytest.raises(UsageError, match="no statement"):
        run_query(root, ";", ["d"])


def test_parse_dataset_options() -> None:
    assert parse_dataset_options(["d@v1", "o=d@v2"]) == {"bars": "d@v1", "o": "d@v2"}
    assert parse_dataset_options(["x=d"]) == {"x": "d"}
    with pytest.raises(UsageError, match="only one --dataset may be unnamed"):
        parse_dataset_options(["d", "e"])
    with pytest.raises(UsageError, match="invalid view name"):
        parse_dataset_options(["1x=d"])
    with pytest.raises(UsageError, match="given twice"):
        parse_dataset_options(["o=d", "o=e"])
    with pytest.raises(UsageError, match="give the dataset to query"):
        parse_dataset_options([])


def test_encode_and_write(root: Path, tmp_path: Path) -> None:
    sql = "SELECT symbol, ts, close FROM bars ORDER BY symbol, ts LIMIT 2"
    table = query_frame(root, sql, ["d"])
    csv = encode(table, "csv").decode()
    assert csv.splitlines()[0] == "symbol,ts,close" and "AAA" in csv
    records = json.loads(encode(table, "json"))
    assert records[0]["symbol"] == "AAA" and records[0]["close"] == 101.0
    out = tmp_path / "r.parquet"
    write_result(table, "parquet", out)
    assert pq.read_table(out).to_pylist() == table.to_dicts()
    with pytest.raises(UsageError, match="unknown format"):
        encode(table, "xml")
    with pytest.raises(QuantcliError, match=r"cannot write .*No such file or directory"):
        write_result(table, "csv", tmp_path / "missing" / "r.csv")


def test_query_frame_converts_every_duckdb_type(root: Path) -> None:
    # Results come straight from DuckDB; a type polars cannot read from DuckDB's stream
    # (INTERVAL, or a list of them) is written as DuckDB prints it.
    sql = (
        "SELECT symbol, ts, 1.5::DECIMAL(10, 2) AS d, INTERVAL 1 DAY AS step, [1, 2] AS l, "
        "{'a': 1} AS s, [INTERVAL 2 DAY] AS steps FROM bars LIMIT 1"
    )
    frame = query_frame(root, sql, ["d"])
    assert frame.schema == {
        "symbol": pl.String,
        "ts": pl.Datetime("us", "Asia/Kolkata"),
        "d": pl.Decimal(10, 2),
        "step": pl.String,
        "l": pl.List(pl.Int32),
        "s": pl.Struct({"a": pl.Int32}),
        "steps": pl.String,
    }
    assert frame.row(0)[3:] == ("1 day", [1, 2], {"a": 1}, "[2 days]")
    assert encode(frame, "json")  # every column is writable
    with pytest.raises(QuantcliError, match="SQL error"):
        query_frame(root, "SELECT CAST(symbol AS INTEGER) AS n FROM bars", ["d"])
    with pytest.raises(QuantcliError, match="more than one column named 'a'"):
        query_frame(root, "SELECT 1 AS a, 2 AS a", ["d"])
