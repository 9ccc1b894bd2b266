"""Models chosen by a spec ``name`` or ``name:param`` on the command line (``--slippage``,
``--costs``): one registry per option, keyed by each model class's ``name``."""

from __future__ import annotations

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
    """Model classes by name (a dict, so tests can add one with ``monkeypatch.setitem``)."""

    def __init__(self, what: str) -> None:
        """An empty registry of ``what`` ("slippage model"), the word errors use."""
        super().__init__()
        self.what = what

    def register(self, model: type[M]) -> type[M]:
        """Make ``model`` available under its name (usable as a decorator)."""
        self[model.name] = model
        return model

    def parse(self, spec: str) -> M:
        """The model instance ``spec`` names; UsageError listing the known forms otherwise."""
        name, _, raw = spec.strip().partition(":")
        model = self.get(name.lower())
        if model is None:
            known = ", ".join(m.usage for m in self.values())
            raise UsageError(f"unknown {self.what} {spec!r} (expected {known})")
        return cast("M", model.parse(raw.strip()))
