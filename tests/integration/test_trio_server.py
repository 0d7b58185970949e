"""resume.trio.serve_tls: real handshakes on loopback, TLS 1.2 and TLS 1.3."""

from __future__ import annotations

import contextlib
import math
import select
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing
from serverhelpers import (
    VERSION_NAMES,
    ServerPKI,
    echo_handler,
    run_blocking_client,
)

from resume import SessionCache
from resume._adapters.server_settings import get_session_timeout, set_session_timeout
from resume._adapters.trio_server import TLSServer, TLSServerStream, serve_tls
from resume.trio import open_tls_stream

pytestmark = pytest.mark.parametrize("version", ["1.2", "1.3"])


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@asynccontextmanager
async def running(
    handler: object, ctx: ssl.SSLContext, **kwargs: object
) -> AsyncIterator[TLSServer]:
    async with trio.open_nursery() as nursery:
        server: TLSServer = await nursery.start(
            partial(serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1", **kwargs)  # type: ignore[arg-type]
        )
        yield server
        server.close()


async def talk(port: int, ctx: ssl.SSLContext, cache: SessionCache, message: bytes = b"hi") -> bool:
    """One connection through resume's client; return whether it resumed."""
    stream = await open_tls_stream(
        "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
    )
    try:
        await stream.send_all(message)
        got = b""
        while len(got) < len(message):
            got += await stream.receive_some()
        assert got == message
        return stream.session_reused
    finally:
        await stream.aclose()


class TestResumption:
    async def test_echo_resumes_with_resume_client(self, pki: ServerPKI, version: str) -> None:
        """Every connection after the first resumes, and the statistics say so."""
        cache = SessionCache()
        client = pki.client_context(version)
        async with running(echo_handler, pki.server_context(version)) as server:
            reused = [await talk(server.port, client, cache) for _ in range(6)]
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
        assert reused == [False, True, True, True, True, True]
        assert (stats.accepted, stats.full, stats.resumed, stats.failed) == (6, 1, 5, 0)
        assert stats.closed == 6 and stats.in_progress == 0
        assert stats.resumption_rate == pytest.approx(5 / 6)
        assert stats.session_stats["accept_good"] == 6
        assert stats.session_stats["hits"] == 5

    async def test_handler_sees_how_the_connection_was_made(
        self, pki: ServerPKI, version: str
    ) -> None:
        """The handler's stream tells the TLS version, resumption, peer and timing."""
        seen: list[tuple[str | None, bool, str]] = []

        async def handler(stream: TLSServerStream) -> None:
            assert stream.handshake_seconds > 0 and math.isfinite(stream.handshake_seconds)
            assert stream.cipher() is not None
            assert stream.session is not None
            seen.append((stream.tls_version, stream.session_reused, stream.peer[0]))
            assert "TLSServerStream" in repr(stream)
            await echo_handler(stream)

        client = pki.client_context(version)
        async with running(handler, pki.server_context(version)) as server:
            first = await run_blocking_client(server.port, client)
            second = await run_blocking_client(server.port, client, session=first.session)
        assert (first.reused, second.reused) == (False, True)
        assert seen == [
            (VERSION_NAMES[version], False, "127.0.0.1"),
            (VERSION_NAMES[version], True, "127.0.0.1"),
        ]

    async def test_client_certificates_still_resume(self, pki: ServerPKI, version: str) -> None:
        """CERT_REQUIRED servers resume (CPython sets a session id context), and keep the cert."""
        certs: list[bool] = []

        async def handler(stream: TLSServerStream) -> None:
            certs.append(stream.getpeercert() is not None)
            await echo_handler(stream)

        cache = SessionCache()
        client = pki.client_context(version, client_cert=True)
        async with running(handler, pki.server_context(version, client_certs=True)) as server:
            reused = [await talk(server.port, client, cache) for _ in range(3)]
        assert reused == [False, True, True]
        assert certs == [True, True, True]

    async def test_client_without_certificate_is_refused(
        self, pki: ServerPKI, version: str
    ) -> None:
        """A client without the required certificate fails and is counted failed."""
        async with running(echo_handler, pki.server_context(version, client_certs=True)) as server:
            with pytest.raises((trio.BrokenResourceError, OSError)):
                await talk(server.port, pki.client_context(version), SessionCache())
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
        assert (stats.failed, stats.full, stats.resumed) == (1, 0, 0)

    async def test_handler_that_never_writes_still_sends_tickets(
        self, pki: ServerPKI, version: str
    ) -> None:
        """Tickets leave with the handshake, so a client resumes while the handler only waits.

        trio.SSLStream would hold TLS 1.3 tickets back until the handler's first write.
        """
        release = trio.Event()
        calls: list[bool] = []

        async def handler(stream: TLSServerStream) -> None:
            calls.append(stream.session_reused)
            if len(calls) == 1:
                await release.wait()  # the first connection: never write
            else:
                await echo_handler(stream)

        ctx = pki.client_context(version)

        def first_connection(port: int) -> ssl.SSLSession:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                tls = ctx.wrap_socket(raw, server_hostname="localhost")
                tls.setblocking(False)
                # Wait for the tickets to arrive (an event on the socket, not a sleep);
                # reading them yields no application data.
                while version == "1.3" and not tls.session.has_ticket:  # type: ignore[union-attr]
                    readable, _, _ = select.select([tls], [], [], 10)
                    assert readable, "the server sent no ticket"
                    with pytest.raises(ssl.SSLWantReadError):
                        tls.recv(100)
                session = tls.session
                assert session is not None
                tls.close()
                return session

        async with running(handler, pki.server_context(version)) as server:
            session = await trio.to_thread.run_sync(first_connection, server.port)
            second = await run_blocking_client(server.port, ctx, session=session)
            release.set()
        assert second.reused
        assert calls == [False, True]

    async def test_num_tickets_and_session_timeout(self, pki: ServerPKI, version: str) -> None:
        """num_tickets sets how many TLS 1.3 tickets come; session_timeout their lifetime."""
        ctx = pki.server_context(version)
        client = pki.client_context(version)
        tickets: list[int] = []

        def count(
            conn: object, direction: str, v: object, content: object, msg: object, data: object
        ) -> None:
            # ssl's debugging hook sees every handshake message; count the tickets.
            if direction == "read" and msg == ssl._TLSMessageType.NEWSESSION_TICKET:  # type: ignore[attr-defined]
                tickets.append(1)

        client._msg_callback = count  # type: ignore[attr-defined]
        async with running(echo_handler, ctx, num_tickets=3, session_timeout=60) as server:
            assert ctx.num_tickets == 3
            result = await run_blocking_client(server.port, client)
        assert result.session is not None
        assert result.session.ticket_lifetime_hint == 60
        assert len(tickets) == (3 if version == "1.3" else 1)


class TestNeverHang:
    async def test_stalled_handshake_is_dropped(self, pki: ServerPKI, version: str) -> None:
        """A client that connects and says nothing is dropped after handshake_timeout."""
        async with running(
            echo_handler, pki.server_context(version), handshake_timeout=0.2
        ) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            with trio.fail_after(30):
                assert await tcp.receive_some(10) == b""  # the server hung up
            await tcp.aclose()
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
        assert (stats.accepted, stats.failed, stats.closed, stats.in_progress) == (1, 1, 1, 0)

    async def test_garbage_is_a_failed_handshake(self, pki: ServerPKI, version: str) -> None:
        """Bytes that are not TLS fail the handshake; the server keeps serving."""
        async with running(echo_handler, pki.server_context(version)) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            await tcp.send_all(b"GET / HTTP/1.0\r\n\r\n")
            with trio.fail_after(30):
                try:
                    while await tcp.receive_some(1000):
                        pass
                except trio.BrokenResourceError:
                    pass  # the server closed with our bytes unread: a reset
            await tcp.aclose()
            ok = await run_blocking_client(server.port, pki.client_context(version))
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
        assert ok.reply == b"ping"
        assert (stats.failed, stats.full) == (1, 1)

    async def test_client_that_never_reads(self, pki: ServerPKI, version: str) -> None:
        """A TLS 1.3 client that never reads does not block the handshake, tickets or close."""
        done = trio.Event()

        async def handler(stream: TLSServerStream) -> None:
            assert await stream.receive_some(5) == b"hello"
            await stream.send_all(b"world")
            done.set()

        async with running(handler, pki.server_context(version)) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.do_handshake()
            await client.send_all(b"hello")
            with trio.fail_after(30):
                await done.wait()
                await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
            await tcp.aclose()
        assert (stats.full, stats.closed, stats.in_progress) == (1, 1, 0)

    async def test_close_while_handler_blocks_on_a_full_socket(
        self, pki: ServerPKI, version: str
    ) -> None:
        """Stopping the server cancels a handler stuck writing to a client that never reads."""
        started = trio.Event()

        async def handler(stream: TLSServerStream) -> None:
            started.set()
            await stream.send_all(b"x" * (64 * 1024 * 1024))

        async with trio.open_nursery() as nursery:
            server: TLSServer = await nursery.start(
                partial(
                    serve_tls,
                    handler,
                    0,
                    ssl_context=pki.server_context(version),
                    host="127.0.0.1",
                    close_timeout=0.2,
                )
            )
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.do_handshake()
            await started.wait()
            await trio.testing.wait_all_tasks_blocked()
            server.close()
        stats = server.statistics()
        await tcp.aclose()
        assert (stats.full, stats.closed) == (1, 1)

    async def test_close_notify_waits_at_most_close_timeout(
        self, pki: ServerPKI, version: str, autojump_clock: trio.testing.MockClock
    ) -> None:
        """When a peer that never reads has filled the socket, close gives up after close_timeout.

        The clock is trio's MockClock: it jumps ahead whenever every task waits,
        so the timeout passes at once and the elapsed (virtual) time is exact.
        """
        returned: list[float] = []

        async def handler(stream: TLSServerStream) -> None:
            # Fill the kernel's send buffer (the client never reads) so that the
            # close_notify cannot be written.
            junk = b"x" * 65536
            with contextlib.suppress(BlockingIOError):
                while True:
                    stream.socket.send(junk)
            returned.append(trio.current_time())

        async with running(
            handler, pki.server_context(version), close_timeout=3.0, handshake_timeout=1000.0
        ) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.do_handshake()
            while server.statistics().closed < 1:  # noqa: ASYNC110 - counters have no event
                await trio.sleep(0.5)  # virtual time
            closed_at = trio.current_time()
            stats = server.statistics()
            await tcp.aclose()
        assert (stats.full, stats.closed, stats.in_progress) == (1, 1, 0)
        assert 3.0 <= closed_at - returned[0] <= 4.0

    async def test_broken_peer_ends_only_its_connection(self, pki: ServerPKI, version: str) -> None:
        """A handler whose peer vanished (BrokenResourceError) does not stop the server."""
        async with running(echo_handler, pki.server_context(version)) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.do_handshake()
            await client.send_all(b"x")
            assert await client.receive_some(10) == b"x"
            await tcp.aclose()  # no close_notify: a ragged EOF for the server
            await trio.testing.wait_all_tasks_blocked()
            again = await run_blocking_client(server.port, pki.client_context(version))
        assert again.reply == b"ping"


class TestHandlerErrors:
    async def test_other_errors_propagate(self, pki: ServerPKI, version: str) -> None:
        """A handler bug stops the server, as with trio.serve_tcp; the socket is still closed."""

        async def handler(stream: TLSServerStream) -> None:
            raise ValueError("handler bug")

        ctx = pki.server_context(version)
        servers: list[TLSServer] = []

        async def serve_and_connect() -> None:
            async with trio.open_nursery() as nursery:
                server: TLSServer = await nursery.start(
                    partial(serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1")
                )
                servers.append(server)
                with trio.fail_after(30):
                    await run_blocking_client(server.port, pki.client_context(version))

        with pytest.raises(Exception) as info:  # noqa: PT011 - an exception group
            await serve_and_connect()
        assert info.group_contains(ValueError, match="handler bug", depth=None)
        stats = servers[0].statistics()
        assert (stats.full, stats.closed) == (1, 1)


class TestSNI:
    async def test_sni_callback_can_switch_context(self, pki: ServerPKI, version: str) -> None:
        """An SNI callback gets the TLSServerStream and may hand it another context."""
        names: list[tuple[str | None, bool]] = []
        ctx = pki.server_context(version)
        other = pki.server_context(version)

        def pick(obj: object, name: str | None, context: ssl.SSLContext) -> None:
            names.append((name, isinstance(obj, TLSServerStream)))
            assert isinstance(obj, TLSServerStream)
            obj.context = other

        ctx.sni_callback = pick
        contexts: list[ssl.SSLContext] = []

        async def handler(stream: TLSServerStream) -> None:
            contexts.append(stream.context)
            await echo_handler(stream)

        async with running(handler, ctx) as server:
            result = await run_blocking_client(server.port, pki.client_context(version))
        assert result.reply == b"ping"
        assert names == [("localhost", True)]
        assert contexts == [other]


class TestStream:
    async def test_stream_api(self, pki: ServerPKI, version: str) -> None:
        """send_all, receive_some, wait_send_all_might_not_block, aclose, closed errors."""
        results: dict[str, object] = {}

        async def handler(stream: TLSServerStream) -> None:
            await stream.wait_send_all_might_not_block()
            data = await stream.receive_some(3)
            results["first"] = data
            with pytest.raises(ValueError, match="max_bytes"):
                await stream.receive_some(0)
            await stream.send_all(b"")
            await stream.send_all(bytearray(b"ok"))
            await stream.send_all(memoryview(b"!" * 300_000))
            results["alpn"] = stream.selected_alpn_protocol()
            results["context"] = stream.context
            assert stream.socket.fileno() >= 0
            await stream.aclose()
            await stream.aclose()  # idempotent
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"late")
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()

        ctx = pki.server_context(version)
        async with running(handler, ctx) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.send_all(b"abcdef")
            got = b""
            while True:
                chunk = await client.receive_some()
                if not chunk:
                    break
                got += chunk
            await client.aclose()
        assert results["first"] == b"abc"
        assert got == b"ok" + b"!" * 300_000
        assert results["alpn"] is None
        assert results["context"] is ctx

    async def test_concurrent_receives_are_refused(self, pki: ServerPKI, version: str) -> None:
        """Two tasks receiving at once get trio.BusyResourceError, as with trio streams."""
        errors: list[BaseException] = []

        async def handler(stream: TLSServerStream) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.receive_some)
                await trio.testing.wait_all_tasks_blocked()
                try:
                    await stream.receive_some()
                except trio.BusyResourceError as exc:
                    errors.append(exc)
                nursery.cancel_scope.cancel()

        async with running(handler, pki.server_context(version)) as server:
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            client = trio.SSLStream(tcp, pki.client_context(version), server_hostname="localhost")
            await client.do_handshake()
            with trio.fail_after(30):
                assert await client.receive_some() == b""
            await client.aclose()
        assert len(errors) == 1


