"""The order lifecycle table (quantcli.backtest.orders.transition): the only way an order's
status changes, in the compiled kernel and in the event loop alike."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.backtest import orders as o

WORKING = set(o.WORKING_STATUSES)
TERMINAL = set(range(len(o.STATUSES))) - WORKING
FUNCTIONS = (o.transition, o.transition.py_func)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_the_table(fn: Any) -> None:
    assert fn(o.OPEN, o.EV_FILL) == o.OPEN_PARTIAL
    assert fn(o.OPEN_PARTIAL, o.EV_FILL) == o.OPEN_PARTIAL
    assert fn(o.OPEN, o.EV_FILL_ALL) == fn(o.OPEN_PARTIAL, o.EV_FILL_ALL) == o.FILLED
    assert fn(o.OPEN, o.EV_CANCEL) == o.CANCELLED
    assert fn(o.OPEN, o.EV_EXPIRE) == o.EXPIRED
    assert fn(o.OPEN, o.EV_REJECT) == o.REJECTED
    for event in (o.EV_CANCEL, o.EV_EXPIRE, o.EV_REJECT):
        # Ended after part of it filled.
        assert fn(o.OPEN_PARTIAL, event) == o.PARTIAL
    # A working order is reported open whether or not part of it has filled.
    assert o.STATUSES[o.OPEN] == o.STATUSES[o.OPEN_PARTIAL] == "open"


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_are_absorbing(fn: Any, status: int) -> None:
    for event in range(len(o.EVENTS)):
        with pytest.raises(ValueError, match="illegal order status transition"):
            fn(status, event)


@given(st.lists(st.integers(0, len(o.EVENTS) - 1), max_size=30))
def test_random_event_sequences_stay_legal(events: list[int]) -> None:
    status, finished = o.OPEN, False
    filled_part = False
    for event in events:
        if finished:
            with pytest.raises(ValueError):
                o.transition(status, event)
            continue
        status = o.transition(status, event)
        filled_part = filled_part or event == o.EV_FILL
        assert 0 <= status < len(o.STATUSES)
        finished = status in TERMINAL
        if status == o.PARTIAL:
            assert filled_part  # partially filled only after a partial fill
        if status in (o.CANCELLED, o.EXPIRED, o.REJECTED):
            assert not filled_part  # nothing filled, so nothing to report as partial
    assert finished or status in WORKING
