"""With --json a failure is one JSON document on stdout ({"error": {...}}), and JSON output never
holds NaN or Infinity."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_helpers import SOURCE, make_bars

from quantcli.errors import DataError, IntegrityError, QuantcliError
from quantcli.output import to_json
from quantcli.store.publish import publish

CORPUS = Path(__file__).parent / "corpus"
ERROR_KEYS = {"type", "message", "exit_code", "file", "row"}


@pytest.fixture
def root(store: Path) -> Path:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    return store


def _strict(text: str) -> Any:
    """``text`` parsed as JSON that has no NaN or Infinity (which Python's parser accepts)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _error(res: Any) -> dict[str, Any]:
    doc = _strict(res.stdout)  # the whole of stdout is the one document
    assert set(doc["error"]) == ERROR_KEYS
    assert doc["error"]["exit_code"] == res.exit_code != 0
    # The same one line goes to stderr, for logs.
    assert res.stderr == f"error: {doc['error']['message']}\n"
    return dict(doc["error"])


def test_not_found_is_a_json_error(cli, root: Path) -> None:
    error = _error(cli("--json", "data", "show", "nope"))
    assert error["type"] == "NotFoundError" and error["exit_code"] == 1
    assert error["file"] is None and error["row"] is None
    assert "dataset 'nope' not found" in error["message"]


def test_a_sub_commands_own_json_flag_gives_json_errors(cli, root: Path) -> None:
    error = _error(cli("backtest", "--dataset", "nope", "--strategy", "buy_and_hold", "--json"))
    assert error["type"] == "NotFoundError" and "dataset 'nope' not found" in error["message"]


def test_data_error_names_file_and_row(cli, root: Path) -> None:
    bad = CORPUS / "bad_date.csv"
    res = cli("--json", "data", "ingest", "x", str(bad))
    error = _error(res)
    assert error["type"] == "DataError" and res.exit_code == 65
    assert error["file"] == str(bad) and isinstance(error["row"], int)
    assert error["message"].startswith(f"{bad}:{error['row']}: ")


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "--bogus", "data", "list"],  # a global option
        ["--json", "data", "list", "--bogus"],  # a sub-command's option
        ["--json", "data", "query"],  # a missing argument
        ["--json", "data", "query", "SELECT 1", "-d", "d", "--limit", "x"],  # a bad value
        ["--json", "nope"],  # an unknown command
        ["backtest", "list", "--json", "--bogus"],  # the sub-command's own --json
    ],
)
def test_usage_errors_are_json_errors(cli, root: Path, args: list[str]) -> None:
    res = cli(*args)
    assert res.exit_code == 2
    doc = _strict(res.stdout)
    assert doc["error"]["type"] == "UsageError" and doc["error"]["exit_code"] == 2
    assert doc["error"]["message"]


def test_usage_errors_without_json_stay_click_text(cli, root: Path) -> None:
    res = cli("data", "list", "--bogus")
    assert res.exit_code == 2 and res.stdout == "" and "No such option: --bogus" in res.stderr


def test_library_usage_error_is_json(cli, root: Path) -> None:
    error = _error(cli("--json", "data", "tag", "d", "v3"))
    assert error["type"] == "UsageError" and error["exit_code"] == 2


def test_verify_failure_is_one_document_with_the_report(cli, root: Path) -> None:
    next((root / "d" / "v1" / "data").iterdir()).unlink()
    res = cli("--json", "data", "verify")
    doc = _strict(res.stdout)
    assert res.exit_code == 1 and doc["ok"] is False and doc["versions"][0]["missing"]
    assert doc["error"]["type"] == "IntegrityError" and "missing data/" in doc["error"]["message"]


def test_validate_failure_is_one_document_with_the_report(cli, store: Path) -> None:
    import polars as pl

    bad = make_bars().with_columns(
        pl.when(pl.col("ts").dt.day() == 25).then(-1.0).otherwise(pl.col("low")).alias("low")
    )
    publish(store, "bad", bad, interval="1d", source=SOURCE)
    res = cli("--json", "data", "validate", "bad")
    doc = _strict(res.stdout)
    assert res.exit_code == 65 and doc["ref"] == "bad@v1" and doc["findings"]
    assert doc["error"]["type"] == "DataError" and "error-level finding" in doc["error"]["message"]
    # Without --json the report is printed and the error is the one line on stderr.
    text = cli("data", "validate", "bad")
    assert text.exit_code == 65 and "bad@v1" in text.stdout and text.stderr.count("\n") == 1


def test_json_output_has_null_for_nan_and_infinity(cli, root: Path) -> None:
    sql = "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::FLOAT AS c, 1.5::DOUBLE AS d"
    res = cli("--json", "data", "query", sql, "-d", "d")
    assert res.exit_code == 0, res.stderr
    assert "NaN" not in res.stdout and "Infinity" not in res.stdout
    assert _strict(res.stdout)["rows"] == [{"a": None, "b": None, "c": None, "d": 1.5}]
    csv_json = cli("data", "query", sql, "-d", "d", "--format", "json")
    assert _strict(csv_json.stdout) == [{"a": None, "b": None, "c": None, "d": 1.5}]
    # The table shows what the query returned.
    table = cli("data", "query", sql, "-d", "d")
    assert "nan" in table.stdout and "inf" in table.stdout


JSONABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _same_but_finite(value: Any, parsed: Any) -> bool:
    if isinstance(value, float):
        return parsed == value if math.isfinite(value) else parsed is None
    if isinstance(value, dict):
        return parsed.keys() == value.keys() and all(
            _same_but_finite(v, parsed[k]) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return len(parsed) == len(value) and all(
            _same_but_finite(v, p) for v, p in zip(value, parsed, strict=True)
        )
    return bool(parsed == value)


@given(JSONABLE)
def test_to_json_is_strict_and_keeps_every_finite_value(value: Any) -> None:
    parsed = _strict(to_json(value))
    assert _same_but_finite(value, parsed)


def test_error_documents() -> None:
    assert DataError("bad", path="a.csv", row=3).to_dict() == {
        "type": "DataError",
        "message": "a.csv:3: bad",
        "exit_code": 65,
        "file": "a.csv",
        "row": 3,
    }
    assert IntegrityError("gone", path="x.parquet").message == "x.parquet: gone"
    assert QuantcliError("plain").to_dict()["file"] is None