class TestSessionTimeout:
    def test_round_trip(self, pki: ServerPKI, version: str) -> None:
        """set_session_timeout() and get_session_timeout() mirror SSL_CTX_set/get_timeout()."""
        ctx = pki.server_context(version)
        assert get_session_timeout(ctx) == 7200  # OpenSSL's default for TLS servers
        set_session_timeout(ctx, 59.2)
        assert get_session_timeout(ctx) == 60  # whole seconds, rounded up
        with pytest.raises(ValueError, match="session_timeout"):
            set_session_timeout(ctx, 0)
        assert get_session_timeout(ctx) == 60


class TestBadInput:
    async def test_client_context_is_refused(self, pki: ServerPKI, version: str) -> None:
        with pytest.raises(ValueError, match="client context"):
            await serve_tls(echo_handler, 0, ssl_context=pki.client_context(version))

    async def test_not_a_context(self, pki: ServerPKI, version: str) -> None:
        with pytest.raises(TypeError, match=r"ssl\.SSLContext"):
            await serve_tls(echo_handler, 0, ssl_context="cert.pem")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"handshake_timeout": 0}, ValueError, "handshake_timeout"),
            ({"handshake_timeout": "5"}, TypeError, "handshake_timeout"),
            ({"close_timeout": math.inf}, ValueError, "close_timeout"),
            ({"num_tickets": -1}, ValueError, "num_tickets"),
            ({"num_tickets": 2.0}, TypeError, "num_tickets"),
            ({"session_timeout": 8 * 24 * 3600}, ValueError, "7 days"),
            ({"session_timeout": -1}, ValueError, "session_timeout"),
        ],
    )
    async def test_bad_knobs_change_nothing(
        self,
        pki: ServerPKI,
        version: str,
        kwargs: dict[str, object],
        error: type[Exception],
        match: str,
    ) -> None:
        """Bad knobs raise before anything is bound or changed."""
        ctx = pki.server_context(version)
        before = ctx.num_tickets
        with pytest.raises(error, match=match):
            await serve_tls(echo_handler, 0, ssl_context=ctx, host="127.0.0.1", **kwargs)  # type: ignore[arg-type]
        assert ctx.num_tickets == before

    async def test_bad_port(self, pki: ServerPKI, version: str) -> None:
        with pytest.raises(ValueError, match="port"):
            await serve_tls(echo_handler, 70000, ssl_context=pki.server_context(version))
        with pytest.raises(TypeError, match="port"):
            await serve_tls(echo_handler, "443", ssl_context=pki.server_context(version))  # type: ignore[arg-type]

    async def test_port_in_use(self, pki: ServerPKI, version: str) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(OSError, match="in use"):
                await serve_tls(
                    echo_handler, port, ssl_context=pki.server_context(version), host="127.0.0.1"
                )


def test_default_timeouts_match_the_constants(version: str) -> None:
    """The signatures spell the defaults out; they agree with resume._adapters.server_settings."""
    import inspect

    from resume._adapters.asyncio_server import start_server
    from resume._adapters.server_settings import DEFAULT_CLOSE_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT

    for func in (serve_tls, start_server):
        params = inspect.signature(func).parameters
        assert params["handshake_timeout"].default == DEFAULT_HANDSHAKE_TIMEOUT
        assert params["close_timeout"].default == DEFAULT_CLOSE_TIMEOUT
