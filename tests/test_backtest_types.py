"""The typed backtest config (enums shared with the market model) and the typed run manifest
(versioned, lossless round trip, one clear line when damaged)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_backtest_results_runs import fake_result, no_store  # noqa: F401 (autouse fixture)

from quantcli.backtest import runs
from quantcli.backtest.config import BacktestConfig, Fill, OnReject
from quantcli.errors import UsageError
from quantcli.market import charges
from quantcli.market.segments import Segment


def test_config_choices_are_enums_equal_to_their_text() -> None:
    c = BacktestConfig("d", "s", segment="intraday", fill="close", on_reject="error")
    assert (c.segment, c.fill, c.on_reject) == (Segment.INTRADAY, Fill.CLOSE, OnReject.ERROR)
    assert c.segment == "intraday" and c.fill == "close" and c.on_reject == "error"
    assert charges.Segment is Segment  # one segment enum, the market model's
    assert c.to_dict()["segment"] == "intraday" and type(c.to_dict()["segment"]) is str
    assert BacktestConfig.from_dict(c.to_dict()) == c
    assert json.dumps(c.to_dict()["fill"]) == '"close"'


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("segment", "bonds", "unknown segment 'bonds': --segment takes delivery | intraday"),
        ("fill", "mid", "unknown fill 'mid': --fill takes open | close"),
        ("on_reject", "x", "unknown on_reject 'x': --on-reject takes record | error"),
    ],
)
def test_a_bad_choice_names_its_flag(field: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BacktestConfig("d", "s", **{field: value})


def test_a_bad_segment_on_the_cli_is_one_line(cli, tmp_path: Path) -> None:
    res = cli("backtest", "-d", "x", "-s", "sma_cross", "--segment", "cash")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: unknown segment 'cash': --segment takes delivery | intraday | futures | options"
    ]


# --- the run manifest ------------------------------------------------------------------------


def _saved(tmp_path: Path) -> tuple[runs.Run, dict[str, Any]]:
    run = runs.save_run(fake_result(), tmp_path / "runs", root=tmp_path)
    return run, json.loads((run.path / runs.MANIFEST).read_text())


def test_the_run_manifest_is_typed_and_round_trips_to_the_same_bytes(tmp_path: Path) -> None:
    run, raw = _saved(tmp_path)
    manifest = runs.RunManifest.from_dict(raw)
    assert manifest == run.manifest and manifest.format == runs.FORMAT_VERSION == raw["format"]
    assert (
        isinstance(manifest.config, BacktestConfig) and manifest.config.segment is Segment.DELIVERY
    )
    assert manifest.dataset.content_hash == "c0ffee" * 10 and manifest.strategy.name == "sma_cross"
    assert manifest.to_dict() == raw
    written = (run.path / runs.MANIFEST).read_text()
    assert written == json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n"


def _damage(raw: dict[str, Any], key: str, value: object) -> None:
    section, _, field = key.rpartition(".")
    target = raw[section] if section else raw
    if value is None:
        del target[field]
    else:
        target[field] = value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", 3, "run manifest format 3 is not one this quantcli reads (1, 2): upgrade"),
        ("format", "2", "damaged run manifest: 'format' is str, not int"),
        ("outputs", None, "damaged run manifest: no 'outputs'"),
        ("bars", "many", "damaged run manifest: 'bars' is str, not int"),
        ("dataset.version", True, "damaged run manifest: 'version' is bool, not int"),
        ("config.segment", "cash", "damaged run manifest: 'config': unknown segment 'cash'"),
        ("inputs.options", {"hash": "x"}, "damaged run manifest: an 'inputs' entry has no sha256"),
        ("warnings", [1], "damaged run manifest: 'warnings' is not a list of strings"),
    ],
)
def test_a_damaged_or_unknown_manifest_is_one_line(
    cli, tmp_path: Path, key: str, value: object, message: str
) -> None:
    run, raw = _saved(tmp_path)
    _damage(raw, key, value)
    (run.path / runs.MANIFEST).write_text(json.dumps(raw))
    for command in ("show", "reproduce"):
        res = cli("backtest", command, str(run.path))
        assert res.exit_code == 1, res.stdout
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith(f"error: {run.path / runs.MANIFEST}: {message}"), line
    # Listing skips what it cannot read rather than failing on it.
    assert runs.list_runs(tmp_path / "runs") == []


configs = st.builds(
    BacktestConfig,
    dataset=st.sampled_from(["px", "px@v2", "nse@c0ffee"]),
    strategy=st.sampled_from(["sma_cross", "strats/dip.py:Dip"]),
    params=st.dictionaries(st.sampled_from(["fast", "slow", "qty"]), st.from_regex(r"[0-9]{1,3}")),
    symbols=st.none() | st.lists(st.sampled_from(["AAA", "BBB"]), min_size=1).map(tuple),
    start=st.none() | st.dates(date(2010, 1, 1), date(2015, 1, 1)),
    cash=st.floats(1.0, 1e9),
    segment=st.sampled_from(list(Segment)) | st.sampled_from([s.value for s in Segment]),
    fill=st.sampled_from(["open", "close"]),
    on_reject=st.sampled_from(list(OnReject)),
    costs=st.sampled_from(["statutory", "flat:0.05%"]),
)


@settings(max_examples=60, deadline=None)
@given(
    config=configs, fmt=st.sampled_from(runs.FORMATS), prices=st.none() | st.just("split_adjusted")
)
def test_any_manifest_round_trips_through_json(config: BacktestConfig, fmt: int, prices) -> None:
    strategy = runs.StrategyInfo(config.strategy, "s", "ab" * 32, config.params)
    inputs = {"strategy": {"sha256": "ab" * 32}, "dataset": {"sha256": "cd" * 32}}
    manifest = runs.RunManifest(
        run_id="s-px-0123456789ab",
        created_at="2026-12-01T00:00:00+00:00",
        config=config,
        dataset=runs.DatasetInfo(config.dataset, "px", 2, "cd" * 32, prices),
        strategy=strategy,
        seed=config.seed,
        bars=7,
        versions={"quantcli": "0"},
        outputs={"fills.parquet": "ef" * 32},
        summary={"final_equity": 1.5, "start": None},
        inputs=inputs if fmt == 1 else {**inputs, "options": {"sha256": "0" * 64, "n": 1}},
        warnings=("one", "two"),
        format=fmt,
    )
    text = json.dumps(manifest.to_dict(), sort_keys=True)
    again = runs.RunManifest.from_dict(json.loads(text))
    assert again == manifest
    assert json.dumps(again.to_dict(), sort_keys=True) == text
