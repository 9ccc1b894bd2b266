"""Per-symbol windows partitioned by each bar's symbol number instead of its name.

Strategies partition their windows by name (``.over("symbol")``). Over bars grouped by
symbol, the same windows partitioned by a number per symbol give the same values, and polars
groups sorted int32 numbers much faster than strings: the SMA cross's targets over 10 M bars
took 0.56 s against 1.32 s. :func:`by_number` rewrites the symbol partitions of a plan that
:mod:`quantcli.backtest.causal` proves, since such a plan holds only polars' own nodes (no
Python function, which a plan would carry pickled), so reading it back loads nothing else.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from quantcli.backtest import causal

NUMBER = "__quantcli_symbol_number"  # the column :func:`with_numbers` adds
_BY_NAME = {"Column": "symbol"}
_BY_NAME_TEXT = json.dumps(_BY_NAME, separators=(",", ":"))  # as a serialised plan spells it


def by_number(exprs: Sequence[pl.Expr]) -> list[pl.Expr] | None:
    """``exprs`` with each ``.over("symbol")`` partitioned by the :data:`NUMBER` column, or
    None when one of them is not proven point-in-time or none reads the symbol."""
    plans = [causal.plan_of(expr) for expr in exprs]
    if not all(map(causal.proven_plan, plans)) or not any(_BY_NAME_TEXT in p for p in plans):
        return None
    return [_by_number(plan) for plan in plans]


def with_numbers(frame: pl.DataFrame, code: np.ndarray) -> pl.DataFrame:
    """``frame`` with each row's symbol number ``code`` as the :data:`NUMBER` column."""
    numbers = pl.Series(NUMBER, code)
    if bool(np.all(code[1:] >= code[:-1])):
        # Flagged sorted, polars groups the runs without hashing them: the SMA cross's 10 M-bar
        # targets took 0.56 s (1.32 s by name); unflagged, 1.12 s (1.64 s by name, earlier).
        numbers = numbers.set_sorted()
    # hstack, not with_columns: no query-engine call for a small run to pay.
    return frame.hstack([numbers])


@functools.lru_cache(maxsize=1024)
def _by_number(plan: str) -> pl.Expr:
    """The expression of the proven ``plan`` with its symbol partitions by number."""
    tree = json.loads(plan)
    _renumber(tree)
    return pl.Expr.deserialize(io.StringIO(json.dumps(tree)), format="json")


def _renumber(node: object) -> None:
    """Replace, in place, every window's symbol key in the plan ``node`` by the number's."""
    if isinstance(node, dict):
        window = node.get("Over")
        if isinstance(window, dict) and isinstance(window.get("partition_by"), list):
            keys = window["partition_by"]
            keys[:] = [{"Column": NUMBER} if key == _BY_NAME else key for key in keys]
        for child in node.values():
            _renumber(child)
    elif isinstance(node, list):
        for child in node:
            _renumber(child)
