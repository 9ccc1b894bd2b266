"""Global options shared by every command, and how the store root and runs directory are found."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantcli.errors import UsageError

ENV_ROOT = "QUANTCLI_ROOT"
CONFIG_FILE = "quantcli.toml"
DEFAULT_ROOT = "datasets"
DEFAULT_RUNS = "runs"  # under the store root


@dataclass(frozen=True)
class Settings:
    """Options given before the sub-command: where the store is and how to print."""

    root: Path
    json: bool = False
    quiet: bool = False
    debug: bool = False


def find_config(start: Path) -> Path | None:
    """The nearest ``quantcli.toml`` in ``start`` or its parents."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _config_path(section: str, key: str, cwd: Path | None) -> Path | None:
    """``[section] key`` of the nearest ``quantcli.toml`` as a path relative to that file, so a
    project works from any of its sub-directories; None when there is no such file or key."""
    config = find_config(cwd or Path.cwd())
    if config is None:
        return None
    import tomllib  # only when a quantcli.toml exists

    try:
        data: dict[str, Any] = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{config}: not valid TOML: {exc}") from exc
    table = data.get(section, {})
    value = table.get(key) if isinstance(table, dict) else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{config}: [{section}] {key} must be a string")
    return (config.parent / value).expanduser()


def resolve_root(option: str | None, *, cwd: Path | None = None) -> Path:
    """The store root: ``--root``, else ``$QUANTCLI_ROOT``, else ``quantcli.toml``'s
    ``[store] root``, else ./datasets."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    configured = _config_path("store", "root", cwd)
    if configured is not None:
        return configured
    return (cwd or Path.cwd()) / DEFAULT_ROOT


def resolve_runs_dir(option: str | None, root: Path, *, cwd: Path | None = None) -> Path:
    """Where backtest runs are saved and looked up: ``--runs-dir``, else ``quantcli.toml``'s
    ``[runs] dir``, else ``<root>/runs``.

    Runs live beside the store they were computed from rather than in the current directory,
    so ``backtest reproduce RUN`` finds them from anywhere.
    """
    if option:
        return Path(option).expanduser()
    configured = _config_path("runs", "dir", cwd)
    return configured if configured is not None else root / DEFAULT_RUNS
