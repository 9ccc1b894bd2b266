"""Models chosen by a spec ``name`` or ``name:param`` on the command line (``--slippage``,
``--costs``): one registry per option, keyed by each model class's ``name``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar, cast

from quantcli.errors import UsageError


class SpecModel(Protocol):
    """What a registered model class provides: its name, the spec form shown in errors, and a
    parser for the text after ``name:``."""

    name: ClassVar[str]
    usage: ClassVar[str]

    @classmethod
    def parse(cls, raw: str) -> Any:
        """The model for ``raw`` (UsageError naming the spec otherwise)."""
        ...


M = TypeVar("M", bound=SpecModel)


class Registry(dict[str, type[M]]):
    """Model classes by name (a dict, so tests can add one with ``monkeypatch.setitem``).

    Built-in models are imported when first named: a model's module compiles its formula (a
    numba cfunc) when imported, which on an empty cache costs ~0.1 s a model, so a run pays
    only for the models it uses."""

    def __init__(self, what: str, builtins: Mapping[str, str]) -> None:
        """An empty registry of ``what`` ("slippage model"), the word errors use, that knows
        ``builtins``: model name -> the module holding it as ``MODEL``."""
        super().__init__()
        self.what = what
        self.builtins = dict(builtins)

    def register(self, model: type[M]) -> type[M]:
        """Make ``model`` available under its name (usable as a decorator)."""
        self[model.name] = model
        return model

    def model(self, name: str) -> type[M] | None:
        """The model class named ``name`` (a built-in imported now), or None."""
        if name not in self and name in self.builtins:
            self.register(importlib.import_module(self.builtins[name]).MODEL)
        return self.get(name)

    def parse(self, spec: str) -> M:
        """The model instance ``spec`` names; UsageError listing the known forms otherwise."""
        name, _, raw = spec.strip().partition(":")
        model = self.model(name.lower())
        if model is None:
            known = ", ".join(m.usage for m in self.known())
            raise UsageError(f"unknown {self.what} {spec!r} (expected {known})")
        return cast("M", model.parse(raw.strip()))

    def known(self) -> list[type[M]]:
        """Every model: the built-ins (imported now) in their order, then those registered."""
        found = [self.model(name) for name in self.builtins]
        ours = [model for model in found if model is not None]
        return ours + [model for model in self.values() if model not in ours]
