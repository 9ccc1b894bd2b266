"""The one redaction: URL credentials, auth headers, bearer tokens, secret-named variables and
configured secrets become ``***``; ordinary text (templates, dates, counts) is untouched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcli.core.redact import REDACTED, add_secret, known_secrets, redact, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://user:pw123456@host.example/a/{date:%Y}/f.zip failed",
            "GET https://***@host.example/a/{date:%Y}/f.zip failed",
        ),
        (
            "https://h.example/f.zip?token=abcdef&d={date:%d}&api_key=zz9",
            "https://h.example/f.zip?token=***&d={date:%d}&api_key=***",
        ),
        ("X-Amz-Signature=deadbeef&X-Amz-Date=1", "X-Amz-Signature=***&X-Amz-Date=1"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: ***"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "***"}'),
        ("sent bearer abc123XYZ to the mirror", "sent bearer *** to the mirror"),
        ("password=hunter22 in the log", "password=*** in the log"),
    ],
)
def test_credentials_in_text_are_redacted(text: str, expected: str) -> None:
    assert redact(text, env={}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://archives.nseindia.com/content/{date:%Y}/{MON}/cm{date:%d}{MON}{date:%Y}bhav.csv.zip",
        "sessions=3 session=2024-01-02 sort_keys=true author=me",
        "nse@v3: ok (5 files); --spec basic features; 2024-07-05",
        "/srv/drop/cm05JUL2024bhav.csv.zip: no such file",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact(text, env={"HOME": "/root", "SHORT_KEY": "1"}) == text


def test_secret_named_environment_values_are_redacted_wherever_they_appear() -> None:
    env = {"NSE_API_TOKEN": "tok-987654", "DB_PASSWORD": "pa55word!", "MY_KEY": "k3y-material"}
    text = "fetched /x/tok-987654/y with pa55word! and k3y-material, not HOME"
    assert redact(text, env=env) == f"fetched /x/{REDACTED}/y with *** and ***, not HOME"
    # Too short to be a credential: replacing it would blank ordinary digits.
    assert redact("exit 1", env={"FOO_KEY": "1"}) == "exit 1"


def test_registered_secrets_are_redacted() -> None:
    add_secret("registered-secret-42")
    assert "registered-secret-42" in known_secrets({})
    assert redact("x registered-secret-42 y", env={}) == "x *** y"


def test_documents_are_redacted_by_key_and_by_value() -> None:
    doc = {
        "api_key": "zz-top-secret",
        "headers": {"Authorization": "Bearer abcdef"},
        "urls": ["https://u:p4ssw0rd@h/x", ("https://h/x?sig=abc",)],
        "sessions": ["2024-01-02"],
        "retries": 3,
    }
    assert redact_value(doc, env={}) == {
        "api_key": REDACTED,
        "headers": {"Authorization": REDACTED},
        "urls": ["https://***@h/x", ("https://h/x?sig=***",)],
        "sessions": ["2024-01-02"],
        "retries": 3,
    }


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_redaction_is_idempotent_and_never_leaks_the_planted_token(noise: str) -> None:
    secret = "Zq8-planted-7Yx"
    text = f"{noise} https://h/x?token={secret} {noise}"
    once = redact(text, env={})
    assert secret not in once
    assert redact(once, env={}) == once
