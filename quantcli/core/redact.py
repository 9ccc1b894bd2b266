"""Keeping secrets out of everything quantcli prints or writes: logs, errors, ``--json``.

One function, :func:`redact`, applied by the structlog processor (quantcli/log.py) and at the
CLI's error edge. It replaces with ``***``:

- URL userinfo (``https://user:pass@host``) and the values of secret-looking query parameters
  (``?token=...``, ``&api_key=...``, signatures), anywhere in the text;
- the value after an ``Authorization:`` header and a ``Bearer`` token;
- the values of environment variables named like ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
  ``*KEY*`` (read when called, so a secret exported after start-up is caught too), and the
  values a configuration file gave to secret-looking keys (:func:`add_secret`).

It lives in core, the bottom layer, because the log set-up and the CLI edge sit below the
cron-facing ops package and every layer may need it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any, Final

REDACTED: Final = "***"
# Names (config keys, query parameters, JSON keys) whose values are credentials. Anchored
# where a looser match would hit ordinary fields ("sessions", "sort_keys", "author").
SECRET_NAME: Final = re.compile(
    r"token|secret|passw|pwd|credential|cookie|signature|^sig$|^auth$|^auth[_-]|authorization|key$",
    re.IGNORECASE,
)
# Environment variables the issue names: the others (SSH_AUTH_SOCK, XDG_SESSION_ID) are not
# credentials, and their values (paths, small numbers) appear in ordinary text.
SECRET_ENV: Final = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY", re.IGNORECASE)
# Shorter values are not replaced: a variable such as FOO_KEY=1 would otherwise blank every
# "1" in a log line, and a real credential is longer.
MIN_SECRET_LEN: Final = 6

_URL_USERINFO: Final = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@'\"<>]+@")
# A query parameter inside a URL or a bare ``name=value`` in text, e.g. "?token=abc&x=1".
_PARAM: Final = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^\s&#'\"<>,;)\]}]+)")
_AUTH_HEADER: Final = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?)(?P<value>[^'\"\r\n,}]+)",
    re.IGNORECASE,
)
# A bearer token outside a header ("Bearer abc..." in an exception text).
_BEARER: Final = re.compile(r"(?P<head>\bbearer\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)

_lock = threading.Lock()
_registered: set[str] = set()


def add_secret(value: str) -> None:
    """Treat ``value`` as a secret from now on (a credential read from a configuration file)."""
    if len(value) >= MIN_SECRET_LEN:
        with _lock:
            _registered.add(value)


def known_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """The values :func:`redact` blanks wherever they appear, longest first: the registered
    ones and those of secret-named variables in ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    found = {v for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LEN}
    with _lock:
        found |= _registered
    return sorted(found, key=lambda v: (-len(v), v))


def _param(match: re.Match[str]) -> str:
    name = match["name"]
    return f"{name}={REDACTED}" if SECRET_NAME.search(name) else match[0]


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every credential it holds replaced by ``***`` (see the module docstring).

    A URL template's format fields (``{date:%Y%m%d}``) survive: nothing is URL-decoded.
    """
    for secret in known_secrets(env):
        text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _PARAM.sub(_param, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['head']}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m['head']}{REDACTED}", text)


def redact_value(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """``value`` (a JSON-like document: dicts, lists, strings, numbers) with every string
    redacted and the value of every secret-named key replaced by ``***``."""
    if isinstance(value, str):
        return redact(value, env)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and SECRET_NAME.search(k) and isinstance(v, str) and v
            else redact_value(v, env)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, env) for v in value)
    return value
