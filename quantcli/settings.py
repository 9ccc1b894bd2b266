"""Global options shared by every command, and the one resolver of configuration.

Every setting is resolved the same way, strongest first: a command-line flag, then a
``QUANTCLI_<SECTION>_<KEY>`` environment variable (``QUANTCLI_ROOT`` for the store root, as
before), then the nearest ``quantcli.toml`` (in the current directory or a parent), then the
built-in default. The file's sections:

- ``[store] root``: the dataset store (relative paths are relative to the file);
- ``[runs] dir``: where backtest runs are saved;
- ``[refresh]``: ``connect_timeout``, ``read_timeout``, ``backoff_base``, ``backoff_cap``
  (seconds), ``retries``, ``concurrency``; unset keys keep the fetcher's defaults;
- ``[logging]``: ``format`` (json, console, auto or off; unset: auto, console on a terminal,
  JSON otherwise) and ``level`` (debug, info, warning, error);
- ``[metrics]``: ``file`` (one node_exporter textfile, ``*.prom``) or ``dir`` (a textfile
  directory: each job and dataset writes ``quantcli_<job>_<dataset>.prom`` there);
- ``[cluster]``: ``scheduler`` (a Dask scheduler address, ``tcp://HOST:PORT``) or ``workers``
  (the local cluster's processes) for sweeps, and ``remote`` (the dataset remote whose pinned
  version the workers read).

A bad value is one UsageError line naming where it came from (the file and key, the variable
or the flag) and what is wrong. The value of any key named like a credential (``*token*``,
``*password*``, ``*secret*``, ``*key``) is registered with the redaction, so it is blanked in
every log line and error even where the text quoting it does not say what it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from quantcli.core.redact import SECRET_NAME, add_secret
from quantcli.errors import UsageError

ENV_ROOT = "QUANTCLI_ROOT"
ENV_PREFIX: Final = "QUANTCLI_"
CONFIG_FILE = "quantcli.toml"
DEFAULT_ROOT = "datasets"
DEFAULT_RUNS = "runs"  # under the store root
PROM_SUFFIX: Final = ".prom"


@dataclass(frozen=True)
class RefreshConfig:
    """Fetching for ``data refresh``; None keeps the fetcher's own default. The names are
    ``quantcli.ops.http.HttpPolicy``'s, so :meth:`overrides` feeds it directly."""

    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None
    retries: int | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None
    concurrency: int | None = None

    def overrides(self) -> dict[str, Any]:
        """The settings given (keyword arguments for the fetcher's policy)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class LoggingConfig:
    """Log lines: ``format`` json or console (None: by the terminal) and the lowest level."""

    format: str | None = None
    level: str = "info"


@dataclass(frozen=True)
class MetricsConfig:
    """Where a job's textfile metrics go: one ``file``, or a ``dir`` of per-job files."""

    file: Path | None = None
    dir: Path | None = None

    def path_for(self, job: str, dataset: str | None) -> Path | None:
        """The file a run of ``job`` on ``dataset`` writes (None: metrics are off)."""
        if self.file is not None:
            return self.file
        if self.dir is None:
            return None
        words = [job, *([dataset] if dataset else [])]
        slug = "_".join("".join(c if c.isalnum() else "_" for c in w) for w in words)
        return self.dir / f"quantcli_{slug}{PROM_SUFFIX}"


@dataclass(frozen=True)
class Config:
    """Every resolved setting and the file they were read from (None: no quantcli.toml)."""

    root: Path
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    file: Path | None = None


@dataclass(frozen=True)
class Settings:
    """Options given before the sub-command: where the store is, how to print, and the
    resolved configuration."""

    root: Path
    json: bool = False
    quiet: bool = False
    debug: bool = False
    config: Config | None = None


def find_config(start: Path) -> Path | None:
    """The nearest ``quantcli.toml`` in ``start`` or its parents."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def read_config_file(cwd: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """The nearest ``quantcli.toml`` and its tables (``(None, {})`` when there is none); the
    values of credential-named keys are registered with the redaction."""
    config = find_config(cwd or Path.cwd())
    if config is None:
        return None, {}
    import tomllib  # only when a quantcli.toml exists

    try:
        data: dict[str, Any] = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{config}: not valid TOML: {exc}") from exc
    _register_secrets(data)
    return config, data


def _register_secrets(table: Mapping[str, Any]) -> None:
    for key, value in table.items():
        if isinstance(value, Mapping):
            _register_secrets(value)
        elif isinstance(value, str) and SECRET_NAME.search(key):
            add_secret(value)


# ------------------------------------------------------------------------------ value parsers


def _positive_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of seconds")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a number of seconds greater than 0")
    return number


def _non_negative_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of seconds")
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return number


def _int(minimum: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"must be a whole number, {minimum} or more")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"must be a whole number, {minimum} or more") from None
        if number < minimum:
            raise ValueError(f"must be a whole number, {minimum} or more")
        return number

    return parse


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value:
        raise ValueError("must not be empty")
    return value


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value.lower()

    return parse


def _prom(value: object) -> str:
    text = _text(value)
    if not text.endswith(PROM_SUFFIX):
        # node_exporter's textfile collector reads only *.prom files.
        raise ValueError(f"must end in {PROM_SUFFIX} (node_exporter reads only those)")
    return text


# (section, key) -> (parser, is a path). The keys are the file's and the variables' names.
_KEYS: Final[Mapping[tuple[str, str], tuple[Callable[[object], Any], bool]]] = {
    ("store", "root"): (_text, True),
    ("runs", "dir"): (_text, True),
    ("refresh", "connect_timeout"): (_positive_float, False),
    ("refresh", "read_timeout"): (_positive_float, False),
    ("refresh", "retries"): (_int(0), False),
    ("refresh", "backoff_base"): (_non_negative_float, False),
    # A zero cap would also cap a server's Retry-After to nothing.
    ("refresh", "backoff_cap"): (_positive_float, False),
    ("refresh", "concurrency"): (_int(1), False),
    ("logging", "format"): (_choice("json", "console", "auto", "off"), False),
    ("logging", "level"): (_choice("debug", "info", "warning", "error"), False),
    ("metrics", "file"): (_prom, True),
    ("metrics", "dir"): (_text, True),
    ("cluster", "scheduler"): (_text, False),
    ("cluster", "workers"): (_int(1), False),
    ("cluster", "remote"): (_text, False),
}
_SECTIONS: Final = frozenset(section for section, _ in _KEYS)
# Environment variables kept from before the sections existed.
_ENV_ALIASES: Final = {("store", "root"): ENV_ROOT}


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``[section] key``."""
    return _ENV_ALIASES.get((section, key), f"{ENV_PREFIX}{section}_{key}".upper())


