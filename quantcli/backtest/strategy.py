"""Strategy protocols, loading a strategy by name or ``path/to/file.py:ClassName``, and typed
parameters.

Two kinds of strategy:

- signal strategies implement ``targets(self) -> pl.Expr`` (target position in traded shares)
  or ``weights(self) -> pl.Expr`` (target fraction of equity) over the bars frame (one row per
  symbol and bar, sorted by symbol then ts; use ``.over("symbol")`` for per-symbol windows and
  ``.over("ts")`` for cross-sections). A null target means "no opinion". An optional
  ``features(self) -> list[pl.Expr]`` adds named columns first (windows cannot nest). The
  engine trades when a symbol's target changes, after the bar that produced it (next open, or
  the same close with ``fill="close"``), and rejects a strategy whose targets change when
  later bars are distorted (look-ahead).
- event strategies implement ``on_bar(self, ctx, bar)`` and optionally ``on_fill(self, ctx,
  fill)``; ``ctx`` places and cancels orders and reads positions and cash.

What strategies see is split/bonus-adjusted: a bar's prices (open, high, low, close, vwap,
prev_close) are its traded prices times the product of the ratios of its symbol's splits and
bonuses with an ex-date after the symbol's first bar in the run and on or before the bar, and
its share counts (volume, ...) are divided by it (Float64), so an SMA or a channel does not jump
at an ex-date and no later action is used. The traded values are beside them as ``raw_open``,
``raw_high``, ``raw_low``, ``raw_close``, ``raw_volume`` (``raw_prev_close`` ... when present).
Fills, positions, cash and charges stay in traded prices and shares (positions are adjusted on
the ex-date); limit and stop prices an event strategy gives are in the adjusted units and
converted, and order quantities and share targets are traded shares.

Parameters that are alternatives (``exclusive_params``, e.g. ``qty`` or ``weight``) may not be
given together.

A strategy that reads more than its bars (the ``model`` strategy reads a registered model)
defines ``setup(self, run: RunContext) -> Setup``: called once before its targets are evaluated,
with the store and the span of the run's bars, it returns the inputs the run's manifest records
beside the strategy source (so the run id changes with them) and warning lines for the report.
Such a strategy may also define ``pull(root, inputs, remote)`` (a static method):
``backtest reproduce --pull`` calls it with the run's recorded ``inputs`` to fetch what its
setup reads from a dataset remote (quantcli.store.remotes) into the store at ``root`` first.

A strategy whose first targets need history (a moving average) says how much with
``warmup(self) -> int``: the bars per symbol before its first possible target, during which its
targets are null. A walk-forward gives each test window that many bars before it, traded by
nobody (quantcli.sweep.walkforward); a strategy without the hook needs none.

Parameters are declared as a frozen dataclass ``Params`` nested in the class, or as annotated
class attributes with defaults; raw ``-p name=value`` strings are parsed to int, float, bool or
str. The instance is built as ``cls(params)`` and reads ``self.params``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from quantcli.core.hashing import sha256_hex
from quantcli.errors import NotFoundError, QuantcliError, StrategyError, UsageError

if TYPE_CHECKING:
    from quantcli.backtest.config import BacktestConfig

# Module paths, imported on first use: the ``model`` strategy lives in quantcli.models, which
# sits above the backtester (backtest/ never imports it).
BUILTINS: dict[str, tuple[str, str]] = {
    "buy_and_hold": ("quantcli.backtest.strategies.buy_and_hold", "BuyAndHold"),
    "sma_cross": ("quantcli.backtest.strategies.sma_cross", "SmaCross"),
    "momentum": ("quantcli.backtest.strategies.momentum", "Momentum"),
    "model": ("quantcli.models.strategy", "ModelStrategy"),
}

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class Strategy:
    """Base class of strategies: holds the parsed parameters."""

    def __init__(self, params: Any) -> None:
        self.params = params


class SignalStrategy(Strategy):
    """Base of signal strategies: override ``targets`` (shares) or ``weights`` (of equity)."""


class EventStrategy(Strategy):
    """Base of event strategies: override ``on_bar`` and optionally ``on_fill``."""

    def on_bar(self, ctx: Any, bar: Any) -> None:
        """Called once per bar, in (ts, symbol) order."""

    def on_fill(self, ctx: Any, fill: Any) -> None:
        """Called after each fill of this strategy's orders."""


