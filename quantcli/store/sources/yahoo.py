"""Yahoo Finance CSV downloads, the most used free source of NSE and BSE daily bars.

Layouts (case-insensitive column names):
- classic, the finance.yahoo.com download: ``Date,Open,High,Low,Close,Adj Close,Volume``, one
  symbol per file, named by the file (``RELIANCE.NS.csv``); yfinance's ``Ticker.history()``
  writes the same with ``Dividends,Stock Splits`` (ignored) and no Adj Close;
- yfinance's ``download(...).to_csv()``: three header lines, ``Price,Close,High,...`` (each
  column's field), ``Ticker,RELIANCE.NS,...`` (its ticker) and ``Date,,,...``; one or more
  tickers per file.

Yahoo writes ``null`` (classic) or nothing (yfinance) in every cell of a day it has no bar
for; such rows are dropped and counted in the notes. Tickers lose their exchange suffix
(``RELIANCE.NS`` -> ``RELIANCE``, ``TCS.BO`` -> ``TCS``), recorded in the notes. ``close`` is
Yahoo's Close, never Adj Close (which also folds in dividends).

Yahoo's Close is already split-adjusted, so the version records its prices as vendor-adjusted
(``manifest.prices``) and no split or bonus on record is applied to it again: a file with an
Adj Close column (the classic download, yfinance with ``auto_adjust=False``) is
``split_adjusted``; one without (yfinance's default ``auto_adjust=True``, ``Ticker.history()``)
is ``total_return_adjusted``, its Close adjusted for dividends too.
"""

from __future__ import annotations

import csv as _csv
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

import polars as pl

from quantcli.errors import DataError, UsageError
from quantcli.store.sources.base import (
    ROW_COL,
    TABLE_OPTIONS,
    ParsedSource,
    TableOptions,
    canonical_frame,
    check_options,
    finish,
    input_tables,
    normalised,
    read_text_table,
    table_options,
    table_stem,
)

# normalised Yahoo column name -> canonical column ("" = known, not stored)
LAYOUT: Final = {
    "date": "ts",
    "datetime": "ts",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj_close": "",
    "volume": "volume",
    "dividends": "",
    "stock_splits": "",
    "capital_gains": "",
}
_VALUES: Final = ("open", "high", "low", "close", "adj_close", "volume")
SUFFIXES: Final = (".NS", ".BO")  # Yahoo's NSE and BSE tickers
CLOSE_NOTE: Final = (
    "close is Yahoo's Close, not Adj Close; Yahoo adjusts Close for splits (not dividends), and "
    "yfinance with auto_adjust (files without Adj Close) for splits and dividends"
)
OPTIONS = tuple(o for o in TABLE_OPTIONS if o != "symbol_column")  # the layout has no symbol
SPLIT_ADJUSTED: Final = "split_adjusted"  # Close beside an Adj Close: splits and bonuses only
TOTAL_RETURN_ADJUSTED: Final = "total_return_adjusted"  # no Adj Close: Close has dividends too


def symbol_of(ticker: str) -> str:
    """The exchange symbol of a Yahoo ticker: ``RELIANCE.NS`` -> ``RELIANCE``; others as given."""
    for suffix in SUFFIXES:
        if ticker.upper().endswith(suffix) and len(ticker) > len(suffix):
            return ticker[: -len(suffix)]
    return ticker


def _header_lines(content: bytes) -> list[list[str]]:
    """The first three lines as fields (a wide multi-ticker header can run to many KB)."""
    end = -1
    for _ in range(3):
        end = content.find(b"\n", end + 1)
        if end < 0:
            break
    head = content if end < 0 else content[:end]
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return list(_csv.reader(text.splitlines()))


def _columns(content: bytes, label: str, opts: TableOptions) -> tuple[int, list[tuple[str, str]]]:
    """(header rows to skip, each column's (field, ticker)); no columns for a classic file.

    yfinance writes the Price line first (``group_by="column"``, the default) or the Ticker
    line first (``group_by="ticker"``).
    """
    lines = _header_lines(content)
    heads = [r[:1] for r in lines[:2]]
    if len(lines) < 3 or heads not in ([["Price"], ["Ticker"]], [["Ticker"], ["Price"]]):
        return 0, []
    fields, tickers = (lines[0], lines[1]) if heads[0] == ["Price"] else (lines[1], lines[0])
    if len(tickers) != len(fields):
        raise DataError(
            f"the Ticker line has {len(tickers)} fields but the Price line {len(fields)}",
            path=label,
        )
    if opts.symbol is not None and len(set(tickers[1:])) > 1:
        raise UsageError(
            f"{label}: --symbol names one symbol, but the file holds tickers "
            f"{', '.join(dict.fromkeys(tickers[1:]))}"
        )
    return 2, list(zip(["Date", *fields[1:]], tickers, strict=True))


