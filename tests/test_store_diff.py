"""diff: bars added, removed and changed per symbol, joined on (symbol, ts)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from store_helpers import SOURCE, make_bars

from quantcli.store.diff import diff
from quantcli.store.publish import publish
from quantcli.store.reader import open_dataset


def test_diff_counts(store: Path) -> None:
    old = make_bars(["AAA", "BBB", "CCC"], days=10)
    new = make_bars(
        ["AAA", "BBB", "DDD"], days=12
    ).with_columns(  # AAA/BBB gain 2 days, CCC gone, DDD new
        pl.when((pl.col("symbol") == "BBB") & (pl.col("ts").dt.day() == 21))
        .then(pl.col("close") + 1)
        .otherwise(pl.col("close"))
    )
    publish(store, "d", old, interval="1d", source=SOURCE)
    publish(store, "d", new, interval="1d", source=SOURCE)
    result = diff(open_dataset("d@v1", store), open_dataset("d@v2", store))
    by = {s.symbol: s for s in result.symbols}
    assert (by["AAA"].added, by["AAA"].removed, by["AAA"].changed, by["AAA"].unchanged) == (
        2,
        0,
        0,
        10,
    )
    assert (by["BBB"].added, by["BBB"].changed, by["BBB"].unchanged) == (2, 1, 9)
    assert (by["CCC"].removed, by["CCC"].unchanged) == (10, 0)
    assert (by["DDD"].added, by["DDD"].removed) == (12, 0)
    assert result.total("added") == 16 and result.total("removed") == 10
    assert not result.identical and (result.a, result.b) == ("d@v1", "d@v2")


def test_identical_symbols_are_not_read(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    v = open_dataset("d", store)
    result = diff(v, v)
    assert result.identical and result.total("unchanged") == 90


def test_new_columns_and_other_datasets(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "e", make_bars(extra=True), interval="1d", source=SOURCE)
    result = diff(open_dataset("d", store), open_dataset("e", store))
    assert result.columns_added == ("oi", "vwap") and result.columns_removed == ()
    assert result.total("unchanged") == 90 and not result.identical
    back = diff(open_dataset("e", store), open_dataset("d", store))
    assert back.columns_removed == ("oi", "vwap")


def test_only_one_side_has_symbols_to_read(store: Path) -> None:
    publish(store, "d", make_bars(["AAA"]), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(["AAA", "BBB"]), interval="1d", source=SOURCE)
    forward = diff(open_dataset("d@v1", store), open_dataset("d@v2", store))
    assert [(s.symbol, s.added, s.unchanged) for s in forward.symbols] == [
        ("AAA", 0, 30),
        ("BBB", 30, 0),
    ]
    backward = diff(open_dataset("d@v2", store), open_dataset("d@v1", store))
    assert [(s.symbol, s.removed) for s in backward.symbols] == [("AAA", 0), ("BBB", 30)]
