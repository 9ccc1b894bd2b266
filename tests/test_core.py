"""The bottom layer's helpers: IST arithmetic, the timestamp dtype, sha256 digests, and what
importing them costs."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quantcli.core as quantcli_core
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.hashing import sha256_file, sha256_hex
from quantcli.core.timezone import DAY_US, IST, IST_OFFSET_US, TIMEZONE, ist_datetime

# IST has had one offset since 1945; the instants drawn stay clear of the war-time zones.
_INSTANTS = st.integers(
    min_value=int(datetime(1946, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000,
    max_value=int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000,
)


@given(_INSTANTS)
def test_the_fixed_offset_is_the_zone_s(micros: int) -> None:
    moment = ist_datetime(micros)
    assert moment.tzinfo is IST
    assert moment.utcoffset() == timedelta(microseconds=IST_OFFSET_US)
    epoch = datetime(1970, 1, 1)
    local_us = (moment.replace(tzinfo=None) - epoch) // timedelta(microseconds=1)
    assert local_us == micros + IST_OFFSET_US
    assert (micros + IST_OFFSET_US) // DAY_US == (moment.date() - epoch.date()).days


def test_ist_datetime_of_the_epoch() -> None:
    assert ist_datetime(0) == datetime(1970, 1, 1, 5, 30, tzinfo=IST)
    assert ist_datetime(0).isoformat() == "1970-01-01T05:30:00+05:30"


def test_ts_dtype_is_microseconds_in_ist() -> None:
    assert TS_DTYPE.time_unit == "us" and TS_DTYPE.time_zone == TIMEZONE
    assert TIMEZONE == "Asia/Kolkata"
    stamp = pl.Series([0], dtype=pl.Int64).cast(TS_DTYPE).item()
    assert stamp == ist_datetime(0)


def test_sha256_of_bytes_and_of_a_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # several read blocks
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == expected == sha256_file(path)
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
    assert sha256_hex(b"x") != sha256_hex(b"y")


def test_sha256_of_parts_is_that_of_their_bytes_joined() -> None:
    # Array buffers are hashed in place: the digest is that of their bytes one after another.
    ints = np.arange(12, dtype=np.int64).reshape(4, 3)[:3]
    floats = np.linspace(0.0, 1.0, 7)[:5]
    joined = ints.tobytes() + floats.tobytes()
    assert sha256_hex(ints.data, floats.data) == hashlib.sha256(joined).hexdigest()
    assert sha256_hex(b"ab", b"c") == sha256_hex(b"abc") != sha256_hex(b"abd")


def test_only_dtypes_loads_polars() -> None:
    # Reading commands (data list, data query) use core without the data-frame libraries.
    light = ["dates", "files", "futures", "hashing", "intervals", "lock", "redact", "timezone"]
    code = (
        "import sys\n"
        + "".join(f"import quantcli.core.{name}\n" for name in light)
        + "print('polars' in sys.modules)\n"
        + "import quantcli.core.dtypes\n"
        + "print('polars' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    modules = sorted(p.stem for p in Path(quantcli_core.__file__).parent.glob("[!_]*.py"))
    assert modules == sorted([*light, "dtypes"])  # a new core module is listed above


def test_in_order_yields_in_submission_order_and_cancels_what_nobody_reads() -> None:
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    from quantcli.core.futures import in_order

    first_may_finish = threading.Event()
    started: list[int] = []

    def job(k: int) -> int:
        started.append(k)
        if k == 0:
            first_may_finish.wait(5)
        elif k == 1:
            first_may_finish.set()  # finishes before job 0
        elif k == 2:
            raise ValueError("job 2 failed")
        return k

    with ThreadPoolExecutor(max_workers=1) as one, ThreadPoolExecutor(max_workers=2) as two:
        # Later futures done first still come after the earlier ones.
        assert list(in_order([two.submit(job, k) for k in (0, 1)])) == [0, 1]
        started.clear()
        done: Future[int] = Future()
        done.set_result(7)
        gate = threading.Event()
        blocker = one.submit(gate.wait, 5)  # holds the only thread
        queued = [one.submit(job, k) for k in (3, 4)]
        results = in_order([done, blocker, *queued])
        assert next(results) == 7
        results.close()  # the consumer stops: what has not started never runs
        gate.set()
        assert all(f.cancelled() for f in queued)
        assert started == []
        # An error is raised once every result before it has been yielded.
        failing = in_order([two.submit(job, k) for k in (1, 2, 3)])
        assert next(failing) == 1
        with pytest.raises(ValueError, match="job 2 failed"):
            next(failing)
