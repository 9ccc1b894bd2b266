"""A proof, read off a polars expression's plan, that its value at a bar uses no later bar.

The look-ahead check (quantcli.backtest.targets) evaluates an expression again with later
prices distorted, two or three polars queries a run: on a small run that is more than the
replay. Most strategies and feature sets are built from a few shapes that are point-in-time by
construction (arithmetic and comparisons of a bar's own columns, trailing windows inside a
per-symbol ``.over("symbol")``, cross-sections inside ``.over("ts")``), and those can be
recognised in the expression's serialised plan. :func:`proven` says True only for plans made
entirely of the nodes listed here; anything else (an unknown or new node, a Python function, a
literal Series, a window outside a per-symbol partition) leaves the decision to the
distortion check, which still runs for it.

The rows are in (symbol, ts) order, each symbol's bars one run of rows: a trailing window
inside a per-symbol partition reads only the symbol's earlier bars, while the same window
over the whole frame reads the previous symbol's last (later) bars, so it is not proven.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Sequence

import polars as pl


class Scope(enum.Enum):
    """Which rows an expression sees together."""

    FRAME = "frame"  # every bar, grouped by symbol
    SYMBOL = "symbol"  # one symbol's bars, in time order
    MOMENT = "moment"  # the bars of one timestamp (a cross-section)


# Functions whose value at a row reads only that row's inputs.
_ELEMENTWISE = frozenset(
    {
        "Abs",
        "Ceil",
        "Clip",
        "Coalesce",
        "Exp",
        "FillNull",
        "Floor",
        "Log",
        "Log1p",
        "MaxHorizontal",
        "MeanHorizontal",
        "MinHorizontal",
        "Negate",
        "Pow",
        "Round",
        "Sign",
        "SumHorizontal",
        "Trigonometry",
    }
)
# A timestamp's fields (not a time-zone change, which may infer from neighbouring rows).
_ELEMENTWISE_TEMPORAL = frozenset(
    {
        "Date",
        "Day",
        "Hour",
        "IsLeapYear",
        "IsoYear",
        "Microsecond",
        "Millisecond",
        "Minute",
        "Month",
        "MonthEnd",
        "MonthStart",
        "OrdinalDay",
        "Quarter",
        "Second",
        "Time",
        "TimeStamp",
        "Truncate",
        "Week",
        "WeekDay",
        "Year",
    }
)
_ELEMENTWISE_BOOLEAN = frozenset(
    {
        "AllHorizontal",
        "AnyHorizontal",
        "IsBetween",
        "IsFinite",
        "IsInfinite",
        "IsNan",
        "IsNotNan",
        "IsNotNull",
        "IsNull",
        "Not",
    }
)
# Functions of a row and the rows before it (given the payloads _trailing accepts).
_BY_PERIODS = frozenset({"Diff", "PctChange", "Shift", "ShiftAndFill"})
_CUMULATIVE = frozenset({"CumCount", "CumMax", "CumMin", "CumProd", "CumSum"})
_EXPONENTIAL = frozenset({"EwmMean", "EwmStd", "EwmVar"})
# Functions of every row seen together: point-in-time only within a cross-section.
_REDUCING = frozenset({"NullCount", "Quantile", "Rank"})


def proven(exprs: Sequence[pl.Expr]) -> bool:
    """True when each of ``exprs``, evaluated over bars in (symbol, ts) order, provably gives
    every bar a value from that bar and earlier ones only; False when that is not shown (the
    distortion check decides then)."""
    return all(proven_plan(plan) for plan in map(plan_of, exprs))


def plan_of(expr: pl.Expr) -> str:
    """The serialised plan of ``expr``, or "" (proving nothing) for one polars cannot write."""
    try:
        return expr.meta.serialize(format="json")
    except Exception:  # any failure leaves the verdict to the distortion check
        return ""


@functools.lru_cache(maxsize=1024)
def proven_plan(plan: str) -> bool:
    """:func:`proven` of one serialised plan (a sweep's combinations repeat theirs)."""
    return bool(plan) and _causal(json.loads(plan), Scope.FRAME)


def _causal(node: object, scope: Scope) -> bool:
    """Whether ``node`` (of the serialised plan: ``{"Kind": payload}``, or a bare name such as
    ``"Len"``) is point-in-time when it sees the rows of ``scope`` together."""
    if node == "Len":
        return scope is Scope.MOMENT
    if not isinstance(node, dict) or len(node) != 1:
        return False
    ((kind, body),) = node.items()
    if kind in ("Column", "Selector"):
        return True  # a bar's own columns
    if kind == "Literal":
        return isinstance(body, dict) and set(body) <= {"Dyn", "Scalar"}  # not a Series
    if kind == "Alias":
        return isinstance(body, list) and bool(body) and _causal(body[0], scope)
    if kind == "Cast":
        return isinstance(body, dict) and _causal(body.get("expr"), scope)
    if kind == "BinaryExpr":
        return isinstance(body, dict) and _all_causal([body.get("left"), body.get("right")], scope)
    if kind == "Ternary":
        parts = ("predicate", "truthy", "falsy")
        return isinstance(body, dict) and _all_causal([body.get(p) for p in parts], scope)
    if kind == "Function":
        return isinstance(body, dict) and _function(body, scope)
    if kind == "Agg":
        return scope is Scope.MOMENT and _aggregated(body)
    if kind == "Over":
        return scope is Scope.FRAME and isinstance(body, dict) and _over(body)
    return False


def _all_causal(nodes: Sequence[object], scope: Scope) -> bool:
    return all(_causal(n, scope) for n in nodes)


def _function(body: dict[str, object], scope: Scope) -> bool:
    """A function node: its kind allowed in ``scope`` and every input point-in-time."""
    inputs, function = body.get("input"), body.get("function")
    if not isinstance(inputs, list) or not _all_causal(inputs, scope):
        return False
    name, payload = _named(function)
    if name in _ELEMENTWISE:
        return True
    if name == "Boolean":
        return _named(payload)[0] in _ELEMENTWISE_BOOLEAN
    if name == "TemporalExpr":
        return _named(payload)[0] in _ELEMENTWISE_TEMPORAL
    if name in _REDUCING:
        return scope is Scope.MOMENT
    return scope is Scope.SYMBOL and _trailing(name, payload, inputs)


def _trailing(name: str, payload: object, inputs: list[object]) -> bool:
    """Whether the function reads only the row and earlier rows of its partition."""
    if name in _BY_PERIODS:  # periods, the second input, a literal >= 0 (not a lead)
        periods = _literal_int(inputs[1]) if len(inputs) > 1 else None
        # diff(null_behavior="drop") shortens the column: rows would no longer line up.
        return periods is not None and periods >= 0 and payload != "Drop"
    if name in _CUMULATIVE:
        return isinstance(payload, dict) and payload.get("reverse") is False
    if name in _EXPONENTIAL:
        return True
    if name == "RollingExpr":  # a trailing window, not a centred one
        options = payload.get("options") if isinstance(payload, dict) else None
        return isinstance(options, dict) and options.get("center") is False
    if name == "FillNullWithStrategy":  # the last value before, not the next one
        return _named(payload)[0] == "Forward"
    return False


def _over(body: dict[str, object]) -> bool:
    """A window: partitioned by timestamp (a cross-section) or by symbol (its history, in
    time order), rows mapped back one to one."""
    keys, order_by = body.get("partition_by"), body.get("order_by")
    if body.get("mapping") != "GroupsToRows" or not isinstance(keys, list):
        return False
    if not _all_causal(keys, Scope.FRAME):
        return False
    if order_by is not None and not _by_time(order_by):
        return False
    if {"Column": "ts"} in keys:
        return _causal(body.get("function"), Scope.MOMENT)
    if {"Column": "symbol"} in keys:
        return _causal(body.get("function"), Scope.SYMBOL)
    return False


def _by_time(order_by: object) -> bool:
    """An ``order_by`` of the timestamp, ascending: the rows' own order within a symbol."""
    if not isinstance(order_by, list) or len(order_by) != 2:
        return False
    expr, options = order_by
    return expr == {"Column": "ts"} and isinstance(options, dict) and not options.get("descending")


def _aggregated(body: object) -> bool:
    """An aggregation's input(s) point-in-time in a cross-section: ``{"Mean": expr}``,
    ``{"Max": {"input": expr, ...}}`` or ``{"Std": [expr, ddof]}``."""
    _, payload = _named(body)
    if isinstance(payload, dict) and "input" in payload:
        payload = payload["input"]
    parts = payload if isinstance(payload, list) else [payload]
    exprs = [p for p in parts if isinstance(p, (dict, str))]
    return bool(exprs) and _all_causal(exprs, Scope.MOMENT)


def _named(node: object) -> tuple[str, object]:
    """(kind, payload) of ``"Kind"`` or ``{"Kind": payload}``; ("", None) otherwise."""
    if isinstance(node, str):
        return node, None
    if isinstance(node, dict) and len(node) == 1:
        ((name, payload),) = node.items()
        return str(name), payload
    return "", None


def _literal_int(node: object) -> int | None:
    """The value of an integer literal node, else None."""
    if isinstance(node, dict) and isinstance(literal := node.get("Literal"), dict):
        dyn = literal.get("Dyn")
        if isinstance(dyn, dict) and isinstance(value := dyn.get("Int"), int):
            return value
    return None