@dataclass(frozen=True)
class RunContext:
    """What a strategy's ``setup`` hook learns about its run: the store (None for in-memory
    bars), the config, the dataset version's content hash, and the first and last session date
    and the symbols of the bars read."""

    root: Path | None
    config: BacktestConfig
    dataset_hash: str
    first: date
    last: date
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class Setup:
    """What a strategy's ``setup`` hook returns: the inputs it read, as the run manifest's
    ``inputs`` entries (name -> ``{"sha256": ..., what it was}``; an entry's ``pin`` maps
    parameters to the values a reproduction runs with, as the dataset is pinned by its hash),
    and one line per warning."""

    inputs: Mapping[str, Mapping[str, object]] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedStrategy:
    """A strategy instance with what the run records about it."""

    name: str
    instance: Any
    kind: str  # "targets" | "weights" | "events"
    source_hash: str
    params: Mapping[str, object]

    @property
    def has_setup(self) -> bool:
        """Whether the strategy reads more than its bars (defines ``setup``)."""
        return callable(getattr(self.instance, "setup", None))

    def setup(self, run: RunContext) -> Setup:
        """The strategy's ``setup(run)`` (an empty Setup without one); its own errors pass
        as they are, any other is a StrategyError."""
        if not self.has_setup:
            return Setup()
        try:
            done = self.instance.setup(run)
        except QuantcliError:
            raise
        except Exception as exc:
            raise StrategyError(f"strategy {self.name}: setup() raised {_describe(exc)}") from exc
        if not isinstance(done, Setup):
            raise StrategyError(f"strategy {self.name}: setup() must return a Setup")
        return done

    def warmup(self) -> int:
        """The bars per symbol before the strategy's first possible target (its ``warmup()``
        hook; 0 without one); StrategyError when the hook raises or returns no count."""
        hook = getattr(self.instance, "warmup", None)
        if hook is None:
            return 0
        try:
            bars = hook()
        except Exception as exc:
            raise StrategyError(f"strategy {self.name}: warmup() raised {_describe(exc)}") from exc
        if not isinstance(bars, int) or isinstance(bars, bool) or bars < 0:
            raise StrategyError(f"strategy {self.name}: warmup() must return a count >= 0")
        return bars

    def features(self) -> list[pl.Expr]:
        """Named expressions to add to the bars before the target (the optional ``features()``
        hook: polars cannot nest a per-symbol window inside a cross-sectional one)."""
        hook = getattr(self.instance, "features", None)
        if hook is None:
            return []
        try:
            exprs = list(hook())
        except Exception as exc:
            raise StrategyError(
                f"strategy {self.name}: features() raised {_describe(exc)}"
            ) from exc
        if not all(isinstance(e, pl.Expr) for e in exprs):
            raise StrategyError(f"strategy {self.name}: features() must return polars expressions")
        return exprs

    def expression(self) -> pl.Expr:
        """The signal strategy's target expression (StrategyError if it raises)."""
        method = getattr(self.instance, self.kind)
        try:
            expr = method()
        except Exception as exc:
            raise StrategyError(
                f"strategy {self.name}: {self.kind}() raised {_describe(exc)}"
            ) from exc
        if not isinstance(expr, pl.Expr):
            raise StrategyError(
                f"strategy {self.name}: {self.kind}() must return a polars expression, "
                f"got {type(expr).__name__}"
            )
        return expr


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_strategy(spec: str, raw_params: Mapping[str, str]) -> LoadedStrategy:
    """Resolve ``spec`` (a built-in name or ``path.py:ClassName``), parse its parameters and
    instantiate it."""
    cls, source = load_class(spec, BUILTINS)
    kind = strategy_kind(cls, spec)
    params = parse_params(cls, raw_params, spec)
    try:
        instance = cls(params)
    except Exception as exc:
        raise StrategyError(f"strategy {spec}: constructor raised {_describe(exc)}") from exc
    # A class offering both sizings picks one per instance (e.g. from its parameters).
    sizing = getattr(instance, "sizing", None)
    if kind != "events" and sizing in ("targets", "weights"):
        kind = sizing
    return LoadedStrategy(
        name=spec,
        instance=instance,
        kind=kind,
        source_hash=sha256_hex(source),
        params=dataclasses.asdict(params),
    )


@functools.cache
def _builtin_module(name: str) -> tuple[ModuleType, bytes]:
    """A built-in's module and its source, read once: the source of the code that runs (a
    sweep loads the strategy for every combination)."""
    module = importlib.import_module(name)
    return module, Path(inspect.getfile(module)).read_bytes()


def load_class(
    spec: str, builtins: Mapping[str, tuple[str, str]], what: str = "strategy"
) -> tuple[type, bytes]:
    """The class ``spec`` names (a key of ``builtins`` or ``path.py:ClassName``) and its source
    file's bytes; ``what`` names the kind of thing in errors (strategies, feature sets)."""
    if spec in builtins:
        module_name, class_name = builtins[spec]
        module, source = _builtin_module(module_name)
    else:
        path_text, sep, class_name = spec.rpartition(":")
        if not sep or not path_text.endswith(".py") or not class_name:
            known = ", ".join(builtins)
            raise StrategyError(
                f"unknown {what} {spec!r}: use a built-in ({known}) or path/to/file.py:ClassName"
            )
        path = Path(path_text)
        if not path.is_file():
            raise NotFoundError(f"{what} file {path} not found")
        source = path.read_bytes()
        module = _import_file(path, sha256_hex(source), what)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise StrategyError(f"{what} {spec}: no class {class_name} in {module.__name__}")
    return cls, source


