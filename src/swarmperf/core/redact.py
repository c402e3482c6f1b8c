"""Hiding secrets (URL tokens, keys, passwords) in anything that may be printed or stored."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

MASK = "***"

# Hosts whose whole URL path is a credential: whoever knows it can post as the owner.
_SECRET_PATH_HOSTS = (
    "hooks.slack.com",
    "events.pagerduty.com",
    "discord.com",
    "discordapp.com",
    "webhook.office.com",
    "outlook.office.com",
    "api.telegram.org",
)
# The fixed words of those paths, kept so that a redacted URL still says what it is.
_PATH_WORDS = frozenset(
    {"services", "workflows", "triggers", "api", "webhooks", "webhookb2", "integration"}
    | {"enqueue", "v1", "v2", "incomingwebhook", "bot", "sendmessage"}
)
# Elsewhere, a path segment that looks generated (long, with digits) is taken for a token.
_TOKEN_SEGMENT = re.compile(r"(?=[^/]*\d)[A-Za-z0-9_\-.~+=%]{16,}")
# Header names whose values are credentials.
_SECRET_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|signature|session", re.I)
# `scheme://...` up to whitespace or a closing quote/bracket.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}]+")
# Credentials written as `Bearer x`, `Basic x`, or `password=x` / `token: x` in free text.
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]+", re.I)
_KEY_VALUE = re.compile(
    r"\b((?:api[_-]?)?(?:key|token|secret|passw(?:or)?d|routing[_-]key|auth)[\"']?\s*[=:]\s*)"
    r"[\"']?[^\s\"'&,;]+[\"']?",
    re.I,
)
# Shorter "secrets" are not masked in free text: they would mask ordinary words and numbers.
MIN_SECRET = 6


def _secret_path(parts: SplitResult) -> bool:
    host = (parts.hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _SECRET_PATH_HOSTS)


def _path_secrets(parts: SplitResult, secret_path: bool) -> list[str]:
    segments = [s for s in parts.path.split("/") if s]
    if secret_path or _secret_path(parts):
        return [s for s in segments if s.lower() not in _PATH_WORDS]
    return [s for s in segments if _TOKEN_SEGMENT.fullmatch(s)]


def url_secrets(url: str, *, secret_path: bool = False) -> list[str]:
    """The parts of `url` that are (or may be) credentials: the userinfo password (or a bare
    user name, which some services use as the token), query values, the fragment, and path
    segments that are tokens (all of them with `secret_path`, or for a known service's
    host). Both as written and percent-decoded."""
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
    except ValueError:
        return []
    found: list[str] = []
    if password:
        found.append(password)
    elif username:
        found.append(username)
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
    found += [v for v in parts.query.split("&") if "=" not in v and v]
    if parts.fragment:
        found.append(parts.fragment)
    found += _path_secrets(parts, secret_path)
    return sorted({s for v in found for s in (v, unquote(v), quote(v, safe="")) if s}, key=len)


def redact_url(url: str, *, secret_path: bool = False) -> str:
    """`url` with its credentials masked: userinfo, every query value, the fragment, the path
    of services whose path is the key (Slack, PagerDuty, Discord, Teams..., or any URL with
    `secret_path`), and path segments that look like tokens elsewhere. Scheme, host and
    port stay, to say where."""
    try:
        parts = urlsplit(url)
        port = parts.port
        has_user = parts.username is not None or parts.password is not None
    except ValueError:
        return MASK
    if "://" not in url:  # not a URL (e.g. `module:function`): nothing to mask
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{MASK}@" if has_user else "") + host + (f":{port}" if port is not None else "")
    secret_segments = set(_path_secrets(parts, secret_path))
    path = "/".join(MASK if s in secret_segments else s for s in parts.path.split("/"))
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else MASK
        for pair in parts.query.split("&")
        if pair
    )
    out = f"{parts.scheme}://{netloc}{path}"
    if query:
        out += f"?{query}"
    if parts.fragment:
        out += f"#{MASK}"
    return out


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL in it redacted (`redact_url`), `Bearer x` / `password=x` style
    credentials masked, and each of `secrets` (at least MIN_SECRET long) masked wherever it
    appears, e.g. echoed back in a server's error message."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)


def is_secret_header(name: str) -> bool:
    return bool(_SECRET_HEADER.search(name))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with the values of credential headers (Authorization, *-Token, *-Key...)
    masked."""
    return {k: MASK if is_secret_header(k) else v for k, v in headers.items()}


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The credential values of `headers`, and their token part after an auth scheme."""
    found: list[str] = []
    for name, value in headers.items():
        if is_secret_header(name):
            found.append(value)
            found.append(value.split(None, 1)[-1])
    return found


def auth_secrets(username: str | None, password: str | None) -> list[str]:
    """A password, and the forms SMTP AUTH PLAIN and LOGIN send it in (base64), which a
    server may quote back in its error reply."""
    if not password:
        return []
    user = username or ""
    plain = f"\0{user}\0{password}".encode()
    return [
        password,
        base64.b64encode(plain).decode("ascii"),
        base64.b64encode(password.encode()).decode("ascii"),
    ]
