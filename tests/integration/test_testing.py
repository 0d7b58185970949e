"""resume.testing: the helpers make real handshakes that resume, on TLS 1.2 and 1.3."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from resume import SessionCache, SessionHandle
from resume.testing import (
    TLS_VERSION_NAMES,
    FakeClock,
    ThrowawayPKI,
    loopback_handshake,
    memory_handshake,
    pin_tls_version,
)

VERSIONS = ["1.2", "1.3"]


@pytest.fixture(scope="module")
def pki() -> ThrowawayPKI:
    return ThrowawayPKI()


@pytest.mark.parametrize("version", VERSIONS)
def test_memory_handshake_resumes_with_the_session_it_made(pki: ThrowawayPKI, version: str) -> None:
    """A session read after the server's byte resumes on the next memory handshake."""
    server, client = pki.server_context(version), pki.client_context(version)
    first, _ = memory_handshake(client, server)
    assert first.version() == TLS_VERSION_NAMES[version]
    assert not first.session_reused
    second, _ = memory_handshake(client, server, session=first.session)
    assert second.session_reused


@pytest.mark.parametrize("version", VERSIONS)
def test_memory_handshake_offers_a_handle(pki: ThrowawayPKI, version: str) -> None:
    """A SessionHandle is offered with SSL_set_session() and resumes."""
    server, client = pki.server_context(version), pki.client_context(version)
    first, _ = memory_handshake(client, server)
    assert first.session is not None
    handle = SessionHandle.from_ssl(first.session)
    try:
        second, _ = memory_handshake(client, server, handle=handle)
        assert second.session_reused
    finally:
        handle.free()


@pytest.mark.parametrize("version", VERSIONS)
def test_loopback_handshake_resumes(pki: ThrowawayPKI, version: str) -> None:
    """Over a real socket, the second connection resumes the first one's session."""
    server, client = pki.server_context(version), pki.client_context(version)
    session, reused = loopback_handshake(client, server)
    assert not reused
    _, reused = loopback_handshake(client, server, session=session)
    assert reused


def test_untrusted_server_fails_verification(pki: ThrowawayPKI) -> None:
    """A client of another throwaway CA does not trust this one's server."""
    other = ThrowawayPKI()
    with pytest.raises(ssl.SSLCertVerificationError):
        memory_handshake(other.client_context("1.3"), pki.server_context("1.3"))


@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificates_reach_the_server(pki: ThrowawayPKI, version: str) -> None:
    """client_cert=0 presents the first client certificate to a server that requires one."""
    server = pki.server_context(version, client_certs=ssl.CERT_REQUIRED)
    _, seen = memory_handshake(pki.client_context(version, client_cert=0), server)
    cert = seen.getpeercert()
    assert cert is not None
    assert "client-a@example.test" in repr(cert)


def test_write_makes_private_key_files(pki: ThrowawayPKI, tmp_path: Path) -> None:
    """Key files are 0600 and the PEM files load into a context."""
    files = pki.write(tmp_path)
    for key in (files.key, files.client):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    client = ssl.create_default_context(cafile=str(files.ca))
    client.load_cert_chain(files.client)


def test_fake_clock_drives_cache_expiry(pki: ThrowawayPKI) -> None:
    """A cached session expires when the fake clock passes its timeout, with no sleep."""
    c, _ = memory_handshake(pki.client_context("1.2"), pki.server_context("1.2"))
    assert c.session is not None
    clock = FakeClock(c.session.time)
    cache = SessionCache(timeout=10, clock=clock)
    handle = SessionHandle.from_ssl(c.session)
    cache.add("k", handle)
    handle.free()
    assert cache.get0("k") is not None
    clock.advance(11)
    assert cache.get0("k") is None


def test_bad_arguments() -> None:
    """Unknown key types and TLS versions are refused with ValueError."""
    with pytest.raises(ValueError, match="key_type"):
        ThrowawayPKI(key_type="dsa")
    with pytest.raises(ValueError, match="TLS version"):
        pin_tls_version(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), "1.1")


def test_rsa_contexts_are_pinned_and_verify() -> None:
    """key_type="rsa" works too; pinned contexts verify the certificate and the name."""
    pki = ThrowawayPKI(key_type="rsa")
    server, client = pki.server_context("1.2"), pki.client_context("1.2")
    assert server.maximum_version == client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    c, _ = memory_handshake(client, server)
    assert c.version() == "TLSv1.2"
