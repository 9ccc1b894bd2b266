"""The NSE equity segments, as one enum for the market model and the backtester.

A module of its own, importing nothing: a backtest config or run manifest names its segment
without loading the charge arithmetic (numba), so listing saved runs stays fast.
"""

from __future__ import annotations

from enum import StrEnum


class Segment(StrEnum):
    """NSE equity segments with distinct charge rates."""

    DELIVERY = "delivery"
    INTRADAY = "intraday"
    FUTURES = "futures"
    OPTIONS = "options"
