"""The one leakage rule: a model is judged only on sessions it never learned from.

A version is fitted on its training window's features and on labels that look ``H`` sessions
ahead (the label horizon), so the span it has seen runs from ``train_from`` to ``H`` sessions
after ``train_to`` (conservative: the fit drops the last ``H`` training sessions, but the rule
does not depend on that detail). ``model compare``, ``model promote`` and the ``model`` backtest
strategy all ask :func:`require_unseen` before they score a window.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from quantcli.errors import UsageError
from quantcli.features.labels import LabelSpec
from quantcli.market import calendar


@dataclass(frozen=True)
class SeenSpan:
    """The sessions a model version learned from: ``first`` to ``last``, both inclusive."""

    model: str
    first: date
    last: date

    def overlap(self, start: date, end: date) -> tuple[date, date] | None:
        """The part of ``start..end`` (inclusive) inside this span, or None."""
        lo, hi = max(start, self.first), min(end, self.last)
        return (lo, hi) if lo <= hi else None


def seen_span(meta: Mapping[str, Any]) -> SeenSpan:
    """The span a registered version (its metadata) has seen: its training window plus the
    label horizon, counted in NSE sessions."""
    window = meta["window"]
    train_to = date.fromisoformat(window["train_to"])
    horizon = LabelSpec.parse(meta["label"]).horizon
    days = calendar.calendar().sessions
    # Past the calendar's end the horizon cannot be counted: the span runs open-ended.
    i = bisect.bisect_right(days, train_to) + horizon - 1
    last = days[i] if i < len(days) else date.max
    return SeenSpan(
        model=f"{meta['name']}@v{meta['version']}",
        first=date.fromisoformat(window["train_from"]),
        last=last,
    )


def require_unseen(
    meta: Mapping[str, Any], start: date, end: date, *, flag: str | None = None
) -> None:
    """Raise UsageError naming the overlap when ``start..end`` touches what the version saw.

    ``flag`` names the option that allows it anyway (the backtest's ``--allow-overlap``); the
    comparisons have none, since a test on training data is no evidence."""
    span = seen_span(meta)
    hit = span.overlap(start, end)
    if hit is None:
        return
    fix = f", or pass {flag}" if flag else ""
    raise UsageError(
        f"window {start}..{end} overlaps {span.model}'s training window plus label horizon "
        f"({span.first}..{span.last}) on {hit[0]}..{hit[1]}: choose dates after {span.last}{fix}"
    )
