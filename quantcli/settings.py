"""Global options shared by every command, and how the store root is found."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quantcli.errors import UsageError

ENV_ROOT = "QUANTCLI_ROOT"
CONFIG_FILE = "quantcli.toml"
DEFAULT_ROOT = "datasets"


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


def resolve_root(option: str | None, *, cwd: Path | None = None) -> Path:
    """The store root: ``--root``, else ``$QUANTCLI_ROOT``, else ``quantcli.toml``, else ./datasets.

    A relative ``root`` in ``quantcli.toml`` is relative to the file, so a project works from
    any of its sub-directories.
    """
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    here = cwd or Path.cwd()
    config = find_config(here)
    if config is not None:
        import tomllib  # only when a quantcli.toml exists

        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{config}: not valid TOML: {exc}") from exc
        root = data.get("store", {}).get("root")
        if root is not None:
            if not isinstance(root, str):
                raise UsageError(f"{config}: [store] root must be a string")
            return (config.parent / root).expanduser()
    return here / DEFAULT_ROOT
