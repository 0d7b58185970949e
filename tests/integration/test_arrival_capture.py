"""Sessions enter the cache the moment OpenSSL makes them (issue 15).

A session used to enter the cache when its connection closed, so a connection
opened beside a pooled, idle one never resumed. Now the binding's new-session
callback (``SSL_CTX_sess_set_new_cb``) hands each session over as it arrives: a
TLS 1.2 session at the end of its full handshake, each TLS 1.3 ticket in the read
that processes it. What a connection added is removed again when the connection
turns out bad (a fatal alert, a failed handshake or check); a connection that
merely ends without close_notify keeps its sessions (RFC 5246, 7.2.1).

The server's own record is the truth: nginx's ``$ssl_session_reused`` in its
access log, and the echo server's ``records``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import subprocess
import sys
import textwrap
import warnings

import pytest
import trio
import trustme
from clienthelpers import PKI, pin, start_echo_server
from nginx_server import NginxServer, NginxSite

import resume.asyncio
import resume.trio
from resume import SessionCache

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def _nginx_client(ca: trustme.CA, version: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return pin(ctx, version)


async def _trio_get(stream: resume.trio.ResumingSSLStream) -> bytes:
    await stream.send_all(REQUEST)
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = await stream.receive_some()
        assert chunk, data
        data += chunk
    return data


async def _asyncio_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = await reader.read(4096)
        assert chunk, data
        data += chunk
    return data


@pytest.mark.requires("nginx")
@pytest.mark.manpage("SSL_CTX_sess_set_get_cb:desc-1")
async def test_trio_connection_beside_an_idle_one_resumes(tls_version: str) -> None:
    """trio: with one connection open and idle, 20 of 20 new connections resume (nginx's record)."""
    ca = trustme.CA()
    with NginxServer(ca, [NginxSite()]) as server:
        ctx = _nginx_client(ca, tls_version)
        cache = SessionCache()
        port = server.port()
        idle = await resume.trio.open_tls_stream("localhost", port, ssl_context=ctx, cache=cache)
        await _trio_get(idle)  # stays open: its sessions were never stored at close
        reused = []
        for _ in range(20):
            stream = await resume.trio.open_tls_stream(
                "localhost", port, ssl_context=ctx, cache=cache
            )
            async with stream:
                await _trio_get(stream)
            reused.append(stream.session_reused)
        await idle.aclose()
        log = server.access_log()
    assert reused == [True] * 20
    assert [entry["reused"] for entry in log[1:]] == ["r"] * 20


@pytest.mark.requires("nginx")
@pytest.mark.manpage("SSL_CTX_sess_set_get_cb:desc-1")
async def test_asyncio_connection_beside_an_idle_one_resumes(tls_version: str) -> None:
    """asyncio: with one connection open and idle, 20 of 20 new connections resume."""
    ca = trustme.CA()
    with NginxServer(ca, [NginxSite()]) as server:
        ctx = _nginx_client(ca, tls_version)
        cache = SessionCache()
        port = server.port()

        async def main() -> list[bool]:
            idle_reader, idle_writer = await resume.asyncio.open_connection(
                "localhost", port, ssl=ctx, cache=cache
            )
            await _asyncio_get(idle_reader, idle_writer)
            reused = []
            for _ in range(20):
                reader, writer = await resume.asyncio.open_connection(
                    "localhost", port, ssl=ctx, cache=cache
                )
                async with writer:
                    await _asyncio_get(reader, writer)
                reused.append(writer.session_reused)
            idle_writer.close()
            await idle_writer.wait_closed()
            return reused

        reused = await trio.to_thread.run_sync(asyncio.run, main())
        log = server.access_log()
    assert reused == [True] * 20
    assert [entry["reused"] for entry in log[1:]] == ["r"] * 20


@pytest.mark.manpage(
    "SSL_CTX_sess_set_get_cb:notes-11",
    "SSL_CTX_sess_set_get_cb:notes-12",
    "SSL_CTX_sess_set_get_cb:notes-13",
    "SSL_CTX_sess_set_get_cb:notes-14",
)
async def test_every_ticket_is_kept_and_used_once(pki: PKI) -> None:
    """TLS 1.3: both tickets of a full handshake are kept; two idle-pool neighbours resume."""
    ctx = pki.client_context("1.3")
    cache = SessionCache()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context("1.3"))
        first = await resume.trio.open_tls_stream("127.0.0.1", server.port, ssl_context=ctx,
                                                  cache=cache, server_hostname="localhost")
        await first.send_all(b"ping")
        await first.receive_some()
        assert len(cache) == 2  # two tickets, still open
        # Two connections at once, beside the idle one: one ticket each.
        streams = [
            await resume.trio.open_tls_stream("127.0.0.1", server.port, ssl_context=ctx,
                                              cache=cache, server_hostname="localhost")
            for _ in range(2)
        ]
        assert [s.session_reused for s in streams] == [True, True]
        assert cache.statistics().taken == 2
        for s in [first, *streams]:
            await s.aclose()
        nursery.cancel_scope.cancel()
    assert server.reused == [False, True, True]


