"""Feature-set definitions: a class (a built-in name or ``path/to/file.py:ClassName``) with
typed parameters, loaded and parsed as strategies are (quantcli.backtest.strategy).

``features(self)`` returns named polars expressions over the bars: a ``dict`` of name to
expression, or a list of aliased expressions. They see the bars a strategy sees (split/bonus
adjusted, traded values beside them as ``raw_<column>``, sorted by symbol then ts) and use
``.over("symbol")`` for per-symbol windows. An optional ``inputs(self)`` returns helper columns
(a dict of row-wise expressions) added to the bars first and not stored: a value several windowed
features use (such as the daily return) is then computed once, and windows cannot nest anyway.
A feature at bar t may use only bars up to t: a definition whose values change when later bars
are distorted is refused at build time.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from quantcli.backtest.strategy import load_class, parse_params
from quantcli.core.hashing import sha256_hex
from quantcli.errors import StrategyError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from quantcli.market.corporate_actions import CorporateAction

BUILTINS: dict[str, tuple[str, str]] = {
    "basic": ("quantcli.features.basic", "Basic"),
}
WHAT = "feature set"


class FeatureSpec:
    """Optional base class of feature-set definitions: holds the parsed parameters."""

    def __init__(self, params: Any) -> None:
        self.params = params


@dataclass(frozen=True)
class LoadedFeatures:
    """A feature-set definition instance with what its build records about it."""

    spec: str
    instance: Any
    source_hash: str
    params: Mapping[str, object]
    source: str  # the definition's source file, recorded so a build can be redone from it

    def inputs(self) -> dict[str, pl.Expr]:
        """The optional helper columns (``inputs()``), added to the bars before the features."""
        if not callable(getattr(self.instance, "inputs", None)):
            return {}
        return self._named("inputs", cast=False)

    def expressions(self) -> dict[str, pl.Expr]:
        """The named feature expressions, each cast to Float64 (StrategyError if the hook
        raises, returns something else, or repeats a name)."""
        if not callable(getattr(self.instance, "features", None)):
            raise StrategyError(f"{WHAT} {self.spec}: define features(self) -> dict[str, pl.Expr]")
        return self._named("features", cast=True)

    def _named(self, method: str, *, cast: bool) -> dict[str, pl.Expr]:
        hook = getattr(self.instance, method)
        try:
            given = hook()
            pairs = (
                list(given.items())
                if isinstance(given, Mapping)
                else [(e.meta.output_name(), e) for e in given]
            )
        except Exception as exc:
            raise StrategyError(f"{WHAT} {self.spec}: {method}() raised {_describe(exc)}") from exc
        out: dict[str, pl.Expr] = {}
        for name, expr in pairs:
            if not isinstance(expr, pl.Expr) or not isinstance(name, str):
                raise StrategyError(
                    f"{WHAT} {self.spec}: {method}() must return named polars expressions"
                )
            if name in out or name in ("symbol", "ts"):
                raise StrategyError(
                    f"{WHAT} {self.spec}: {method}() name {name!r} is symbol, ts or given twice"
                )
            out[name] = (expr.cast(pl.Float64) if cast else expr).alias(name)
        if not out and cast:
            raise StrategyError(f"{WHAT} {self.spec}: features() returned no feature")
        return out


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_features(spec: str, raw_params: Mapping[str, str]) -> LoadedFeatures:
    """Resolve ``spec`` (``basic`` or ``path.py:ClassName``), parse its parameters and
    instantiate it."""
    cls, source = load_class(spec, BUILTINS, WHAT)
    params = parse_params(cls, raw_params, spec, WHAT)
    try:
        # A plain class (no constructor of its own) gets its parameters as ``self.params``.
        if inspect.signature(cls).parameters:
            instance = cls(params)
        else:
            instance = cls()
            instance.params = params
    except Exception as exc:
        raise StrategyError(f"{WHAT} {spec}: constructor raised {_describe(exc)}") from exc
    digest = sha256_hex(source)
    text = source.decode("utf-8", errors="replace")
    return LoadedFeatures(spec, instance, digest, dataclasses.asdict(params), text)


def feature_view(bars: pl.DataFrame, actions: Sequence[CorporateAction]) -> pl.DataFrame:
    """The bars (sorted by symbol, ts) as feature expressions see them: the backtester's
    strategy view (split/bonus adjusted with ``actions``), with a ``prev_close`` column always
    present (null where the data has none)."""
    from quantcli.backtest.prepare import adjusted_view

    if "prev_close" not in bars.columns:
        bars = bars.with_columns(pl.lit(None, pl.Float64).alias("prev_close"))
    return adjusted_view(bars.with_columns(pl.col("symbol").set_sorted()), actions)
