"""SSL_read_early_data(3): TLS 1.3 early data (0-RTT), proved on real OpenSSL.

The tests drive the calls of the page through :mod:`resume._openssl.binding` on
:class:`ssl.SSLObject` pairs over memory BIOs, with trustme certificates: a client
and a server context as resume's streams and servers use them, the bytes of each
flight handed over by hand, so that *when* something happens (in the client's first
flight, before the server's handshake ends) is seen, not inferred from timing.

Every test runs on TLS 1.2 and TLS 1.3. TLS 1.2 has no early data: there the
tests check what the page says of it (a session that allows no early data, a
``SSL_read_early_data()`` that completes the handshake, a status of NOT_SENT).

Two facts of the harness matter for the replay tests: OpenSSL drops a session from
its server cache when a connection is freed without ``SSL_shutdown()`` (see
SSL_get_session:notes-12), so every connection here is closed cleanly; and a session
read with ``SSLObject.session`` is a copy, so offering it again is exactly a client
that reuses a ticket.
"""

from __future__ import annotations

import contextlib
import ssl

import pytest
from clienthelpers import PKI

from resume._openssl import binding as _openssl

pytestmark = pytest.mark.skipif(
    _openssl.refusal() is not None
    or (_openssl.available() is not None and _openssl.binding().early_data_error is not None),
    reason="the OpenSSL binding (with its early-data calls) is not supported here",
)

ACCEPTED = _openssl.EARLY_DATA_ACCEPTED
REJECTED = _openssl.EARLY_DATA_REJECTED
NOT_SENT = _openssl.EARLY_DATA_NOT_SENT
SUCCESS = _openssl.READ_EARLY_DATA_SUCCESS
FINISH = _openssl.READ_EARLY_DATA_FINISH

#: What the servers here allow (``SSL_CTX_set_max_early_data``).
MAX = 16384
#: Bounded hand-over loops: a handshake takes a few rounds, never this many.
ROUNDS = 20