async def test_ticket_reuse_resumes_without_fresh_tickets(pki: PKI) -> None:
    """tls13_ticket_reuse=True: a ticket is lent like a TLS 1.2 session, never taken."""
    ctx = pki.client_context("1.3")
    cache = SessionCache(tls13_ticket_reuse=True)
    assert cache.tls13_ticket_reuse
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context("1.3"))
        first = await resume.trio.open_tls_stream("127.0.0.1", server.port, ssl_context=ctx,
                                                  cache=cache, server_hostname="localhost")
        await first.send_all(b"ping")
        await first.receive_some()  # two tickets arrive
        await first.aclose()
        for _ in range(4):
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                server_hostname="localhost",
            )
            await stream.aclose()  # never reads: no fresh ticket
        nursery.cancel_scope.cancel()
    assert server.reused == [False, True, True, True, True]
    assert cache.statistics().taken == 0
    assert len(cache) == 2


@pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-13")
async def test_single_use_default_runs_dry_without_fresh_tickets(pki: PKI) -> None:
    """The default uses each ticket once: two tickets, two resumptions, then a full handshake."""
    ctx = pki.client_context("1.3")
    cache = SessionCache()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context("1.3"))
        first = await resume.trio.open_tls_stream("127.0.0.1", server.port, ssl_context=ctx,
                                                  cache=cache, server_hostname="localhost")
        await first.send_all(b"ping")
        await first.receive_some()
        await first.aclose()
        for _ in range(3):
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                server_hostname="localhost",
            )
            await stream.aclose()
        nursery.cancel_scope.cancel()
    assert server.reused == [False, True, True, False]


async def _garbage_after_echo(tcp: trio.SocketStream, context: ssl.SSLContext) -> None:
    # Handshake, echo once; at the client's next message, a record no key can
    # open: the client sees a fatal TLS error (bad record MAC), not a quiet end.
    stream = trio.SSLStream(tcp, context, server_side=True)
    try:
        await stream.do_handshake()
        await stream.send_all(await stream.receive_some())
        await stream.receive_some()
        await tcp.send_all(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        await trio.sleep(1)
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(tcp)


@pytest.mark.manpage("SSL_CTX_sess_set_get_cb:desc-3")
async def test_fatal_error_removes_what_the_connection_added(pki: PKI, tls_version: str) -> None:
    """A fatal TLS error after the handshake takes the connection's sessions out again."""
    ctx = pki.client_context(tls_version)
    cache = SessionCache()
    server_ctx = pki.server_context(tls_version)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            trio.serve_tcp, lambda tcp: _garbage_after_echo(tcp, server_ctx), 0
        )
        port = listeners[0].socket.getsockname()[1]
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        await stream.send_all(b"ping")
        assert await stream.receive_some() == b"ping"
        assert len(cache) >= 1  # captured as they arrived
        await stream.send_all(b"next")
        with pytest.raises(trio.BrokenResourceError) as info:
            await stream.receive_some()
        assert isinstance(info.value.__cause__, ssl.SSLError)
        await stream.aclose()
        assert not stream.session_stored
        assert len(cache) == 0
        nursery.cancel_scope.cancel()


