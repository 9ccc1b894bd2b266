"""Dataset remotes against a real S3-compatible server (moto's server mode on 127.0.0.1):
remote config, push/pull round trip, idempotent push, a push SIGKILLed midway, tampered
objects refused, the worker-side reader, and `backtest reproduce --pull` on a clean store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.files import TMP_DIR
from quantcli.store.catalog import resolve
from quantcli.store.manifest import version_numbers
from quantcli.store.publish import publish
from quantcli.store.remotes import Remote, open_remote, remote_versions

BUCKET = "quantcli-test"
URL = f"s3://{BUCKET}/team/data"
SECRET = "remote-test-secret-value-1234"  # the fake secret key the server is given
# Enough symbols for several data files (one ends after ~1 symbol in 32).
MANY = tuple(f"S{i:03d}" for i in range(200))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty bucket on the server, with the environment pointing boto3 at it; yields a
    client for looking at (and tampering with) the objects."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client: Any, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def published(root: Path, name: str = "ds", symbols: tuple[str, ...] = ("AAA", "BBB")) -> str:
    return publish(root, name, make_bars(symbols), interval="1d", source=SOURCE).manifest.ref


def test_remote_add_list_rm(cli, store: Path) -> None:
    res = cli("data", "remote", "add", "origin", URL)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == f"origin -> {URL}"
    res = cli("--json", "data", "remote", "list")
    assert res.json() == [{"name": "origin", "url": URL}]
    # The same URL again is fine; another URL under the name is a conflict.
    assert cli("data", "remote", "add", "origin", URL).exit_code == 0
    res = cli("data", "remote", "add", "origin", "s3://other-bucket")
    assert res.exit_code == 1
    assert "already points at" in res.stderr
    assert cli("data", "remote", "rm", "origin").stdout.strip() == "removed remote origin"
    assert cli("data", "remote", "list").stdout.strip() == "no remotes"
    res = cli("data", "remote", "rm", "origin")
    assert res.exit_code == 1
    assert "no remote 'origin'" in res.stderr


def test_bad_remote_urls_and_names(cli, store: Path) -> None:
    res = cli("data", "remote", "add", "origin", "https://example.com/x")
    assert res.exit_code == 2
    assert "is not s3://BUCKET[/PREFIX]" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    published(store)
    res = cli("data", "push", "ds@v1")
    assert res.exit_code == 2
    assert "no remote configured" in res.stderr
    cli("data", "remote", "add", "a", "s3://bucket-a")
    cli("data", "remote", "add", "b", "s3://bucket-b")
    res = cli("data", "push", "ds@v1")
    assert res.exit_code == 2
    assert "several remotes (a, b): choose one with --remote" in res.stderr
    res = cli("data", "push", "ds@v1", "--remote", "c")
    assert res.exit_code == 1
    assert "no remote 'c' (remotes: a, b)" in res.stderr


def test_quantcli_toml_names_a_remote(
    cli, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quantcli.toml").write_text(
        f'[remote.ci]\nurl = "{URL}"\nregion = "us-east-1"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert cli("--json", "data", "remote", "list").json() == [{"name": "ci", "url": URL}]
    (tmp_path / "quantcli.toml").write_text('[remote.ci]\nurl = "s3://x-y"\nzone = 1\n')
    res = cli("data", "remote", "list")
    assert res.exit_code == 2
    assert "[remote.ci] zone: unknown key" in res.stderr


def test_round_trip_and_idempotent_push(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    ref = published(store, symbols=MANY)
    manifest = resolve(store, ref)
    files = len(manifest.files)
    assert files > 2
    cli("data", "remote", "add", "origin", URL)
    res = cli("--json", "data", "push", ref)
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert (out["uploaded"], out["skipped"], out["manifest_written"]) == (files, 0, True)
    expected = sorted(
        [f"team/data/objects/{sha}" for sha in manifest.files.values()]
        + ["team/data/datasets/ds/v1/manifest.json"]
    )
    assert keys(s3) == expected
    # Pushing again uploads nothing.
    res = cli("data", "push", ref)
    assert res.stdout.strip() == f"pushed ds@v1 to origin: 0 uploaded, {files} already there"

    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    res = cli("data", "pull", "ds@v1", root=clean)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == f"pulled ds@v1 from origin ({files} files)"
    pulled = resolve(clean, "ds@v1")
    assert pulled.to_json() == manifest.to_json()
    assert cli("data", "verify", "ds@v1", root=clean).exit_code == 0
    # Pulling what is there already downloads nothing.
    res = cli("data", "pull", "ds", root=clean)
    assert res.stdout.strip() == "ds@v1 is here already as ds@v1"


def test_pull_keeps_the_version_number(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    published(store, symbols=("AAA",))
    ref = published(store, symbols=("AAA", "BBB"))
    assert ref == "ds@v2"
    cli("data", "remote", "add", "origin", URL)
    cli("data", "push", ref)
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    content = resolve(store, ref).content_hash
    assert cli("data", "pull", f"ds@{content[:12]}", root=clean).exit_code == 0
    assert version_numbers(clean, "ds") == [2]
    # The next local publish goes above it.
    assert published(clean, symbols=("CCC",)) == "ds@v3"


def test_pull_of_a_missing_version(cli, store: Path, s3: Any) -> None:
    cli("data", "remote", "add", "origin", URL)
    res = cli("data", "pull", "ds@v4")
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: ds@v4 is not on remote origin ({URL})"


def test_tampered_object_is_refused(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    ref = published(store, symbols=MANY)
    cli("data", "remote", "add", "origin", URL)
    cli("data", "push", ref)
    sha = sorted(resolve(store, ref).files.values())[1]
    key = f"team/data/objects/{sha}"
    body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # same size: only the hash can tell
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    res = cli("data", "pull", ref, root=clean)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert lines == [
        f"error: remote origin: object {key} of ds@v1 does not match its sha256 (tampered or "
        "damaged); refused, nothing was pulled"
    ]
    assert version_numbers(clean, "ds") == []
    assert not any((clean / TMP_DIR).iterdir()) if (clean / TMP_DIR).exists() else True


def test_tampered_manifest_is_refused(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    ref = published(store)
    cli("data", "remote", "add", "origin", URL)
    cli("data", "push", ref)
    key = "team/data/datasets/ds/v1/manifest.json"
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    manifest = resolve(store, ref)
    sha = sorted(manifest.files.values())[0]
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.replace(sha, "0" * 64).encode())
    res = cli("data", "pull", ref, root=tmp_path)
    assert res.exit_code == 2  # no remote configured in that store: one line naming the fix
    cli("data", "remote", "add", "origin", URL, root=tmp_path)
    res = cli("data", "pull", ref, root=tmp_path)
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: remote origin: {key}: content hash does not match its file list; refused"
    )
    assert version_numbers(tmp_path, "ds") == []


PUSH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from quantcli.store.remotes import Remote, push

    done = 0
    def progress(path, uploaded):
        global done
        done += 1
        if done == 2:
            print("two objects uploaded", flush=True)
            time.sleep(600)  # killed here, between objects, before the manifest

    push(Path(sys.argv[1]), sys.argv[2], Remote("origin", sys.argv[3]), progress=progress)
    """
)


