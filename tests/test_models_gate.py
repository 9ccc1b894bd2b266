"""Champion and challenger: aliases and their history, `model compare` and `model promote`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import copy_store
from hypothesis import given
from hypothesis import strategies as st
from startup import modules_loaded
from test_models import run, train_on_set
from test_models_cli import one_line_error

from quantcli.core.files import TMP_DIR
from quantcli.errors import ConflictError
from quantcli.models import registry
from quantcli.models.aliases import AliasMove, holdings, parse_at, replay
from quantcli.models.compare import compare

# fs@v1: 300 weekdays from 2023-01-02 (to 2024-02-23); every model here trains to 2023-06-30
# with direction:5 (or return:5), so it has seen up to 2023-07-07.
WINDOW = ["--features", "fs@v1", "--from", "2023-07-10", "--to", "2024-02-01"]
START, END = dt.date(2023, 7, 10), dt.date(2024, 2, 1)


@pytest.fixture(scope="module")
def template(model_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model store (fs@v1, m@v1: rf, 5 trees) and m@v2 (logistic: better on this
    data), r@v1 / r@v2 (the same kinds on return:5), other@v1 (other features) and h10@v1 (the
    rf on direction:10)."""
    root = copy_store(model_template, tmp_path_factory.mktemp("gate"))
    train_on_set(root, kind="logistic", params={})
    for kind, params in (("rf", {"n_estimators": "5"}), ("logistic", {})):
        spec = {"label": "return:5", "kind": kind, "params": params}
        from quantcli.models import TrainSpec, train

        base = {
            "train_from": dt.date(2023, 1, 1),
            "train_to": dt.date(2023, 6, 30),
            "test_to": dt.date(2023, 10, 31),
            "seed": 7,
        }
        train("r", TrainSpec(**spec, **base), features="fs@v1", root=root)
    run(root, name="other")
    from quantcli.models import TrainSpec, train

    h10 = TrainSpec(
        label="direction:10",
        kind="rf",
        params={"n_estimators": "5"},
        train_from=dt.date(2023, 1, 1),
        train_to=dt.date(2023, 6, 30),
        test_to=dt.date(2023, 10, 31),
        seed=7,
    )
    train("h10", h10, features="fs@v1", root=root)
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template store (the ``cli`` fixture runs against it)."""
    return copy_store(template, tmp_path)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under the registry, with its bytes: what "nothing written" compares."""
    models = registry.models_root(root)
    return {
        p.relative_to(models).as_posix(): p.read_bytes()
        for p in sorted(models.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def moves(root: Path, name: str = "m") -> list[dict[str, Any]]:
    return [m.to_dict(name) for m in registry.alias_history(root, name)]


# ---------------------------------------------------------------------------------- aliases


def test_an_alias_names_a_version_everywhere(cli, store: Path) -> None:
    res = cli("model", "alias", "m@v1", "challenger", "--reason", "first try", "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["moved"] is True and doc["ref"] == "m@v1"
    assert doc["move"]["from"] is None and doc["move"]["to"] == "m@v1"
    assert doc["move"]["reason"] == "first try" and doc["move"]["seq"] == 1
    assert registry.resolve(store, "m@challenger") == ("m", 1)
    shown = cli("model", "show", "m@challenger", "--json").json()
    assert shown["ref"] == "m@v1" and shown["aliases"] == ["challenger"]
    assert cli("model", "show", "m@v2", "--json").json()["aliases"] == []
    assert cli("model", "verify", "m@challenger").stdout.strip() == "m@v1: ok (1 file)"
    assert registry.load(store, "m@challenger").metadata["version"] == 1
    predicted = cli("model", "predict", "m@challenger", *WINDOW, "--json")
    assert predicted.exit_code == 0, predicted.stderr
    assert {row["answered_by"] for row in predicted.json()["predictions"]} == {"m@v1"}
    # Moving it records from and to; pointing it where it is records nothing.
    moved = cli("model", "alias", "m@v2", "challenger")
    assert moved.stdout.strip() == "m@challenger -> m@v2 (was m@v1)"
    again = cli("model", "alias", "m@challenger", "challenger", "--json").json()
    assert again["moved"] is False
    history = moves(store)
    assert [(h["from"], h["to"]) for h in history] == [(None, "m@v1"), ("m@v1", "m@v2")]
    assert history[1]["reason"] is None and history[1]["evidence"] is None
    # Each move is one immutable file; the temp directory it was built in is gone.
    folder = registry.models_root(store) / "m" / "aliases"
    assert sorted(p.name for p in folder.iterdir()) == ["00000001.json", "00000002.json"]
    assert all(not (p.stat().st_mode & 0o222) for p in folder.iterdir())
    assert not any((registry.models_root(store) / TMP_DIR).iterdir())
    assert json.loads((folder / "00000002.json").read_text())["to"] == "m@v2"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["alias", "m@v1", "v3"], 2, "invalid alias 'v3'"),
        (["alias", "m@v1", "latest"], 2, "invalid alias 'latest'"),
        (["alias", "m@v1", "abcdef12"], 2, "invalid alias 'abcdef12'"),
        (["alias", "m@v1", "has space"], 2, "invalid alias 'has space'"),
        (["alias", "m@v9", "champion"], 1, "m@v9 not found"),
        (["alias", "nope@v1", "champion"], 1, "model 'nope' not found"),
        (["alias", "m@nope", "champion"], 1, "model m has no alias 'nope' (versions: v1, v2"),
        (["show", "m@champion"], 1, "model m has no alias 'champion'"),
        (["compare", "m@champion", "m@v2", *WINDOW], 1, "model m has no alias 'champion'"),
        (["promote", "m@challenger"], 1, "model m has no alias 'challenger'"),
        (["history", "nope"], 1, "model 'nope' not found"),
        (["history", "m", "--alias", "v1"], 2, "invalid alias 'v1'"),
        (["history", "m", "--at", "2024-13-01"], 2, "--at: expected a date YYYY-MM-DD"),
        (["history", "m", "--at", "2024-01-01Tnoon"], 2, "or a timestamp"),
        (["alias", "m@v1", "champion", "--force"], 2, "--force needs --reason TEXT"),
    ],
)
def test_alias_bad_input_is_one_line_and_writes_nothing(
    cli, store: Path, args: list[str], code: int, message: str
) -> None:
    before = tree(store)
    res = cli("model", *args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert tree(store) == before


def test_champion_moves_only_through_the_gate_or_force(cli, store: Path) -> None:
    assert cli("model", "alias", "m@v1", "champion").exit_code == 0
    before = tree(store)
    refused = cli("model", "alias", "m@v2", "champion")
    assert refused.exit_code == 2
    assert "m@champion is m@v1: move it with `quantcli model promote m@v2`" in one_line_error(
        refused
    )
    assert tree(store) == before
    forced = cli("model", "alias", "m@v2", "champion", "--force", "--reason", "incident 42")
    assert forced.exit_code == 0, forced.stderr
    assert moves(store)[-1]["reason"] == "incident 42"
    assert registry.aliases(store, "m") == {"champion": 2}


def test_a_move_decided_on_a_stale_champion_is_refused(store: Path) -> None:
    registry.set_alias(store, "m@v1", "champion")
    with pytest.raises(ConflictError, match=r"m@champion moved from unset to m@v1"):
        registry.set_alias(store, "m@v2", "champion", force=True, reason="x", expect=None)
    assert registry.aliases(store, "m") == {"champion": 1}


def test_a_version_removed_while_a_move_waits_for_the_lock_is_refused(store: Path) -> None:
    import threading

    from quantcli.core.lock import dataset_lock
    from quantcli.errors import NotFoundError
    from quantcli.store.catalog import remove_locked

    folder = registry.models_root(store)
    raised: list[BaseException] = []

    def move() -> None:
        try:
            registry.set_alias(store, "m@v1", "challenger", wait=30)
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    with dataset_lock(folder, "m", what="model"):
        waiting = threading.Thread(target=move)
        waiting.start()
        time.sleep(0.5)  # it has resolved m@v1 and waits for the lock
        remove_locked(folder, "m", 1)
    waiting.join()
    assert len(raised) == 1 and isinstance(raised[0], NotFoundError)
    assert "m@v1 was removed while the alias was being set" in str(raised[0])
    assert registry.alias_history(store, "m") == []


def test_history_shows_who_held_each_alias_when(cli, store: Path) -> None:
    cli("model", "alias", "m@v1", "champion", "--reason", "first")
    cli("model", "alias", "m@v1", "challenger")
    cli("model", "alias", "m@v2", "champion", "--force", "--reason", "rollback drill")
    doc = cli("model", "history", "m", "--json").json()
    assert [(h["alias"], h["ref"], h["until"] is None) for h in doc["held"]] == [
        ("champion", "m@v1", False),
        ("challenger", "m@v1", True),
        ("champion", "m@v2", True),
    ]
    assert doc["held"][0]["until"] == doc["moves"][2]["when"]
    only = cli("model", "history", "m", "--alias", "champion", "--json").json()
    assert [m["seq"] for m in only["moves"]] == [1, 3]
    today = datetime.now(UTC).date()
    now = cli("model", "history", "m", "--at", today.isoformat(), "--json").json()
    assert {(h["alias"], h["ref"]) for h in now["held"]} == {
        ("champion", "m@v2"),
        ("challenger", "m@v1"),
    }
    past = cli("model", "history", "m", "--at", "2020-01-01", "--json").json()
    assert past["held"] == [] and past["moves"] == []
    assert cli("model", "history", "m", "--at", "2020-01-01").stdout.strip() == (
        "m: no alias moves by 2020-01-01T23:59:59.999999+00:00"
    )
    text = cli("model", "history", "m").stdout
    assert "who held each alias" in text and "rollback drill" in text and "(holds it)" in text
    # A model with versions and no moves has an empty history.
    assert cli("model", "history", "r", "--json").json()["moves"] == []


def _move(seq: int, alias: str, before: int | None, after: int | None, minute: int) -> AliasMove:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return AliasMove(seq, alias, before, after, when, None, None)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["champion", "challenger"]), st.none() | st.integers(1, 4)),
        max_size=12,
    ),
    probe=st.integers(-1, 13),
)
def test_holdings_agree_with_the_replay_at_every_instant(
    steps: list[tuple[str, int | None]], probe: int
) -> None:
    """Who held an alias at an instant (from the holdings) is what replaying the moves made
    up to that instant gives."""
    held: dict[str, int] = {}
    log = []
    for i, (alias, after) in enumerate(steps):
        log.append(_move(i + 1, alias, held.get(alias), after, minute=i))
        if after is None:
            held.pop(alias, None)
        else:
            held[alias] = after
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=probe, seconds=30)
    covering = {
        h.alias: h.version
        for h in holdings(log)
        if h.since <= at and (h.until is None or h.until > at)
    }
    assert covering == replay(log, at)
    assert replay(log) == held


