"""The test run keeps away from the user's machine: its own cache, no store from the
environment, plain terminal output, nothing written into the checkout, and no time limits
that a slower machine fails."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import hypothesis
from conftest import TERMINAL_ENV, checkout_files

from quantcli.market.calendar import cache_dir


def test_the_run_and_its_subprocesses_use_a_fresh_cache_and_no_user_store() -> None:
    cache = cache_dir()
    assert cache.parent == Path(tempfile.gettempdir())
    assert cache.name.startswith("quantcli-test-cache-")
    quantcli_env = sorted(n for n in os.environ if n.startswith("QUANTCLI_"))
    assert quantcli_env == ["QUANTCLI_CACHE_DIR", "QUANTCLI_LOGGING_FORMAT"]
    assert not set(TERMINAL_ENV) & set(os.environ)
    code = "from quantcli.market.calendar import cache_dir; print(cache_dir())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(cache)


def test_hypothesis_has_no_deadline() -> None:
    assert hypothesis.settings().deadline is None


def test_checkout_files_sees_what_a_test_leaves_but_not_tool_caches(tmp_path: Path) -> None:
    (tmp_path / "quantcli" / "__pycache__").mkdir(parents=True)
    (tmp_path / "quantcli" / "__pycache__" / "kernel.nbi").write_bytes(b"")
    (tmp_path / ".hypothesis" / "examples").mkdir(parents=True)
    (tmp_path / ".coverage").write_bytes(b"")
    assert checkout_files(tmp_path) == {"quantcli"}
    (tmp_path / "runs" / "abc").mkdir(parents=True)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "x.parquet").write_bytes(b"")
    assert checkout_files(tmp_path) == {
        "quantcli",
        "runs",
        "runs/abc",
        "datasets",
        "datasets/x.parquet",
    }
