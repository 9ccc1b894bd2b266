"""`backtest sweep --remote NAME`: the workers of a cluster read the pinned dataset version
straight from a remote (moto's S3 server on 127.0.0.1) instead of being sent the bars, and the
results are the bytes of the scattered sweep (a real `dask scheduler` and two `dask worker`
processes with empty caches and the remote's environment)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from store_helpers import SOURCE
from test_remotes import SECRET, URL, s3, s3_server  # noqa: F401
from test_sweep_runner import GRID, noisy_bars, scheduler  # noqa: F401

from quantcli.backtest.config import BacktestConfig
from quantcli.backtest.engine import read_inputs
from quantcli.errors import NotFoundError, UsageError
from quantcli.store.publish import publish
from quantcli.store.remotes import CACHE_SUBDIR, Remote, cache_store
from quantcli.sweep.runner import Cluster, run_grid
from quantcli.sweep.source import RemoteInputs, remote_inputs

SWEEP = [
    "backtest", "sweep", "-d", "ds", "-s", "sma_cross",
    "-p", "fast=3:9:3", "-p", "slow=10:30:10", "-p", "qty=10,20", "--where", "fast < slow",
    "--costs", "flat:0.05%", "--json",
]  # fmt: skip


@pytest.fixture
def pushed(cli, store: Path, s3: Any) -> Path:  # noqa: F811
    """A store holding ds@v1 (two symbols, 300 noisy days), pushed to remote origin."""
    publish(store, "ds", noisy_bars(), interval="1d", source=SOURCE)
    cli("data", "remote", "add", "origin", URL)
    assert cli("data", "push", "ds@v1").exit_code == 0
    return store


@pytest.fixture
def workers(
    s3: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> tuple[str, Path]:
    """The scheduler's address and the cache its two workers share: a new, empty one (the
    client gets another). The workers inherit the remote's environment (AWS_*)."""
    cache = tmp_path / "worker-cache"
    monkeypatch.setenv("QUANTCLI_CACHE_DIR", str(cache))
    address = str(request.getfixturevalue("scheduler"))
    monkeypatch.setenv("QUANTCLI_CACHE_DIR", str(tmp_path / "client-cache"))
    return address, cache


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of the test's own for what this process reads from the remote."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("QUANTCLI_CACHE_DIR", str(cache))
    return cache


def saved_results(root: Path, sweep_id: str) -> bytes:
    return (root / "sweeps" / sweep_id / "v1" / "results.parquet").read_bytes()


@pytest.mark.dask
def test_workers_reading_from_the_remote_give_the_bytes_of_the_scattered_sweep(
    cli, pushed: Path, tmp_path: Path, workers: tuple[str, Path]
) -> None:
    address, worker_cache = workers
    other = tmp_path / "other"
    shutil.copytree(pushed, other)
    scattered = cli(*SWEEP, "--scheduler", address)
    assert scattered.exit_code == 0, scattered.stderr
    assert not (worker_cache / CACHE_SUBDIR).exists()
    res = cli(*SWEEP, "--scheduler", address, "--remote", "origin", root=other)
    assert res.exit_code == 0, res.stderr
    out, expected = json.loads(res.stdout), json.loads(scattered.stdout)
    assert out["sweep_id"] == expected["sweep_id"] and out["top"] == expected["top"]
    assert saved_results(other, out["sweep_id"]) == saved_results(pushed, out["sweep_id"])
    # The workers pulled the version into their own cache, verified; the client did not.
    pulled = cache_store(Remote("origin", URL), worker_cache)
    assert (pulled / "ds" / "v1" / "manifest.json").is_file()
    assert cli("data", "verify", "ds@v1", root=pulled).exit_code == 0
    assert not (tmp_path / "client-cache" / CACHE_SUBDIR).exists()


def test_the_job_carries_the_pinned_ref_and_no_bars_or_secrets(
    pushed: Path, own_cache: Path
) -> None:
    config = BacktestConfig(dataset="ds", strategy="sma_cross", symbols=("AAA",))
    inputs = read_inputs(config, pushed)
    shipped = remote_inputs(inputs, config, str(pushed), "origin")
    assert shipped.ref == f"ds@{inputs.dataset_hash}"
    assert shipped.remote == Remote("origin", URL)
    blob = pickle.dumps(shipped)
    assert len(blob) < 2_000 < len(pickle.dumps(inputs.bars))
    assert SECRET.encode() not in blob and b"testing" not in blob
    # What a worker reads is what the client read.
    assert pickle.loads(blob).bars.equals(inputs.bars)
    assert (cache_store(shipped.remote, own_cache) / "ds" / "v1").is_dir()


def test_a_version_not_on_the_remote_is_one_line_and_saves_nothing(
    cli,
    store: Path,
    s3: Any,  # noqa: F811
) -> None:
    publish(store, "ds", noisy_bars(), interval="1d", source=SOURCE)
    cli("data", "remote", "add", "origin", URL)
    res = cli(*SWEEP, "--workers", "1", "--remote", "origin")
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: --remote origin: the sweep's dataset version ds@")
    assert line.endswith("--remote origin` first")
    res = cli(*SWEEP, "--workers", "1", "--remote", "nope")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: no remote 'nope' (remotes: origin); add it with `data remote add`"
    )
    assert not (store / "sweeps").exists()


def test_the_remote_comes_from_the_flag_else_cluster_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Cluster.resolve(workers=2, scheduler=None).remote is None
    (tmp_path / "quantcli.toml").write_text('[cluster]\nremote = "origin"\n')
    assert Cluster.resolve(workers=2, scheduler=None) == Cluster(workers=2, remote="origin")
    assert Cluster.resolve(workers=None, scheduler=None, remote="ci").remote == "ci"
    monkeypatch.setenv("QUANTCLI_CLUSTER_REMOTE", "env")
    assert Cluster.resolve(workers=None, scheduler=None).remote == "env"


def test_bars_from_outside_a_store_cannot_be_read_from_a_remote() -> None:
    with pytest.raises(UsageError, match="--remote origin: workers read a store's dataset"):
        run_grid(
            noisy_bars(),
            "sma_cross",
            GRID,
            BacktestConfig(dataset="bars", strategy="sma_cross"),
            cluster=Cluster(workers=1, remote="origin"),
        )


def test_a_worker_finding_no_such_version_on_the_remote_is_one_line(
    pushed: Path, own_cache: Path
) -> None:
    gone = RemoteInputs("ds@" + "0" * 64, Remote("origin", URL), None, None, None, (), "", None)
    with pytest.raises(NotFoundError) as err:
        _ = gone.bars
    assert err.value.message == f"ds@{'0' * 64} is not on remote origin ({URL})"
