"""``quantcli doctor``: is this store fit to run unattended? One line per check.

Each check is ``ok``, ``warn`` (works, but someone should look) or ``fail`` (a job would fail or
has failed); the store is healthy when nothing fails. Every check reuses the code the commands
run (the store's and the registry's verify, gc's view of temp directories, the calendar's and
the rate table's coverage, the refresh planner's last completed session), so doctor cannot
disagree with the jobs it vouches for. It writes nothing but one probe file, removed at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from quantcli.core.lock import LOCK_FILE
from quantcli.core.timezone import IST
from quantcli.errors import QuantcliError

if TYPE_CHECKING:
    from quantcli.store.verify import VerifyReport

Status = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES: Final = 1 << 30  # below 1 GiB a publish of a large dataset can fail
WARN_FREE_FRACTION: Final = 0.10
CALENDAR_WARN_DAYS: Final = 30
# A writer holds its lock for one publish or one refresh; longer than this is a hung job.
LOCK_WARN_SECONDS: Final = 6 * 3600


@dataclass(frozen=True)
class Check:
    """One check's verdict: its ``name``, ``status`` and a one-line ``detail``."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        """The check as doctor prints it."""
        return f"{self.status:<4} {self.name}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class DoctorReport:
    """Every check of one store; ``healthy`` when none failed."""

    root: Path
    deep: bool
    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        """Whether no check failed (warnings allowed)."""
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``doctor --json``)."""
        return {
            "root": str(self.root),
            "deep": self.deep,
            "healthy": self.healthy,
            "checks": [c.to_dict() for c in self.checks],
        }


def _store(root: Path) -> Iterator[Check]:
    if not root.is_dir():
        yield Check("store", "fail", f"{root} does not exist (give --root the store)")
        return
    if not os.access(root, os.R_OK | os.X_OK):
        yield Check("store", "fail", f"{root} is not readable")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        yield Check("store", "fail", f"{root} is not writable ({exc.strerror or exc})")
        return
    yield Check("store", "ok", f"{root} is readable and writable")


def _disk(root: Path) -> Iterator[Check]:
    usage = shutil.disk_usage(root)
    free = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if usage.free < MIN_FREE_BYTES:
        yield Check("disk", "fail", f"{free} (under 1 GiB: publishes may fail)")
    elif usage.free < WARN_FREE_FRACTION * usage.total:
        yield Check("disk", "warn", f"{free} (under 10%)")
    else:
        yield Check("disk", "ok", free)


def _holder(path: Path) -> str | None:
    """The pid text of the process holding the flock on ``path``, None when it is free."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            # Shared and non-blocking: taken and dropped at once when no writer holds it.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        return None
    finally:
        os.close(fd)


def _locks(root: Path, now: float) -> Iterator[Check]:
    from quantcli.models.registry import models_root

    # Locks live in each entry's own directory: datasets, _meta, and the models under theirs.
    pattern = f"*/.*{LOCK_FILE.removeprefix('.')}"
    found = [*root.glob(pattern), *models_root(root).glob(pattern)]
    files = sorted(p for p in found if p.is_file())
    held: list[str] = []
    hung: list[str] = []
    for path in files:
        pid = _holder(path)
        if pid is None:
            continue
        age = now - path.stat().st_mtime
        entry = f"{path.relative_to(root)} (pid {pid}, {age / 3600:.1f} h)"
        (hung if age > LOCK_WARN_SECONDS else held).append(entry)
    if hung:
        yield Check(
            "locks",
            "warn",
            f"held over {LOCK_WARN_SECONDS // 3600} h, a hung job?: {', '.join(hung)}",
        )
    elif held:
        yield Check("locks", "ok", f"{len(held)} held by running jobs: {', '.join(held)}")
    else:
        yield Check("locks", "ok", f"none held ({len(files)} lock file(s))")


def _temp(root: Path) -> Iterator[Check]:
    from quantcli.store.catalog import gc

    report = gc(root, dry_run=True)
    if report.temp_removed:
        shown = ", ".join(report.temp_removed[:3])
        more = f" and {len(report.temp_removed) - 3} more" if len(report.temp_removed) > 3 else ""
        yield Check(
            "temp",
            "warn",
            f"{len(report.temp_removed)} abandoned by killed writers: {shown}{more} "
            "(`quantcli data gc` removes them)",
        )
    else:
        in_use = f" ({len(report.temp_in_use)} in use)" if report.temp_in_use else ""
        yield Check("temp", "ok", f"no abandoned temp files{in_use}")


def _datasets(root: Path, deep: bool) -> Iterator[Check]:
    from quantcli.store.catalog import datasets
    from quantcli.store.manifest import version_numbers
    from quantcli.store.verify import verify_version

    names = datasets(root)
    if not names:
        yield Check("datasets", "ok", "no datasets")
    for name in names:
        versions = version_numbers(root, name)
        yield _verified(f"dataset {name}", versions, deep, partial(verify_version, root, name))


def _models(root: Path, deep: bool) -> Iterator[Check]:
    from quantcli.models.registry import METADATA, models_root, names, verify_one
    from quantcli.store.manifest import version_numbers

    models = names(root)
    if not models:
        yield Check("models", "ok", "no models")
    for name in models:
        versions = version_numbers(models_root(root), name, METADATA)
        yield _verified(f"model {name}", versions, deep, partial(verify_one, root, name))


