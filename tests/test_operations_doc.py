"""docs/operations.md stays true: every exit code is explained, the alert rules use only
metrics a run writes, and the scheduled commands use real options and commands."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import typer

import quantcli.errors as errors
from quantcli.cli import app
from quantcli.ops.metrics import JobOutcome, ProviderCounts, write_metrics

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
TEXT = GUIDE.read_text(encoding="utf-8")


def test_every_exit_code_has_a_row() -> None:
    codes = {0} | {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.QuantcliError)
    }
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", TEXT, re.MULTILINE)}
    assert documented == codes


def test_alert_rules_name_only_metrics_a_run_writes(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    last_bar = datetime(2024, 7, 5, tzinfo=UTC)
    providers = {"p": ProviderCounts()}
    outcome = JobOutcome("data refresh", "d", 1.0, 2.0, 0, providers=providers, last_bar=last_bar)
    write_metrics(path, outcome)
    written = set(re.findall(r"^(quantcli_\w+)\{", path.read_text(), re.MULTILINE))
    (rules,) = re.findall(r"```yaml\n(.*?)```", TEXT, re.DOTALL)
    used = set(re.findall(r"quantcli_\w+", rules))
    assert used and used <= written
    # The table lists every metric (the per-provider ones as one row).
    listed = set(re.findall(r"`(quantcli_\w+)`", TEXT))
    listed |= {f"quantcli_provider_{s}" for s in ("successes", "retries", "failures")}
    assert written <= listed


def test_scheduled_commands_use_real_options() -> None:
    root = typer.main.get_command(app)
    options = {o for p in root.params for o in p.opts}
    lines = [
        line for line in TEXT.splitlines() if "bin/quantcli " in line and "data refresh" in line
    ]
    assert len(lines) == 2  # the crontab line and the service's ExecStart
    for line in lines:
        words = shlex.split(line.split("bin/quantcli ", 1)[1].split(">>")[0])
        given = [w for w in words[: words.index("data")] if w.startswith("-")]
        assert given and set(given) <= options, given
        assert words[words.index("data") :][:2] == ["data", "refresh"]
