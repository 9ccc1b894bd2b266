"""A real HTTP server on 127.0.0.1 serving bhavcopy fixture files, with injectable faults.

``FixtureServer`` is stdlib ``ThreadingHTTPServer`` on port 0 in a thread (the ``http_server``
fixture in conftest.py starts one per test and stops it after). Tests build the files from small
synthetic CSVs in both layouts (``legacy_zip``, ``udiff_zip``; ``serve_sessions`` serves a run
of sessions at NSE-like paths) and inject faults per path, consumed in the order injected:

- ``fail(path, status=500, times=2)``: that status twice, then the file;
- ``throttle(path, retry_after_s=1)``: 429 with ``Retry-After``;
- ``redirect(path, location)``: 302 to another path;
- ``stall(path, seconds, where="headers"|"body")``: slower than a read timeout;
- ``truncate(path)``: the first half of the file, as a complete response;
- a wrong session or a changed layout: serve another day's or layout's file at the path;
- a path never served is a 404.

The query string is ignored when matching paths (so a token parameter does not matter);
``hits(path)`` counts requests, ``times(path)`` gives when each arrived and ``peak_in_flight``
is the most requests answered at once.
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

import pytest

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# Paths like NSE's archives: legacy under year and month, UDiFF flat.
LEGACY_PATH = "/legacy/{date:%Y}/{MON}/cm{date:%d}{MON}{date:%Y}bhav.csv.zip"
UDIFF_PATH = "/udiff/BhavCopy_NSE_CM_0_0_0_{date:%Y%m%d}_F_0000.csv.zip"
SYMBOLS = ("INFY", "RELIANCE", "TCS")

LEGACY_HEADER = (
    "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
    "TOTALTRADES,ISIN,"
)
UDIFF_HEADER = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
)


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the machine's proxy settings for one test: nothing stands between the client and
    127.0.0.1 (httpx honours HTTP_PROXY and friends)."""
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)


def path_for(template: str, day: date) -> str:
    """A path template (``LEGACY_PATH``) rendered for ``day``."""
    return template.format(date=day, MON=MONTHS[day.month - 1])


def legacy_name(day: date) -> str:
    """The legacy CSV's own name for ``day``: cm02JAN2024bhav.csv."""
    return f"cm{day:%d}{MONTHS[day.month - 1]}{day:%Y}bhav.csv"


def udiff_name(day: date) -> str:
    """The UDiFF CSV's own name for ``day``."""
    return f"BhavCopy_NSE_CM_0_0_0_{day:%Y%m%d}_F_0000.csv"


def _prices(symbol_index: int, day: date) -> tuple[float, float, float, float, float, int]:
    """Deterministic, valid bars: open, high, low, close, previous close, volume."""
    base = 100.0 + 10 * symbol_index + day.toordinal() % 17
    return base, base + 2, base - 1, base + 1, base - 0.5, 1000 + symbol_index


def legacy_csv(day: date, symbols: Sequence[str] = SYMBOLS) -> str:
    """A legacy bhavcopy for ``day`` (DD-MON-YYYY dates, trailing comma), one EQ row a symbol."""
    stamp = f"{day:%d}-{MONTHS[day.month - 1]}-{day:%Y}"
    lines = [LEGACY_HEADER]
    for i, symbol in enumerate(symbols):
        o, h, lo, c, prev, vol = _prices(i, day)
        lines.append(
            f"{symbol},EQ,{o},{h},{lo},{c},{c},{prev},{vol},{vol * c:.2f},{stamp},{10 + i},"
            f"INE{i:06d}01,"
        )
    return "\n".join(lines) + "\n"


def udiff_csv(day: date, symbols: Sequence[str] = SYMBOLS) -> str:
    """A UDiFF bhavcopy for ``day`` (34 columns, ISO dates), one EQ row a symbol."""
    lines = [UDIFF_HEADER]
    for i, symbol in enumerate(symbols):
        o, h, lo, c, prev, vol = _prices(i, day)
        lines.append(
            f"{day},{day},CM,NSE,STK,{1000 + i},INE{i:06d}01,{symbol},EQ,,,,,{symbol} LTD,"
            f"{o},{h},{lo},{c},{c},{prev},,{c},,,{vol},{vol * c:.2f},{10 + i},F1,1,,,,,"
        )
    return "\n".join(lines) + "\n"