def _verified(
    what: str, versions: list[int], deep: bool, verify: Callable[[int], VerifyReport]
) -> Check:
    """One line for a dataset's or model's versions: the latest (``deep``: every one) verified
    by the store's or registry's own verify."""
    targets = versions if deep else versions[-1:]
    try:
        bad = [r for r in (verify(v) for v in targets) if not r.ok]
    except QuantcliError as exc:
        return Check(what, "fail", exc.message)
    if bad:
        more = f" (and {len(bad) - 1} more bad versions)" if len(bad) > 1 else ""
        return Check(what, "fail", f"{bad[0].summary()}{more}")
    done = f"all {len(targets)} versions verify" if deep else f"v{targets[0]} verifies"
    return Check(what, "ok", done)


def _calendar(root: Path, today: date) -> Iterator[Check]:
    from quantcli.market import calendar

    with calendar.using_store(root):
        first, last = calendar.coverage()
    left = (last - today).days
    span = f"covers {first}..{last}"
    if left < 0:
        yield Check(
            "calendar",
            "fail",
            f"{span}: ended {-left} days ago (`quantcli calendar import FILE` adds a year)",
        )
    elif left <= CALENDAR_WARN_DAYS:
        yield Check(
            "calendar",
            "warn",
            f"{span}: ends in {left} days (import next year's NSE holidays: "
            "`quantcli calendar import FILE`)",
        )
    else:
        yield Check("calendar", "ok", f"{span} ({left} days left)")


def _charges(today: date) -> Iterator[Check]:
    from quantcli.market.charges import rate_coverage

    start = rate_coverage()
    if start > today:
        yield Check("charges", "fail", f"the rate table starts {start}, after today")
    else:
        yield Check("charges", "ok", f"rates cover trades from {start} on (open-ended)")


def _recipes(root: Path, now: datetime) -> Iterator[Check]:
    from quantcli.market import calendar
    from quantcli.ops.recipe import has_recipe
    from quantcli.ops.refresh import last_completed_session, latest_manifest
    from quantcli.store.catalog import datasets

    names = [n for n in datasets(root) if has_recipe(root, n)]
    if not names:
        yield Check("recipes", "ok", "no recipes (no dataset is refreshed from providers)")
        return
    with calendar.using_store(root):
        done = last_completed_session(now)
        for name in names:
            manifest = latest_manifest(root, name)
            if manifest is None:
                yield Check(f"recipe {name}", "warn", "no version yet (run `data refresh`)")
                continue
            last = manifest.last_ts.astimezone(IST).date()
            missing = len(calendar.sessions(last, done)) - 1 if last < done else 0
            if missing:
                yield Check(
                    f"recipe {name}",
                    "warn",
                    f"last bar {last}, {missing} session(s) behind {done} "
                    f"(`quantcli data refresh {name}`)",
                )
            else:
                yield Check(f"recipe {name}", "ok", f"current through {last}")


def constraints_file() -> Path | None:
    """The constraints.txt beside a source checkout's package (None when installed)."""
    import quantcli

    candidate = Path(quantcli.__file__).resolve().parent.parent / "constraints.txt"
    return candidate if candidate.is_file() else None


def _libraries(constraints: Path | None) -> Iterator[Check]:
    from importlib import metadata

    if constraints is None:
        yield Check("libraries", "ok", "no constraints.txt (not a source checkout): not compared")
        return
    pins = {}
    for raw in constraints.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    differ = []
    for name, pinned in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an optional extra that is not installed
        if installed != pinned:
            differ.append(f"{name} {installed} (pinned {pinned})")
    if differ:
        yield Check(
            "libraries",
            "warn",
            f"{len(differ)} differ from {constraints.name}: {', '.join(differ[:5])}"
            + (f" and {len(differ) - 5} more" if len(differ) > 5 else ""),
        )
    else:
        yield Check("libraries", "ok", f"installed versions match {constraints.name}")


def doctor(
    root: Path,
    *,
    deep: bool = False,
    now: datetime | None = None,
    constraints: Path | None = None,
) -> DoctorReport:
    """Run every check on the store at ``root`` (``deep``: verify every version, not just
    the latest) as of ``now`` (default the clock), comparing libraries with ``constraints``
    (default the checkout's constraints.txt)."""
    now = now or datetime.now(IST)
    today = now.astimezone(IST).date()
    checks: list[Check] = list(_store(root))
    if checks[0].status == "fail":
        return DoctorReport(root, deep, tuple(checks))
    steps: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("disk", lambda: _disk(root)),
        ("locks", lambda: _locks(root, time.time())),
        ("temp", lambda: _temp(root)),
        ("datasets", lambda: _datasets(root, deep)),
        ("models", lambda: _models(root, deep)),
        ("calendar", lambda: _calendar(root, today)),
        ("charges", lambda: _charges(today)),
        ("recipes", lambda: _recipes(root, now)),
        ("libraries", lambda: _libraries(constraints or constraints_file())),
    ]
    for name, step in steps:
        try:
            checks.extend(step())
        except (QuantcliError, OSError) as exc:
            # A check that cannot run is itself a failure, not a traceback.
            message = exc.message if isinstance(exc, QuantcliError) else str(exc)
            checks.append(Check(name, "fail", message))
    return DoctorReport(root, deep, tuple(checks))
