"""The options of every command that runs backtests (`backtest`, `backtest sweep`, ...).

Each option is defined once here, as an annotated type its commands put in their signatures,
and :func:`run_config` turns a command's parsed options into the one
:class:`~quantcli.backtest.config.BacktestConfig`, so a new run option is added in one place
and means the same on every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.core.dates import parse_date
from quantcli.errors import UsageError

if TYPE_CHECKING:
    from quantcli.backtest.config import BacktestConfig

DatasetOption = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset reference: NAME or NAME@version.")
]
StrategyOption = Annotated[
    str | None,
    typer.Option(
        "--strategy", "-s", help="sma_cross, momentum, model, ... or path/to/file.py:Class."
    ),
]
SymbolsOption = Annotated[
    str | None, typer.Option("--symbols", help="Comma-separated symbols (default: all).")
]
FromOption = Annotated[str | None, typer.Option("--from", help="First date YYYY-MM-DD.")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last date YYYY-MM-DD.")]
CashOption = Annotated[float, typer.Option("--cash", help="Initial cash in Rs.")]
SegmentOption = Annotated[
    str, typer.Option("--segment", help="delivery | intraday | futures | options.")
]
BrokerOption = Annotated[str, typer.Option("--broker", help="Broker profile name or TOML file.")]
CostsOption = Annotated[
    str, typer.Option("--costs", help="statutory, or flat:PCT% (e.g. flat:0.05%).")
]
SlippageOption = Annotated[
    str, typer.Option("--slippage", help="none | bps:5 | spread:10 | sqrt:0.1.")
]
FillOption = Annotated[
    str, typer.Option("--fill", help="open (next bar's open) or close (same bar).")
]
ParticipationOption = Annotated[
    float, typer.Option("--participation", help="Max share of a bar's volume, in (0, 1].")
]
ShortOption = Annotated[bool, typer.Option("--short", help="Allow short positions.")]
MarginOption = Annotated[
    float, typer.Option("--margin", help="Margin fraction of notional (leveraged segments).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed.")]
RiskFreeOption = Annotated[
    float, typer.Option("--risk-free", help="Annual risk-free rate for Sharpe/Sortino.")
]

# The defaults of the options above, in one place (typer takes them from the signature).
CASH = 1_000_000.0
SEGMENT = "delivery"
BROKER = "zerodha"
COSTS = "statutory"
SLIPPAGE = "none"
FILL = "open"
PARTICIPATION = 0.10
MARGIN = 0.20


def parse_symbols(text: str | None) -> tuple[str, ...] | None:
    """``A,B`` as a tuple of symbols, None when not given."""
    if text is None:
        return None
    symbols = tuple(s.strip() for s in text.split(",") if s.strip())
    if not symbols:
        raise UsageError("--symbols: no symbol given")
    return symbols


def run_config(options: Mapping[str, Any], **fields: Any) -> BacktestConfig:
    """The backtest config of a command's parsed ``options`` (typer's ``ctx.params``, named as
    the options above are), with ``fields`` (e.g. ``params``, ``on_reject``) set as given."""
    from quantcli.backtest.config import BacktestConfig, Fill, choice
    from quantcli.market.segments import Segment

    return BacktestConfig(
        dataset=options["dataset"],
        strategy=options["strategy"],
        symbols=parse_symbols(options["symbols"]),
        start=parse_date(options["start"], "--from"),
        end=parse_date(options["end"], "--to"),
        cash=options["cash"],
        segment=choice(Segment, options["segment"], "segment"),
        broker=options["broker"],
        costs=options["costs"],
        slippage=options["slippage"],
        fill=choice(Fill, options["fill"], "fill"),
        participation=options["participation"],
        allow_short=options["short"],
        margin=options["margin"],
        seed=options["seed"],
        risk_free=options["risk_free"],
        **fields,
    )