@pytest.fixture(params=["1.2", "1.3"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def b() -> _openssl.Binding:
    return _openssl.binding()


def server_context(
    pki: PKI, version: str, *, max_early_data: int = MAX, recv: int | None = None,
    anti_replay: bool = False,
) -> ssl.SSLContext:
    """A server context that takes early data; without *anti_replay*, as resume's servers
    set it (``SSL_OP_NO_ANTI_REPLAY``: stateless tickets)."""
    context: ssl.SSLContext = pki.server_context(version)
    if max_early_data or recv is not None:
        b().set_max_early_data(context, max_early_data, recv)
    if not anti_replay:
        context.options |= _openssl.OP_NO_ANTI_REPLAY
    return context


class Pair:
    """A client and a server SSLObject over memory BIOs; flights are handed over by hand."""

    def __init__(
        self, client: ssl.SSLContext, server: ssl.SSLContext, session: ssl.SSLSession | None = None
    ) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client.wrap_bio(
            self.c_in, self.c_out, server_hostname="localhost", session=session
        )
        self.server = server.wrap_bio(self.s_in, self.s_out, server_side=True)

    def to_server(self) -> bytes:
        data = self.c_out.read()
        self.s_in.write(data)
        return data

    def to_client(self) -> bytes:
        data = self.s_out.read()
        self.c_in.write(data)
        return data

    def finish(self) -> None:
        """Both handshakes to the end, then one byte from the server (it carries the
        TLS 1.3 tickets to the client)."""
        done_c = done_s = False
        for _ in range(ROUNDS):
            done_c = done_c or _step(self.client)
            self.to_server()
            done_s = done_s or _step(self.server)
            self.to_client()
            if done_c and done_s:
                break
        assert done_c and done_s, "the handshake did not finish"
        self.server.write(b"!")
        self.to_client()
        assert self.client.read(1) == b"!"

    def read_early(self, size: int = 65536) -> tuple[list[int], bytes]:
        """``SSL_read_early_data()`` until FINISH: every status it returned, and the bytes.

        The client is stepped with ``do_handshake()`` whenever the server needs more.
        """
        statuses: list[int] = []
        data = b""
        for _ in range(ROUNDS):
            try:
                status, chunk = b().read_early_data(self.server, size)
            except ssl.SSLWantReadError:
                self.to_client()
                _step(self.client)
                self.to_server()
                continue
            statuses.append(status)
            data += chunk
            if status == FINISH:
                return statuses, data
        raise AssertionError(f"SSL_read_early_data() never finished: {statuses}")

    def close(self) -> None:
        """A clean close on both sides, so the server keeps the session in its cache."""
        for _ in range(3):
            for side in (self.client, self.server):
                with contextlib.suppress(ssl.SSLError):  # want-read, zero-return too
                    side.unwrap()
            self.to_server()
            self.to_client()


def _step(side: ssl.SSLObject) -> bool:
    try:
        side.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def first_session(client: ssl.SSLContext, server: ssl.SSLContext) -> ssl.SSLSession:
    """A full handshake; its session, read after the tickets came; the connection closed."""
    pair = Pair(client, server)
    pair.finish()
    session = pair.client.session
    assert session is not None
    pair.close()
    return session


def early_connection(
    client: ssl.SSLContext, server: ssl.SSLContext, session: ssl.SSLSession, data: bytes,
) -> tuple[Pair, bytes, bytes]:
    """Send *data* as early data on a resumption: (pair, the client's first flight, what
    the server read as early data). The handshakes are then finished."""
    pair = Pair(client, server, session)
    assert b().write_early_data(pair.client, data) == len(data)
    flight = pair.to_server()
    _, early = pair.read_early()
    pair.finish()
    return pair, flight, early


def replay(server: ssl.SSLContext, flight: bytes) -> tuple[list[int], bytes, ssl.SSLObject]:
    """Hand a recorded first flight to a new server connection: what it reads as early data."""
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = server.wrap_bio(s_in, s_out, server_side=True)
    s_in.write(flight)
    statuses: list[int] = []
    data = b""
    for _ in range(ROUNDS):
        try:
            status, chunk = b().read_early_data(conn, 65536)
        except ssl.SSLWantReadError:
            break  # waits for a client that is not there: the attacker has no keys
        statuses.append(status)
        data += chunk
        if status == FINISH:
            break
    return statuses, data, conn


def resumption(
    pki: PKI, version: str, **server: object
) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLSession]:
    """(client context, server context, a session of theirs to resume)."""
    s = server_context(pki, version, **server)  # type: ignore[arg-type]
    c = pki.client_context(version)
    return c, s, first_session(c, s)


class TestClient:
    """The client side: the session's allowance, the first flight, the order of calls."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-1", "SSL_read_early_data:desc-2",
        "SSL_read_early_data:desc-3", "SSL_read_early_data:desc-14",
        "SSL_read_early_data:desc-15", "SSL_read_early_data:desc-16",
        "SSL_read_early_data:desc-19", "SSL_read_early_data:desc-20",
        "SSL_read_early_data:desc-61", "SSL_read_early_data:ret-1",
        "SSL_read_early_data:ret-5",
    )
    def test_early_data_rides_in_the_first_flight_of_a_tls13_resumption(
        self, pki: PKI, version: str
    ) -> None:
        """The session carries the server's max_early_data; the data leaves with the ClientHello."""
        c, s, session = resumption(pki, version)
        allowed = b().session_max_early_data(b().session_ptr(session))
        pair = Pair(c, s, session)
        if version == "1.2":
            # TLS 1.2 sessions allow none, and the call is refused
            assert allowed == 0
            with pytest.raises(ssl.SSLError, match="should not call"):
                b().write_early_data(pair.client, b"GET /")
            return
        assert allowed == MAX == b().max_early_data(s)[0]
        assert b().write_early_data(pair.client, b"GET /") == 5
        pair.to_server()
        # the server has the client's first flight only, and reads the request from it
        status, data = b().read_early_data(pair.server, 100)
        assert (status, data) == (SUCCESS, b"GET /")
        assert pair.server.version() is None  # its handshake is far from done
        # a new session without a previous one: a full handshake sends nothing early
        fresh = Pair(c, s)
        with pytest.raises(ssl.SSLError):
            b().write_early_data(fresh.client, b"GET /")

    @pytest.mark.manpage("SSL_read_early_data:desc-24", "SSL_read_early_data:desc-35")
    def test_early_calls_must_be_the_first_io(self, pki: PKI, version: str) -> None:
        """After one handshake step, SSL_write_early_data() / SSL_read_early_data() are refused."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        assert not _step(pair.client)
        with pytest.raises(ssl.SSLError, match="should not call"):
            b().write_early_data(pair.client, b"GET /")
        pair.to_server()
        assert not _step(pair.server)
        with pytest.raises(ssl.SSLError, match="should not call"):
            b().read_early_data(pair.server, 100)

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-25", "SSL_read_early_data:desc-26",
        "SSL_read_early_data:ret-2",
    )
    def test_several_writes_stream_up_to_the_session_s_limit(self, pki: PKI, version: str) -> None:
        """Two writes arrive as one stream; more than max_early_data in total is refused."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        if version == "1.2":
            with pytest.raises(ssl.SSLError):
                b().write_early_data(pair.client, b"GET ")
            return
        assert b().write_early_data(pair.client, b"GET ") == 4
        assert b().write_early_data(pair.client, b"/x") == 2
        with pytest.raises(ssl.SSLError, match="too much early data"):
            b().write_early_data(pair.client, b"x" * (MAX - 6 + 1))
        pair = Pair(c, s, session)
        b().write_early_data(pair.client, b"GET ")
        b().write_early_data(pair.client, b"/x")
        pair.to_server()
        assert pair.read_early()[1] == b"GET /x"

    @pytest.mark.manpage("SSL_read_early_data:desc-28", "SSL_read_early_data:desc-29")
    def test_an_ordinary_write_completes_the_handshake(self, pki: PKI, version: str) -> None:
        """After the early data, write() drives the handshake itself and then writes."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        if version == "1.3":
            b().write_early_data(pair.client, b"GET ")
        with pytest.raises(ssl.SSLWantReadError):
            pair.client.write(b"/rest")  # needs the server's flight, as any handshake would
        pair.to_server()
        _statuses, early = pair.read_early()
        pair.to_client()
        assert pair.client.write(b"/rest") == 5  # no do_handshake() was called
        pair.to_server()
        assert _step(pair.server)
        assert early + pair.server.read(100) == (b"GET /rest" if version == "1.3" else b"/rest")
        assert pair.client.session_reused


class TestStatus:
    """SSL_get_early_data_status() on both sides, once the handshake is done."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-30", "SSL_read_early_data:desc-31",
        "SSL_read_early_data:desc-32", "SSL_read_early_data:desc-33",
        "SSL_read_early_data:ret-7",
    )
    def test_accepted_rejected_not_sent(self, pki: PKI, version: str) -> None:
        c, s, session = resumption(pki, version)
        # no early data sent
        plain = Pair(c, s, session)
        plain.finish()
        assert b().early_data_status(plain.client) == NOT_SENT
        assert b().early_data_status(plain.server) == NOT_SENT
        if version == "1.2":
            return
        # accepted
        pair, _, early = early_connection(c, s, session, b"GET /")
        assert early == b"GET /"
        assert b().early_data_status(pair.client) == b().early_data_status(pair.server) == ACCEPTED
        # rejected: the server ignores it, the handshake resumes all the same
        b().set_early_data_gate(s, lambda _random: False)
        pair, _, early = early_connection(c, s, session, b"GET /")
        assert early == b""
        assert pair.client.session_reused
        assert b().early_data_status(pair.client) == b().early_data_status(pair.server) == REJECTED


