"""Real TLS sessions for the core tests, made with resume.testing.

``make_pki(version)`` gives a throwaway CA and a server and a client context
pinned to one TLS version; ``handshake(pki, session)`` is one blocking loopback
connection (integration tests); ``memory_session(pki)`` is a session from a
handshake over memory BIOs, for the unit tests, which open no socket.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import trustme

from resume.testing import FakeClock, ThrowawayPKI, loopback_handshake, memory_handshake

__all__ = ["VERSIONS", "FakeClock", "Pki", "handshake", "make_pki", "memory_session"]

#: The TLS versions every TLS test runs under.
VERSIONS = ("1.2", "1.3")


@dataclass
class Pki:
    """A throwaway CA, a server context and a client context that trusts it."""

    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_pki(version: str) -> Pki:
    pki = ThrowawayPKI("localhost")
    return Pki(pki.ca, pki.server_context(version), pki.client_context(version))


def handshake(
    pki: Pki, session: ssl.SSLSession | None = None, *, clean: bool = True
) -> tuple[ssl.SSLSession, bool]:
    """One loopback connection offering *session*; see resume.testing.loopback_handshake."""
    return loopback_handshake(pki.client, pki.server, session=session, clean=clean)


def memory_session(pki: Pki) -> ssl.SSLSession:
    """The client's session of one handshake over memory BIOs (after the server's byte)."""
    client, _ = memory_handshake(pki.client, pki.server)
    session = client.session
    assert session is not None
    return session
