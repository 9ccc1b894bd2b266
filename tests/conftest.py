"""Shared fixtures: a CLI runner, a temporary store root and the optional ../shared data."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from httpserver import FixtureServer, clear_proxies
from typer.testing import CliRunner

from quantcli.cli import app

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_DIR = REPO / "datasets" / "_raw" / "nse-daily-sample"

# Rebuildable caches that tools keep in the checkout by design; everything else a test run
# creates or deletes in the repository is a test writing where it should use tmp_path.
CHECKOUT_CACHES = frozenset(
    {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}
)
# What rich reads from the environment to decide colour and width.
TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


def pytest_configure(config: pytest.Config) -> None:
    """Point the whole run, and every process a test starts, at a fresh cache and no store,
    with plain terminal output.

    A hook rather than a fixture so that it also covers collection. The user's
    ``~/.cache/quantcli`` is never read or written, so a stale or missing user cache cannot
    change a result (a fresh machine sees what this machine sees), and a ``QUANTCLI_ROOT`` in
    the user's environment (or any other ``QUANTCLI_*`` setting) cannot point a test's default
    store at their real datasets. A CI runner's ``FORCE_COLOR`` would otherwise put colour
    codes into every message a test reads.
    """
    for name in [n for n in os.environ if n.startswith("QUANTCLI_") or n in TERMINAL_ENV]:
        del os.environ[name]
    os.environ["QUANTCLI_CACHE_DIR"] = tempfile.mkdtemp(prefix="quantcli-test-cache-")
    # TensorFlow, imported by a test before quantcli configures Keras, would write
    # ~/.keras/keras.json: the run keeps it in its own cache too.
    os.environ["KERAS_HOME"] = os.path.join(os.environ["QUANTCLI_CACHE_DIR"], "keras")
    # Jobs log JSON to a non-terminal stderr by default; most tests read stderr as the one
    # error line, so they run with logs off (and so do their subprocesses). The tests of the
    # logs ask for a format, or delete this variable to see the default.
    os.environ["QUANTCLI_LOGGING_FORMAT"] = "off"
    # No per-example time limit: a cold machine's first examples (numba compiling, caches
    # filling) take longer than a warm one's, and that is not a failure. Failures print the
    # blob that replays them.
    hypothesis.settings.register_profile("quantcli", deadline=None, print_blob=True)
    hypothesis.settings.load_profile("quantcli")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's cache."""
    shutil.rmtree(os.environ["QUANTCLI_CACHE_DIR"], ignore_errors=True)


def checkout_files(top: Path = REPO) -> set[str]:
    """Every file and directory under ``top`` (relative, POSIX) outside CHECKOUT_CACHES."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in CHECKOUT_CACHES]
        rel = Path(folder).relative_to(top)
        found.update((rel / n).as_posix() for n in [*dirs, *files] if not n.startswith(".coverage"))
    return found


@pytest.fixture(scope="session", autouse=True)
def _repository_untouched() -> Iterator[None]:
    """Fail the run if its tests created or deleted anything in the checkout."""
    before = checkout_files()
    yield
    after = checkout_files()
    assert after == before, (
        "tests changed the repository tree (use tmp_path): "
        f"created {sorted(after - before)}, deleted {sorted(before - after)}"
    )


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


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built once a session: fs@v1 (basic features of bars@v1, four symbols on 300
    weekdays from 2023-01-02) and m@v1 (a small random forest of direction:5 trained on
    2023-01-01..2023-06-30, so it saw up to 2023-07-07). Tests change a copy (copy_store)."""
    from test_models import published_feature_set, train_on_set

    root = tmp_path_factory.mktemp("models") / "store"
    root.mkdir()
    published_feature_set(root, days=300)
    train_on_set(root)
    return root


def copy_store(template: Path, folder: Path) -> Path:
    """A copy of the store ``template`` at ``folder/store``: a test's own, to change."""
    root = folder / "store"
    shutil.copytree(template, root)
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


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the bundled sample as dataset ``sample`` (ingested once per module)."""
    from quantcli.store.ingest import ingest

    root = tmp_path_factory.mktemp("sample-store")
    files = sorted(SAMPLE_DIR.glob("*.csv"))
    ingest(root, "sample", "nifty50", files, options={}, allow_warnings=True, drop_duplicates=True)
    return root


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    """A loopback HTTP server of bhavcopy fixture files with injectable faults
    (tests/httpserver.py), stopped after the test. The machine's proxy settings are cleared for
    the test, so a CI proxy never sits between the client and 127.0.0.1."""
    clear_proxies(monkeypatch)
    with FixtureServer() as server:
        yield server
