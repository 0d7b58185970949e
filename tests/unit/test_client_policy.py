"""The I/O-free client policy (resume._core.policy), driven by real handshakes over memory BIOs.

No sockets and no event loop: two ssl.SSLObjects talk through MemoryBIOs, so the
sessions are real OpenSSL sessions and the policy sees exactly what the adapters
show it.
"""

from __future__ import annotations

import ssl

import pytest
from clienthelpers import PKI

from resume import SessionCache, SessionHandle, SessionKey
from resume._core.policy import (
    ClientConnection,
    _set_hint,
    is_single_use,
    mark_single_use,
)
from resume.testing import memory_handshake


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


class Peer:
    """One client context, one server context, one cache: run connections through the policy."""

    def __init__(self, pki: PKI, version: str) -> None:
        self.pki = pki
        self.version = version
        self.client = pki.client_context(version)
        self.server = pki.server_context(version)
        self.cache = SessionCache()

    def start(self) -> ClientConnection:
        return ClientConnection.start(self.cache, self.client, "localhost", 443)

    def handshake(
        self, conn: ClientConnection, *, read_tickets: bool = True
    ) -> ssl.SSLObject:
        c, _ = memory_handshake(
            self.client, self.server, handle=conn.offered, read_tickets=read_tickets
        )
        conn.handshake_complete(c)
        return c

    def connection(self, *, clean: bool = True) -> ClientConnection:
        conn = self.start()
        c = self.handshake(conn)
        conn.close(c, clean=clean)
        return conn


@pytest.fixture
def peer(pki: PKI, tls_version: str) -> Peer:
    return Peer(pki, tls_version)


class TestOfferAndStore:
    def test_first_connection_offers_nothing_and_stores_on_clean_close(self, peer: Peer) -> None:
        """A miss offers nothing; a clean close stores the session under the key."""
        conn = peer.start()
        assert conn.offered is None
        c = peer.handshake(conn)
        assert conn.reused is False
        assert conn.handle is not None and conn.handle.refcount == 1
        handle = conn.handle
        assert conn.close(c, clean=True) is True
        assert peer.cache.statistics().added == 1
        assert conn.key in peer.cache
        if peer.version == "1.2":
            # The handle of the handshake is the one cached; the connection's reference is gone.
            assert handle.owner is peer.cache and handle.refcount == 1
        else:
            # The cached ticket is a newer session; the pre-ticket handle is freed.
            assert handle.freed

    def test_second_connection_resumes(self, peer: Peer) -> None:
        """The stored session is offered and resumed."""
        peer.connection()
        conn = peer.start()
        assert conn.offered is not None
        c = peer.handshake(conn)
        assert conn.reused is True and c.session_reused
        assert conn.handle is conn.offered
        conn.close(c, clean=True)

    def test_tls13_ticket_is_taken_and_tls12_session_lent(self, peer: Peer) -> None:
        """TLS 1.3 tickets leave the cache when offered; TLS 1.2 sessions stay."""
        peer.connection()
        conn = peer.start()
        assert conn.offered is not None
        if peer.version == "1.3":
            assert is_single_use(conn.offered)
            assert len(peer.cache) == 0 and conn.offered.owner is None
            assert conn.offered.refcount == 1
        else:
            assert not is_single_use(conn.offered)
            assert len(peer.cache) == 1 and conn.offered.owner is peer.cache
            assert conn.offered.refcount == 2
        c = peer.handshake(conn)
        offered = conn.offered
        conn.close(c, clean=True)
        if peer.version == "1.3":
            assert offered.freed  # spent
            assert len(peer.cache) == 1 and conn.stored  # the fresh ticket
        else:
            assert offered.refcount == 1 and not conn.stored

    def test_tls13_without_reading_has_no_ticket_to_store(self, pki: PKI) -> None:
        """A TLS 1.3 client that never read after the handshake has no ticket: nothing stored."""
        peer = Peer(pki, "1.3")
        conn = peer.start()
        c = peer.handshake(conn, read_tickets=False)
        assert conn.close(c, clean=True) is False
        assert len(peer.cache) == 0

    def test_hundred_sequential_connections_all_resume_after_the_first(self, peer: Peer) -> None:
        """The policy alone keeps resumption at 100% over many connections."""
        reused = [peer.connection().reused for _ in range(100)]
        assert reused == [False] + [True] * 99
        assert len(peer.cache) == 1