def test_at_parses_dates_and_timestamps() -> None:
    assert parse_at("2024-03-01") == datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_at("2024-03-01T10:30:00") == datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
    assert parse_at("2024-03-01T16:00:00+05:30") == datetime(2024, 3, 1, 10, 30, tzinfo=UTC)


def test_rm_refuses_an_aliased_version_and_force_records_the_alias_removal(
    cli, store: Path
) -> None:
    cli("model", "alias", "m@v1", "champion")
    cli("model", "alias", "m@v1", "challenger")
    before = tree(store)
    refused = cli("model", "rm", "m@v1")
    assert refused.exit_code == 2
    assert one_line_error(refused) == (
        "error: refusing to remove model m@v1 (alias challenger, champion points at it; "
        "--force removes the alias too) without --force"
    )
    assert tree(store) == before
    res = cli("model", "rm", "m@v1", "--force", "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["aliases_removed"] == ["challenger", "champion"]
    removals = moves(store)[-2:]
    assert [(h["alias"], h["from"], h["to"]) for h in removals] == [
        ("challenger", "m@v1", None),
        ("champion", "m@v1", None),
    ]
    assert removals[0]["reason"] == "model rm --force removed m@v1"
    assert registry.aliases(store, "m") == {}
    gone = cli("model", "show", "m@champion")
    assert "model m has no alias 'champion' (versions: v2; aliases: none)" in one_line_error(gone)
    # An unaliased version is removed as before.
    assert cli("model", "rm", "r@v1", "--force").stdout.strip() == "removed r@v1"


def test_the_registry_counts_candidates_trained(cli, store: Path) -> None:
    assert registry.candidates(store, "m") == 2
    assert cli("model", "show", "m@v1", "--json").json()["candidates"] == 2
    train_on_set(store)  # the same inputs again: no new candidate
    assert registry.candidates(store, "m") == 2
    registry.remove(store, "m@v1", force=True)
    assert registry.candidates(store, "m") == 2  # a removed version was still tried
    train_on_set(store, seed=8)
    assert registry.candidates(store, "m") == 3


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from quantcli.models import registry
root = Path({root!r})
print("ready", flush=True)
for i in range(100000):
    registry.set_alias(root, f"m@v{{1 + i % 2}}", "challenger", reason=f"move {{i}}")
"""


def test_a_killed_move_leaves_a_whole_history(store: Path) -> None:
    """SIGKILL a process moving an alias in a loop, at random points: every move on disk reads
    whole, their numbers run 1..n, the alias is the last one's target, and the next move and
    `model gc` work."""
    tests = str(Path(__file__).parent)
    rng = np.random.default_rng(3)
    for _ in range(4):
        code = CHILD.format(tests=tests, root=str(store))
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        # Kill while it is moving: after its first move of this round, at a random point.
        made = len(registry.alias_history(store, "m"))
        deadline = time.monotonic() + 60
        while len(registry.alias_history(store, "m")) == made and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0, 0.2)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        history = registry.alias_history(store, "m")
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        # Each move starts where the one before it ended: none was lost or half-made.
        assert history and [m.before for m in history] == [
            None,
            *(m.after for m in history[:-1]),
        ]
        assert all(m.reason is not None and m.reason.startswith("move ") for m in history)
        expected = history[-1].after if history else None
        assert registry.aliases(store, "m").get("challenger") == expected
    assert len(registry.alias_history(store, "m")) > 0
    registry.gc(store)
    assert not any((registry.models_root(store) / TMP_DIR).iterdir())
    move = registry.set_alias(store, "m@v1" if expected == 2 else "m@v2", "challenger")
    assert move is not None and move.seq == len(history) + 1


# ---------------------------------------------------------------------------------- compare


def test_compare_is_side_by_side_and_deterministic(cli, store: Path) -> None:
    args = ["model", "compare", "m@v1", "m@v2", *WINDOW, "--seed", "3", "--resamples", "400"]
    first = cli(*args, "--json")
    assert first.exit_code == 0, first.stderr
    assert cli(*args, "--json").stdout == first.stdout  # byte-identical for a seed
    doc = first.json()
    assert doc["a"]["ref"] == "m@v1" and doc["b"]["ref"] == "m@v2"
    assert doc["bootstrap"] == {
        "method": "stationary",
        "seed": 3,
        "resamples": 400,
        "block": 6,  # the cube root of 149 dates, above the horizon of 5
        "confidence": 0.95,
    }
    assert doc["dates"] == 149 and doc["rows"] == 149 * 4
    for side in ("a", "b"):
        assert {"auc", "log_loss", "accuracy", "brier", "ic_mean"} <= set(doc[side]["metrics"])
    loss = doc["tests"]["log_loss"]
    # The mean per-date improvement is A's log loss minus B's (equal row counts per date).
    gap = doc["a"]["metrics"]["log_loss"] - doc["b"]["metrics"]["log_loss"]
    assert loss["improvement"] == pytest.approx(gap, rel=1e-9)
    assert loss["ci"][0] <= loss["improvement"] <= loss["ci"][1]
    assert 1 / 401 <= loss["p_value"] <= 1
    assert set(doc["tests"]) == {"log_loss", "ic"}
    other = cli(*args[:-4], "--seed", "4", "--resamples", "400", "--json").json()
    assert other["tests"]["log_loss"]["ci"] != loss["ci"]  # the seed decides the resamples
    text = cli(*args)
    assert "A m@v1" in text.stdout and "p (B better)" in text.stdout


def test_the_bootstrap_is_arch_stationary_seeded_and_paired(store: Path) -> None:
    """The p-value is (1 + #{t* - t >= t}) / (K + 1) over arch's stationary resamples of the
    dates from numpy's Generator(seed); a version against itself improves by 0 with p = 1."""
    from arch.bootstrap import StationaryBootstrap

    from quantcli.features import open_feature_set
    from quantcli.models.compare import improvements, score_window
    from quantcli.models.metrics import daily_ic

    result = compare(store, "m@v1", "m@v2", features="fs@v1", start=START, end=END, seed=5,
                     resamples=300)  # fmt: skip
    fs = open_feature_set("fs@v1", store)
    models = registry.load(store, "m@v1"), registry.load(store, "m@v2")
    scored = score_window(*models, fs.frame(), fs.labels("direction:5"), START, END, "fs@v1")
    ic = daily_ic(scored.day, scored.score_a, scored.forward_return)
    series = improvements("classifier", scored, ic, ic)["log_loss"]
    sampler = StationaryBootstrap(6, np.arange(len(series)), seed=np.random.default_rng(5))
    means = np.array([series[d[0]].mean() for d, _ in sampler.bootstrap(300)])
    observed = series.mean()
    assert result.tests["log_loss"].improvement == pytest.approx(observed, rel=1e-12)
    expected = (1 + np.count_nonzero(means - observed >= observed)) / 301
    assert result.tests["log_loss"].p_value == pytest.approx(expected, rel=1e-12)
    same = compare(store, "m@v2", "m@v2", features="fs@v1", start=START, end=END, resamples=50)
    assert same.tests["log_loss"].improvement == 0 and same.tests["log_loss"].p_value == 1
    assert same.tests["ic"].improvement == 0


def test_regressors_compare_on_absolute_and_squared_error(cli, store: Path) -> None:
    doc = cli("model", "compare", "r@v1", "r@v2", *WINDOW, "--resamples", "200", "--json").json()
    assert set(doc["tests"]) == {"mae", "mse", "ic"}
    gap = doc["a"]["metrics"]["mae"] - doc["b"]["metrics"]["mae"]
    assert doc["tests"]["mae"]["improvement"] == pytest.approx(gap, rel=1e-9)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["m@v1", "m@v2", "--features", "fs@v1", "--from", "2023-06-01", "--to", "2023-12-01"],
            2,
            "window 2023-06-01..2023-12-01 overlaps m@v1's training window plus label horizon "
            "(2023-01-01..2023-07-07) on 2023-06-01..2023-07-07: choose dates after 2023-07-07",
        ),
        (["m@v1", "other@v1", *WINDOW], 2, "m@v1 and other@v1 have different feature schemas"),
        (["m@v1", "h10@v1", *WINDOW], 2, "m@v1 predicts direction:5 and h10@v1 predicts"),
        (["m@v1", "r@v1", *WINDOW], 2, "a comparison needs models of the same label"),
        (
            ["m@v1", "m@v2", "--features", "fs@v1", "--from", "2031-01-01", "--to", "2031-06-30"],
            65,
            "feature set fs@v1 has no rows between --from 2031-01-01 and --to 2031-06-30",
        ),
        (
            ["m@v1", "m@v2", "--features", "fs@v1", "--from", "2024-02-20", "--to", "2024-02-23"],
            65,
            "no rows of feature set fs@v1 between --from 2024-02-20 and --to 2024-02-23 have "
            "every feature, a label and a score (0 with null features, 16 without a label yet)",
        ),
        (["m@v1", "m@v2", *WINDOW, "--resamples", "0"], 2, "--resamples must be at least 1"),
        (["m@v1", "m@v2", *WINDOW, "--block", "0"], 2, "--block must be at least 1 session"),
        (["m@v1", "m@v2", *WINDOW, "--seed", "-1"], 2, "--seed must be >= 0"),
        (
            ["m@v1", "m@v2", "--features", "fs@v1", "--from", "2024-02-01", "--to", "2023-09-01"],
            2,
            "--to 2023-09-01 is before --from 2024-02-01",
        ),
        (["m@v1", "m@v2", *WINDOW[:2], "--from", "2023-7-10", "--to", "2024-02-01"], 2, "--from"),
        (["m@v1", "m@v2", "--features", "nope@v1", *WINDOW[2:]], 1, "feature set nope@v1"),
    ],
)
def test_compare_refusals_are_one_line_and_write_nothing(
    cli, store: Path, args: list[str], code: int, message: str
) -> None:
    before = tree(store)
    res = cli("model", "compare", *args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert tree(store) == before


def test_help_and_aliases_import_no_bootstrap_library(store: Path) -> None:
    root = ["--root", str(store)]
    invocations = [
        ["model", "--help"],
        ["model", "compare", "--help"],
        [*root, "model", "alias", "m@v1", "challenger"],
        [*root, "model", "history", "m"],
        [*root, "model", "show", "m@challenger"],
    ]
    assert modules_loaded(invocations, ("arch", "sklearn", "statsmodels")) == []


# ---------------------------------------------------------------------------------- promote


def test_promote_moves_champion_only_on_evidence(cli, store: Path) -> None:
    first = cli("model", "promote", "m@v1", "--json")
    assert first.exit_code == 0, first.stderr
    assert first.json()["promoted"] is True and first.json()["champion_before"] is None
    assert moves(store)[-1]["reason"] == "first champion"
    assert moves(store)[-1]["evidence"] is None
    # m@v2 (logistic) beats m@v1 (a 5-tree forest) on log loss.
    res = cli("model", "promote", "m@v2", *WINDOW, "--resamples", "300", "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["promoted"] is True and doc["passed"] is True and doc["forced"] is False
    entry = moves(store)[-1]
    assert (entry["from"], entry["to"], entry["reason"]) == (
        "m@v1",
        "m@v2",
        "passed the promotion gate",
    )
    evidence = entry["evidence"]
    assert evidence["statistic"] == "log_loss" and evidence["alpha"] == 0.05
    assert evidence["p_value"] < 0.05 and evidence["passed"] is True
    assert evidence["comparison"] == doc["comparison"]
    assert registry.resolve(store, "m@champion") == ("m", 2)
    same = cli("model", "promote", "m@v2")
    assert same.exit_code == 0 and "already champion" in same.stdout


def test_promote_refuses_without_evidence_exit_3(cli, store: Path) -> None:
    cli("model", "alias", "m@v2", "champion")
    before = tree(store)
    res = cli("model", "promote", "m@v1", *WINDOW, "--resamples", "300")
    assert res.exit_code == 3, res.stderr
    line = one_line_error(res)
    assert line.startswith("error: m@v1 does not beat champion m@v2: log_loss improvement -")
    assert "champion stays (--force --reason TEXT overrides)" in line
    assert "p (B better)" in res.stdout  # the evidence is printed
    assert tree(store) == before
    doc = cli("model", "promote", "m@v1", *WINDOW, "--resamples", "300", "--json")
    assert doc.exit_code == 3
    body = doc.json()
    assert body["promoted"] is False and body["error"]["exit_code"] == 3
    assert body["comparison"]["tests"]["log_loss"]["p_value"] > 0.05
    assert tree(store) == before
    # --force --reason overrides and records the evidence it overrode.
    forced = cli("model", "promote", "m@v1", *WINDOW, "--resamples", "300", "--force",
                 "--reason", "needed for the audit replay")  # fmt: skip
    assert forced.exit_code == 0, forced.stderr
    assert "forced over m@v2" in forced.stdout
    entry = moves(store)[-1]
    assert entry["reason"] == "needed for the audit replay"
    assert entry["evidence"]["passed"] is False and entry["to"] == "m@v1"


def test_promote_of_regressors_gates_on_mae(cli, store: Path) -> None:
    cli("model", "alias", "r@v1", "champion")
    res = cli("model", "promote", "r@v2", *WINDOW, "--resamples", "200", "--json")
    assert res.exit_code in (0, 3), res.stderr
    doc = res.json()
    mae = doc["comparison"]["tests"]["mae"]
    assert doc["promoted"] is (mae["p_value"] < 0.05)
    if doc["promoted"]:
        assert moves(store, "r")[-1]["evidence"]["statistic"] == "mae"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["m@v1", "--features", "fs@v1", "--from", "2023-06-01", "--to", "2023-12-01"],
            2,
            "overlaps m@v2's training window plus label horizon",
        ),
        (
            ["m@v1", "--features", "fs@v1", "--from", "2023-07-10", "--to", "2023-07-01"],
            2,
            "--to 2023-07-01 is before --from 2023-07-10",
        ),
        (["m@v1"], 2, "m@champion is m@v2: give --features, --from and --to"),
        (["m@v1", "--features", "fs@v1"], 2, "a comparison needs all of --features, --from"),
        (["m@v1", *WINDOW, "--alpha", "1.5"], 2, "--alpha must be between 0 and 1"),
        (["m@v1", *WINDOW, "--force"], 2, "--force needs --reason TEXT"),
        (
            ["m@v1", "--features", "fs@v1", "--from", "2031-01-01", "--to", "2031-06-30"],
            65,
            "no rows between --from 2031-01-01",
        ),
    ],
)
def test_promote_bad_input_leaves_the_history_unchanged(
    cli, store: Path, args: list[str], code: int, message: str
) -> None:
    cli("model", "alias", "m@v2", "champion")
    before = tree(store)
    res = cli("model", "promote", *args)
    assert res.exit_code == code, res.stderr
    assert message in one_line_error(res)
    assert tree(store) == before


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), st.integers(-3, 3), st.integers(-3, 3)), max_size=80
    ),
    scale=st.sampled_from([1.0, 0.1, 1e-3]),
)
def test_daily_ic_is_scipys_spearman_bit_for_bit(
    rows: list[tuple[int, int, int]], scale: float
) -> None:
    """The per-date IC (ties and constant dates included) has the same bits as scipy's
    spearmanr date by date, so metrics recorded before it still reproduce exactly."""
    from scipy.stats import spearmanr

    from quantcli.models.metrics import daily_ic

    d = np.array([r[0] for r in rows], dtype=np.int64)
    s = np.array([r[1] * scale for r in rows])
    f = np.array([r[2] * scale + 0.5 * r[1] for r in rows])
    expected = []
    for day in np.unique(d):
        m = d == day
        defined = m.sum() >= 2 and np.ptp(s[m]) > 0 and np.ptp(f[m]) > 0
        expected.append(float(spearmanr(s[m], f[m]).statistic) if defined else np.nan)
    assert np.array_equal(daily_ic(d, s, f), np.array(expected), equal_nan=True)


def test_compare_backtest_adds_the_model_strategy_runs(cli, store: Path) -> None:
    """--backtest also runs compare_backtests on the same window and prints both."""
    args = ["model", "compare", "m@v1", "m@v2", *WINDOW, "--resamples", "100", "--backtest"]
    res = cli(*args, "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["tests"]["log_loss"]["dates"] == 149  # model compare's own part is unchanged
    runs = doc["backtest"]
    assert runs["a"]["ref"] == "m@v1" and runs["b"]["ref"] == "m@v2"
    assert runs["a"]["candidates"] == 2 and runs["window"]["from"] >= "2023-07-10"
    assert set(runs["tests"]) == {"sharpe", "mean_return"}
    assert cli(*args, "--json").stdout == res.stdout
    text = cli(*args).stdout
    assert "backtests on bars@v1" in text and "deflated_psr" in text
    overlap = cli(*args[:4], "--features", "fs@v1", "--from", "2023-06-01", "--to", "2023-12-01",
                  "--backtest")  # fmt: skip
    assert overlap.exit_code == 2 and "overlaps m@v1's training window" in one_line_error(overlap)
