"""The client's early-data rules (resume._core.early.EarlyData) and the binding's early-data calls.

No sockets and no event loop: a client SSLObject made through the policy
(ClientConnection.begin, as the adapters make it) talks through MemoryBIOs to a
server SSLObject that reads early data the way a server must
(``SSL_read_early_data()`` until it reports the end, then ``do_handshake()``),
with OpenSSL's stateful anti-replay off (``SSL_OP_NO_ANTI_REPLAY``, stateless
tickets) and a replay gate (``SSL_CTX_set_allow_early_data_cb``) that the tests
open or close. The sessions, tickets and early-data decisions are OpenSSL's own.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass

import pytest
from clienthelpers import PKI, pin

from resume import SessionCache
from resume._core.early import MAX_EARLY_DATA_ARGUMENT, EarlyData, check_early_data
from resume._core.policy import ClientConnection
from resume._core.replay import MemoryReplayGuard
from resume._openssl.binding import (
    EARLY_DATA_ACCEPTED,
    EARLY_DATA_NOT_SENT,
    EARLY_DATA_REJECTED,
    OP_NO_ANTI_REPLAY,
    READ_EARLY_DATA_FINISH,
    READ_EARLY_DATA_SUCCESS,
    Binding,
    available,
)

#: A bound on the BIO ping-pong of one handshake (a handful of rounds suffice).
_ROUNDS = 50


def binding() -> Binding:
    b = available()
    if b is None or b.early_data_error is not None:
        pytest.skip("the OpenSSL binding has no early-data calls on this build")
    return b


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


class EarlyServer:
    """A server context that reads early data, gated by a ClientHello record it can close."""

    def __init__(self, pki: PKI, version: str, *, max_early_data: int = 1024) -> None:
        b = binding()
        self.context = pki.server_context(version)
        if max_early_data:
            b.set_max_early_data(self.context, max_early_data)
            self.context.options |= OP_NO_ANTI_REPLAY
            self.guard = MemoryReplayGuard()
            b.set_early_data_gate(self.context, self._gate)
        #: False: the gate refuses every ClientHello (early data rejected, 1-RTT).
        self.open = True

    def _gate(self, client_random: bytes) -> bool:
        return self.open and self.guard.first_use(client_random)


@dataclass
class Outcome:
    """What one connection did, seen from both ends."""

    early: EarlyData
    #: What settle() returned, written by the client after the handshake.
    rest: bytes
    reused: bool
    #: The server's early-data status and the bytes it read early / afterwards.
    server_status: int
    server_early: bytes
    server_later: bytes
    #: The session id of the ticket the client offered (b"" when none).
    offered_id: bytes


def _pump_reads(s: ssl.SSLObject) -> bytes:
    got = bytearray()
    while True:
        try:
            chunk = s.read(65536)
        except ssl.SSLWantReadError:
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk


def connect(
    client: ssl.SSLContext,
    cache: SessionCache | bool,
    server: EarlyServer,
    data: bytes,
    *,
    loosen: bool = False,
) -> Outcome:
    """One connection: begin() -> EarlyData.start -> handshake -> settle -> write -> close.

    With *loosen*, verification is switched off while the SSL object is made and
    switched back on at once (another thread's change, made deterministic): the
    context reads the same before and after, the SSL object will not verify.
    """
    b = binding()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))

    def create() -> ssl.SSLObject:
        if not loosen:
            return client.wrap_bio(c_in, c_out, server_hostname="localhost")
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        try:
            return client.wrap_bio(c_in, c_out, server_hostname="localhost")
        finally:
            client.verify_mode = ssl.CERT_REQUIRED
            client.check_hostname = True

    conn, c = ClientConnection.begin(cache, client, "localhost", 443, create, lambda o: o)
    offered_id = conn.offered.id if conn.offered is not None else b""
    early = EarlyData(data)
    early.start(conn, c)
    s = server.context.wrap_bio(s_in, s_out, server_side=True)
    server_early = bytearray()
    client_done = early_done = server_done = False
    for _ in range(_ROUNDS):
        if not client_done:
            try:
                c.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        while not early_done:
            try:
                status, got = b.read_early_data(s, 16384)
            except ssl.SSLWantReadError:
                break
            server_early += got
            early_done = status == READ_EARLY_DATA_FINISH
        if early_done and not server_done:
            try:
                s.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if client_done and server_done:
            break
    else:
        raise AssertionError("the memory handshake did not finish")
    conn.handshake_complete(c)
    rest = early.settle(c)
    if rest:
        c.write(rest)
    s_in.write(c_out.read())
    later = _pump_reads(s)
    # One byte back: with it, the client reads the TLS 1.3 tickets that came first.
    s.write(b"x")
    c_in.write(s_out.read())
    assert c.read(1) == b"x"
    reused = c.session_reused
    conn.close(c, clean=True)
    return Outcome(
        early, rest, reused, b.early_data_status(s), bytes(server_early), later, offered_id
    )


def cached_ids(cache: SessionCache) -> list[bytes]:
    """The session ids of every session the cache holds (taken out and freed: read once)."""
    ids = []
    for key in list(cache.keys()):
        while (handle := cache.take(key)) is not None:
            ids.append(handle.id)
            handle.free()
    return ids


class TestCheckEarlyData:
    """check_early_data() validates the ``early_data=`` argument."""

    def test_bytes_like_become_bytes(self) -> None:
        """bytes, bytearray and memoryview are taken, as bytes."""
        for value in (b"ab", bytearray(b"ab"), memoryview(b"ab")):
            assert check_early_data(value) == b"ab"

    def test_not_bytes(self) -> None:
        """A str (or anything not bytes-like) is a TypeError that names the type."""
        with pytest.raises(TypeError, match="str"):
            check_early_data("GET /")

    def test_too_large(self) -> None:
        """More than MAX_EARLY_DATA_ARGUMENT is a ValueError."""
        with pytest.raises(ValueError, match="at most"):
            check_early_data(bytes(MAX_EARLY_DATA_ARGUMENT + 1))


class TestRules:
    """When EarlyData.start() sends the data early, and what settle() returns."""

    def test_no_session_offered(self, pki: PKI, tls_version: str) -> None:
        """A first connection offers no session: nothing goes early, all of it after, once."""
        server = EarlyServer(pki, tls_version)
        out = connect(pki.client_context(tls_version), SessionCache(), server, b"GET /one\n")
        assert out.early.sent is False
        assert out.early.reason == "no session offered"
        assert out.early.accepted is None
        assert out.rest == b"GET /one\n"
        assert out.server_status == EARLY_DATA_NOT_SENT
        assert (out.server_early, out.server_later) == (b"", b"GET /one\n")

    def test_settings_changed_while_the_ssl_object_is_made(
        self, pki: PKI, tls_version: str
    ) -> None:
        """Verification off while the SSL object is made: no session, so nothing goes early.

        The data still arrives once, after the handshake, and the loose connection
        stores nothing; the next strict connection goes early again (TLS 1.3).
        """
        server = EarlyServer(pki, tls_version)
        client = pki.client_context(tls_version)
        cache = SessionCache()
        connect(client, cache, server, b"warm-up")
        before = len(cache)
        out = connect(client, cache, server, b"GET /loose\n", loosen=True)
        assert (out.offered_id, out.early.sent, out.early.reason) == (
            b"", False, "no session offered"
        )
        assert out.server_status == EARLY_DATA_NOT_SENT
        assert (out.server_early, out.server_later) == (b"", b"GET /loose\n")
        assert len(cache) <= before  # nothing added (TLS 1.3: the ticket taken is dropped)
        strict = connect(client, cache, server, b"GET /strict\n")
        assert strict.early.sent is (tls_version == "1.3")

    def test_no_cache(self, pki: PKI) -> None:
        """cache=False: no session, so no early data, whatever the server allows."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"a")
        out = connect(client, False, server, b"b")
        assert (out.early.sent, out.early.reason, out.server_later) == (
            False, "no session offered", b"b"
        )

    def test_accepted(self, pki: PKI, tls_version: str) -> None:
        """TLS 1.3 with a ticket that allows it: early and accepted; TLS 1.2: never early."""
        server = EarlyServer(pki, tls_version)
        client = pki.client_context(tls_version)
        cache = SessionCache()
        connect(client, cache, server, b"first")
        out = connect(client, cache, server, b"GET /two\n")
        assert out.reused is True
        if tls_version == "1.3":
            assert out.early.sent is True and out.early.reason is None
            assert out.early.accepted is True
            assert out.rest == b""
            assert out.server_status == EARLY_DATA_ACCEPTED
            assert (out.server_early, out.server_later) == (b"GET /two\n", b"")
        else:
            assert out.early.sent is False
            assert out.early.reason == "the session offered is not a single-use TLS 1.3 ticket"
            assert out.early.accepted is None
            assert (out.server_early, out.server_later) == (b"", b"GET /two\n")

    def test_rejected_data_is_sent_again(self, pki: PKI) -> None:
        """The server's gate refuses: accepted is False and settle() returns all of it, once."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        server.open = False
        out = connect(client, cache, server, b"GET /three\n")
        assert out.reused is True  # resumed, 1-RTT: only the early data was refused
        assert out.early.sent is True
        assert out.early.accepted is False
        assert out.rest == b"GET /three\n"
        assert out.server_status == EARLY_DATA_REJECTED
        assert (out.server_early, out.server_later) == (b"", b"GET /three\n")

    def test_lent_ticket_is_never_used_early(self, pki: PKI) -> None:
        """SessionCache(tls13_ticket_reuse=True) lends tickets: offered twice, so never early."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache(tls13_ticket_reuse=True)
        connect(client, cache, server, b"first")
        out = connect(client, cache, server, b"GET /\n")
        assert out.reused is True
        assert out.early.sent is False
        assert out.early.reason == "the session offered is not a single-use TLS 1.3 ticket"
        assert out.early.accepted is None
        assert (out.server_early, out.server_later) == (b"", b"GET /\n")

    def test_no_arrival_capture_no_early_data(self, pki: PKI) -> None:
        """A context whose sessions are captured at close (PROTOCOL_TLS) never sends early."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = ssl.SSLContext(ssl.PROTOCOL_TLS)
        client.verify_mode = ssl.CERT_REQUIRED
        client.check_hostname = True
        pki.ca.configure_trust(client)
        pin(client, "1.3")
        server = EarlyServer(pki, "1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        out = connect(client, cache, server, b"GET /\n")
        assert out.reused is True
        assert out.early.sent is False
        assert out.early.reason == "sessions of this context are not captured as they arrive"
        assert (out.server_early, out.server_later) == (b"", b"GET /\n")

    def test_server_allows_no_early_data(self, pki: PKI) -> None:
        """Tickets of a server without max_early_data allow none: the data waits."""
        server = EarlyServer(pki, "1.3", max_early_data=0)
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        out = connect(client, cache, server, b"GET /\n")
        assert out.reused is True
        assert (out.early.sent, out.early.reason) == (False, "the session allows no early data")
        assert out.server_later == b"GET /\n"

    @pytest.mark.parametrize("size", [16, 17])
    def test_size_limit(self, pki: PKI, size: int) -> None:
        """Up to the ticket's max_early_data goes early; one byte more waits, and still arrives."""
        server = EarlyServer(pki, "1.3", max_early_data=16)
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        data = bytes(range(65, 65 + size))
        out = connect(client, cache, server, data)
        assert out.reused is True
        if size <= 16:
            assert out.early.accepted is True
            assert (out.server_early, out.server_later) == (data, b"")
        else:
            assert out.early.sent is False
            assert out.early.reason == "the session allows 16 early bytes, the data is 17"
            assert out.early.accepted is None
            assert (out.server_early, out.server_later) == (b"", data)

    def test_empty_data(self, pki: PKI) -> None:
        """No bytes: nothing is sent early, settle() returns nothing, accepted is None."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        out = connect(client, cache, server, b"")
        assert (out.early.sent, out.early.reason, out.early.accepted) == (False, "no data", None)
        assert out.rest == b""
        assert out.server_status == EARLY_DATA_NOT_SENT


class TestTicketAfterEarlyData:
    """The ticket that carried early data is never stored again; the fresh ones are."""

    def test_used_ticket_never_cached_again(self, pki: PKI) -> None:
        """After an accepted 0-RTT connection the cache holds fresh tickets only."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        used = []
        for i in range(3):
            out = connect(client, cache, server, b"GET /%d\n" % i)
            assert out.reused is True and out.early.accepted is True
            assert out.offered_id
            used.append(out.offered_id)
        held = cached_ids(cache)
        assert held  # the fresh tickets arrived
        assert not set(used) & set(held)
        assert len(set(used)) == 3  # every connection offered a different ticket

    def test_next_connection_resumes_with_a_fresh_ticket(self, pki: PKI) -> None:
        """With one ticket per key, every 0-RTT connection leaves the one its successor uses."""
        server = EarlyServer(pki, "1.3")
        client = pki.client_context("1.3")
        cache = SessionCache(per_key=1)
        connect(client, cache, server, b"first")
        previous = b""
        for i in range(4):
            out = connect(client, cache, server, b"GET /%d\n" % i)
            assert out.reused is True and out.early.accepted is True
            assert out.offered_id != previous
            previous = out.offered_id


class TestBindingCalls:
    """The binding's early-data calls raise as SSLObject calls do."""

    def test_write_without_session_is_an_ssl_error(self, pki: PKI) -> None:
        """SSL_write_early_data() with no session set: ssl.SSLError."""
        b = binding()
        c = pki.client_context("1.3").wrap_bio(
            ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost"
        )
        with pytest.raises(ssl.SSLError, match="SSL_write_early_data"):
            b.write_early_data(c, b"x")

    def test_read_on_a_client_is_an_ssl_error(self, pki: PKI) -> None:
        """SSL_read_early_data() on a client: ssl.SSLError."""
        b = binding()
        c = pki.client_context("1.3").wrap_bio(
            ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost"
        )
        with pytest.raises(ssl.SSLError, match="SSL_read_early_data"):
            b.read_early_data(c, 10)

    def test_read_with_no_input_wants_read(self, pki: PKI) -> None:
        """A server with nothing received yet: ssl.SSLWantReadError, as SSLObject.read()."""
        b = binding()
        s = pki.server_context("1.3").wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
        with pytest.raises(ssl.SSLWantReadError):
            b.read_early_data(s, 10)

    def test_read_after_eof_is_an_eof_error(self, pki: PKI) -> None:
        """The peer ended the stream without a word: ssl.SSLEOFError, as do_handshake() says."""
        b = binding()
        context = pki.server_context("1.3")
        incoming = ssl.MemoryBIO()
        s = context.wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
        incoming.write_eof()
        with pytest.raises(ssl.SSLEOFError):
            b.read_early_data(s, 10)
        incoming = ssl.MemoryBIO()
        plain = context.wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
        incoming.write_eof()
        with pytest.raises(ssl.SSLEOFError):
            plain.do_handshake()

    def test_read_of_garbage_is_an_ssl_error(self, pki: PKI) -> None:
        """Not TLS at all: ssl.SSLError (fatal), not a want-read."""
        b = binding()
        incoming = ssl.MemoryBIO()
        s = pki.server_context("1.3").wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
        incoming.write(b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(ssl.SSLError) as info:
            b.read_early_data(s, 10)
        assert not isinstance(info.value, (ssl.SSLWantReadError, ssl.SSLEOFError))

    def test_read_size_must_be_positive(self, pki: PKI) -> None:
        """read_early_data(size=0) is a ValueError before any call."""
        b = binding()
        s = pki.server_context("1.3").wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
        with pytest.raises(ValueError, match="positive"):
            b.read_early_data(s, 0)

    def test_status_before_the_handshake_is_not_sent(self, pki: PKI) -> None:
        """SSL_get_early_data_status() before anything happened: NOT_SENT (0)."""
        b = binding()
        c = pki.client_context("1.3").wrap_bio(
            ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost"
        )
        assert b.early_data_status(c) == EARLY_DATA_NOT_SENT
        assert b.offered_max_early_data(c) == 0

    def test_oversized_write_is_refused(self, pki: PKI) -> None:
        """Straight through the binding, more than max_early_data is an SSLError (why the rule)."""
        b = binding()
        server = EarlyServer(pki, "1.3", max_early_data=16)
        client = pki.client_context("1.3")
        cache = SessionCache()
        connect(client, cache, server, b"first")
        conn, c = ClientConnection.begin(
            cache,
            client,
            "localhost",
            443,
            lambda: client.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost"),
            lambda o: o,
        )
        try:
            assert b.offered_max_early_data(c) == 16
            with pytest.raises(ssl.SSLError):
                b.write_early_data(c, bytes(17))
        finally:
            conn.fail()

    def test_read_status_values(self) -> None:
        """The SSL_read_early_data() results the server loop relies on."""
        assert (READ_EARLY_DATA_SUCCESS, READ_EARLY_DATA_FINISH) == (1, 2)
        assert (EARLY_DATA_NOT_SENT, EARLY_DATA_REJECTED, EARLY_DATA_ACCEPTED) == (0, 1, 2)
