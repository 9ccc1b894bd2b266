"""verify: every file hash and the content hash against the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.errors import IntegrityError
from quantcli.store.manifest import MANIFEST, version_dir
from quantcli.store.publish import publish
from quantcli.store.verify import check, verify


@pytest.fixture
def root(store: Path) -> Path:
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE)
    publish(store, "e", make_bars(["X"]), interval="1d", source=SOURCE)
    return store


def _first_file(root: Path, v: int = 1) -> Path:
    return sorted((version_dir(root, "d", v) / "data").rglob("*.parquet"))[0]


def test_all_versions_ok(root: Path) -> None:
    reports = verify(root)
    assert [r.ref for r in reports] == ["d@v1", "d@v2", "e@v1"]
    assert all(r.ok for r in reports) and reports[0].files == 1
    assert reports[0].summary() == "d@v1: ok (1 file)"
    check(reports)
    assert [r.ref for r in verify(root, "d@v1")] == ["d@v1"]


def test_changed_missing_extra(root: Path) -> None:
    victim = _first_file(root)
    rel = victim.relative_to(version_dir(root, "d", 1)).as_posix()
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    (version_dir(root, "d", 1) / "data" / "stray.parquet").write_bytes(b"x")
    [report] = verify(root, "d@v1")
    assert report.changed == (rel,) and report.extra == ("data/stray.parquet",)
    assert not report.ok and report.content_hash_ok
    victim.unlink()
    [report] = verify(root, "d@v1")
    assert report.missing == (rel,) and report.changed == ()
    with pytest.raises(IntegrityError, match=rf"d@v1: missing {rel}; extra data/stray.parquet"):
        check(verify(root, "d@v1"))


def test_forged_manifest_fails_content_hash(root: Path) -> None:
    path = version_dir(root, "d", 2) / MANIFEST
    path.chmod(0o644)  # manifests are written read-only
    doc = json.loads(path.read_text())
    doc["interval"] = "5m"
    path.write_text(json.dumps(doc))
    [report] = verify(root, "d@v2")
    assert not report.content_hash_ok
    assert "content hash does not match" in report.summary()
    _first_file(root).unlink()
    with pytest.raises(IntegrityError, match=r"\(and 1 more bad versions\)"):
        check(verify(root))


def test_unreadable_manifest(root: Path) -> None:
    path = version_dir(root, "e", 1) / MANIFEST
    path.chmod(0o644)
    path.write_text("{not json")
    with pytest.raises(IntegrityError, match="unreadable manifest"):
        verify(root, "e")
