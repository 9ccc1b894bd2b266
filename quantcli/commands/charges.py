"""`quantcli charges`: the charge breakdown, net P&L and breakeven of a trade."""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.core.dates import parse_date
from quantcli.core.timezone import today_ist
from quantcli.errors import UsageError
from quantcli.output import emit, settings_of, table

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.market.charges import BrokerProfile, ChargeBreakdown


def parse_fill(spec: str, option: str) -> tuple[float, float]:
    """``QTY@PRICE`` -> (quantity, price), both positive; UsageError otherwise."""
    qty_text, at, price_text = spec.partition("@")
    try:
        if not at:
            raise ValueError
        quantity, price = float(qty_text), float(price_text)
    except ValueError:
        raise UsageError(f"{option} {spec!r}: expected QTY@PRICE, e.g. 100@1500.50") from None
    if not (math.isfinite(quantity) and quantity > 0):
        raise UsageError(f"{option} {spec!r}: quantity must be positive")
    if not (math.isfinite(price) and price > 0):
        raise UsageError(f"{option} {spec!r}: price must be positive")
    return quantity, price


def _payload(
    segment: str,
    day: date,
    profile: BrokerProfile,
    legs: dict[str, tuple[float, float, ChargeBreakdown]],
    summary: dict[str, float | None],
) -> dict[str, Any]:
    sides = {
        side: {
            "quantity": qty,
            "price": price,
            "turnover": round(qty * price, 2),
            "charges": charges.to_dict(),
        }
        for side, (qty, price, charges) in legs.items()
    }
    total = None
    for _, _, charges in legs.values():
        total = charges if total is None else total + charges
    assert total is not None
    return {
        "segment": segment,
        "date": day.isoformat(),
        "broker": profile.name,
        "buy": sides.get("buy"),
        "sell": sides.get("sell"),
        "charges": total.to_dict(),
        **summary,
    }


def _render(payload: dict[str, Any]) -> Any:
    from quantcli.market.charges import CHARGE_COMPONENTS

    sides = [s for s in ("buy", "sell") if payload[s] is not None]
    turnover = [payload[s]["turnover"] for s in sides]
    rows = [["turnover", *turnover, sum(turnover)]] + [
        [name, *(payload[s]["charges"][name] for s in sides), payload["charges"][name]]
        for name in (*CHARGE_COMPONENTS, "total")
    ]
    shown = [[row[0], *(f"{v:,.2f}" for v in row[1:])] for row in rows]
    title = f"Charges, {payload['segment']} on {payload['date']} (broker {payload['broker']})"

    def render(console: Console) -> None:
        tbl = table(title, ["component", *sides, "total"], shown)
        for column in tbl.columns[1:]:
            column.justify = "right"
        console.print(tbl)
        labels = {
            "gross_pnl": "gross P&L",
            "net_pnl": "net P&L",
            "breakeven_price": "breakeven price",
            "breakeven_points": "points to break even",
        }
        for key, label in labels.items():
            if key in payload:
                value = payload[key]
                console.print(f"{label}: {'none' if value is None else f'{value:,.2f}'}")

    return render


def charges(
    ctx: typer.Context,
    segment: Annotated[
        str, typer.Option("--segment", help="delivery | intraday | futures | options.")
    ] = "delivery",
    buy: Annotated[
        str | None, typer.Option("--buy", metavar="QTY@PRICE", help="Buy fill, e.g. 100@1500.")
    ] = None,
    sell: Annotated[
        str | None, typer.Option("--sell", metavar="QTY@PRICE", help="Sell fill, e.g. 100@1520.")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="Trade date YYYY-MM-DD (default today in IST).")
    ] = None,
    broker: Annotated[
        str, typer.Option("--broker", help="Broker profile: zerodha, percent or a TOML file.")
    ] = "zerodha",
) -> None:
    """Charge breakdown of a trade: components per side, net P&L and breakeven.

    With --buy and --sell (same quantity) it prices the round trip; with one side it prices
    that fill and the closing price that breaks even.
    """
    from quantcli.market import charges as lib

    settings = settings_of(ctx)
    if buy is None and sell is None:
        raise UsageError("give --buy QTY@PRICE, --sell QTY@PRICE or both")
    trade_day = today_ist() if day is None else parse_date(day, "--date")
    profile = lib.load_profile(broker)
    fills = {
        side: parse_fill(spec, f"--{side}")
        for side, spec in (("buy", buy), ("sell", sell))
        if spec is not None
    }
    legs = {
        side: (qty, price, lib.fill_charges(segment, side, qty, price, trade_day, profile))
        for side, (qty, price) in fills.items()
    }
    summary: dict[str, float | None]
    if len(fills) == 2:
        (qty, buy_price), (sell_qty, sell_price) = fills["buy"], fills["sell"]
        if qty != sell_qty:
            raise UsageError(f"--buy and --sell quantities differ ({qty:g} vs {sell_qty:g})")
        trip = lib.round_trip(segment, qty, buy_price, sell_price, trade_day, profile)
        summary = {
            "gross_pnl": trip.gross_pnl,
            "net_pnl": trip.net_pnl,
            "breakeven_price": trip.breakeven_sell_price,
            "breakeven_points": trip.breakeven_points,
        }
    else:
        ((side, (qty, price)),) = fills.items()
        breakeven = lib.breakeven_price(segment, side, qty, price, trade_day, profile)
        points = None if breakeven is None else round(abs(breakeven - price), 2)
        summary = {"breakeven_price": breakeven, "breakeven_points": points}
    payload = _payload(segment, trade_day, profile, legs, summary)
    emit(settings, payload, _render(payload))
