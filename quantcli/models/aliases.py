"""Alias moves: the append-only history behind ``NAME@champion`` and every other alias.

Each move (alias, from, to, when, reason, evidence) is one immutable file
``<root>/models/<name>/aliases/<seq>.json``, numbered from 1 and published the way a version
is: written and fsynced in the registry's ``.tmp`` directory, renamed into place while the
model's lock is held, and the directory fsynced. A crash therefore leaves a move wholly there or
not at all; an appended line could be left half-written and would have to be cut off by the next
writer, which is a rewrite in place. The killed write's temp directory is ``model gc``'s to
remove. Which version an alias names is the replay of the moves in order: there is no second
copy of the current aliases to drift from the history.

This module stores and replays moves; the registry (quantcli.models.registry) decides them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from quantcli.core.files import fsync_dir, make_temp_dir, write_new
from quantcli.errors import IntegrityError, UsageError

ALIASES_DIR = "aliases"
_MOVE_RE = re.compile(r"^([0-9]+)\.json$")


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: from version ``before`` to ``after`` (None: not set / removed)."""

    seq: int
    alias: str
    before: int | None
    after: int | None
    when: datetime
    reason: str | None
    evidence: Mapping[str, Any] | None

    def to_dict(self, name: str) -> dict[str, Any]:
        """The move as the history file and ``--json`` write it (``from``/``to`` as refs)."""
        return {
            "seq": self.seq,
            "alias": self.alias,
            "from": None if self.before is None else f"{name}@v{self.before}",
            "to": None if self.after is None else f"{name}@v{self.after}",
            "when": self.when.isoformat(),
            "reason": self.reason,
            "evidence": None if self.evidence is None else dict(self.evidence),
        }


@dataclass(frozen=True)
class Holding:
    """A version holding an alias from ``since`` until ``until`` (None: still holds it)."""

    alias: str
    version: int
    since: datetime
    until: datetime | None

    def to_dict(self, name: str) -> dict[str, Any]:
        """The holding as ``model history --json`` prints it."""
        return {
            "alias": self.alias,
            "ref": f"{name}@v{self.version}",
            "version": self.version,
            "since": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
        }


def _version(ref: object, path: Path) -> int | None:
    if ref is None:
        return None
    if isinstance(ref, str) and "@v" in ref and ref.rpartition("@v")[2].isdigit():
        return int(ref.rpartition("@v")[2])
    raise IntegrityError(f"{path}: unreadable alias move: {ref!r} is not NAME@vN")


def _read(path: Path, seq: int) -> AliasMove:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        move = AliasMove(
            seq=seq,
            alias=str(doc["alias"]),
            before=_version(doc["from"], path),
            after=_version(doc["to"], path),
            when=datetime.fromisoformat(doc["when"]),
            reason=doc["reason"],
            evidence=doc["evidence"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: unreadable alias move: {exc}") from None
    if doc.get("seq") != seq:
        raise IntegrityError(f"{path}: the move records seq {doc.get('seq')!r}, not {seq}")
    return move


def history(models: Path, name: str) -> list[AliasMove]:
    """Every alias move of model ``name`` (under the registry directory ``models``), in order."""
    folder = models / name / ALIASES_DIR
    if not folder.is_dir():
        return []
    found = sorted(
        (int(m.group(1)), entry)
        for entry in folder.iterdir()
        if (m := _MOVE_RE.match(entry.name)) is not None
    )
    return [_read(path, seq) for seq, path in found]


def replay(moves: Sequence[AliasMove], at: datetime | None = None) -> dict[str, int]:
    """alias -> version after ``moves`` (only those made at or before ``at``, when given)."""
    held: dict[str, int] = {}
    for move in moves:
        if at is not None and move.when > at:
            continue
        if move.after is None:
            held.pop(move.alias, None)
        else:
            held[move.alias] = move.after
    return held


def holdings(moves: Sequence[AliasMove]) -> list[Holding]:
    """Who held each alias when: one entry per stretch a version held it, in move order."""
    out: list[Holding] = []
    open_: dict[str, int] = {}  # alias -> index into out of its current holding
    for move in moves:
        if move.alias in open_:
            i = open_.pop(move.alias)
            out[i] = Holding(out[i].alias, out[i].version, out[i].since, move.when)
        if move.after is not None:
            open_[move.alias] = len(out)
            out.append(Holding(move.alias, move.after, move.when, None))
    return out


def parse_at(text: str, flag: str = "--at") -> datetime:
    """The instant ``--at`` names: a date YYYY-MM-DD is the end of that day (UTC), a timestamp
    YYYY-MM-DDTHH:MM[:SS][+HH:MM] that instant (UTC when it has no offset)."""
    from quantcli.core.dates import parse_date

    if "T" not in text:
        day: date = parse_date(text, flag)
        return datetime.combine(day + timedelta(days=1), time.min, UTC) - timedelta(microseconds=1)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag}: expected a date YYYY-MM-DD or a timestamp YYYY-MM-DDTHH:MM:SS, got {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def append_locked(
    models: Path,
    name: str,
    alias: str,
    before: int | None,
    after: int | None,
    *,
    reason: str | None,
    evidence: Mapping[str, Any] | None,
) -> AliasMove:
    """Record one move of ``alias``; the caller holds the model's lock and decided the move."""
    from quantcli.output import to_json

    folder = models / name / ALIASES_DIR
    if not folder.is_dir():
        folder.mkdir(parents=True)
        fsync_dir(folder.parent)
    moves = history(models, name)
    move = AliasMove(
        seq=moves[-1].seq + 1 if moves else 1,
        alias=alias,
        before=before,
        after=after,
        when=datetime.now(UTC).replace(microsecond=0),
        reason=reason,
        evidence=evidence,
    )
    tmp = make_temp_dir(models, name, "alias")
    try:
        staged = tmp / "move.json"
        write_new(staged, (to_json(move.to_dict(name)) + "\n").encode("utf-8"), 0o444)
        os.rename(staged, folder / f"{move.seq:08d}.json")
        fsync_dir(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return move
