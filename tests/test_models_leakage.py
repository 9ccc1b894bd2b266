"""The one leakage rule: the training window plus the label horizon, in NSE sessions."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.errors import UsageError
from quantcli.market import calendar
from quantcli.models.leakage import require_unseen, seen_span

META = {
    "name": "up5",
    "version": 3,
    "label": "direction:5",
    "window": {"train_from": "2015-01-01", "train_to": "2016-12-30", "test_to": None},
}


def test_span_ends_horizon_sessions_after_train_to() -> None:
    span = seen_span(META)
    assert span.model == "up5@v3"
    assert span.first == date(2015, 1, 1)
    after = calendar.sessions(date(2016, 12, 31), date(2017, 1, 31))
    assert span.last == after[4]  # the fifth session after 2016-12-30


def test_window_after_the_span_is_accepted() -> None:
    last = seen_span(META).last
    require_unseen(META, calendar.next_session(last), date(2018, 12, 31))


def test_overlap_is_named_with_the_flag() -> None:
    with pytest.raises(UsageError) as err:
        require_unseen(META, date(2016, 6, 1), date(2018, 1, 1), flag="--allow-overlap")
    text = str(err.value)
    assert "up5@v3" in text
    assert "2016-06-01.." in text
    assert "--allow-overlap" in text


def test_no_flag_means_no_way_round() -> None:
    with pytest.raises(UsageError) as err:
        require_unseen(META, date(2017, 1, 2), date(2017, 1, 3))
    assert "pass" not in str(err.value)


@given(
    st.dates(date(2010, 1, 1), date(2022, 12, 31)),
    st.integers(0, 800),
)
def test_refused_exactly_when_the_window_touches_the_span(start: date, length: int) -> None:
    end = date.fromordinal(start.toordinal() + length)
    span = seen_span(META)
    touches = start <= span.last and end >= span.first
    try:
        require_unseen(META, start, end)
    except UsageError:
        assert touches
    else:
        assert not touches