def _import_file(path: Path, digest: str, what: str) -> ModuleType:
    # A content-derived module name: the same file imports once, an edited one afresh.
    name = f"quantcli_strategy_{digest[:16]}"
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always get a loader
        raise StrategyError(f"{what} file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise StrategyError(f"{what} file {path} failed to import: {_describe(exc)}") from exc
    return module


def strategy_kind(cls: type, spec: str) -> str:
    """``targets``, ``weights`` or ``events`` by the methods the class defines."""
    if callable(getattr(cls, "on_bar", None)) and _overrides(cls, "on_bar"):
        return "events"
    for kind in ("targets", "weights"):
        if callable(getattr(cls, kind, None)):
            return kind
    raise StrategyError(
        f"strategy {spec}: define targets() or weights() (signal) or on_bar(ctx, bar) (event)"
    )


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(EventStrategy, name)


def params_type(cls: type) -> type:
    """The dataclass describing ``cls``'s parameters (nested ``Params`` or class annotations)."""
    nested = getattr(cls, "Params", None)
    if isinstance(nested, type) and dataclasses.is_dataclass(nested):
        return nested
    hints = _class_hints(cls)
    specs: list[tuple[str, Any, Any]] = []
    for name, hint in hints.items():
        if name.startswith("_") or typing.get_origin(hint) is ClassVar or hint is ClassVar:
            continue
        if name == "params":
            continue
        default = cls.__dict__.get(name, dataclasses.MISSING)
        specs.append((name, hint, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Params", specs, frozen=True)


def _class_hints(cls: type) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, Strategy, SignalStrategy, EventStrategy):
            continue
        module = sys.modules.get(klass.__module__)
        localns = dict(vars(klass))
        try:
            own = typing.get_type_hints(
                klass, globalns=vars(module) if module else None, localns=localns
            )
        except Exception as exc:
            raise StrategyError(
                f"strategy {cls.__name__}: cannot read its parameter types: {_describe(exc)}"
            ) from exc
        hints.update({k: v for k, v in own.items() if k in inspect.get_annotations(klass)})
    return hints


def parse_params(cls: type, raw: Mapping[str, str], spec: str, what: str = "strategy") -> Any:
    """Parse raw ``-p`` strings into ``cls``'s parameter dataclass (StrategyError on bad input;
    ``what`` names the kind of thing, as in :func:`load_class`)."""
    ptype = params_type(cls)
    fields = {f.name: f for f in dataclasses.fields(ptype)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise StrategyError(f"{what} {spec}: unknown parameter {unknown[0]} (known: {known})")
    for group in getattr(cls, "exclusive_params", ()):
        given = [f"-p {name}" for name in group if name in raw]
        if len(given) > 1:
            raise UsageError(
                f"{what} {spec}: {' and '.join(given)} are alternatives: give one of them"
            )
    hints = _hints(ptype)
    values: dict[str, object] = {}
    for name, field in fields.items():
        if name in raw:
            values[name] = parse_value(name, hints.get(name, str), raw[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise StrategyError(f"{what} {spec}: parameter {name} is required (-p {name}=...)")
    try:
        return ptype(**values)
    except Exception as exc:
        raise StrategyError(f"{what} {spec}: invalid parameters: {_describe(exc)}") from exc


@functools.lru_cache(maxsize=256)
def _hints(ptype: type) -> dict[str, Any]:
    # Resolving the annotations is a tenth of a millisecond, paid by every run of a sweep; a
    # class never changes them (an edited strategy file imports as a new module).
    return typing.get_type_hints(ptype)


def parse_value(name: str, hint: Any, text: str) -> object:
    """Parse one raw parameter value to ``hint`` (int, float, bool or str; ``X | None``)."""
    args = typing.get_args(hint)
    if args and type(None) in args:
        if text.strip().lower() in {"none", "null", ""}:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif hint is int:
        try:
            return int(text.strip())
        except ValueError:
            pass
    elif hint is float:
        try:
            return float(text.strip())
        except ValueError:
            pass
    elif hint is str:
        return text
    else:
        raise StrategyError(
            f"parameter {name}: unsupported type {hint!r} (use int, float, bool, str)"
        )
    return _bad(name, hint, text)


def _bad(name: str, hint: type, text: str) -> object:
    raise StrategyError(f"parameter {name}: expected {hint.__name__}, got {text!r}")
