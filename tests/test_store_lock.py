"""The writer lock: contention, waiting, the holder's pid, and exit code 75."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.lock import dataset_lock, lock_path
from quantcli.errors import LockHeldError
from quantcli.store.manifest import version_numbers
from quantcli.store.publish import PublishResult, publish


def test_second_writer_gets_lock_held(store: Path) -> None:
    with dataset_lock(store, "d"):
        with pytest.raises(
            LockHeldError, match=rf"dataset d is locked by another process \(pid {os.getpid()}\)"
        ) as info:
            publish(store, "d", make_bars(), interval="1d", source=SOURCE)
        assert info.value.exit_code == 75
    assert publish(store, "d", make_bars(), interval="1d", source=SOURCE).created


def test_wait_gets_the_lock_once_released(store: Path) -> None:
    # Released only once the publisher has had time to give up or get through: it must still
    # be waiting then, and publish right after, with no timing guess either way.
    results: list[PublishResult] = []

    def waiting_publish() -> None:
        results.append(publish(store, "d", make_bars(), interval="1d", source=SOURCE, wait=60))

    worker = threading.Thread(target=waiting_publish)
    with dataset_lock(store, "d"):
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and not version_numbers(store, "d")
    worker.join()
    assert [r.created for r in results] == [True]


def test_wait_times_out(store: Path) -> None:
    with dataset_lock(store, "d"):
        start = time.monotonic()
        with pytest.raises(LockHeldError):
            publish(store, "d", make_bars(), interval="1d", source=SOURCE, wait=0.2)
        assert time.monotonic() - start >= 0.2


def test_lock_held_by_another_process(store: Path, cli) -> None:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from quantcli.core.lock import dataset_lock\n"
        "with dataset_lock(Path(sys.argv[1]), 'd'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError, match=rf"\(pid {proc.pid}\)"):
            publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE)
        res = cli("data", "tag", "d@v1", "x")
        assert res.exit_code == 75
        assert f"dataset d is locked by another process (pid {proc.pid})" in res.stderr
    finally:
        proc.kill()
        proc.wait()
    # The kernel dropped the lock with the process.
    assert cli("data", "tag", "d@v1", "x").exit_code == 0


def test_unreadable_holder_pid(store: Path) -> None:
    with dataset_lock(store, "d"):
        lock_path(store, "d").write_text("")
        with pytest.raises(LockHeldError, match=r"\(pid unknown\)"), dataset_lock(store, "d"):
            pass


def test_holder_pid_unreadable(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Path, *args: object, **kwargs: object) -> str:
        raise OSError("gone")

    with dataset_lock(store, "d"):
        monkeypatch.setattr(Path, "read_text", fail)
        with pytest.raises(LockHeldError, match=r"\(pid unknown\)"), dataset_lock(store, "d"):
            pass
