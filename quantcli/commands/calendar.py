"""`quantcli calendar` commands: NSE holidays, sessions and session checks for cron scripts.

Thin: each command parses its arguments, calls ``quantcli.market.calendar`` and prints. The
library is imported inside the commands so ``quantcli --help`` does not load exchange_calendars.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.errors import UsageError
from quantcli.output import emit, settings_of, table

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.market.calendar import Session

app = typer.Typer(
    help="NSE trading calendar: holidays, sessions, hours.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str, what: str) -> date:
    """A YYYY-MM-DD date, else UsageError naming the argument."""
    try:
        if _ISO_DAY.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"bad {what} {text!r}: expected a date as YYYY-MM-DD")


def _hours(sess: Session) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in sess.windows)


def _session_json(sess: Session) -> dict[str, Any]:
    return {
        "date": sess.day.isoformat(),
        "weekday": f"{sess.day:%a}",
        "kind": sess.kind,
        "windows": [{"open": a.isoformat(), "close": b.isoformat()} for a, b in sess.windows],
    }


@app.command("holidays")
def holidays_cmd(
    ctx: typer.Context,
    year: Annotated[int, typer.Argument(help="Calendar year, e.g. 2026.")],
) -> None:
    """NSE trading holidays of YEAR (weekdays, as NSE lists them) with their names."""
    from quantcli.market import calendar

    rows = calendar.holidays(year)
    payload = [{"date": h.day.isoformat(), "weekday": f"{h.day:%a}", "name": h.name} for h in rows]

    def render(console: Console) -> None:
        console.print(
            table(
                f"NSE trading holidays {year}",
                ["date", "weekday", "name"],
                [[h.day.isoformat(), f"{h.day:%a}", h.name] for h in rows],
            )
        )

    emit(settings_of(ctx), payload, render)


@app.command("sessions")
def sessions_cmd(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD (inclusive).")],
    end: Annotated[str, typer.Option("--to", help="Last date, YYYY-MM-DD (inclusive).")],
) -> None:
    """Sessions between two dates, with their kind and trading hours (IST)."""
    from quantcli.market import calendar

    days = calendar.sessions(parse_day(start, "--from"), parse_day(end, "--to"))
    found = [calendar.session(day) for day in days]

    def render(console: Console) -> None:
        console.print(
            table(
                f"NSE sessions {start}..{end} ({len(found)})",
                ["date", "weekday", "kind", "hours (IST)"],
                [[s.day.isoformat(), f"{s.day:%a}", s.kind, _hours(s)] for s in found],
            )
        )

    emit(settings_of(ctx), [_session_json(s) for s in found], render)


@app.command("is-session")
def is_session_cmd(
    ctx: typer.Context,
    day: Annotated[str, typer.Argument(help="Date, YYYY-MM-DD.")],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing; only the exit status.")
    ] = False,
) -> None:
    """Exit 0 if DAY is an NSE session, 1 if not (for cron: `... is-session $(date +%F) && run`)."""
    from quantcli.market import calendar

    when = parse_day(day, "DATE")
    reason = calendar.closure_reason(when)
    settings = settings_of(ctx)
    if not (quiet or settings.quiet):
        payload: dict[str, Any] = {"date": when.isoformat(), "session": reason is None}
        if reason is None:
            sess = calendar.session(when)
            payload |= {"kind": sess.kind, "hours": _hours(sess)}
            line = f"{when} ({when:%a}) is an NSE session: {sess.kind}, {_hours(sess)} IST"
        else:
            payload["reason"] = reason
            line = f"{when} ({when:%a}) is not an NSE session: {reason}"
        emit(settings, payload, lambda console: console.print(line, highlight=False, markup=False))
    if reason is not None:
        raise typer.Exit(1)


@app.command("next")
def next_cmd(
    ctx: typer.Context,
    day: Annotated[
        str | None, typer.Argument(help="Date, YYYY-MM-DD (default: today in IST).")
    ] = None,
) -> None:
    """The next session after DAY (default today, IST) with its open and close times."""
    from quantcli.market import calendar

    after = parse_day(day, "DATE") if day is not None else datetime.now(calendar.IST).date()
    sess = calendar.session(calendar.next_session(after))
    payload = {"after": after.isoformat(), **_session_json(sess)}
    payload["open"] = calendar.session_open(sess.day).isoformat()
    payload["close"] = calendar.session_close(sess.day).isoformat()
    line = (
        f"next NSE session after {after}: {sess.day} ({sess.day:%a}), "
        f"{_hours(sess)} IST ({sess.kind})"
    )
    emit(
        settings_of(ctx),
        payload,
        lambda console: console.print(line, highlight=False, markup=False),
    )
