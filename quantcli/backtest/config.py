"""The configuration of one backtest run: everything that decides its result.

A run is reproducible from its config plus the dataset version and strategy source it names, so
the config is a frozen value with a lossless ``to_dict``/``from_dict`` round trip (stored in the
run manifest). The closed choices are enums (``StrEnum``: equal to their text, so
``config.segment == "intraday"`` holds), the segment being the market model's own
:class:`~quantcli.market.segments.Segment`. Model specs (costs, slippage) stay strings here and
are parsed in one place each (quantcli.backtest.costs, quantcli.backtest.slippage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from enum import StrEnum
from typing import TypeVar

from quantcli.core.dates import parse_date
from quantcli.errors import UsageError
from quantcli.market.segments import MIN_MARGIN, Segment

E = TypeVar("E", bound=StrEnum)


class Fill(StrEnum):
    """Which price a market order fills at."""

    OPEN = "open"  # the next bar's open
    CLOSE = "close"  # the same bar's close


class OnReject(StrEnum):
    """What a rejected order does to the run."""

    RECORD = "record"  # kept with status "rejected" and a reason
    ERROR = "error"  # stops the run with a StrategyError (for strategies never to be rejected)


def choice(kind: type[E], value: str, name: str) -> E:
    """``value`` as a member of ``kind`` for the config field ``name``, else a UsageError
    naming the flag that sets it (``--`` and the name, dashed)."""
    try:
        return kind(value)
    except ValueError:
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"unknown {name} {value!r}: {flag} takes {' | '.join(kind)}") from None


def _sorted_params(params: Mapping[str, str]) -> dict[str, str]:
    # Sorted so equal configs serialise identically whatever order -p flags came in.
    return {str(k): str(params[k]) for k in sorted(params)}


@dataclass(frozen=True)
class BacktestConfig:
    """What to backtest and under which execution model.

    ``params`` are the raw ``-p name=value`` strings; the strategy's typed parameters parse them.
    ``allow_overlap`` lets a model strategy trade a window its model saw in training (refused
    otherwise, see quantcli.models.leakage).
    """

    dataset: str
    strategy: str
    params: Mapping[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] | None = None
    start: date | None = None
    end: date | None = None
    cash: float = 1_000_000.0
    segment: Segment = Segment.DELIVERY
    broker: str = "zerodha"
    costs: str = "statutory"
    slippage: str = "none"
    fill: Fill = Fill.OPEN
    participation: float = 0.10
    allow_short: bool = False
    margin: float = MIN_MARGIN
    risk_free: float = 0.0
    seed: int = 0
    on_reject: OnReject = OnReject.RECORD
    allow_overlap: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _sorted_params(self.params))
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(self.symbols))
        # Python callers and from_dict may pass the choices as text.
        for name, kind in (("segment", Segment), ("fill", Fill), ("on_reject", OnReject)):
            object.__setattr__(self, name, choice(kind, getattr(self, name), name))
        if not self.cash > 0:
            raise UsageError(f"cash must be positive, got {self.cash}")
        if not 0 < self.participation <= 1:
            raise UsageError(f"participation must be in (0, 1], got {self.participation}")
        if not 0 < self.margin <= 1:
            raise UsageError(f"margin must be in (0, 1], got {self.margin}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise UsageError(f"start {self.start} is after end {self.end}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (dates as ISO strings, choices as their text, symbols as a list)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "allow_overlap" and not value:
                # Recorded only when set: the manifests and run ids of every other run keep
                # the bytes they had before the flag existed.
                continue
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "params":
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> BacktestConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a UsageError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown backtest config keys: {', '.join(unknown)}")
        kwargs: dict[str, object] = dict(d)
        for key in ("start", "end"):
            value = kwargs.get(key)
            if isinstance(value, str):
                kwargs[key] = parse_date(value, key)
        symbols = kwargs.get("symbols")
        if isinstance(symbols, list | tuple):
            kwargs["symbols"] = tuple(str(s) for s in symbols)
        return cls(**kwargs)  # type: ignore[arg-type]
