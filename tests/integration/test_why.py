"""The reasons behind each resumption decision: counted on the cache, logged on ``resume``.

Real sessions from loopback handshakes (tests/corehelpers.py) drive the sans-I/O
client policy directly; the HTTP clients' end-to-end records are in
tests/test_http_clients.py.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import pytest
from corehelpers import FakeClock, handshake, make_pki

import resume


@dataclass
class FakeTLS:
    """What the policy reads from an SSL object after a handshake."""

    session: ssl.SSLSession | None
    session_reused: bool
    tls_version: str

    def version(self) -> str:
        return self.tls_version


def _cache(clock: FakeClock) -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT, clock=clock)


def _store(cache: resume.SessionCache, context: ssl.SSLContext, tls: FakeTLS) -> None:
    conn = resume.ClientConnection.start(cache, context, "localhost", 443)
    conn.handshake_complete(tls)
    assert conn.close(tls, clean=True)


class TestReasons:
    def test_offered_then_expired(self) -> None:
        """A stored session is "offered"; once past its lifetime the look-up says "expired"."""
        pki = make_pki("1.2")
        session, _ = handshake(pki)
        clock = FakeClock()
        cache = _cache(clock)
        _store(cache, pki.client, FakeTLS(session, False, "TLSv1.2"))
        conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        assert conn.offered is not None
        conn.abandon()
        clock.advance(301)
        conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        assert conn.offered is None
        assert cache.statistics().decisions == {"no session": 1, "offered": 1, "expired": 1}

    def test_ticket_already_used(self) -> None:
        """A TLS 1.3 ticket is offered once; the next look-up says "ticket already used"."""
        pki = make_pki("1.3")
        session, _ = handshake(pki)
        assert session.has_ticket
        cache = _cache(FakeClock())
        _store(cache, pki.client, FakeTLS(session, False, "TLSv1.3"))
        first = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        assert first.offered is not None
        first.abandon()
        second = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        assert second.offered is None
        assert cache.statistics().decisions["ticket already used"] == 1

    def test_other_configuration(self) -> None:
        """A server last reached with another context: "other configuration", nothing offered."""
        pki = make_pki("1.2")
        session, _ = handshake(pki)
        cache = _cache(FakeClock())
        _store(cache, pki.client, FakeTLS(session, False, "TLSv1.2"))
        other = ssl.create_default_context()
        pki.ca.configure_trust(other)
        conn = resume.ClientConnection.start(cache, other, "localhost", 443)
        assert conn.offered is None
        assert cache.statistics().decisions["other configuration"] == 1

    def test_accepted_and_declined(self) -> None:
        """The server's answer to an offer is counted: "accepted" or "declined" (then dropped)."""
        pki = make_pki("1.2")
        session, _ = handshake(pki)
        cache = _cache(FakeClock())
        _store(cache, pki.client, FakeTLS(session, False, "TLSv1.2"))
        conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        conn.handshake_complete(FakeTLS(session, True, "TLSv1.2"))
        conn.close(None, clean=False)
        conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        conn.handshake_complete(FakeTLS(session, False, "TLSv1.2"))
        conn.close(None, clean=False)
        decisions = cache.statistics().decisions
        assert decisions["accepted"] == 1
        assert decisions["declined"] == 1
        assert len(cache) == 0

    def test_store_unavailable(self) -> None:
        """A store that does not answer: the miss says "store unavailable", until detached."""
        import socket

        from resume.stores import RedisStore, attach_store

        with socket.socket() as probe:  # a loopback port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        pki = make_pki("1.2")
        cache = _cache(FakeClock())
        store = RedisStore(f"redis://127.0.0.1:{port}/0", key=bytes(32), timeout=0.5)
        link = attach_store(cache, store)
        link.register_context(pki.client, label="why")  # its keys go to the store
        try:
            key = resume.make_key(pki.client, "localhost", 443)
            with pytest.warns(resume.StoreWarning):
                assert link.fetch(key) is False  # the store is down: the link says so
            conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
            assert conn.offered is None
            conn.abandon()
            assert cache.statistics().decisions == {"store unavailable": 1}
        finally:
            link.close(timeout=1.0)
            store.close()
        conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
        conn.abandon()
        assert cache.statistics().decisions["no session"] == 1


def test_one_debug_record_per_decision(caplog: pytest.LogCaptureFixture) -> None:
    """Each decision is one DEBUG record on ``resume``, with the reason, the key and no secret."""
    caplog.set_level(logging.DEBUG, logger="resume")
    pki = make_pki("1.2")
    session, _ = handshake(pki)
    cache = _cache(FakeClock())
    _store(cache, pki.client, FakeTLS(session, False, "TLSv1.2"))
    conn = resume.ClientConnection.start(cache, pki.client, "localhost", 443)
    conn.handshake_complete(FakeTLS(session, True, "TLSv1.2"))
    conn.close(None, clean=False)
    records = [r for r in caplog.records if r.name == "resume"]
    assert [r.resume_reason for r in records] == [  # type: ignore[attr-defined]
        "no session", "offered", "accepted"
    ]
    key = resume.make_key(pki.client, "localhost", 443)
    for record in records:
        message = record.getMessage()
        assert f"localhost:443 (context {key.digest[:8]})" in message
        assert session.id.hex() not in message
    assert "s old" in records[1].getMessage()

