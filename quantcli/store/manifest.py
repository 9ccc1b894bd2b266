"""The manifest of one dataset version: what it holds, where it came from, and its hashes.

A version exists for readers exactly when ``<root>/<name>/v<N>/manifest.json`` exists. Readers
select data files from the manifest's list (never by globbing the directory), so a file that is
being written can never be seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantcli.core.hashing import sha256_hex
from quantcli.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

FORMAT = 1
MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_DIR_RE = re.compile(r"^v([1-9][0-9]*)$")
REMOVED_SUFFIX = ".removed"
# What a version's prices already hold: the corporate-action kinds the vendor has adjusted them
# for (Yahoo's Close: splits and bonuses; yfinance's auto_adjust: dividends too). Applying one
# of those again would count it twice, so these kinds decide which actions apply (see
# ``partition_actions``). A manifest without the field is from before it existed: raw.
RAW: Final = "raw"
VENDOR_ADJUSTED: Final[Mapping[str, frozenset[str]]] = {
    RAW: frozenset(),
    "split_adjusted": frozenset({"split", "bonus"}),
    "total_return_adjusted": frozenset({"split", "bonus", "dividend"}),
}
PRICES: Final[tuple[str, ...]] = tuple(VENDOR_ADJUSTED)
_PRICES_SAID: Final = {
    RAW: "raw (as traded)",
    "split_adjusted": "already split/bonus-adjusted by the vendor",
    "total_return_adjusted": "already split/bonus- and dividend-adjusted by the vendor",
}


def check_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else UsageError.

    Names never start with ``_`` or ``.`` (reserved store entries such as ``_meta/`` and
    ``.tmp/``) and never contain ``@``, ``+`` or ``=`` (reference, temp-dir and alias syntax).
    """
    if not NAME_RE.match(name):
        raise UsageError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def prices_flag(prices: str) -> str:
    """The ``--prices`` spelling of a kind: ``split_adjusted`` -> ``split-adjusted``."""
    return prices.replace("_", "-")


def check_prices(value: str) -> str:
    """The kind ``value`` names (flag or manifest spelling), else UsageError naming the flag."""
    prices = value.strip().lower().replace("-", "_")
    if prices not in VENDOR_ADJUSTED:
        choices = "|".join(prices_flag(p) for p in PRICES)
        raise UsageError(f"--prices must be one of {choices}, not {value!r}")
    return prices


def describe_prices(prices: str) -> str:
    """``prices`` for people: ``already split/bonus-adjusted by the vendor``."""
    return _PRICES_SAID[prices]


def partition_actions(
    actions: Iterable[CorporateAction], prices: str
) -> tuple[list[CorporateAction], list[CorporateAction]]:
    """(the actions that apply to a version whose prices are ``prices``, those its vendor has
    already adjusted for), each in the given order.

    The one answer to which corporate actions apply to a dataset: backtests, derived
    ``prev_close``, validation and adjusted reads all select through it, so none of them
    applies a split the vendor already applied.
    """
    done = VENDOR_ADJUSTED[prices]
    applied: list[CorporateAction] = []
    adjusted: list[CorporateAction] = []
    for action in actions:
        (adjusted if action.kind in done else applied).append(action)
    return applied, adjusted


def version_dir(root: Path, name: str, version: int) -> Path:
    """The directory of ``name`` version ``version``."""
    return root / name / f"v{version}"


def removed_marker(root: Path, name: str, version: int) -> Path:
    """The tombstone left by ``rm`` so a removed version number is never reused."""
    return root / name / f"v{version}{REMOVED_SUFFIX}"


def _numbered(root: Path, name: str) -> list[tuple[int, Path]]:
    folder = root / name
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = VERSION_DIR_RE.match(entry.name.removesuffix(REMOVED_SUFFIX))
        if match:
            found.append((int(match.group(1)), entry))
    return found


def version_numbers(root: Path, name: str, marker: str = MANIFEST) -> list[int]:
    """The visible versions of ``name``, ascending: those whose ``marker`` file (the one a
    publish writes last, manifest.json for datasets) exists."""
    return sorted(n for n, p in _numbered(root, name) if (p / marker).is_file())


def removed_versions(root: Path, name: str) -> list[int]:
    """The versions of ``name`` that ``rm`` removed."""
    return sorted(n for n, p in _numbered(root, name) if p.name.endswith(REMOVED_SUFFIX))


def next_version(root: Path, name: str) -> int:
    """The number the next version gets: above every version that exists or ever existed."""
    return max((n for n, _ in _numbered(root, name)), default=0) + 1


