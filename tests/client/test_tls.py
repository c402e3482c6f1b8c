"""The clients make TLS only for https: a plain loopback service costs no certificate loading,
and an https one is still verified."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swarmperf.client import SwarmClient, SyncSwarmClient
from swarmperf.core.errors import ServiceUnavailable

STATUS = {"swarm_id": "plain", "state": "running"}


class Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(STATUS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@pytest.fixture
def plain() -> Iterator[str]:
    yield from _serving(ThreadingHTTPServer(("127.0.0.1", 0), Status))


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serving(server)


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every loading of trusted certificates from here on."""
    calls: list[str] = []
    for method in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
        original = getattr(ssl.SSLContext, method)

        def counted(self: ssl.SSLContext, *args: Any, _m: str = method, _o: Any = original) -> Any:
            calls.append(_m)
            return _o(self, *args)

        monkeypatch.setattr(ssl.SSLContext, method, counted)
    return calls


def test_a_plain_http_client_loads_no_certificates(plain: str, loaded: list[str]) -> None:
    with SyncSwarmClient(url=f"http://{plain}", token="t", retries=0) as client:
        assert client.status() == STATUS

    async def ask() -> dict[str, Any]:
        async with SwarmClient(url=f"http://{plain}", token="t", retries=0) as client:
            return await client.status()

    assert asyncio.run(ask()) == STATUS
    assert loaded == []


def test_an_https_client_still_verifies_the_certificate(self_signed: str) -> None:
    with (
        SyncSwarmClient(url=f"https://{self_signed}", token="t", retries=0) as client,
        pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.status()

    async def ask() -> None:
        async with SwarmClient(url=f"https://{self_signed}", token="t", retries=0) as client:
            await client.status()

    with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(ask())
