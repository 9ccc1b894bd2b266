"""One resolver: flag, then QUANTCLI_<SECTION>_<KEY>, then quantcli.toml, then the default;
a bad value is one line naming its file and key, variable or flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantcli.core.redact import known_secrets
from quantcli.ops.http import HttpPolicy
from quantcli.settings import (
    Config,
    MetricsConfig,
    RefreshConfig,
    env_name,
    resolve_config,
)

TOML = """
[store]
root = "store-from-file"

[refresh]
connect_timeout = 2.5
read_timeout = 7
retries = 5
backoff_base = 0.5
backoff_cap = 9
concurrency = 3

[logging]
format = "console"
level = "warning"

[metrics]
dir = "textfile"
"""


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "quantcli.toml").write_text(TOML)
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    base = resolve_config(cwd=sub, env={})
    assert base == Config(
        root=tmp_path / "store-from-file",
        refresh=RefreshConfig(2.5, 7.0, 5, 0.5, 9.0, 3),
        logging=base.logging,
        metrics=MetricsConfig(dir=tmp_path / "textfile"),
        file=tmp_path / "quantcli.toml",
    )
    assert (base.logging.format, base.logging.level) == ("console", "warning")
    env = {
        "QUANTCLI_ROOT": "/env/store",
        "QUANTCLI_REFRESH_RETRIES": "1",
        "QUANTCLI_LOGGING_FORMAT": "json",
        "QUANTCLI_METRICS_FILE": "/env/m.prom",
    }
    from_env = resolve_config(cwd=sub, env=env)
    assert from_env.root == Path("/env/store")
    assert from_env.refresh.retries == 1 and from_env.refresh.concurrency == 3
    assert from_env.logging.format == "json"
    assert from_env.metrics.file == Path("/env/m.prom")
    flags = {
        ("store", "root"): ("--root", "/flag/store"),
        ("refresh", "retries"): ("--retries", 0),
        ("logging", "format"): ("--log-format", "console"),
        ("metrics", "file"): ("--metrics-file", "flag.prom"),
    }
    from_flags = resolve_config(flags, cwd=sub, env=env)
    assert from_flags.root == Path("/flag/store")
    assert from_flags.refresh.retries == 0
    assert from_flags.logging.format == "console"
    assert from_flags.metrics.file == Path("flag.prom")
    # A flag left unset (None) does not hide the variable or the file.
    unset = {key: (name, None) for key, (name, _) in flags.items()}
    assert resolve_config(unset, cwd=sub, env=env) == from_env


def test_defaults_and_the_fetcher_policy(tmp_path: Path) -> None:
    config = resolve_config(cwd=tmp_path, env={})
    assert config.root == tmp_path / "datasets" and config.file is None
    assert config.refresh.overrides() == {}
    assert HttpPolicy(**config.refresh.overrides()) == HttpPolicy()
    (tmp_path / "quantcli.toml").write_text("[refresh]\nretries = 7\nread_timeout = 1.5\n")
    policy = HttpPolicy(**resolve_config(cwd=tmp_path, env={}).refresh.overrides())
    assert policy == HttpPolicy(retries=7, read_timeout_s=1.5)
    assert env_name("refresh", "read_timeout") == "QUANTCLI_REFRESH_READ_TIMEOUT"
    assert env_name("store", "root") == "QUANTCLI_ROOT"


def test_metrics_dir_names_one_file_per_job_and_dataset(tmp_path: Path) -> None:
    metrics = MetricsConfig(dir=tmp_path)
    assert metrics.path_for("data refresh", "eq") == tmp_path / "quantcli_data_refresh_eq.prom"
    assert metrics.path_for("backtest", None) == tmp_path / "quantcli_backtest.prom"
    assert MetricsConfig().path_for("backtest", "x") is None


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[refresh]\nretries = -1\n", "[refresh] retries must be a whole number, 0 or more, got"),
        ("[refresh]\nretries = true\n", "[refresh] retries must be a whole number, 0 or more"),
        ("[refresh]\nread_timeout = 0\n", "[refresh] read_timeout must be a number of seconds"),
        ("[refresh]\nconcurrency = 0\n", "[refresh] concurrency must be a whole number, 1 or more"),
        ("[refresh]\nretry = 3\n", "[refresh] retry: unknown key (known: connect_timeout, "),
        ('[logging]\nformat = "xml"\n', "[logging] format must be one of json, console, auto, off"),
        ('[logging]\nlevel = "loud"\n', "[logging] level must be one of debug, info, warning"),
        ('[metrics]\nfile = "m.txt"\n', "[metrics] file must end in .prom"),
        ("[refresh]\n", None),
        ("refresh = 3\n", "[refresh] must be a table"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, problem: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")  # the file alone decides
    (tmp_path / "quantcli.toml").write_text(toml)
    res = cli("data", "list")
    if problem is None:
        assert res.exit_code == 0, res.stderr
        return
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {tmp_path / 'quantcli.toml'}: {problem}")
    assert res.stderr.count("\n") == 1


def test_bad_environment_value_names_the_variable(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTCLI_LOGGING_FORMAT", "yaml")
    res = cli("data", "list")
    assert res.exit_code == 2
    assert res.stderr == (
        "error: $QUANTCLI_LOGGING_FORMAT must be one of json, console, auto, off, got 'yaml'\n"
    )


def test_credential_keys_in_the_file_are_registered_secrets(tmp_path: Path) -> None:
    (tmp_path / "quantcli.toml").write_text('[site]\nnse_api_token = "cfg-secret-31337"\n')
    resolve_config(cwd=tmp_path, env={})
    assert "cfg-secret-31337" in known_secrets({})