@dataclass(frozen=True)
class InputFile:
    """One input file a version was built from."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SourceInfo:
    """Where a version's bars came from: the source kind, its input files and its options."""

    kind: str
    files: tuple[InputFile, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """One symbol's bars within a data file (sorted by ts); the file may hold neighbouring
    symbols too, and ``bytes`` is the whole file's size."""

    path: str
    symbol: str
    rows: int
    first_ts: datetime
    last_ts: datetime
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """The immutable description of one dataset version (``manifest.json``)."""

    name: str
    version: int
    parent: int | None
    created_at: datetime
    interval: str
    timezone: str
    schema: Mapping[str, str]
    rows: int
    symbols: tuple[str, ...]
    first_ts: datetime
    last_ts: datetime
    source: SourceInfo
    files: Mapping[str, str]
    partitions: tuple[Partition, ...]
    content_hash: str
    quantcli_version: str
    notes: Mapping[str, object] = field(default_factory=dict)
    prices: str = RAW  # one of PRICES: what the vendor already adjusted the prices for

    @property
    def ref(self) -> str:
        """The pinned reference ``NAME@vN``."""
        return f"{self.name}@v{self.version}"

    def unapplied_warning(
        self, actions: Iterable[CorporateAction], first: object, last: object
    ) -> str | None:
        """One line about the ``actions`` on record that ``partition_actions`` leaves out for
        this version's prices and that fall after bar time ``first`` and on or before ``last``
        (the span of the bars read; None: no bars), or None when there is none."""
        if not isinstance(first, datetime) or not isinstance(last, datetime):
            return None
        _, adjusted = partition_actions(actions, self.prices)
        skipped = [a for a in adjusted if first.date() < a.ex_date <= last.date()]
        if not skipped:
            return None
        shown = ", ".join(f"{a.symbol} {a.kind} ex {a.ex_date.isoformat()}" for a in skipped[:3])
        more = f" and {len(skipped) - 3:,} more" if len(skipped) > 3 else ""
        return (
            f"corporate actions not applied: {shown}{more} on record, but {self.ref}'s prices "
            f"are {describe_prices(self.prices)} (manifest prices: {self.prices}); applying "
            "them would count them twice"
        )

    def partitions_for(self, symbols: tuple[str, ...] | None) -> list[Partition]:
        """The partitions holding ``symbols`` (all when None), in (symbol) order."""
        if symbols is None:
            return list(self.partitions)
        wanted = set(symbols)
        return [p for p in self.partitions if p.symbol in wanted]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to ``manifest.json``."""
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "parent": self.parent,
            "created_at": self.created_at.isoformat(),
            "interval": self.interval,
            "timezone": self.timezone,
            # A list, not an object: column order matters and the JSON keys are sorted.
            "schema": [{"name": c, "type": t} for c, t in self.schema.items()],
            "rows": self.rows,
            "symbols": list(self.symbols),
            "first_ts": self.first_ts.isoformat(),
            "last_ts": self.last_ts.isoformat(),
            "source": {
                "kind": self.source.kind,
                "files": [
                    {"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.source.files
                ],
                "options": dict(self.source.options),
            },
            "files": dict(self.files),
            "partitions": [
                {
                    "path": p.path,
                    "symbol": p.symbol,
                    "rows": p.rows,
                    "first_ts": p.first_ts.isoformat(),
                    "last_ts": p.last_ts.isoformat(),
                    "bytes": p.bytes,
                }
                for p in self.partitions
            ],
            "content_hash": self.content_hash,
            "quantcli_version": self.quantcli_version,
            "notes": dict(self.notes),
            "prices": self.prices,
        }

    def to_json(self) -> str:
        """``manifest.json`` text (sorted keys, so equal manifests are equal bytes)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        """Parse the ``to_dict`` form (KeyError/ValueError/TypeError on malformed input)."""
        src = d["source"]
        return cls(
            name=str(d["name"]),
            version=int(d["version"]),
            parent=None if d["parent"] is None else int(d["parent"]),
            created_at=datetime.fromisoformat(d["created_at"]),
            interval=str(d["interval"]),
            timezone=str(d["timezone"]),
            schema={str(c["name"]): str(c["type"]) for c in d["schema"]},
            rows=int(d["rows"]),
            symbols=tuple(str(s) for s in d["symbols"]),
            first_ts=datetime.fromisoformat(d["first_ts"]),
            last_ts=datetime.fromisoformat(d["last_ts"]),
            source=SourceInfo(
                kind=str(src["kind"]),
                files=tuple(
                    InputFile(str(f["path"]), str(f["sha256"]), int(f["size"]))
                    for f in src["files"]
                ),
                options={str(k): str(v) for k, v in src["options"].items()},
            ),
            files={str(k): str(v) for k, v in d["files"].items()},
            partitions=tuple(
                Partition(
                    path=str(p["path"]),
                    symbol=str(p["symbol"]),
                    rows=int(p["rows"]),
                    first_ts=datetime.fromisoformat(p["first_ts"]),
                    last_ts=datetime.fromisoformat(p["last_ts"]),
                    bytes=int(p["bytes"]),
                )
                for p in d["partitions"]
            ),
            content_hash=str(d["content_hash"]),
            quantcli_version=str(d["quantcli_version"]),
            notes=dict(d.get("notes", {})),
            prices=_stored_prices(d.get("prices", RAW)),
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse ``manifest.json`` text."""
        return cls.from_dict(json.loads(text))


def _stored_prices(value: object) -> str:
    if value not in VENDOR_ADJUSTED:
        raise ValueError(f"unknown prices {value!r} (expected one of {', '.join(PRICES)})")
    return str(value)


def content_hash(
    files: Mapping[str, str], schema: Mapping[str, str], interval: str, prices: str = RAW
) -> str:
    """One hash of a version's content: its sorted (path, sha256) list, schema, interval and
    the kind of its prices.

    ``created_at``, the source and the notes are left out, so publishing the same bars twice
    gives the same hash (which is how publish recognises a re-run). The same bars with prices
    of another kind are other content (their returns differ once actions apply), so
    re-ingesting them with a corrected ``--prices`` makes a version; raw prices add nothing to
    the hashed document, so every version written before the kind existed keeps its hash.
    """
    doc: dict[str, object] = {
        "files": sorted(files.items()),
        "schema": sorted(schema.items()),
        "interval": interval,
    }
    if prices != RAW:
        doc["prices"] = prices
    return sha256_hex(json.dumps(doc, separators=(",", ":")).encode())


def read_manifest(directory: Path) -> Manifest:
    """The manifest of the version in ``directory``; IntegrityError if unreadable."""
    path = directory / MANIFEST
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{path}: unreadable manifest: {exc}") from exc
