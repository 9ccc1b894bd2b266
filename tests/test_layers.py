"""The package's layering (docs/architecture.md): every import runs down, never up.

Each quantcli module belongs to a layer; it may import only layers below its own. Every import
counts: module level, inside functions (the lazy imports of heavy libraries) and type-only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import quantcli

PACKAGE = Path(quantcli.__file__).parent

# Top to bottom. models and features sit above backtest (they use its strategy layer and
# look-ahead check; backtest never imports them); core is the bottom layer everyone may import,
# and imports nothing of quantcli but the error hierarchy.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("quantcli.__main__",),
    ("quantcli.cli",),
    ("quantcli.commands",),
    ("quantcli.ops",),
    ("quantcli.sweep",),
    ("quantcli.models",),
    ("quantcli.features",),
    ("quantcli.backtest",),
    ("quantcli.store",),
    ("quantcli.market",),
    ("quantcli.output",),
    ("quantcli.settings", "quantcli.log"),
    ("quantcli.core",),
    ("quantcli.errors", "quantcli"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """The layer unit of a dotted module name: ``quantcli.store.reader`` -> ``quantcli.store``."""
    return ".".join(module.split(".")[:2])


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every quantcli module an AST imports (``from quantcli import x``
    imports ``quantcli.x``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"line {node.lineno}: relative import"
            top = node.module == "quantcli"
            names = [f"quantcli.{a.name}" for a in node.names] if top else [node.module]
        else:
            continue
        for name in names:
            if name == "quantcli" or name.startswith("quantcli."):
                yield node.lineno, name


def upward_imports(sources: Mapping[str, str]) -> list[str]:
    """``module:line imports target`` for each import that does not run down a layer (module
    name -> source text)."""
    found = []
    for module, source in sorted(sources.items()):
        unit = unit_of(module)
        assert unit in RANK, f"{module}: put {unit} in a layer of LAYERS"
        for line, target in imported(ast.parse(source)):
            if unit_of(target) == unit or unit_of(target) not in RANK:
                continue  # within its own package, or `from quantcli import __version__`'s name
            if RANK[unit_of(target)] <= RANK[unit]:
                found.append(f"{module}:{line} imports {target}")
    return sorted(set(found))


def package_sources() -> dict[str, str]:
    """Every module of the installed quantcli package: dotted name -> source."""
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = path.read_text(encoding="utf-8")
    return sources


def test_every_import_runs_down_a_layer() -> None:
    sources = package_sources()
    assert {"quantcli.core.files", "quantcli.market.calendar", "quantcli.cli"} <= set(sources)
    assert upward_imports(sources) == []


def test_core_imports_nothing_of_quantcli_but_errors() -> None:
    sources = package_sources()
    core = [src for name, src in sources.items() if unit_of(name) == "quantcli.core"]
    assert len(core) >= 6
    targets = {t for src in core for _, t in imported(ast.parse(src))}
    assert {unit_of(t) for t in targets} <= {"quantcli.core", "quantcli.errors"}


def test_the_check_finds_upward_imports() -> None:
    sources = {
        "quantcli.market.calendar": "def f():\n    from quantcli.store.files import x\n",
        "quantcli.core.lock": "import quantcli.settings\n",
        "quantcli.backtest.engine": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from quantcli import models\n"
        ),
        "quantcli.store.reader": (
            "from quantcli.store.manifest import x\nfrom quantcli.core import y\n"
        ),
    }
    assert upward_imports(sources) == [
        "quantcli.backtest.engine:3 imports quantcli.models",
        "quantcli.core.lock:1 imports quantcli.settings",
        "quantcli.market.calendar:2 imports quantcli.store.files",
    ]