def zipped(members: dict[str, str]) -> bytes:
    """A zip archive of ``members`` (name -> text) with fixed timestamps: same bytes each time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


def legacy_zip(day: date, symbols: Sequence[str] = SYMBOLS) -> bytes:
    """``day``'s legacy bhavcopy, zipped as NSE serves it."""
    return zipped({legacy_name(day): legacy_csv(day, symbols)})


def udiff_zip(day: date, symbols: Sequence[str] = SYMBOLS) -> bytes:
    """``day``'s UDiFF bhavcopy, zipped as NSE serves it."""
    return zipped({udiff_name(day): udiff_csv(day, symbols)})


@dataclass
class _Fault:
    kind: Literal["status", "stall", "truncate"]
    remaining: int | None  # None: every request
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    where: Literal["headers", "body"] = "headers"


class FixtureServer:
    """The loopback server: ``url`` is its base (``http://127.0.0.1:PORT``)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0  # the most requests being answered at once
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the pooled client expects

            def do_GET(self) -> None:
                fixture._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: pytest shows failures, not access logs

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # a stalled response never blocks stopping
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: stopping the server after each test takes 0.05 s, not 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; the full URL."""
        with self._lock:
            self._files[path] = body
        return self.url + path

    def serve_sessions(
        self,
        days: Iterable[date],
        layout: Literal["legacy", "udiff"] = "legacy",
        symbols: Sequence[str] = SYMBOLS,
    ) -> str:
        """Serve each of ``days``' bhavcopy in ``layout`` at its NSE-like path; the provider
        URL template that fetches them."""
        legacy = layout == "legacy"
        template, build = (LEGACY_PATH, legacy_zip) if legacy else (UDIFF_PATH, udiff_zip)
        for day in days:
            self.serve(path_for(template, day), build(day, symbols))
        return self.url + template

    def fail(
        self, path: str, status: int = 500, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        """Answer ``status`` (with ``Retry-After`` if given) ``times`` times (None: always)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._add(path, _Fault("status", times, status=status, headers=headers))

    def redirect(self, path: str, location: str, times: int | None = None) -> None:
        """Answer 302 Found pointing at ``location`` (a path on this server or a URL)."""
        self._add(path, _Fault("status", times, status=302, headers={"Location": location}))

    def throttle(self, path: str, retry_after_s: int = 1, times: int | None = 1) -> None:
        """Answer 429 Too Many Requests with ``Retry-After: retry_after_s``."""
        self.fail(path, 429, times, str(retry_after_s))

    def stall(
        self,
        path: str,
        seconds: float,
        times: int | None = 1,
        where: Literal["headers", "body"] = "headers",
    ) -> None:
        """Wait ``seconds`` before the headers, or after half of the body."""
        self._add(path, _Fault("stall", times, seconds=seconds, where=where))

    def truncate(self, path: str, times: int | None = None) -> None:
        """Serve the first half of the file (a whole response of a cut file)."""
        self._add(path, _Fault("truncate", times))

    def hits(self, path: str) -> int:
        """How many requests ``path`` has had."""
        with self._lock:
            return len(self._arrivals.get(path, []))

    def times(self, path: str) -> list[float]:
        """``time.monotonic()`` at each request for ``path``."""
        with self._lock:
            return list(self._arrivals.get(path, []))

    def _add(self, path: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(path, []).append(fault)

    def _next_fault(self, path: str) -> _Fault | None:
        with self._lock:
            self._arrivals.setdefault(path, []).append(time.monotonic())
            for fault in self._faults.get(path, []):
                if fault.remaining is None or fault.remaining > 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
            return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            self._answer(handler)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        fault = self._next_fault(path)
        with self._lock:
            body = self._files.get(path)
        try:
            if fault is not None and fault.kind == "status":
                _respond(handler, fault.status, b"fault\n", fault.headers)
            elif body is None:
                _respond(handler, 404, b"not found\n", {})
            elif fault is not None and fault.kind == "truncate":
                _respond(handler, 200, body[: len(body) // 2], {})
            elif fault is not None and fault.where == "headers":
                time.sleep(fault.seconds)
                _respond(handler, 200, body, {})
            elif fault is not None:
                _respond(handler, 200, body, {}, stall_s=fault.seconds)
            else:
                _respond(handler, 200, body, {})
        except OSError:  # BrokenPipeError, ConnectionResetError
            pass  # the client gave up (a timeout under test): nothing to answer


def _respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str],
    stall_s: float = 0.0,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Content-Type", "application/zip" if status == 200 else "text/plain")
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if stall_s:
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        time.sleep(stall_s)
        handler.wfile.write(body[len(body) // 2 :])
    else:
        handler.wfile.write(body)
