"""Labels: what a model learns to predict, from the bars after each bar.

Labels look ahead by design, so they are kept apart from features: they are never columns of a
feature set, and they are computed from the source dataset's bars, which a feature expression
cannot reach.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from quantcli.errors import DataError, UsageError
from quantcli.features.basic import daily_return
from quantcli.features.spec import feature_view

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

KINDS = ("direction", "return")
_SPEC_RE = re.compile(r"^(direction|return):([1-9][0-9]*)$")


@dataclass(frozen=True)
class LabelSpec:
    """``direction:H`` (1 when the forward H-session return is > 0, else 0) or ``return:H``
    (the forward H-session return itself)."""

    kind: str
    horizon: int

    @classmethod
    def parse(cls, text: str) -> LabelSpec:
        """The spec ``text`` names; UsageError naming the accepted forms otherwise."""
        match = _SPEC_RE.match(text.strip())
        if match is None:
            raise UsageError(
                f"invalid label {text!r}: use direction:H or return:H (H sessions, a whole "
                "number >= 1)"
            )
        return cls(match.group(1), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.kind}:{self.horizon}"


def make_labels(
    bars: pl.DataFrame,
    spec: LabelSpec | str,
    *,
    actions: Sequence[CorporateAction] = (),
) -> pl.DataFrame:
    """symbol, ts, label, forward_return for each bar of ``bars`` (in the store's schema),
    sorted by (symbol, ts).

    ``forward_return`` is the split-correct return over the next H sessions of the symbol (its
    daily returns compounded, as the features compute them, on the bars adjusted for the
    splits and bonuses among ``actions``); null where the horizon runs past the data. DataError
    when no bar has a full horizon.
    """
    label = spec if isinstance(spec, LabelSpec) else LabelSpec.parse(spec)
    view = feature_view(bars.sort("symbol", "ts"), actions)
    h = label.horizon
    forward = (daily_return().log1p().rolling_sum(h).shift(-h).exp() - 1).over("symbol")
    out = view.select("symbol", "ts", forward.alias("forward_return"))
    if out.get_column("forward_return").null_count() == out.height:
        raise DataError(
            f"label {label}: the horizon of {h} sessions is longer than every symbol's "
            f"history ({out.height} bars); use a shorter horizon"
        )
    value = (
        (pl.col("forward_return") > 0).cast(pl.Int64)
        if label.kind == "direction"
        else pl.col("forward_return")
    )
    return out.select("symbol", "ts", value.alias("label"), "forward_return")
