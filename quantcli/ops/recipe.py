"""A dataset's refresh recipe: where its sessions come from and which bars it keeps.

Kept as one file, ``<root>/<name>/recipe.json``, replaced atomically under the dataset's writer
lock (as ``tags.json`` is), not versioned: a recipe decides where bars are fetched from, not
what a version holds, and every version a refresh publishes records the recipe's hash and the
provider that served each session in its own immutable manifest, so history keeps what was
used. The file holds provider templates as given (a token in a URL is needed to fetch); only
their redacted labels are ever printed, logged or written into a manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from quantcli.core.files import atomic_write_bytes
from quantcli.core.hashing import sha256_hex
from quantcli.core.lock import dataset_lock
from quantcli.errors import IntegrityError, NotFoundError, UsageError
from quantcli.ops.download import BhavcopyKind
from quantcli.ops.providers import Provider, parse_provider
from quantcli.store.manifest import check_name

RECIPE_FILE: Final = "recipe.json"
FORMAT: Final = 1
# Recipe source kind -> the bhavcopy layout its downloads must have. Both are parsed by ingest's
# bhavcopy source; the kind is fixed per recipe so a provider that switches layouts is caught.
SOURCES: Final[Mapping[str, BhavcopyKind]] = {
    "bhavcopy-legacy": "legacy",
    "bhavcopy-udiff": "udiff",
}
INGEST_KIND: Final = "bhavcopy"
DEFAULT_SERIES: Final = "EQ"


@dataclass(frozen=True)
class Recipe:
    """How ``data refresh`` fetches the sessions a dataset is missing.

    ``providers`` are tried in order for each session; ``series`` and ``symbols`` filter the
    bars kept (``symbols`` empty: all); ``start`` is the first session fetched while the dataset
    has no version yet; ``allow_warnings`` publishes bars with warning-level findings (as
    ``data ingest --allow-warnings``: a suspended symbol's missing sessions, say).
    """

    name: str
    source: str
    providers: tuple[Provider, ...]
    series: str = DEFAULT_SERIES
    symbols: tuple[str, ...] = ()
    start: date | None = None
    allow_warnings: bool = False

    @property
    def layout(self) -> BhavcopyKind:
        """The bhavcopy layout downloads must have."""
        return SOURCES[self.source]

    @property
    def options(self) -> dict[str, str]:
        """The ingest options the downloads are parsed with."""
        return {"series": self.series}

    def public(self) -> dict[str, Any]:
        """The recipe as printed and hashed: provider labels, never their templates."""
        return {
            "name": self.name,
            "source": self.source,
            "providers": [p.label for p in self.providers],
            "series": self.series,
            "symbols": list(self.symbols),
            "start": None if self.start is None else self.start.isoformat(),
            "allow_warnings": self.allow_warnings,
        }

    @property
    def digest(self) -> str:
        """sha256 of the public form: recorded in each version a refresh publishes."""
        return sha256_hex(json.dumps(self.public(), sort_keys=True).encode("utf-8"))

    def _stored(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "source": self.source,
            "providers": [p.template for p in self.providers],
            "series": self.series,
            "symbols": list(self.symbols),
            "start": None if self.start is None else self.start.isoformat(),
            "allow_warnings": self.allow_warnings,
        }


def _symbols(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    names = [s.strip().upper() for s in text.split(",")]
    if any(not s for s in names):
        raise UsageError(f"--symbols {text!r}: an empty name; give SYMBOL,SYMBOL,...")
    return tuple(sorted(set(names)))


def _series(text: str | None) -> str:
    if text is None:
        return DEFAULT_SERIES
    series = ",".join(s.strip().upper() for s in text.split(",") if s.strip())
    if not series:
        raise UsageError(f"--series {text!r}: give a series such as EQ, a list EQ,BE, or ALL")
    return series


def make_recipe(
    name: str,
    source: str,
    providers: Sequence[str],
    *,
    series: str | None = None,
    symbols: str | None = None,
    start: date | None = None,
    allow_warnings: bool = False,
) -> Recipe:
    """A checked recipe from command-line text; UsageError naming the flag that is wrong.

    Each provider is parsed (and a URL template rendered for a sample date), so a bad template
    is refused here, once, rather than on every night's run.
    """
    check_name(name)
    if source not in SOURCES:
        raise UsageError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    if not providers:
        raise UsageError("give at least one --provider URL_TEMPLATE or DIRECTORY")
    return Recipe(
        name=name,
        source=source,
        providers=tuple(parse_provider(p) for p in providers),
        series=_series(series),
        symbols=_symbols(symbols),
        start=start,
        allow_warnings=allow_warnings,
    )


def recipe_path(root: Path, name: str) -> Path:
    """Where dataset ``name``'s recipe is kept."""
    return root / name / RECIPE_FILE


def save_recipe(root: Path, recipe: Recipe, *, wait: float = 0) -> None:
    """Store ``recipe`` for its dataset, replacing any before it (atomically, under the lock)."""
    text = json.dumps(recipe._stored(), indent=2, sort_keys=True) + "\n"
    with dataset_lock(root, recipe.name, wait=wait):
        atomic_write_bytes(recipe_path(root, recipe.name), text.encode("utf-8"))


def load_recipe(root: Path, name: str) -> Recipe:
    """Dataset ``name``'s recipe; NotFoundError naming the command that sets one."""
    path = recipe_path(root, check_name(name))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            f"dataset {name} has no refresh recipe; set one with "
            f"`quantcli data recipe set {name} --source KIND --provider URL_OR_DIR`"
        ) from None
    try:
        data = json.loads(text)
        return Recipe(
            name=name,
            source=_known_source(data["source"]),
            providers=tuple(parse_provider(str(p)) for p in data["providers"]),
            series=str(data["series"]),
            symbols=tuple(str(s) for s in data["symbols"]),
            start=None if data["start"] is None else date.fromisoformat(data["start"]),
            allow_warnings=bool(data["allow_warnings"]),
        )
    except (ValueError, KeyError, TypeError, UsageError) as exc:
        raise IntegrityError(
            f"{path}: unreadable recipe ({exc}); set it again with `quantcli data recipe set`"
        ) from None


def _known_source(value: object) -> str:
    if value not in SOURCES:
        raise ValueError(f"unknown source {value!r}")
    return str(value)


def has_recipe(root: Path, name: str) -> bool:
    """Whether dataset ``name`` carries a refresh recipe."""
    return recipe_path(root, name).is_file()