def test_push_killed_midway_leaves_no_version(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    ref = published(store, symbols=MANY)
    files = len(resolve(store, ref).files)
    script = tmp_path / "push.py"
    script.write_text(PUSH_SCRIPT, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store), ref, URL],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "two objects uploaded"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(keys(s3, "team/data/objects/")) == 2
    assert keys(s3, "team/data/datasets/") == []
    assert remote_versions(Remote("origin", URL), "ds") == []
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    assert cli("data", "pull", ref, root=clean).exit_code == 1
    # A re-push completes, uploading only what the killed one did not.
    cli("data", "remote", "add", "origin", URL)
    out = cli("--json", "data", "push", ref).json()
    assert (out["uploaded"], out["skipped"]) == (files - 2, 2)
    assert cli("data", "pull", ref, root=clean).exit_code == 0


def test_errors_never_show_credentials(cli, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published(store)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Nothing listens there: the connection error names the remote, never the secret.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{SECRET}@127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cli("data", "remote", "add", "origin", URL)
    res = cli("data", "push", "ds@v1")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: remote origin ({URL}): ")
    assert len(res.stderr.strip().splitlines()) == 1
    assert SECRET not in res.stderr + res.stdout


def test_conflicting_version_on_the_remote(cli, store: Path, tmp_path: Path, s3: Any) -> None:
    cli("data", "remote", "add", "origin", URL)
    cli("data", "push", published(store, symbols=("AAA",)))
    other = tmp_path / "other"
    other.mkdir()
    ref = published(other, symbols=("ZZZ",))
    cli("data", "remote", "add", "origin", URL, root=other)
    res = cli("data", "push", ref, root=other)
    assert res.exit_code == 1
    assert "remote origin already holds a different ds@v1" in res.stderr


def test_workers_read_a_pinned_version_from_the_remote(
    cli, store: Path, tmp_path: Path, s3: Any
) -> None:
    ref = published(store)
    cli("data", "remote", "add", "origin", URL)
    cli("data", "push", ref)
    cache = tmp_path / "cache"
    version = open_remote(ref, Remote("origin", URL), cache=cache)
    assert version.ref == ref
    assert version.frame().equals(make_bars(("AAA", "BBB")))
    assert version.root.is_relative_to(cache)
    # A second read uses the cached, verified copy.
    assert open_remote(ref, Remote("origin", URL), cache=cache).root == version.root


def test_a_remote_s_own_endpoint_variable_wins(
    cli, store: Path, s3_server: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("QUANTCLI_REMOTE_MY_ORIGIN_ENDPOINT_URL", s3_server)
    cli("data", "remote", "add", "my-origin", URL)
    res = cli("data", "push", published(store))
    assert res.exit_code == 0, res.stderr
    assert "team/data/datasets/ds/v1/manifest.json" in keys(s3)


def test_clean_store_reproduces_a_run_with_pull(
    cli, sample_store: Path, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_dir = tmp_path / "runs"
    res = cli(
        "--json",
        "backtest",
        "--dataset",
        "sample",
        "--strategy",
        "sma_cross",
        "--symbols",
        "MARUTI",
        "-p",
        "qty=5",
        "--from",
        "2010-01-01",
        "--runs-dir",
        str(runs_dir),
        root=sample_store,
    )
    assert res.exit_code == 0, res.stderr
    run_dir = res.json()["run_dir"]
    (tmp_path / "quantcli.toml").write_text(f'[remote.origin]\nurl = "{URL}"\n')
    monkeypatch.chdir(tmp_path)
    assert cli("data", "push", "sample", root=sample_store).exit_code == 0
    # A clean machine: a new store root and an empty HOME.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    clean = tmp_path / "clean"
    clean.mkdir()
    res = cli("backtest", "reproduce", run_dir, root=clean)
    assert res.exit_code == 1
    assert "is not in the store" in res.stderr
    res = cli("backtest", "reproduce", run_dir, "--remote", "origin", root=clean)
    assert res.exit_code == 2
    assert "--remote applies with --pull" in res.stderr
    res = cli("backtest", "reproduce", run_dir, "--pull", root=clean)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip().startswith("reproduced: ")
    assert version_numbers(clean, "sample") == [1]


def test_clean_store_reproduces_a_model_with_pull(
    cli, model_template: Path, tmp_path: Path, s3: Any
) -> None:
    from conftest import copy_store

    made = copy_store(model_template, tmp_path / "made")
    cli("data", "remote", "add", "origin", URL, root=made)
    for ref in ("fs@v1", "bars@v1"):
        assert cli("data", "push", ref, root=made).exit_code == 0
    res = cli("model", "push", "m@v1", root=made)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip().startswith("pushed m@v1 to origin: ")
    assert "team/data/models/m/v1/metadata.json" in keys(s3)
    again = cli("--json", "model", "push", "m", root=made).json()
    assert again["uploaded"] == 0
    # Listed beside the datasets; a version whose metadata never arrived is not.
    s3.put_object(Bucket=BUCKET, Key="team/data/models/m/v2/model.skops", Body=b"x")
    listing = cli("--json", "data", "remote", "ls", "origin", root=made).json()
    assert listing["models"] == [{"name": "m", "versions": [1]}]
    assert [d["name"] for d in listing["datasets"]] == ["bars", "fs"]
    only = cli("--json", "data", "remote", "ls", "origin", "m", root=made).json()
    assert (only["datasets"], only["models"]) == ([], [{"name": "m", "versions": [1]}])
    lines = cli("data", "remote", "ls", "origin", root=made).stdout.splitlines()
    assert any("model" in line and " m " in line and "v1" in line for line in lines)
    # A clean store: nothing but the remote's name.
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    res = cli("model", "reproduce", "m@v1", root=clean)
    assert res.exit_code == 1
    res = cli("model", "reproduce", "m@champion", "--pull", root=clean)
    assert res.exit_code == 2
    assert "aliases are local" in res.stderr
    res = cli("model", "reproduce", "m@v1", "--pull", root=clean)
    assert res.exit_code == 0, res.stderr
    assert "m@v1: reproduced" in res.stdout
    assert version_numbers(clean, "fs") == [1]
    assert version_numbers(clean, "bars") == [1]
    assert cli("model", "verify", "m@v1", root=clean).exit_code == 0


def test_tampered_model_artifact_is_refused(
    cli, model_template: Path, tmp_path: Path, s3: Any
) -> None:
    from conftest import copy_store

    from quantcli.models.registry import metadata

    made = copy_store(model_template, tmp_path / "made")
    cli("data", "remote", "add", "origin", URL, root=made)
    cli("model", "push", "m@v1", root=made)
    sha = metadata(made, "m@v1")["artifact_sha256"]
    key = f"team/data/objects/{sha}"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body[:-1] + bytes([body[-1] ^ 1]))
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    res = cli("model", "reproduce", "m@v1", "--pull", root=clean)
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: remote origin: object {key} of m@v1 does not match its sha256 (tampered or "
        "damaged); refused, nothing was pulled"
    )
    assert not (clean / "models" / "m" / "v1").exists()


def push_all(cli, root: Path, datasets: tuple[str, ...], models: tuple[str, ...]) -> None:
    cli("data", "remote", "add", "origin", URL, root=root)
    for ref in datasets:
        assert cli("data", "push", ref, root=root).exit_code == 0
    for ref in models:
        assert cli("model", "push", ref, root=root).exit_code == 0


def clean_machine(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new store root that knows nothing but the remote's name, and an empty HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    return clean


MODEL_RUN = ("--from", "2023-08-01", "--segment", "intraday", "--json")


def test_clean_store_reproduces_a_model_strategy_run_with_pull(
    cli, model_template: Path, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import copy_store

    made = copy_store(model_template, tmp_path / "made")
    runs = tmp_path / "runs"
    res = cli(
        "backtest", "-d", "bars", "-s", "model", "-p", "model=m@v1", "-p", "long=0.5",
        *MODEL_RUN, "--runs-dir", str(runs), root=made,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run_dir = res.json()["run_dir"]
    push_all(cli, made, ("bars@v1", "fs@v1"), ("m@v1",))
    clean = clean_machine(cli, tmp_path, monkeypatch)
    res = cli("--json", "backtest", "reproduce", run_dir, "--pull", root=clean)
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["ok"] is True and out["inputs_changed"] == [] and out["different"] == []
    # Everything the run pinned is here now, under its own numbers, and verifies.
    assert version_numbers(clean, "bars") == [1]
    assert version_numbers(clean, "fs") == [1]
    assert cli("model", "verify", "m@v1", root=clean).exit_code == 0
    # Reproducing again fetches nothing more: the same outcome with the remote gone.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    again = cli("--json", "backtest", "reproduce", run_dir, "--pull", root=clean)
    assert again.exit_code == 0, again.stderr
    assert again.json() == out


def test_pull_fetches_a_router_s_models_and_a_pinned_feature_set(
    cli, model_template: Path, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from conftest import copy_store
    from test_models_predict import baseline

    from quantcli.features import open_feature_set
    from quantcli.models import route
    from quantcli.store.manifest import SourceInfo

    made = copy_store(model_template, tmp_path / "made")
    baseline(made)
    route(
        made, "r", feature="vol_20", levels=(0.5,), models=["m@v1", "base@v1"],
        features="fs@v1", train_from=dt.date(2023, 1, 1), train_to=dt.date(2023, 6, 30),
    )  # fmt: skip
    # fs@v1's rows under another name, given to the strategy as -p features.
    fs = open_feature_set("fs@v1", made)
    source = SourceInfo(kind=fs.manifest.source.kind, options=fs.manifest.source.options)
    lean = publish(made, "lean", fs.frame(), interval="1d", source=source, notes=fs.manifest.notes)
    lean_ref = lean.manifest.ref
    runs = tmp_path / "runs"
    run_dirs = []
    for params in (("-p", "model=r@v1"), ("-p", "model=base@v1", "-p", f"features={lean_ref}")):
        res = cli(
            "backtest", "-d", "bars", "-s", "model", *params, *MODEL_RUN,
            "--runs-dir", str(runs), root=made,
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        run_dirs.append(res.json()["run_dir"])
    push_all(cli, made, ("bars@v1", "fs@v1", lean_ref), ("m@v1", "base@v1", "r@v1"))
    clean = clean_machine(cli, tmp_path, monkeypatch)
    router = cli("--json", "backtest", "reproduce", run_dirs[0], "--pull", root=clean)
    assert router.exit_code == 0, router.stderr
    assert router.json()["ok"] is True
    for model in ("r@v1", "m@v1", "base@v1"):
        assert cli("model", "verify", model, root=clean).exit_code == 0
    assert version_numbers(clean, "lean") == []
    pinned = cli("--json", "backtest", "reproduce", run_dirs[1], "--pull", root=clean)
    assert pinned.exit_code == 0, pinned.stderr
    assert pinned.json()["ok"] is True
    assert version_numbers(clean, "lean") == [1]


def test_a_model_missing_on_the_remote_is_one_line(
    cli, model_template: Path, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import copy_store

    made = copy_store(model_template, tmp_path / "made")
    res = cli(
        "backtest", "-d", "bars", "-s", "model", "-p", "model=m@v1", *MODEL_RUN,
        "--runs-dir", str(tmp_path / "runs"), root=made,
    )  # fmt: skip
    run_dir = res.json()["run_dir"]
    push_all(cli, made, ("bars@v1",), ())  # the model was never pushed
    clean = clean_machine(cli, tmp_path, monkeypatch)
    res = cli("backtest", "reproduce", run_dir, "--pull", root=clean)
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: m@v1 is not on remote origin ({URL})"
    assert not (clean / "models").exists()
    # A manifest whose model input lost its pin says so.
    manifest = Path(run_dir) / "manifest.json"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    del doc["inputs"]["model"]["pin"]
    manifest.write_text(json.dumps(doc), encoding="utf-8")
    res = cli("backtest", "reproduce", run_dir, "--pull", root=clean)
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: damaged run manifest: its model input pins no model version to pull"
    )


def test_remote_ls_lists_datasets_and_their_complete_versions(
    cli, store: Path, tmp_path: Path, s3: Any
) -> None:
    cli("data", "remote", "add", "origin", URL)
    res = cli("data", "remote", "ls", "origin")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "no datasets or models on remote origin"
    published(store, symbols=("AAA",))
    published(store, symbols=("AAA", "BBB"))
    published(store, "ds2")
    for ref in ("ds@v1", "ds@v2", "ds2@v1"):
        assert cli("data", "push", ref).exit_code == 0
    # A version whose manifest never arrived (a push that died) is not listed.
    s3.put_object(Bucket=BUCKET, Key="team/data/datasets/ds/v3/part-0.parquet", Body=b"x")
    res = cli("--json", "data", "remote", "ls", "origin")
    assert res.exit_code == 0, res.stderr
    assert res.json() == {
        "name": "origin",
        "url": URL,
        "datasets": [{"name": "ds", "versions": [1, 2]}, {"name": "ds2", "versions": [1]}],
        "models": [],
    }
    lines = cli("data", "remote", "ls", "origin").stdout.splitlines()
    assert any("ds " in line and "v1, v2" in line for line in lines)
    assert any("ds2" in line and "v1" in line for line in lines)
    only = cli("--json", "data", "remote", "ls", "origin", "ds").json()
    assert only["datasets"] == [{"name": "ds", "versions": [1, 2]}]
    # What it lists is what a clean store can pull.
    clean = tmp_path / "clean"
    clean.mkdir()
    cli("data", "remote", "add", "origin", URL, root=clean)
    assert cli("data", "pull", "ds@v2", root=clean).exit_code == 0
    res = cli("data", "remote", "ls", "origin", "nope")
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: no version of nope on remote origin ({URL})"
    res = cli("data", "remote", "ls", "origin", "_bad")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: invalid dataset name '_bad'")
    res = cli("data", "remote", "ls", "elsewhere")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: no remote 'elsewhere' (remotes: origin); add it with `data remote add`"
    )


@pytest.mark.parametrize(
    "command",
    [
        ("data", "push", "ds@v1"),
        ("data", "pull", "ds@v1"),
        ("data", "remote", "ls", "origin"),
        ("data", "remote", "ls", "origin", "ds"),
    ],
)
def test_an_unreachable_remote_is_one_redacted_line_and_leaves_nothing(
    cli, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    published(store)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{SECRET}@127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clean = tmp_path / "clean"
    clean.mkdir()
    root = store if command[1] == "push" else clean
    cli("data", "remote", "add", "origin", URL, root=root)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    res = cli(*command, root=root)
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: remote origin ({URL}): ")
    assert len(res.stderr.strip().splitlines()) == 1
    assert SECRET not in res.stderr + res.stdout
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_push_of_a_version_the_store_lacks_is_one_line(cli, store: Path, s3: Any) -> None:
    cli("data", "remote", "add", "origin", URL)
    res = cli("data", "push", "ds@v1")
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: dataset 'ds' not found in {store} (datasets: none)"
    assert keys(s3) == []
    for ref, problem in (("_bad@v1", "invalid dataset name '_bad'"), ("ds@", "nothing after")):
        res = cli("data", "pull", ref)
        assert res.exit_code == 2
        assert len(res.stderr.strip().splitlines()) == 1
        assert problem in res.stderr


def test_a_damaged_remotes_file_is_one_line_naming_it(cli, store: Path) -> None:
    path = store / "_meta" / "remotes.json"
    path.parent.mkdir()
    path.write_text("{not json", encoding="utf-8")
    for command in (("data", "remote", "list"), ("data", "remote", "ls", "origin")):
        res = cli(*command)
        assert res.exit_code == 1
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith(f"error: {path}: unreadable remotes file: ")
    res = cli("data", "remote", "add", "origin", URL)
    assert res.exit_code == 1
    assert path.read_text(encoding="utf-8") == "{not json"  # left for the user to fix


def test_model_push_and_reproduce_pull_on_an_unreachable_remote_are_one_line(
    cli, model_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import copy_store

    made = copy_store(model_template, tmp_path / "made")
    res = cli(
        "backtest", "-d", "bars", "-s", "model", "-p", "model=m@v1", *MODEL_RUN,
        "--runs-dir", str(tmp_path / "runs"), root=made,
    )  # fmt: skip
    run_dir = res.json()["run_dir"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{SECRET}@127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cli("data", "remote", "add", "origin", URL, root=made)
    clean = clean_machine(cli, tmp_path, monkeypatch)
    for root, command in (
        (made, ("model", "push", "m@v1")),
        (clean, ("backtest", "reproduce", run_dir, "--pull")),
        (clean, ("model", "reproduce", "m@v1", "--pull")),
    ):
        res = cli(*command, root=root)
        assert res.exit_code == 1, command
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith(f"error: remote origin ({URL}): ")
        assert SECRET not in res.stderr + res.stdout
    assert sorted(p.name for p in clean.iterdir()) == ["_meta"]  # nothing pulled, nothing left


def test_remote_contents_looks_up_a_version_like_name_among_datasets_only(
    cli, store: Path, s3: Any
) -> None:
    from quantcli.errors import NotFoundError
    from quantcli.models.remote import RemoteContents, remote_contents
    from quantcli.store.remotes import get_remote

    cli("data", "remote", "add", "origin", URL)
    published(store, "v1")
    assert cli("data", "push", "v1@v1").exit_code == 0
    remote = get_remote(store, "origin")
    # A model may not be named v1, so the name is not refused as a model name: it is a dataset.
    assert remote_contents(remote, "v1") == RemoteContents({"v1": [1]}, {})
    assert remote_contents(remote) == RemoteContents({"v1": [1]}, {})
    with pytest.raises(NotFoundError, match=r"^no version of v2 on remote origin \("):
        remote_contents(remote, "v2")
