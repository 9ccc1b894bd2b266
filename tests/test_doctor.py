"""`quantcli doctor`: one line per check, exit 0 healthy and 1 not, each check able to fail."""

from __future__ import annotations

import os
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_store
from store_helpers import SOURCE, make_bars

from quantcli.core.lock import dataset_lock
from quantcli.core.timezone import IST
from quantcli.market import calendar
from quantcli.models.registry import METADATA, models_root
from quantcli.ops.doctor import Check, doctor
from quantcli.ops.recipe import make_recipe, save_recipe
from quantcli.store.manifest import read_manifest, version_dir
from quantcli.store.publish import publish

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=IST)


def by_name(checks: tuple[Check, ...]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def two_versions(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(days=12), interval="1d", source=SOURCE)


def test_a_healthy_store_passes_every_check(cli, store: Path) -> None:
    two_versions(store)
    res = cli("doctor")
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    names = [line[5:].split(":", 1)[0] for line in lines]
    assert names == [
        "store",
        "disk",
        "locks",
        "temp",
        "dataset d",
        "models",
        "calendar",
        "charges",
        "recipes",
        "libraries",
    ]
    assert all(line[:4] in ("ok  ", "warn") for line in lines)
    assert "ok   dataset d: v2 verifies" in lines
    assert "ok   recipes: no recipes (no dataset is refreshed from providers)" in lines
    doc = cli("doctor", "--json", "--deep").json()
    assert doc["healthy"] is True and doc["deep"] is True
    assert {"name": "dataset d", "status": "ok", "detail": "all 2 versions verify"} in doc["checks"]


def _damage(store: Path, version: int) -> None:
    folder = version_dir(store, "d", version)
    rel = sorted(read_manifest(folder).files)[0]
    path = folder / rel
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10])


def test_damage_fails_and_deep_finds_it_in_old_versions(cli, store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(symbols=("AAA", "ZZZ")), interval="1d", source=SOURCE)
    _damage(store, 1)
    shallow = cli("doctor")
    assert shallow.exit_code == 0  # the latest version is intact
    deep = cli("doctor", "--deep")
    assert deep.exit_code == 1
    assert any(
        line.startswith("fail dataset d: d@v1: changed ") for line in deep.stdout.splitlines()
    )
    assert deep.stderr.startswith("error: doctor: dataset d: d@v1: changed ")
    doc = cli("--json", "doctor", "--deep").json()
    assert doc["healthy"] is False and doc["error"]["exit_code"] == 1


def test_abandoned_temp_and_held_locks(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    (store / ".tmp" / "d+publish-0123456789ab").mkdir(parents=True)
    temp = by_name(doctor(store, now=NOW).checks)["temp"]
    assert temp.status == "warn" and "1 abandoned" in temp.detail and "data gc" in temp.detail
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with dataset_lock(store, "d"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        held.wait(10)
        checks = by_name(doctor(store, now=NOW).checks)
        assert checks["locks"].status == "ok" and f"pid {os.getpid()}" in checks["locks"].detail
        # The temp directory belongs to a running writer now: not abandoned.
        assert checks["temp"].status == "ok" and "1 in use" in checks["temp"].detail
        old = time.time() - 7 * 3600
        os.utime(store / "d" / ".lock", (old, old))
        locks = by_name(doctor(store, now=NOW).checks)["locks"]
        assert locks.status == "warn" and "hung job" in locks.detail
    finally:
        release.set()
        thread.join()
    assert by_name(doctor(store, now=NOW).checks)["locks"].detail.startswith("none held")


def test_calendar_coverage_warns_within_30_days_and_fails_after(store: Path) -> None:
    with calendar.using_store(store):
        _, last = calendar.coverage()
    near = datetime.combine(last, datetime.min.time(), IST).replace(hour=12)
    for offset, status in ((-31, "ok"), (-30, "warn"), (0, "warn"), (1, "fail")):
        day = near.fromordinal(near.toordinal() + offset).replace(hour=12, tzinfo=IST)
        check = by_name(doctor(store, now=day).checks)["calendar"]
        assert check.status == status, (offset, check)
    report = doctor(store, now=near.replace(year=last.year + 1))
    assert not report.healthy


def test_recipe_staleness_against_the_last_completed_session(store: Path) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    manifest = read_manifest(version_dir(store, "d", 1))
    last = manifest.last_ts.astimezone(IST).date()
    save_recipe(store, make_recipe("d", "bhavcopy-legacy", ["https://h.example/{date:%Y%m%d}.zip"]))
    with calendar.using_store(store):
        after = calendar.sessions(last, date(last.year + 1, 1, 1))
    at_close = datetime.combine(after[3], datetime.min.time(), IST).replace(hour=18)
    stale = by_name(doctor(store, now=at_close).checks)["recipe d"]
    assert stale.status == "warn"
    assert stale.detail.startswith(f"last bar {last}, 3 session(s) behind {after[3]}")
    current = datetime.combine(last, datetime.min.time(), IST).replace(hour=18)
    assert by_name(doctor(store, now=current).checks)["recipe d"].status == "ok"


def test_library_versions_against_constraints(store: Path, tmp_path: Path) -> None:
    pins = tmp_path / "constraints.txt"
    pins.write_text("# pins\nstructlog==0.0.1\nno-such-distribution==1.0\n")
    check = by_name(doctor(store, now=NOW, constraints=pins).checks)["libraries"]
    assert check.status == "warn" and "structlog 26.1.0 (pinned 0.0.1)" in check.detail
    pins.write_text("structlog==26.1.0\n")
    assert by_name(doctor(store, now=NOW, constraints=pins).checks)["libraries"].status == "ok"


def test_a_missing_or_unwritable_root_fails(tmp_path: Path) -> None:
    report = doctor(tmp_path / "nowhere", now=NOW)
    assert [c.line() for c in report.checks] == [
        f"fail store: {tmp_path / 'nowhere'} does not exist (give --root the store)"
    ]
    if os.geteuid() == 0:
        pytest.skip("root writes through file permissions")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        (first,) = doctor(locked, now=NOW).checks
        assert first.status == "fail" and "not writable" in first.detail
    finally:
        locked.chmod(0o755)


def test_models_verify(model_template: Path, tmp_path: Path) -> None:
    root = copy_store(model_template, tmp_path)
    assert by_name(doctor(root, now=NOW).checks)["model m"].line() == "ok   model m: v1 verifies"
    folder = models_root(root) / "m" / "v1"
    artifact: Any = next(p for p in folder.rglob("*") if p.is_file() and p.name != METADATA)
    artifact.chmod(0o644)
    artifact.write_bytes(b"tampered")
    check = by_name(doctor(root, now=NOW).checks)["model m"]
    assert check.status == "fail" and "m@v1" in check.detail