@pytest.mark.manpage("SSL_CTX_sess_set_get_cb:desc-3")
async def test_asyncio_fatal_error_removes_what_the_connection_added(
    pki: PKI, tls_version: str
) -> None:
    """asyncio: a fatal TLS error seen by the reader takes the connection's sessions out."""
    ctx = pki.client_context(tls_version)
    cache = SessionCache()
    server_ctx = pki.server_context(tls_version)

    async def main(port: int) -> bool:
        reader, writer = await resume.asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost"
        )
        writer.write(b"ping")
        assert await reader.read(4) == b"ping"
        assert len(cache) >= 1
        writer.write(b"next")
        with pytest.raises(ssl.SSLError):
            await reader.read(100)
        writer.close()
        return writer.session_stored

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            trio.serve_tcp, lambda tcp: _garbage_after_echo(tcp, server_ctx), 0
        )
        port = listeners[0].socket.getsockname()[1]
        stored = await trio.to_thread.run_sync(asyncio.run, main(port))
        nursery.cancel_scope.cancel()
    assert stored is False
    assert len(cache) == 0


async def test_context_that_could_serve_captures_at_close(
    pki: PKI, tls_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A PROTOCOL_TLS context gets no callback (it could serve); it resumes, captured at close."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    pki.ca.configure_trust(ctx)
    pin(ctx, tls_version)
    cache = SessionCache()
    caplog.set_level(logging.INFO, logger="resume")
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        for _ in range(3):
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                server_hostname="localhost",
            )
            async with stream:
                await stream.send_all(b"ping")
                await stream.receive_some()
        nursery.cancel_scope.cancel()
    assert server.reused == [False, True, True]
    said = [r.getMessage() for r in caplog.records if "captured when" in r.getMessage()]
    assert len(said) == 1 and "PROTOCOL_TLS_CLIENT" in said[0]


# -- the callback under stress, in a child python -X dev --------------------------------------

_CONTEXTS = textwrap.dedent(
    """
    import gc, json, ssl, sys
    from resume import ClientConnection, SessionCache, testing

    count, version = int(sys.argv[1]), sys.argv[2]
    pki = testing.ThrowawayPKI("localhost")
    server = pki.server_context(version)
    cache = SessionCache()
    reused = 0
    for i in range(count):
        client = pki.client_context(version)  # a new context each time, then dropped
        bios = [ssl.MemoryBIO() for _ in range(4)]
        conn, c = ClientConnection.begin(
            cache, client, "localhost", 443,
            lambda: client.wrap_bio(bios[0], bios[1], server_hostname="localhost"),
            lambda obj: obj,
        )
        s = server.wrap_bio(bios[2], bios[3], server_side=True)
        for _ in range(20):
            for obj, out, into in ((c, bios[1], bios[2]), (s, bios[3], bios[0])):
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                into.write(out.read())
        conn.handshake_complete(c)
        s.write(b"x")
        bios[0].write(bios[3].read())
        c.read(1)  # TLS 1.3 tickets arrive here, through the callback
        reused += c.session_reused
        conn.close(c, clean=i % 2 == 0)
        del conn, c, s, client, bios
        if i % 10 == 0:
            gc.collect()
    print(json.dumps({"done": count, "cached": len(cache), "reused": reused}))
    """
)


def test_dropped_contexts_never_crash_the_callback(tls_version: str) -> None:
    """Contexts made, used and collected one after another: no crash under -X dev."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _CONTEXTS, "300", tls_version],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["done"] == 300
    assert result["cached"] > 0  # the callback ran: sessions of every context arrived
    assert result["reused"] == 0  # each context is new: its key never matches another's


async def test_a_renewed_tls12_ticket_replaces_the_offered_one(pki: PKI) -> None:
    """TLS 1.2: a ticket renewed on a resumed handshake (no callback) is picked up at its end."""
    from resume.ticketkeys import TicketKeyRing, install_ticket_keys

    ring = TicketKeyRing()
    server_ctx = pki.server_context("1.2")
    install_ticket_keys(server_ctx, ring)
    ctx = pki.client_context("1.2")
    cache = SessionCache()

    async def connect(port: int) -> bool:
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        async with stream:
            await stream.send_all(b"ping")
            await stream.receive_some()
        return stream.session_reused

    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, server_ctx)
        assert await connect(server.port) is False
        ring.rotate()  # the cached ticket's key is now "previous": the server renews it
        assert await connect(server.port) is True
        ring.rotate()  # the first ticket's key is gone: only the renewed ticket resumes
        assert await connect(server.port) is True
        nursery.cancel_scope.cancel()
    assert server.reused == [False, True, True]
    assert len(cache) == 1
