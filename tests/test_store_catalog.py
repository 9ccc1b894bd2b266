"""References, tags, listing, rm and gc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import SOURCE, make_bars

from quantcli.core.files import make_temp_dir
from quantcli.core.lock import dataset_lock
from quantcli.errors import ConflictError, LockHeldError, NotFoundError, UsageError
from quantcli.store import catalog
from quantcli.store.manifest import MANIFEST, next_version, version_dir, version_numbers
from quantcli.store.publish import publish


@pytest.fixture
def three(store: Path) -> Path:
    """Dataset ``d`` with versions v1..v3 (v3 has the same content as v1)."""
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(seed=1), interval="1d", source=SOURCE)
    publish(store, "d", make_bars(), interval="1d", source=SOURCE)
    return store


def _hash(root: Path, v: int) -> str:
    return catalog.resolve(root, f"d@v{v}").content_hash


def test_resolve_forms(three: Path) -> None:
    assert catalog.resolve_version(three, "d") == ("d", 3)
    assert catalog.resolve_version(three, "d@latest") == ("d", 3)
    assert catalog.resolve_version(three, "d@v2") == ("d", 2)
    assert catalog.resolve_version(three, f"d@{_hash(three, 2)[:6]}") == ("d", 2)
    assert catalog.resolve_version(three, f"d@{_hash(three, 2).upper()}") == ("d", 2)
    # v1 and v3 hold the same content: the newest of them.
    assert catalog.resolve_version(three, f"d@{_hash(three, 1)[:8]}") == ("d", 3)
    catalog.set_tag(three, "d@v1", "paper-2026q4")
    assert catalog.resolve_version(three, "d@paper-2026q4") == ("d", 1)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("nope", NotFoundError, r"dataset 'nope' not found in .* \(datasets: d\)"),
        ("d@v9", NotFoundError, r"d@v9 not found \(versions: v1, v2, v3; tags: none\)"),
        ("d@zzz", NotFoundError, r"no version, tag or content hash 'zzz' in d"),
        ("d@abc", NotFoundError, r"no version, tag or content hash 'abc'"),
        ("d@ffffff00", NotFoundError, r"no version of d has content hash ffffff00"),
        ("d@", UsageError, r"nothing after '@'"),
        ("_meta", UsageError, r"invalid dataset name"),
    ],
)
def test_resolve_errors(three: Path, ref: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        catalog.resolve_version(three, ref)


def test_ambiguous_prefix(three: Path) -> None:
    # Forge v2's hash to share a prefix with v1's but differ after it.
    path = version_dir(three, "d", 2) / MANIFEST
    path.chmod(0o644)  # manifests are written read-only
    doc = json.loads(path.read_text())
    real = _hash(three, 1)
    doc["content_hash"] = real[:10] + ("0" if real[10] != "0" else "1") + real[11:]
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=rf"prefix '{real[:8]}' of d is ambiguous: v1 .*, v2 "):
        catalog.resolve_version(three, f"d@{real[:8]}")


def test_unknown_dataset_in_empty_or_missing_root(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"\(datasets: none\)"):
        catalog.resolve_version(tmp_path / "missing", "x")
    assert catalog.datasets(tmp_path / "missing") == []


def test_tags(three: Path) -> None:
    assert catalog.set_tag(three, "d@v2", "paper") is None
    assert catalog.set_tag(three, "d@v2", "paper") == 2  # same place: no force needed
    with pytest.raises(ConflictError, match="already points at d@v2; use --force"):
        catalog.set_tag(three, "d@v3", "paper")
    assert catalog.set_tag(three, "d@v3", "paper", force=True) == 2
    assert catalog.read_tags(three, "d") == {"paper": 3}
    assert json.loads((three / "d" / "tags.json").read_text()) == {"paper": 3}
    assert catalog.delete_tag(three, "d", "paper") == 3
    with pytest.raises(NotFoundError, match="no tag 'paper' in d"):
        catalog.delete_tag(three, "d", "paper")


@pytest.mark.parametrize("tag", ["latest", "v2", "abcdef12", "-x", "a b", ""])
def test_bad_tags(three: Path, tag: str) -> None:
    with pytest.raises(UsageError, match="invalid tag"):
        catalog.set_tag(three, "d", tag)


def test_list(three: Path) -> None:
    publish(three, "e", make_bars(["X"]), interval="1d", source=SOURCE)
    (three / "_meta").mkdir()
    (three / "empty").mkdir()
    make_temp_dir(three, "d", "publish")
    catalog.set_tag(three, "d@v1", "t1")
    summaries = catalog.list_datasets(three)
    assert [s.name for s in summaries] == ["d", "e"]
    assert summaries[0].versions == (1, 2, 3) and summaries[0].latest.version == 3
    assert summaries[0].tags == {"t1": 1}
    assert [m.version for m in catalog.list_versions(three, "d")] == [1, 2, 3]
    with pytest.raises(NotFoundError):
        catalog.list_versions(three, "zz")


def test_rm(three: Path) -> None:
    catalog.set_tag(three, "d@v3", "keep")
    with pytest.raises(UsageError, match=r"refusing to remove d@v2 without --force"):
        catalog.remove_version(three, "d@v2")
    with pytest.raises(UsageError, match=r"d@v3 \(it is tagged keep\) without --force"):
        catalog.remove_version(three, "d@keep")
    assert catalog.remove_version(three, "d@v3", force=True).version == 3
    assert catalog.read_tags(three, "d") == {}
    assert version_numbers(three, "d") == [1, 2]
    with pytest.raises(NotFoundError, match=r"d@v3 was removed \(versions: v1, v2"):
        catalog.resolve_version(three, "d@v3")
    assert not list((three / ".tmp").iterdir())
    # The number is never reused, even though v3 was the latest.
    assert next_version(three, "d") == 4
    assert publish(three, "d", make_bars(), interval="1d", source=SOURCE).manifest.version == 4
    # Removing an untagged version leaves the tags file alone.
    catalog.remove_version(three, "d@v1", force=True)
    assert version_numbers(three, "d") == [2, 4]


def test_rm_is_blocked_by_the_lock(three: Path) -> None:
    with dataset_lock(three, "d"), pytest.raises(LockHeldError, match=r"dataset d is locked"):
        catalog.remove_version(three, "d@v1", force=True)


def test_gc_temp_dirs(three: Path) -> None:
    abandoned = make_temp_dir(three, "d", "publish")
    (abandoned / "data").mkdir()
    (abandoned / "data" / "x.parquet").write_bytes(b"x")
    orphan = make_temp_dir(three, "gone", "publish")
    stray = three / ".tmp" / "weird-file"
    stray.write_text("x")
    crashed_write = three / "d" / ".tags.json.0123abcd.tmp"
    crashed_write.write_text("{")
    dry = catalog.gc(three, dry_run=True)
    assert dry.dry_run and len(dry.temp_removed) == 4 and abandoned.exists()
    report = catalog.gc(three)
    assert sorted(report.temp_removed) == sorted(
        [*(f".tmp/{p.name}" for p in (abandoned, orphan, stray)), "d/.tags.json.0123abcd.tmp"]
    )
    assert not crashed_write.exists()
    assert not list((three / ".tmp").iterdir())
    assert report.versions_removed == () and version_numbers(three, "d") == [1, 2, 3]
    assert not (three / "gone").exists()


def test_gc_keeps_temp_dirs_of_a_locked_dataset(three: Path) -> None:
    busy = make_temp_dir(three, "d", "publish")
    with dataset_lock(three, "d"):
        report = catalog.gc(three)
    assert report.temp_in_use == (f".tmp/{busy.name}",) and busy.exists()
    assert catalog.gc(three).temp_removed == (f".tmp/{busy.name}",)


def test_gc_keep_last(three: Path) -> None:
    publish(three, "d", make_bars(seed=5), interval="1d", source=SOURCE)  # v4
    catalog.set_tag(three, "d@v1", "golden")
    with pytest.raises(UsageError, match="--keep-last must be at least 1"):
        catalog.gc(three, keep_last=0)
    dry = catalog.gc(three, keep_last=2, dry_run=True)
    assert dry.versions_removed == ("d@v2",)
    assert version_numbers(three, "d") == [1, 2, 3, 4]
    assert catalog.gc(three, keep_last=2).versions_removed == ("d@v2",)
    assert version_numbers(three, "d") == [1, 3, 4]
    assert catalog.gc(three).versions_removed == ()  # opt-in only


def test_gc_on_a_store_without_tmp(tmp_path: Path) -> None:
    report = catalog.gc(tmp_path)
    assert report == catalog.GcReport(False, (), (), ())