class TestDropAndKeepNothing:
    def test_declined_offer_is_dropped(self, peer: Peer) -> None:
        """A session the server did not resume leaves the cache and is freed."""
        peer.connection()
        peer.server = peer.pki.server_context(peer.version)  # the server forgot everything
        conn = peer.start()
        offered = conn.offered
        assert offered is not None
        c = peer.handshake(conn)
        assert conn.reused is False
        assert offered.freed
        assert conn.offered is None
        conn.close(c, clean=True)
        assert len(peer.cache) == 1  # the new session replaced it
        if peer.version == "1.2":
            assert peer.cache.statistics().removed == 1

    def test_unclean_close_stores_nothing(self, peer: Peer) -> None:
        """close(clean=False) frees the connection's reference and stores nothing."""
        conn = peer.start()
        c = peer.handshake(conn)
        handle = conn.handle
        assert conn.close(c, clean=False) is False
        assert handle is not None and handle.freed
        assert len(peer.cache) == 0

    def test_fail_drops_the_offer_and_stores_nothing(self, peer: Peer) -> None:
        """fail() after the handshake: the offered session leaves the cache, nothing is kept."""
        peer.connection()
        conn = peer.start()
        c = peer.handshake(conn)
        offered = conn.offered
        conn.fail()
        assert offered is not None and offered.freed
        assert len(peer.cache) == 0
        assert conn.close(c, clean=True) is False  # after fail(), close stores nothing
        assert len(peer.cache) == 0

    def test_fail_before_the_handshake_completes(self, peer: Peer) -> None:
        """fail() during the handshake frees and drops the offer."""
        peer.connection()
        conn = peer.start()
        offered = conn.offered
        conn.fail()
        conn.fail()  # idempotent
        assert offered is not None and offered.freed
        assert len(peer.cache) == 0

    def test_abandon_keeps_a_reusable_session(self, pki: PKI) -> None:
        """abandon() (the handshake never started) leaves a TLS 1.2 session cached."""
        peer = Peer(pki, "1.2")
        peer.connection()
        conn = peer.start()
        conn.abandon()
        assert len(peer.cache) == 1
        only = peer.cache.get0(conn.key)
        assert only is not None and only.refcount == 1


class TestOrderAndBookkeeping:
    def test_handshake_complete_twice_is_an_error(self, peer: Peer) -> None:
        """The steps run once, in order."""
        conn = peer.start()
        c = peer.handshake(conn)
        with pytest.raises(RuntimeError, match="out of order"):
            conn.handshake_complete(c)
        conn.close(c, clean=True)

    def test_close_is_idempotent(self, peer: Peer) -> None:
        """A second close() does nothing (no double free)."""
        conn = peer.start()
        c = peer.handshake(conn)
        assert conn.close(c, clean=True)
        assert conn.close(c, clean=True) is False

    def test_no_cache_means_no_lookup_and_no_store(self, peer: Peer) -> None:
        """cache=False: nothing offered, nothing stored, the key is still computed."""
        conn = ClientConnection.start(False, peer.client, "localhost", 443)
        assert conn.cache is None and conn.offered is None
        assert isinstance(conn.key, SessionKey)
        c = peer.handshake(conn)
        assert conn.close(c, clean=True) is False

    @pytest.mark.parametrize("bad", [True, "cache", 0, object()])
    def test_bad_cache_argument(self, peer: Peer, bad: object) -> None:
        """Anything but a SessionCache, None or False is a TypeError naming the choices."""
        with pytest.raises(TypeError, match="SessionCache"):
            ClientConnection.start(bad, peer.client, "localhost", 443)

    def test_a_ticket_is_never_lent_twice_from_a_mixed_pool(self, pki: PKI) -> None:
        """A TLS 1.3 ticket filed under a key last fed a TLS 1.2 session is removed, not lent."""
        cache = SessionCache()
        key = SessionKey("localhost", 443, "0" * 32)
        p13 = Peer(pki, "1.3")
        p13.cache = cache
        conn = ClientConnection(cache, key)
        c = p13.handshake(conn)
        conn.close(c, clean=True)
        assert len(cache) == 1
        _set_hint(cache, key, False)  # as if a TLS 1.2 session had been stored last
        again = ClientConnection(cache, key)
        again.offered = again._look_up(cache)
        assert again.offered is not None and is_single_use(again.offered)
        assert len(cache) == 0  # removed before being offered
        again.abandon()

    def test_hints_stay_bounded(self) -> None:
        """The per-key hints are pruned to the keys the cache still holds."""
        cache = SessionCache()
        for i in range(500):
            _set_hint(cache, ("k", i), True)
        assert len(cache._client_hints) <= 2 * len(cache) + 65


class TestNativeSessions:
    def test_der_born_session_is_offered_and_resumed(self, peer: Peer) -> None:
        """A session exported to DER and imported back (a native payload) resumes via offer()."""
        first = peer.start()
        c = peer.handshake(first)
        session = c.session
        assert session is not None
        first.close(c, clean=True)
        (key,) = peer.cache.keys()
        cached = peer.cache.get1(key)
        assert cached is not None
        native = SessionHandle.from_der(cached.to_der())
        cached.free()
        peer.cache.clear()
        assert native.ssl_session is None  # not an ssl.SSLSession: offered through the binding
        peer.cache.add(key, native)
        native.free()
        conn = peer.start()
        assert conn.offered is not None
        assert is_single_use(conn.offered) is (peer.version == "1.3")
        c2 = peer.handshake(conn)
        assert conn.reused is True and c2.session_reused
        conn.close(c2, clean=True)

    def test_mark_single_use(self, pki: PKI) -> None:
        """mark_single_use() makes get1-path look-ups remove the handle before offering it."""
        peer = Peer(pki, "1.2")
        peer.connection()
        (key,) = peer.cache.keys()
        handle = peer.cache.get0(key)
        assert handle is not None and not is_single_use(handle)
        mark_single_use(handle)
        assert is_single_use(handle)
        conn = peer.start()
        assert conn.offered is handle
        assert len(peer.cache) == 0
        conn.abandon()