class TestServer:
    """The server side: reading until FINISH, 0.5-RTT, completing the handshake."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-34", "SSL_read_early_data:desc-38",
        "SSL_read_early_data:desc-41", "SSL_read_early_data:desc-43",
        "SSL_read_early_data:desc-44", "SSL_read_early_data:desc-45",
        "SSL_read_early_data:desc-51", "SSL_read_early_data:desc-52",
        "SSL_read_early_data:ret-3",
    )
    def test_read_until_finish_then_complete(self, pki: PKI, version: str) -> None:
        """SUCCESS with the data, then FINISH; without early data, FINISH at once."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        pair.to_server()
        statuses, data = pair.read_early()
        assert (statuses, data) == ([FINISH], b"")  # nothing was sent early
        pair.finish()
        if version == "1.2":
            return
        pair = Pair(c, s, session)
        b().write_early_data(pair.client, b"GET /")
        pair.to_server()
        statuses, data = pair.read_early(size=3)
        assert statuses == [SUCCESS, SUCCESS, FINISH] and data == b"GET /"
        pair.finish()  # do_handshake() completes the connection
        assert pair.server.version() == "TLSv1.3"

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-4", "SSL_read_early_data:desc-10",
        "SSL_read_early_data:desc-11", "SSL_read_early_data:desc-12",
        "SSL_read_early_data:desc-46", "SSL_read_early_data:desc-49",
    )
    def test_the_server_may_answer_before_its_handshake_ends(self, pki: PKI, version: str) -> None:
        """0.5-RTT: after the first read, SSL_write_early_data() on the server sends data
        the client reads as soon as its own handshake is done, before the server has the
        client's Finished (the client is not yet authenticated)."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        if version == "1.2":
            pair.to_server()
            assert pair.read_early() == ([FINISH], b"")
            return
        b().write_early_data(pair.client, b"GET /")
        pair.to_server()
        assert b().read_early_data(pair.server, 100) == (SUCCESS, b"GET /")
        assert b().write_early_data(pair.server, b"200 OK") == 6
        assert pair.server.version() is None
        pair.to_client()
        assert _step(pair.client)
        assert pair.client.read(100) == b"200 OK"
        # the server's handshake ends only now, with the client's Finished
        pair.to_server()
        assert pair.read_early()[0] == [FINISH]
        assert _step(pair.server)

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-53", "SSL_read_early_data:desc-50",
    )
    def test_after_finish_an_ordinary_read_completes_the_connection(
        self, pki: PKI, version: str
    ) -> None:
        """After FINISH, read() completes the handshake and reads what follows it."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        pair.to_server()
        assert pair.read_early()[0] == [FINISH]
        pair.to_client()
        _step(pair.client)
        pair.client.write(b"after")
        pair.to_server()
        assert pair.server.read(100) == b"after"  # no do_handshake() on the server

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-56", "SSL_read_early_data:desc-57",
        "SSL_read_early_data:desc-59", "SSL_read_early_data:desc-60",
    )
    def test_tls12_completes_inside_read_early_data(self, pki: PKI, version: str) -> None:
        """On TLS 1.2 the FINISH comes with the handshake done; do_handshake() returns at once."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        pair.to_server()
        assert pair.read_early()[0] == [FINISH]
        if version == "1.2":
            assert pair.server.version() == "TLSv1.2"
            pair.server.do_handshake()  # returns at once: nothing more to read
            assert pair.s_in.pending == 0
        else:
            assert pair.server.version() is None
            with pytest.raises(ssl.SSLWantReadError):
                pair.server.do_handshake()


class TestLimits:
    """max_early_data and recv_max_early_data."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-62", "SSL_read_early_data:desc-63",
        "SSL_read_early_data:desc-64", "SSL_read_early_data:desc-72",
        "SSL_read_early_data:desc-70", "SSL_read_early_data:desc-71",
        "SSL_read_early_data:ret-6",
    )
    def test_defaults_and_settings(self, pki: PKI, version: str) -> None:
        """A server context accepts no early data by default; recv_max_early_data is 16,384."""
        context = pki.server_context(version)
        assert b().max_early_data(context) == (0, 16384)
        _c, _s, session = resumption(pki, version, max_early_data=0, recv=16384)
        assert b().session_max_early_data(b().session_ptr(session)) == 0
        b().set_max_early_data(context, 1000, 2000)
        assert b().max_early_data(context) == (1000, 2000)
        with pytest.raises(ValueError, match="2\\*\\*32-1"):
            b().set_max_early_data(context, -1)

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-67", "SSL_read_early_data:desc-68",
        "SSL_read_early_data:desc-69", "SSL_read_early_data:desc-73",
        "SSL_read_early_data:desc-74", "SSL_read_early_data:desc-75",
    )
    def test_recv_max_bounds_what_is_skipped_and_accepted(self, pki: PKI, version: str) -> None:
        """A ticket allowing 32 KiB, a server that now reads at most 1 KiB."""
        c, s, session = resumption(pki, version, max_early_data=32768, recv=32768)
        if version == "1.2":
            assert b().session_max_early_data(b().session_ptr(session)) == 0
            return
        b().set_max_early_data(s, 32768, 1024)

        def send(size: int) -> Pair:
            pair = Pair(c, s, session)
            b().write_early_data(pair.client, b"x" * size)
            pair.to_server()
            return pair

        # accepted: up to the lower of the two
        assert pair_read_size(send(1024)) == 1024
        with pytest.raises(ssl.SSLError, match="too much early data"):
            send(1025).read_early()
        # rejected: skipped up to recv_max_early_data, and the handshake goes on
        b().set_early_data_gate(s, lambda _random: False)
        skipped = send(1000)
        assert skipped.read_early() == ([FINISH], b"")
        skipped.finish()
        assert skipped.client.session_reused
        aborted = send(4000)
        assert aborted.read_early() == ([FINISH], b"")
        with pytest.raises(ssl.SSLError):
            aborted.finish()


