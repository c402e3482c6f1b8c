"""Secrets masked in URLs, headers and free text, and everything else left readable."""

from __future__ import annotations

import pytest

from swarmperf.core.redact import (
    MASK,
    auth_secrets,
    redact_headers,
    redact_text,
    redact_url,
    url_secrets,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefghijklmnopqrstuvwx",
            "https://hooks.slack.com/services/***/***/***",
        ),
        (
            "http://ops:hunter2@127.0.0.1:8080/hook?token=t0k3n&region=eu#part",
            "http://***@127.0.0.1:8080/hook?token=***&region=***#***",
        ),
        ("https://api.example.com/hooks/9f8e7d6c5b4a39281716", "https://api.example.com/hooks/***"),
        ("https://events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com/v2/enqueue"),
        ("https://alerts.example.com/api/v1/alerts", "https://alerts.example.com/api/v1/alerts"),
        ("http://[::1]:9000/a?apikey", "http://[::1]:9000/a?***"),
        ("http://host:99999999/", MASK),
    ],
)
def test_a_url_keeps_where_it_goes_and_loses_its_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_any_path_can_be_declared_secret() -> None:
    url = "http://127.0.0.1:8080/services/T1/B2/short"
    assert redact_url(url) == url
    assert redact_url(url, secret_path=True) == "http://127.0.0.1:8080/services/***/***/***"
    assert {"T1", "B2", "short"} <= set(url_secrets(url, secret_path=True))


def test_free_text_loses_urls_auth_schemes_key_values_and_named_secrets() -> None:
    text = (
        "HTTP 401 from http://a:b@h/x?token=abc (Authorization: Bearer eyJhbGci.x.y) "
        "password=hunter22 'routing_key': 'R0UTINGKEY' echo: s3cr3t-value!"
    )
    shown = redact_text(text, ["s3cr3t-value", "ab"])
    for secret in ("abc", "eyJhbGci", "hunter22", "R0UTINGKEY", "s3cr3t-value"):
        assert secret not in shown
    assert "http://***@h/x?token=***" in shown
    assert "Bearer ***" in shown
    # Too short to be a secret: masking it would mask ordinary words.
    assert "echo: " in shown
    assert "HTTP 401" in shown


def test_credential_headers_are_masked() -> None:
    headers = {"Authorization": "Bearer x", "X-Api-Key": "k", "Content-Type": "json"}
    assert redact_headers(headers) == {
        "Authorization": MASK,
        "X-Api-Key": MASK,
        "Content-Type": "json",
    }


def test_an_smtp_password_is_also_found_as_sent_by_auth_plain_and_login() -> None:
    found = auth_secrets("swarm", "pw123456")
    assert found[0] == "pw123456"
    assert "AHN3YXJtAHB3MTIzNDU2" in found  # base64 of "\0swarm\0pw123456"
    assert auth_secrets("swarm", None) == []


def test_what_is_not_a_url_is_left_alone() -> None:
    assert redact_url("mypkg.api:handle") == "mypkg.api:handle"
    assert redact_text("module:function failed") == "module:function failed"
