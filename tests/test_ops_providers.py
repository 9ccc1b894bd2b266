"""Providers: parsing and validating templates, rendering a session's URL, redacting secrets."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.core.redact import redact
from quantcli.errors import UsageError
from quantcli.ops.providers import MONTHS, Provider, parse_provider, render

NSE_LEGACY = (
    "https://archives.nseindia.com/content/historical/EQUITIES/{date:%Y}/{MON}/"
    "cm{date:%d}{MON}{date:%Y}bhav.csv.zip"
)
NSE_UDIFF = (
    "https://nsearchives.nseindia.com/content/cm/BhavCopy_NSE_CM_0_0_0_{date:%Y%m%d}_F_0000.csv.zip"
)
days = st.dates(min_value=date(1994, 11, 3), max_value=date(2099, 12, 31))


def test_nse_archive_templates_render_nse_names() -> None:
    legacy = parse_provider(NSE_LEGACY)
    assert legacy == Provider("url", NSE_LEGACY, NSE_LEGACY)
    assert render(legacy, date(2024, 7, 5)) == (
        "https://archives.nseindia.com/content/historical/EQUITIES/2024/JUL/cm05JUL2024bhav.csv.zip"
    )
    udiff = parse_provider(NSE_UDIFF)
    assert render(udiff, date(2024, 7, 8)).endswith("BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv.zip")


@given(days)
def test_legacy_names_round_trip_to_their_session(day: date) -> None:
    name = render(parse_provider(NSE_LEGACY), day).rsplit("/", 1)[1]
    assert name == f"cm{day:%d}{MONTHS[day.month - 1]}{day:%Y}bhav.csv.zip"
    assert datetime.strptime(name, "cm%d%b%Ybhav.csv.zip").date() == day
    assert f"/{day:%Y}/{MONTHS[day.month - 1]}/" in render(parse_provider(NSE_LEGACY), day)


@given(
    st.lists(
        st.one_of(
            st.text(
                st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="{}"),
                max_size=5,
            ),
            st.sampled_from(["{date:%Y}", "{date:%m}", "{date:%d}", "{MON}", "{date}", "{{"]),
        ),
        max_size=8,
    ),
    days,
)
def test_any_accepted_template_renders_every_session(parts: list[str], day: date) -> None:
    text = "https://mirror.example/" + "".join(parts) + "{date:%Y%m%d}.zip"
    provider = parse_provider(text)
    rendered = render(provider, day)
    assert rendered.count("{") == parts.count("{{")
    assert rendered.endswith(f"{day:%Y%m%d}.zip")


def test_distinct_sessions_render_distinct_urls() -> None:
    provider = parse_provider(NSE_UDIFF)
    assert render(provider, date(2024, 7, 8)) != render(provider, date(2024, 7, 9))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://x.example/{day:%Y}.zip", "unknown field {day}"),
        ("https://x.example/{date:%Y", "a bad format"),
        ("https://x.example/{MON:>>5x}{date:%d}", "a bad format"),
        ("https://x.example/{}{date:%d}", "a positional field"),
        ("https://x.example/{date.foo}", "a bad field attribute"),
        ("https://x.example/bhav.zip", "the same file for every session"),
        ("https://x.example/{MON}/bhav.zip", "the same file for every session"),
        ("ftp://x.example/{date:%Y%m%d}.zip", "unsupported scheme ftp://"),
        ("https://x.example:99999/{date:%Y%m%d}.zip", "Port out of range 0-65535"),
        ("https:///{date:%Y%m%d}.zip", "the URL names no host"),
        ("http://[::1/{date:%Y%m%d}", "not a URL (Invalid IPv6 URL)"),
        ("http://me:pw@[::1/{date:%Y%m%d}?token=t", "http://***@[::1/{date:%Y%m%d}: not a URL"),
        ("http://x.example/a b/{date:%Y%m%d}", "holds a space or control character"),
        ("http://exa\x01mple/{date:%Y%m%d}", "holds a space or control character"),
        ("  ", "--provider is empty"),
    ],
)
def test_bad_templates_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_provider(text)
    assert problem in str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_drop_directory_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = parse_provider("drop/cm{date:%d}{MON}{date:%Y}bhav.csv.zip")
    assert relative.kind == "dir"
    assert render(relative, date(2024, 1, 2)) == str(tmp_path / "drop" / "cm02JAN2024bhav.csv.zip")
    url = parse_provider(f"file://{tmp_path}/{{date:%Y%m%d}}.zip")
    assert url.kind == "dir"
    assert render(url, date(2024, 1, 2)) == f"{tmp_path}/20240102.zip"


def test_a_plain_drop_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"the same file for every session; put the date in it"):
        parse_provider(str(tmp_path))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:hunter2@mirror.example/{date:%Y%m%d}.zip",
            "https://***@mirror.example/{date:%Y%m%d}.zip",
        ),
        (
            "https://mirror.example/{date:%Y%m%d}.zip?token=s3cr3t&day={date:%d}",
            "https://mirror.example/{date:%Y%m%d}.zip?token=***&day={date:%d}",
        ),
        (
            "https://m.example/f?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&api_key=k&v=1",
            "https://m.example/f?X-Amz-Signature=***&X-Amz-Credential=***&api_key=***&v=1",
        ),
        ("https://mirror.example/a.zip", "https://mirror.example/a.zip"),
        ("/srv/drop/{date:%Y}.zip", "/srv/drop/{date:%Y}.zip"),
    ],
)
def test_redaction(url: str, shown: str) -> None:
    assert redact(url) == shown


@given(st.text(st.characters(categories=["L", "N"]), max_size=20).map(lambda s: f"sk-{s}"))
def test_labels_never_hold_the_secret(secret: str) -> None:
    provider = parse_provider(
        f"https://me:{secret}@mirror.example/{{date:%Y%m%d}}.zip?access_token={secret}"
    )
    assert secret not in provider.label
    assert secret in provider.template  # still there to fetch with