def _split(
    raw: pl.DataFrame, columns: list[tuple[str, str]], name: str
) -> list[tuple[str, pl.DataFrame]]:
    """(ticker, one-ticker table) pairs; a classic file's ticker is its file name."""
    if not columns:
        return [(table_stem(name), raw)]
    names = [c for c in raw.columns if c != ROW_COL]  # polars renames repeated fields
    date = pl.col(names[0]).alias("Date")  # yfinance's date column is headed "Price"
    out = []
    for ticker in dict.fromkeys(t for _, t in columns[1:]):
        own = [
            pl.col(name).alias(field)
            for name, (field, t) in zip(names[1:], columns[1:], strict=True)
            if t == ticker
        ]
        out.append((ticker, raw.select(date, *own, pl.col(ROW_COL))))
    return out


def _drop_empty_days(table: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """``null`` cells as empty, and the rows with no value at all dropped (Yahoo's no-bar days)."""
    values = [c for c in table.columns if normalised(c) in _VALUES]
    cleaned = table.with_columns(
        pl.when(pl.col(c).str.strip_chars().str.to_lowercase().is_in(["null", ""]))
        .then(None)
        .otherwise(pl.col(c))
        .alias(c)
        for c in values
    )
    empty = pl.all_horizontal(pl.col(c).is_null() for c in values)
    kept = cleaned.filter(~empty)
    return kept, table.height - kept.height


def _prices(table: pl.DataFrame) -> str:
    """What Yahoo adjusted ``table``'s Close for, told by whether it has an Adj Close."""
    has_adj = any(normalised(c) == "adj_close" for c in table.columns)
    return SPLIT_ADJUSTED if has_adj else TOTAL_RETURN_ADJUSTED


def _mixed(ticker: str, kind: str, kinds: Mapping[str, str]) -> str:
    """Why a table of ``kind`` cannot join the tables already read (``kinds``: kind -> file)."""
    split = kind == SPLIT_ADJUSTED
    other = kinds[TOTAL_RETURN_ADJUSTED if split else SPLIT_ADJUSTED]
    return (
        f"{ticker} has {'an' if split else 'no'} Adj Close but {other} has "
        f"{'none' if split else 'one'}: Close beside an Adj Close is split-adjusted, without one "
        "dividend-adjusted too, and a dataset holds one kind of prices (ingest them into "
        "separate datasets)"
    )


def parse(files: Sequence[Path], options: Mapping[str, str]) -> ParsedSource:
    """Parse Yahoo Finance CSVs (classic or yfinance; plain, ``.gz`` or ``.zip``)."""
    check_options("yahoo", options, OPTIONS)
    base = replace(
        table_options(options, mapping=LAYOUT), strict_columns=True, layout="Yahoo Finance"
    )
    frames: list[pl.DataFrame] = []
    labels: list[str] = []
    ignored: list[str] = []
    renamed: dict[str, str] = {}
    owner: dict[str, str] = {}  # symbol -> the ticker it came from
    dropped: dict[str, int] = {}
    kinds: dict[str, str] = {}  # prices kind -> the first table that has it
    for path in files:
        for label, name, content in input_tables(path):
            skip, columns = _columns(content, label, base)
            raw = read_text_table(content, label, skip=skip)
            for ticker, table in _split(raw, columns, name):
                kind = _prices(table)
                kinds.setdefault(kind, label)
                if len(kinds) > 1:
                    raise DataError(_mixed(ticker, kind, kinds), path=label)
                symbol = base.symbol or symbol_of(ticker)
                if base.symbol is None and owner.setdefault(symbol, ticker) != ticker:
                    raise DataError(
                        f"tickers {owner[symbol]} and {ticker} both map to symbol {symbol}; "
                        "ingest them into separate datasets",
                        path=label,
                    )
                if symbol != ticker and base.symbol is None:
                    renamed[ticker] = symbol
                kept, empty = _drop_empty_days(table)
                if empty:
                    dropped[symbol] = dropped.get(symbol, 0) + empty
                if kept.height == 0:
                    raise DataError(f"{ticker}: no rows with data", path=label)
                frame, skipped = canonical_frame(kept, label, symbol, replace(base, symbol=symbol))
                frames.append(frame)
                labels.append(label)
                ignored.extend(skipped)
    notes: dict[str, object] = {"yahoo_close": CLOSE_NOTE}
    if renamed:
        notes["yahoo_symbols"] = renamed
    if dropped:
        notes["yahoo_empty_rows_dropped"] = dropped
    parsed = finish(
        frames, labels, files, ignored, volume_optional=base.volume_optional, notes=notes
    )
    return replace(parsed, prices=next(iter(kinds)))
