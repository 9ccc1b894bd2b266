"""Where a session's file comes from: a provider is a URL template or a local path template,
rendered for one session date.

Templates are Python format strings with two fields: ``date`` (a ``datetime.date``, so
``{date:%Y%m%d}``) and ``MON`` (the upper-case English month abbreviation NSE's legacy archive
paths use, ``JAN``), e.g. ``https://archives.nseindia.com/content/historical/EQUITIES/{date:%Y}/
{MON}/cm{date:%d}{MON}{date:%Y}bhav.csv.zip``. A local provider names the file inside a drop
directory the same way (``/srv/drop/cm{date:%d}{MON}{date:%Y}bhav.csv.zip``), so one rendering
rule serves both kinds and no file-name convention is guessed.

Labels are what logs, manifests and errors show: the template with its credentials (URL
userinfo, secret-looking query parameters) replaced by ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from quantcli.core.redact import REDACTED, redact
from quantcli.errors import UsageError

ProviderKind = Literal["url", "dir"]

MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
FIELDS: Final = ("date", "MON")
# Two consecutive sessions in the same month: a template that renders both alike does not name a
# session's file (MON alone, or no field at all) and would fetch one file for every day.
_SAMPLES: Final = (date(2024, 1, 2), date(2024, 1, 3))


@dataclass(frozen=True)
class Provider:
    """One source of session files, tried in a recipe's order.

    ``kind`` is ``url`` (http or https) or ``dir`` (a file in a local drop directory);
    ``template`` is the URL or absolute path template, secrets included (never print it);
    ``label`` is the redacted template, safe for logs, manifests and errors.
    """

    kind: ProviderKind
    template: str
    label: str


def parse_provider(text: str) -> Provider:
    """The provider ``text`` names: an ``http(s)://`` URL template, or a path template
    (``file://`` or a plain path; relative paths are made absolute, since cron runs elsewhere).

    Raises UsageError for another scheme, an unknown field, a bad format spec or a template
    that renders the same name for different sessions.
    """
    text = text.strip()
    if not text:
        raise UsageError("--provider is empty: give a URL template or a drop-directory path")
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError as exc:  # an unclosed IPv6 bracket; shown without userinfo or query
        shown = re.sub(r"//[^/]*@", f"//{REDACTED}@", text.partition("?")[0])
        raise UsageError(f"--provider {shown}: not a URL ({exc})") from None
    kind: ProviderKind
    if scheme in ("http", "https"):
        if any(not c.isprintable() or c.isspace() for c in text):
            raise UsageError(
                f"--provider {redact(text)!r}: a URL template holds a space or control "
                "character; percent-encode it (%20)"
            )
        kind, template = "url", text
    elif scheme == "file":
        kind, template = "dir", str(Path(text.removeprefix("file://")).expanduser().absolute())
    elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise UsageError(
            f"--provider {redact(text)}: unsupported scheme {scheme}:// (use http://, https:// "
            "or a local path)"
        )
    else:
        kind, template = "dir", str(Path(text).expanduser().absolute())
    provider = Provider(kind, template, redact(template))
    rendered = [_render_checked(provider, day) for day in _SAMPLES]
    if rendered[0] == rendered[1]:
        raise UsageError(
            f"--provider {provider.label}: the template names the same file for every session; "
            "put the date in it, e.g. {date:%Y%m%d} or {date:%d}{MON}{date:%Y}"
        )
    if kind == "url":
        _check_host(provider, rendered[0])
    return provider


def _check_host(provider: Provider, url: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (urllib checks the port only when it is read)
    except ValueError as exc:
        raise UsageError(f"--provider {provider.label}: {exc}") from None
    if not parts.hostname:
        raise UsageError(f"--provider {provider.label}: the URL names no host")


def render(provider: Provider, day: date) -> str:
    """The URL or path of ``day``'s file at ``provider`` (secrets included: for fetching only;
    show ``redact`` of it)."""
    return provider.template.format(date=day, MON=MONTHS[day.month - 1])


def _render_checked(provider: Provider, day: date) -> str:
    try:
        return render(provider, day)
    except KeyError as exc:
        problem = f"unknown field {{{exc.args[0]}}}"
    except IndexError:
        problem = "a positional field {} (name it: {date...} or {MON})"
    except AttributeError as exc:
        problem = f"a bad field attribute ({exc})"
    except (ValueError, TypeError) as exc:
        problem = f"a bad format ({exc})"
    raise UsageError(
        f"--provider {provider.label}: {problem}; templates take {{date:%Y%m%d}}-style date "
        "formats and {MON}"
    )
