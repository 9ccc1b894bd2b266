"""Parameter grids: ``-p name=a:b:step`` ranges, ``-p name=a,b,c`` lists and scalars, filtered by
``--where``.

A grid's combinations are the cartesian product of its parameters' values, parameters by name
(so the order of the flags does not change it) and each parameter's values in the order given
(ranges ascending). The combinations ``--where`` keeps are numbered 0, 1, ... in that order:
the combination index K, the same for the same grid on any machine.

``--where`` is an expression over the parameter names (``fast < slow and slow - fast >= 10``):
comparisons, ``and``/``or``/``not``, arithmetic and numbers, read by a small allowlisted walk of
Python's syntax tree; nothing else in it is evaluated.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from quantcli.errors import UsageError

Value = int | float | bool | str
# A grid larger than this is a typo more often than a plan (20 values of 4 parameters is 160,000).
MAX_COMBOS = 1_000_000


@dataclass(frozen=True)
class Grid:
    """The parameters of a sweep (name -> values, by name) and the combinations kept."""

    params: tuple[tuple[str, tuple[Value, ...]], ...]
    where: str | None
    combos: tuple[Mapping[str, Value], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, sorted."""
        return tuple(name for name, _ in self.params)

    @property
    def varied(self) -> tuple[str, ...]:
        """The parameters with more than one value."""
        return tuple(name for name, values in self.params if len(values) > 1)

    def to_dict(self) -> dict[str, object]:
        """The grid as a sweep manifest records it."""
        return {
            "params": {name: list(values) for name, values in self.params},
            "where": self.where,
            "combos": len(self.combos),
        }


def param_text(value: Value) -> str:
    """A grid value as a ``-p name=value`` text (what a strategy's parameters parse)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def combo_params(combo: Mapping[str, Value]) -> dict[str, str]:
    """A combination as raw ``-p`` parameters."""
    return {name: param_text(value) for name, value in combo.items()}


def parse_grid(params: list[str], where: str | None) -> Grid:
    """The grid of ``-p NAME=SPEC`` flags (SPEC: ``a:b:step`` inclusive range, ``a,b,c`` list or
    one value) kept by the ``--where`` expression; UsageError, one line naming the flag, for a
    bad spec, a repeated name, an expression that is not allowed or an empty grid."""
    specs: dict[str, tuple[Value, ...]] = {}
    for pair in params:
        name, sep, spec = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"-p {pair!r}: expected NAME=VALUE, NAME=a:b:step or NAME=a,b,c")
        if name in specs:
            raise UsageError(f"-p {name}: given twice; give its values in one flag (a,b,c)")
        specs[name] = _values(name, spec.strip())
    if not specs:
        raise UsageError("no grid: give at least one -p NAME=a:b:step or -p NAME=a,b,c")
    ordered = tuple(sorted(specs.items()))
    size = 1
    for _, values in ordered:
        size *= len(values)
    if size > MAX_COMBOS:
        raise UsageError(f"the grid has {size:,} combinations, over {MAX_COMBOS:,}: narrow it")
    keep = _where(where, [name for name, _ in ordered])
    names = [name for name, _ in ordered]
    combos = tuple(
        combo
        for combo in (
            dict(zip(names, row, strict=True))
            for row in itertools.product(*(v for _, v in ordered))
        )
        if keep(combo)
    )
    if not combos:
        raise UsageError(f"--where {where!r} keeps none of the grid's {size:,} combinations")
    return Grid(ordered, where, combos)


def _values(name: str, spec: str) -> tuple[Value, ...]:
    if not spec:
        raise UsageError(f"-p {name}=: no value")
    parts = spec.split(":")
    if len(parts) == 3 and "," not in spec:
        return _range(name, spec, *parts)
    if ":" in spec:
        raise UsageError(f"-p {name}={spec}: a range is a:b:step (three numbers)")
    values = tuple(_scalar(item.strip()) for item in spec.split(","))
    if any(item.strip() == "" for item in spec.split(",")):
        raise UsageError(f"-p {name}={spec}: an empty item in the list")
    if len(set(map(param_text, values))) < len(values):
        raise UsageError(f"-p {name}={spec}: a value is repeated")
    return values


def _range(name: str, spec: str, a: str, b: str, step: str) -> tuple[Value, ...]:
    try:
        first, last, by = (Decimal(x.strip()) for x in (a, b, step))
    except InvalidOperation:
        raise UsageError(f"-p {name}={spec}: a range is a:b:step of numbers") from None
    if not all(x.is_finite() for x in (first, last, by)):
        raise UsageError(f"-p {name}={spec}: a range is a:b:step of finite numbers")
    if by <= 0:
        raise UsageError(f"-p {name}={spec}: the step must be greater than 0")
    if last < first:
        raise UsageError(f"-p {name}={spec}: the range ends before it starts")
    count = int((last - first) / by) + 1
    if count > MAX_COMBOS:
        raise UsageError(f"-p {name}={spec}: {count:,} values, over {MAX_COMBOS:,}")
    # Decimal steps are exact: 0.1:0.5:0.1 is 0.1, 0.2, ..., 0.5, with no 0.30000000000000004.
    whole = all(_is_int_text(x.strip()) for x in (a, b, step))
    points = [first + i * by for i in range(count)]
    return tuple(int(p) if whole else float(p) for p in points)


def _is_int_text(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isdigit()


def _scalar(text: str) -> Value:
    if _is_int_text(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if text.lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else text


_COMPARE: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def _where(text: str | None, names: list[str]) -> Callable[[Mapping[str, Value]], bool]:
    """A predicate over a combination, from the ``--where`` expression (None: keep all)."""
    if text is None or not text.strip():
        return lambda _: True
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UsageError(f"--where {text!r}: not an expression ({exc.msg})") from None
    for node in ast.walk(tree):
        _check_node(node, text, names)

    def keep(combo: Mapping[str, Value]) -> bool:
        try:
            return bool(_evaluate(tree.body, combo))
        except (ArithmeticError, TypeError) as exc:
            shown = ", ".join(f"{k}={param_text(v)}" for k, v in combo.items())
            raise UsageError(f"--where {text!r} fails at {shown}: {exc}") from None

    return keep


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.BinOp,
    ast.Name,
    ast.Load,
    ast.Constant,
    *_COMPARE,
    *_ARITHMETIC,
)


def _check_node(node: ast.AST, text: str, names: list[str]) -> None:
    if not isinstance(node, _ALLOWED):
        raise UsageError(
            f"--where {text!r}: {type(node).__name__} is not allowed (use parameter names, "
            "numbers, comparisons, and/or/not and + - * / // %)"
        )
    if isinstance(node, ast.Name) and node.id not in names:
        raise UsageError(
            f"--where {text!r}: unknown parameter {node.id!r} (the grid's: {', '.join(names)})"
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str):
        raise UsageError(f"--where {text!r}: {node.value!r} is not a number or a string")


def _evaluate(node: ast.expr, combo: Mapping[str, Value]) -> Any:
    """The value of an expression that :func:`_check_node` allowed."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return combo[node.id]
    if isinstance(node, ast.BoolOp):
        values: Iterator[Any] = (_evaluate(v, combo) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, combo)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_evaluate(node.left, combo), _evaluate(node.right, combo))
    assert isinstance(node, ast.Compare)  # the last node kind _check_node allows
    left = _evaluate(node.left, combo)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _evaluate(right_node, combo)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True
