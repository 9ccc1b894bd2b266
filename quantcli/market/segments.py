"""The NSE equity segments, as one enum for the market model and the backtester, and how each
trades (funding, shorts, daily settlement, square-off time, the margin floor), each rule with its
source.

A module of its own, importing nothing heavy: a backtest config or run manifest names its
segment without loading the charge arithmetic (numba), so listing saved runs stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from typing import Final

from quantcli.errors import UsageError


class Segment(StrEnum):
    """NSE equity segments with distinct charge rates."""

    DELIVERY = "delivery"
    INTRADAY = "intraday"
    FUTURES = "futures"
    OPTIONS = "options"


class Funding(StrEnum):
    """How a fill is paid for."""

    CASH = "cash"  # the full value moves between cash and holdings
    MARGIN = "margin"  # a margin on the gross notional is held against equity
    PREMIUM = "premium"  # option buyers pay the premium; writers are margined


@dataclass(frozen=True)
class SegmentRules:
    """How one backtest segment trades (see :data:`SEGMENT_RULES` for the sources)."""

    funding: Funding
    shortable: bool  # a position may go below zero (when the run allows shorts)
    marked_to_market: bool  # settled daily against the close (futures)
    square_off: time | None  # IST time from which the broker closes open positions


# The upfront margin floor: SEBI's peak-margin framework (circular
# SEBI/HO/MRD2/DCAP/CIR/P/2020/127, 2020-07-20) required 100% of the upfront margin from
# 2021-09-01, which caps intraday leverage at 5x, i.e. a 20% margin on the notional.
MIN_MARGIN: Final = 0.20
# Intraday (MIS) positions are squared off by the broker from 15:20 IST (Zerodha's MIS policy;
# brokers set 15:15-15:25, the exchange closes at 15:30).
MIS_SQUARE_OFF: Final = time(15, 20)
# Sources: delivery buys are paid in full and a delivery sale needs the shares (SEBI circular
# MRD/DoP/SE/Cir-14/2007, 2007-12-20: no naked short sales; a short sale must be delivered);
# intraday and futures positions are margined (peak-margin circular above), futures are settled
# daily at the closing price (NSE Clearing's daily mark-to-market settlement), option buyers pay
# the premium and writers post margin (NSE Clearing's premium settlement).
SEGMENT_RULES: Final[dict[str, SegmentRules]] = {
    "delivery": SegmentRules(Funding.CASH, False, False, None),
    "intraday": SegmentRules(Funding.MARGIN, True, False, MIS_SQUARE_OFF),
    "futures": SegmentRules(Funding.MARGIN, True, True, None),
    "options": SegmentRules(Funding.PREMIUM, True, False, None),
}


def segment_rules(segment: str) -> SegmentRules:
    """The :class:`SegmentRules` of a backtest segment (``delivery``, ``intraday``, ``futures``,
    ``options``); ``UsageError`` for any other."""
    rules = SEGMENT_RULES.get(str(segment).lower())
    if rules is None:
        known = ", ".join(SEGMENT_RULES)
        raise UsageError(f"unknown segment {segment!r} (expected one of {known})")
    return rules
