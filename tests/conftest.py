"""Shared fixtures: a CLI runner, a temporary store root and the optional ../shared data."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quantcli.cli import app

# Rebuildable caches (the calendar's XBOM sessions) go to a fresh directory per test session,
# inherited by the subprocesses tests start, never to the user's ~/.cache.
os.environ["QUANTCLI_CACHE_DIR"] = tempfile.mkdtemp(prefix="quantcli-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_DIR = REPO / "datasets" / "_raw" / "nse-daily-sample"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store root."""
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def cli(store: Path) -> Any:
    """Run ``quantcli --root <store> ARGS...`` in-process; returns exit code, stdout, stderr."""

    def run(*args: str, root: Path | None = None, input: str | None = None) -> Result:
        runner = CliRunner()
        argv: Sequence[str] = ["--root", str(root or store), *args]
        res = runner.invoke(app, list(argv), input=input)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)

    return run


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real NSE data); the test is skipped when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present")
    return path


def load_sample(symbol: str) -> Any:
    """One bundled sample file parsed by the product's nifty50 source, in the bar schema
    (repeated bars kept, as in the file)."""
    from quantcli.store.sources import BOOKKEEPING, parse_source

    parsed = parse_source("nifty50", [SAMPLE_DIR / f"{symbol}.csv"], {})
    return parsed.frame.drop(BOOKKEEPING)


@pytest.fixture
def sample_dir() -> Path:
    """The bundled real NSE daily sample shipped in the repository."""
    return SAMPLE_DIR