def pair_read_size(pair: Pair) -> int:
    return len(pair.read_early()[1])


class TestAllowCallback:
    """SSL_CTX_set_allow_early_data_cb(): resume's replay gate (Binding.set_early_data_gate)."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-80", "SSL_read_early_data:desc-81",
        "SSL_read_early_data:desc-83", "SSL_read_early_data:desc-84",
        "SSL_read_early_data:replay-protection-23",
    )
    def test_the_callback_decides_and_the_handshake_goes_on(self, pki: PKI, version: str) -> None:
        """Called once per offered early data, before the decision; False rejects, True accepts;
        not called where OpenSSL rejects on its own (no resumption, TLS 1.2)."""
        answers: list[bool] = []
        calls: list[bytes] = []

        def gate(client_random: bytes) -> bool:
            calls.append(client_random)
            return answers.pop(0)

        c, s, session = resumption(pki, version)
        b().set_early_data_gate(s, gate)
        if version == "1.2":
            Pair(c, s, session).finish()
            assert calls == []
            return
        answers[:] = [False, True]
        rejected, _, early = early_connection(c, s, session, b"GET /")
        assert (early, rejected.client.session_reused) == (b"", True)
        _accepted, _, early = early_connection(c, s, session, b"GET /")
        assert early == b"GET /"
        assert len(calls) == 2 and len(set(calls)) == 2 and all(len(r) == 32 for r in calls)
        # a full handshake (no session offered): OpenSSL rejects without asking
        full = Pair(c, s)
        full.finish()
        assert len(calls) == 2


class TestReplayProtection:
    """OpenSSL's built-in anti-replay, and SSL_OP_NO_ANTI_REPLAY as resume's servers set it."""

    @pytest.mark.manpage(
        "SSL_read_early_data:replay-protection-1", "SSL_read_early_data:replay-protection-21",
        "SSL_read_early_data:desc-5",
    )
    def test_without_protection_a_recorded_first_flight_runs_again(
        self, pki: PKI, version: str
    ) -> None:
        """With SSL_OP_NO_ANTI_REPLAY and no gate, a replayed first flight is read again."""
        c, s, session = resumption(pki, version)
        if version == "1.2":
            return  # no early data to replay
        _, flight, early = early_connection(c, s, session, b"GET /")
        assert replay(s, flight)[:2] == ([SUCCESS], early)
        assert replay(s, flight)[:2] == ([SUCCESS], early)

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-66", "SSL_read_early_data:replay-protection-2",
        "SSL_read_early_data:replay-protection-3", "SSL_read_early_data:replay-protection-4",
        "SSL_read_early_data:replay-protection-5", "SSL_read_early_data:replay-protection-6",
        "SSL_read_early_data:replay-protection-7", "SSL_read_early_data:replay-protection-8",
        "SSL_read_early_data:replay-protection-9", "SSL_read_early_data:replay-protection-10",
        "SSL_read_early_data:replay-protection-11",
    )
    def test_built_in_protection_makes_tickets_single_use(self, pki: PKI, version: str) -> None:
        """max_early_data > 0 without NO_ANTI_REPLAY: stateful tickets in the server cache,
        each resumable once, with or without early data; a replayed flight reads nothing."""
        c, s, session = resumption(pki, version, anti_replay=True)
        stateless = server_context(pki, version)
        first_session(pki.client_context(version), stateless)
        if version == "1.2":
            # TLS 1.2 has no early data, and its tickets stay reusable
            for _ in range(2):
                pair = Pair(c, s, session)
                pair.finish()
                assert pair.client.session_reused
                pair.close()
            return
        # a ticket issued is a session in the cache (as with SSL_OP_NO_TICKET): 2 tickets
        assert s.session_stats()["number"] == 2
        assert stateless.session_stats()["number"] == 0
        pair, flight, early = early_connection(c, s, session, b"GET /")
        assert early == b"GET /" and pair.client.session_reused
        assert s.session_stats()["hits"] == 1
        pair.close()
        # the same ticket again: a full handshake, its early data ignored
        again, _, early = early_connection(c, s, session, b"GET /")
        assert early == b"" and not again.client.session_reused
        assert b().early_data_status(again.client) == REJECTED
        assert s.session_stats()["misses"] == 1
        again.close()
        # a recorded first flight: nothing read
        assert replay(s, flight)[:2] == ([FINISH], b"")
        # single use without early data too
        c2, s2, session2 = resumption(pki, version, anti_replay=True)
        outcomes = []
        for _ in range(2):
            plain = Pair(c2, s2, session2)
            plain.finish()
            outcomes.append(plain.client.session_reused)
            plain.close()
        assert outcomes == [True, False]

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-85", "SSL_read_early_data:replay-protection-20",
        "SSL_read_early_data:replay-protection-24", "SSL_read_early_data:desc-82",
    )
    def test_a_callback_does_not_turn_the_built_in_protection_off(
        self, pki: PKI, version: str
    ) -> None:
        """A gate that always allows cannot resurrect a used ticket unless NO_ANTI_REPLAY is
        set; with it set (resume's servers), the gate alone refuses the replay."""
        calls: list[bytes] = []

        def allow(client_random: bytes) -> bool:
            calls.append(client_random)
            return True

        c, s, session = resumption(pki, version, anti_replay=True)
        b().set_early_data_gate(s, allow)
        if version == "1.2":
            Pair(c, s, session).finish()
            assert calls == []
            return
        pair, flight, early = early_connection(c, s, session, b"GET /")
        assert early == b"GET /"
        pair.close()
        assert replay(s, flight)[:2] == ([FINISH], b"")
        assert len(calls) == 1  # the replay never reached the gate
        # resume's servers: NO_ANTI_REPLAY with a first-use gate on the ClientHello random
        seen: set[bytes] = set()

        def first_use(client_random: bytes) -> bool:
            fresh = client_random not in seen
            seen.add(client_random)
            return fresh

        c, s, session = resumption(pki, version)
        b().set_early_data_gate(s, first_use)
        _, flight, early = early_connection(c, s, session, b"GET /")
        assert early == b"GET /"
        assert replay(s, flight)[:2] == ([FINISH], b"")



class TestErrors:
    """Failures come back as ssl's exceptions (SSL_get_error() mapped by the binding)."""

    @pytest.mark.manpage(
        "SSL_read_early_data:desc-55", "SSL_read_early_data:desc-39",
        "SSL_read_early_data:desc-40", "SSL_read_early_data:ret-4",
        "SSL_read_early_data:desc-27",
    )
    def test_only_servers_read_early_data(self, pki: PKI, version: str) -> None:
        """On a client SSL_read_early_data() fails (READ_EARLY_DATA_ERROR): ssl.SSLError."""
        c, s, session = resumption(pki, version)
        pair = Pair(c, s, session)
        with pytest.raises(ssl.SSLError, match="SSL_read_early_data\\(\\) failed"):
            b().read_early_data(pair.client, 100)

    @pytest.mark.manpage(
        "SSL_read_early_data:notes-12", "SSL_read_early_data:notes-14",
        "SSL_read_early_data:notes-15", "SSL_read_early_data:notes-16",
        "SSL_read_early_data:notes-17",
    )
    def test_early_data_to_a_server_downgraded_to_tls12_aborts(
        self, pki: PKI, version: str
    ) -> None:
        """A TLS 1.3 session allowing early data, a server that now speaks only TLS 1.2: the
        connection aborts; a new connection without early data succeeds."""
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # any version, as a real client
        pki.ca.configure_trust(client)
        session = first_session(client, server_context(pki, "1.3"))
        assert b().session_max_early_data(b().session_ptr(session)) == MAX
        downgraded = server_context(pki, version)
        pair = Pair(client, downgraded, session)
        b().write_early_data(pair.client, b"GET /")
        if version == "1.2":
            pair.to_server()
            # the TLS 1.2 server meets an early-data record where it expects a handshake
            with pytest.raises(ssl.SSLError, match="unexpected message"):
                pair.read_early()
        retry = Pair(client, downgraded, session)
        retry.finish()
        assert retry.client.version() == f"TLSv{version}"
