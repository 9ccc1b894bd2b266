"""The typed backtest config (enums shared with the market model) and the typed run manifest
(versioned, lossless round trip, one clear line when damaged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantcli.backtest.config import BacktestConfig, Fill, OnReject
from quantcli.errors import UsageError
from quantcli.market import charges
from quantcli.market.segments import Segment


def test_config_choices_are_enums_equal_to_their_text() -> None:
    c = BacktestConfig("d", "s", segment="intraday", fill="close", on_reject="error")
    assert (c.segment, c.fill, c.on_reject) == (Segment.INTRADAY, Fill.CLOSE, OnReject.ERROR)
    assert c.segment == "intraday" and c.fill == "close" and c.on_reject == "error"
    assert charges.Segment is Segment  # one segment enum, the market model's
    assert c.to_dict()["segment"] == "intraday" and type(c.to_dict()["segment"]) is str
    assert BacktestConfig.from_dict(c.to_dict()) == c
    assert json.dumps(c.to_dict()["fill"]) == '"close"'


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("segment", "bonds", "unknown segment 'bonds': --segment takes delivery | intraday"),
        ("fill", "mid", "unknown fill 'mid': --fill takes open | close"),
        ("on_reject", "x", "unknown on_reject 'x': --on-reject takes record | error"),
    ],
)
def test_a_bad_choice_names_its_flag(field: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BacktestConfig("d", "s", **{field: value})


def test_a_bad_segment_on_the_cli_is_one_line(cli, tmp_path: Path) -> None:
    res = cli("backtest", "-d", "x", "-s", "sma_cross", "--segment", "cash")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: unknown segment 'cash': --segment takes delivery | intraday | futures | options"
    ]