def _check_file(config: Path, data: Mapping[str, Any]) -> None:
    """Unknown keys in a known section are typos that would silently change nothing."""
    for section in sorted(_SECTIONS & set(data)):
        table = data[section]
        if not isinstance(table, Mapping):
            raise UsageError(f"{config}: [{section}] must be a table")
        for key in table:
            if (section, key) not in _KEYS:
                known = ", ".join(k for s, k in _KEYS if s == section)
                raise UsageError(f"{config}: [{section}] {key}: unknown key (known: {known})")


def setting(
    section: str,
    key: str,
    *,
    flag: tuple[str, object] | None = None,
    file: tuple[Path | None, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Any:
    """``[section] key`` resolved: the ``flag`` (its name and value; None or a None value:
    not given), else its environment variable, else ``quantcli.toml`` (``file``: already read),
    else None. Paths from the file are relative to the file; UsageError names the source of a
    bad value."""
    parse, is_path = _KEYS[(section, key)]
    env = os.environ if env is None else env
    variable = env_name(section, key)
    if flag is not None and flag[1] is not None:
        where, raw, base = flag[0], flag[1], None
    elif env.get(variable):
        where, raw, base = f"${variable}", env[variable], None
    else:
        config, data = file if file is not None else read_config_file(cwd)
        table = data.get(section, {})
        raw = table.get(key) if isinstance(table, Mapping) else None
        if raw is None or config is None:
            return None
        _check_file(config, data)
        where, base = f"{config}: [{section}] {key}", config.parent
    try:
        value = parse(raw)
    except ValueError as exc:
        raise UsageError(f"{where} {exc}, got {raw!r}") from None
    if not is_path:
        return value
    path = Path(value).expanduser()
    return base / path if base is not None else path


def resolve_config(
    flags: Mapping[tuple[str, str], tuple[str, object]] | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Every setting resolved (flags: ``(section, key)`` -> ``(flag name, value)``)."""
    flags = flags or {}
    file = read_config_file(cwd)
    if file[0] is not None:
        _check_file(file[0], file[1])

    def get(section: str, key: str) -> Any:
        return setting(section, key, flag=flags.get((section, key)), file=file, env=env)

    root = get("store", "root")
    refresh = RefreshConfig(
        connect_timeout_s=get("refresh", "connect_timeout"),
        read_timeout_s=get("refresh", "read_timeout"),
        retries=get("refresh", "retries"),
        backoff_base_s=get("refresh", "backoff_base"),
        backoff_cap_s=get("refresh", "backoff_cap"),
        concurrency=get("refresh", "concurrency"),
    )
    return Config(
        root=root if root is not None else (cwd or Path.cwd()) / DEFAULT_ROOT,
        refresh=refresh,
        logging=LoggingConfig(
            format=get("logging", "format"), level=get("logging", "level") or "info"
        ),
        metrics=MetricsConfig(file=get("metrics", "file"), dir=get("metrics", "dir")),
        file=file[0],
    )


def resolve_root(option: str | None, *, cwd: Path | None = None) -> Path:
    """The store root: ``--root``, else ``$QUANTCLI_ROOT``, else ``quantcli.toml``'s
    ``[store] root``, else ./datasets."""
    root: Path | None = setting("store", "root", flag=("--root", option or None), cwd=cwd)
    return root if root is not None else (cwd or Path.cwd()) / DEFAULT_ROOT


def resolve_runs_dir(option: str | None, root: Path, *, cwd: Path | None = None) -> Path:
    """Where backtest runs are saved and looked up: ``--runs-dir``, else ``quantcli.toml``'s
    ``[runs] dir``, else ``<root>/runs``.

    Runs live beside the store they were computed from rather than in the current directory,
    so ``backtest reproduce RUN`` finds them from anywhere.
    """
    configured: Path | None = setting("runs", "dir", flag=("--runs-dir", option or None), cwd=cwd)
    return configured if configured is not None else root / DEFAULT_RUNS
