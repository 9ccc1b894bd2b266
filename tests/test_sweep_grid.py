"""Parameter grids: ranges, lists, scalars, --where, and their one-line errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.errors import UsageError
from quantcli.sweep.grid import combo_params, param_text, parse_grid


def test_ranges_lists_and_scalars_keep_their_types() -> None:
    grid = parse_grid(["slow=20:60:20", "fast=5,10", "qty=100", "w=0.1:0.3:0.1", "x=a,b"], None)
    assert grid.params == (
        ("fast", (5, 10)),
        ("qty", (100,)),
        ("slow", (20, 40, 60)),
        ("w", (0.1, 0.2, 0.3)),
        ("x", ("a", "b")),
    )
    assert len(grid.combos) == 2 * 3 * 3 * 2
    assert grid.varied == ("fast", "slow", "w", "x")
    assert combo_params(grid.combos[0]) == {
        "fast": "5",
        "qty": "100",
        "slow": "20",
        "w": "0.1",
        "x": "a",
    }


def test_where_filters_and_k_is_stable_whatever_the_flag_order() -> None:
    a = parse_grid(["fast=5:50:5", "slow=20:200:20"], "fast < slow and slow - fast >= 30")
    b = parse_grid(["slow=20:200:20", "fast=5:50:5"], "fast < slow and slow - fast >= 30")
    assert a.combos == b.combos
    assert all(c["fast"] < c["slow"] and c["slow"] - c["fast"] >= 30 for c in a.combos)
    assert a.combos[0] == {"fast": 5, "slow": 40}
    assert a.to_dict()["combos"] == len(a.combos)


@pytest.mark.parametrize(
    ("params", "where", "message"),
    [
        (["fast"], None, "-p 'fast': expected NAME=VALUE"),
        (["fast=5:1:1"], None, "-p fast=5:1:1: the range ends before it starts"),
        (["fast=1:5:0"], None, "-p fast=1:5:0: the step must be greater than 0"),
        (["fast=1:5"], None, "-p fast=1:5: a range is a:b:step (three numbers)"),
        (["fast=a:b:c"], None, "-p fast=a:b:c: a range is a:b:step of numbers"),
        (["fast=1,1"], None, "-p fast=1,1: a value is repeated"),
        (["fast=1,,2"], None, "-p fast=1,,2: an empty item in the list"),
        (["fast=1", "fast=2"], None, "-p fast: given twice"),
        ([], None, "no grid"),
        (["fast=1,2"], "fast > 5", "--where 'fast > 5' keeps none of the grid's 2 combinations"),
        (["fast=1,2"], "slow > 5", "--where 'slow > 5': unknown parameter 'slow'"),
        (["fast=1,2"], "__import__('os')", "--where \"__import__('os')\": Call is not allowed"),
        (["fast=1,2"], "fast.real > 1", "Attribute is not allowed"),
        (["fast=1,2"], "fast <", "not an expression"),
        (["fast=0,1"], "1 / fast > 0", "--where '1 / fast > 0' fails at fast=0"),
        (["fast=1:2000000:1"], None, "over 1,000,000"),
    ],
)
def test_bad_grids_are_one_usage_line(params: list[str], where: str | None, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_grid(params, where)
    assert message in err.value.message
    assert "\n" not in err.value.message


@given(
    st.integers(-1000, 1000),
    st.integers(0, 50),
    st.integers(1, 20),
)
def test_a_range_is_every_step_from_a_to_b_inclusive(a: int, span: int, step: int) -> None:
    b = a + span
    (_, values), *_ = parse_grid([f"p={a}:{b}:{step}"], None).params
    assert values == tuple(range(a, b + 1, step))
    assert all(isinstance(v, int) for v in values)


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4, unique=True), st.integers(0, 30))
def test_where_keeps_exactly_the_combinations_it_is_true_of(xs: list[int], cut: int) -> None:
    spec = ",".join(map(str, xs))
    where = f"x + y > {cut} or x == 0"
    expected = [(x, y) for x in xs for y in (1, 2) if x + y > cut or x == 0]
    if not expected:
        with pytest.raises(UsageError, match="keeps none"):
            parse_grid([f"x={spec}", "y=1,2"], where)
        return
    kept = [(c["x"], c["y"]) for c in parse_grid([f"x={spec}", "y=1,2"], where).combos]
    assert kept == expected


def test_param_text_is_what_a_strategy_parameter_parses() -> None:
    assert [param_text(v) for v in (5, -3, 0.25, True, "abc")] == ["5", "-3", "0.25", "true", "abc"]
