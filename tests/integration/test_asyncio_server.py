"""resume.asyncio.start_server: real handshakes on loopback, TLS 1.2 and TLS 1.3.

Each test is a plain function that runs its own event loop with ``asyncio.run``
(the suite's trio mode does not apply to sync tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import select
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from programs import require
from serverhelpers import ServerPKI, blocking_client

from resume import SessionCache
from resume._adapters.asyncio_server import TLSServer, start_server
from resume.asyncio import open_connection

pytestmark = pytest.mark.parametrize("version", ["1.2", "1.3"])


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 60))


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def talk(port: int, ctx: ssl.SSLContext, cache: SessionCache) -> bool:
    reader, writer = await open_connection(
        "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost"
    )
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    reused = writer.session_reused
    writer.close()
    await writer.wait_closed()
    return reused


async def settle(server: TLSServer, closed: int) -> None:
    # Wait for the server's connection tasks to finish (they are tracked), not a sleep.
    while server.statistics().closed < closed:
        await asyncio.gather(*list(server._state.tasks), return_exceptions=True)
        await asyncio.sleep(0)


def test_resumes_with_resume_client(pki: ServerPKI, version: str) -> None:
    """Every connection after the first resumes through resume.asyncio's client."""

    async def main() -> tuple[list[bool], Any]:
        cache = SessionCache()
        client = pki.client_context(version)
        async with await start_server(echo, "127.0.0.1", 0, ssl=pki.server_context(version)) as srv:
            reused = [await talk(srv.port, client, cache) for _ in range(5)]
            await settle(srv, 5)
            return reused, srv.statistics()

    reused, stats = run(main)
    assert reused == [False, True, True, True, True]
    assert (stats.accepted, stats.full, stats.resumed, stats.failed) == (5, 1, 4, 0)
    assert stats.closed == 5 and stats.in_progress == 0
    assert stats.session_stats["hits"] == 4


def test_client_certificates_resume(pki: ServerPKI, version: str) -> None:
    """CERT_REQUIRED: resumption works, and the callback sees the client certificate."""
    certs: list[bool] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        certs.append(writer.get_extra_info("peercert") is not None)
        await echo(reader, writer)

    async def main() -> list[bool]:
        cache = SessionCache()
        client = pki.client_context(version, client_cert=True)
        server_ctx = pki.server_context(version, client_certs=True)
        async with await start_server(handler, "127.0.0.1", 0, ssl=server_ctx) as srv:
            return [await talk(srv.port, client, cache) for _ in range(3)]

    assert run(main) == [False, True, True]
    assert certs == [True, True, True]


def test_callback_that_never_writes_still_lets_clients_resume(pki: ServerPKI, version: str) -> None:
    """Tickets leave with the handshake; a second client resumes while the first waits."""
    ctx = pki.client_context(version)

    def first_connection(port: int) -> ssl.SSLSession:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
            tls.setblocking(False)
            while version == "1.3" and not tls.session.has_ticket:  # type: ignore[union-attr]
                readable, _, _ = select.select([tls], [], [], 10)
                assert readable, "the server sent no ticket"
                with pytest.raises(ssl.SSLWantReadError):
                    tls.recv(100)
            session = tls.session
            assert session is not None
            tls.close()
            return session

    async def main() -> bool:
        release = asyncio.Event()
        calls: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            calls.append(1)
            if len(calls) == 1:
                await release.wait()
            else:
                await echo(reader, writer)

        loop = asyncio.get_running_loop()
        async with await start_server(
            handler, "127.0.0.1", 0, ssl=pki.server_context(version)
        ) as srv:
            session = await loop.run_in_executor(None, first_connection, srv.port)
            second = await loop.run_in_executor(
                None, lambda: blocking_client(srv.port, ctx, session=session)
            )
            release.set()
            return second.reused

    assert run(main)


def test_stalled_handshake_is_dropped(pki: ServerPKI, version: str) -> None:
    """A client that never sends a ClientHello is dropped and counted failed."""

    async def main() -> Any:
        srv = await start_server(
            echo, "127.0.0.1", 0, ssl=pki.server_context(version), handshake_timeout=0.2
        )
        async with srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            assert await reader.read(10) == b""  # the server hung up
            writer.close()
            await writer.wait_closed()
            await settle(srv, 1)
            return srv.statistics()

    stats = run(main)
    assert (stats.accepted, stats.failed, stats.closed, stats.in_progress) == (1, 1, 1, 0)


def test_client_that_never_reads(pki: ServerPKI, version: str) -> None:
    """A client that never reads does not stall the handshake, the reply or the close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(5) == b"hello"
        writer.write(b"world" * 1000)
        await writer.drain()

    ctx = pki.client_context(version)

    async def main() -> Any:
        srv = await start_server(
            handler, "127.0.0.1", 0, ssl=pki.server_context(version), close_timeout=0.5
        )
        async with srv:
            loop = asyncio.get_running_loop()

            def connect() -> ssl.SSLSocket:
                raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                tls = ctx.wrap_socket(raw, server_hostname="localhost")
                tls.sendall(b"hello")  # and never read
                return tls

            tls = await loop.run_in_executor(None, connect)
            await settle(srv, 1)
            stats = srv.statistics()
            await loop.run_in_executor(None, tls.close)
            return stats

    stats = run(main)
    assert (stats.full, stats.closed, stats.in_progress) == (1, 1, 0)


def test_close_cancels_connections(pki: ServerPKI, version: str) -> None:
    """close() stops accepting and cancels callbacks still running."""
    cancelled: list[bool] = []
    started: list[asyncio.Event] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started[0].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> Any:
        started.append(asyncio.Event())
        srv = await start_server(handler, "127.0.0.1", 0, ssl=pki.server_context(version))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", srv.port, ssl=pki.client_context(version), server_hostname="localhost"
        )
        await started[0].wait()
        assert srv.is_serving() and "TLSServer" in repr(srv)
        srv.close()
        await srv.wait_closed()
        assert await reader.read() == b""
        writer.close()
        return srv.statistics()

    stats = run(main)
    assert cancelled == [True]
    assert stats.closed == 1


def test_plain_function_callback(pki: ServerPKI, version: str) -> None:
    """A non-async callback works too (asyncio.start_server allows it)."""
    seen: list[bool] = []

    def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("ssl_object").session_reused)

    async def main() -> None:
        async with await start_server(
            handler, "127.0.0.1", 0, ssl=pki.server_context(version)
        ) as srv:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=pki.client_context(version), server_hostname="localhost"
            )
            assert await reader.read() == b""  # the server closed after the callback
            writer.close()

    run(main)
    assert seen == [False]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"handshake_timeout": 0}, ValueError, "handshake_timeout"),
        ({"close_timeout": math.nan}, ValueError, "close_timeout"),
        ({"num_tickets": 65}, ValueError, "num_tickets"),
        ({"session_timeout": "1h"}, TypeError, "session_timeout"),
        ({"port": -1}, ValueError, "port"),
    ],
)
def test_bad_input(
    pki: ServerPKI, version: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Bad arguments raise before anything is bound or changed."""
    ctx = pki.server_context(version)
    before = ctx.num_tickets

    async def main() -> None:
        await start_server(echo, "127.0.0.1", ssl=ctx, **kwargs)

    with pytest.raises(error, match=match):
        run(main)
    assert ctx.num_tickets == before


def test_client_context_is_refused(pki: ServerPKI, version: str) -> None:
    async def main() -> None:
        await start_server(echo, "127.0.0.1", 0, ssl=pki.client_context(version))

    with pytest.raises(ValueError, match="client context"):
        run(main)


def test_knobs_reach_the_context(pki: ServerPKI, version: str) -> None:
    """num_tickets and session_timeout configure the server's context."""
    ctx = pki.server_context(version)
    client = pki.client_context(version)

    async def main() -> Any:
        srv = await start_server(echo, "127.0.0.1", 0, ssl=ctx, num_tickets=1, session_timeout=77)
        async with srv:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, lambda: blocking_client(srv.port, client))

    result = run(main)
    assert ctx.num_tickets == 1
    assert result.session is not None and result.session.ticket_lifetime_hint == 77


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request head and answer with a tiny HTTP/1.0 response."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()


def test_openssl_s_client_resumes(pki: ServerPKI, version: str, tmp_path: Path) -> None:
    """``openssl s_client`` completes a handshake, then resumes with the saved session.

    On Python 3.10 the ClientHello used to be lost (CPython gh-103607) and
    s_client hung until the handshake timeout.
    """
    sess = tmp_path / "session.pem"

    async def s_client(port: int, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            require("openssl"), "s_client", "-connect", f"127.0.0.1:{port}",
            "-servername", "localhost",
            "-CAfile", str(pki.ca_file), "-verify_return_error", f"-tls{version.replace('.', '_')}",
            "-ign_eof",  # read until the server closes, so the response (and tickets) arrive
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(b"GET / HTTP/1.0\r\n\r\n")
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text + err.decode(errors="replace")
        return text

    async def main() -> tuple[str, str, Any]:
        async with await start_server(
            http, "127.0.0.1", 0, ssl=pki.server_context(version)
        ) as srv:
            first = await s_client(srv.port, "-sess_out", str(sess))
            second = await s_client(srv.port, "-sess_in", str(sess))
            await settle(srv, 2)
            return first, second, srv.statistics()

    first, second, stats = run(main)
    assert f"New, TLSv{version}" in first and "HTTP/1.0 200 OK" in first
    assert f"Reused, TLSv{version}" in second and "HTTP/1.0 200 OK" in second
    assert (stats.full, stats.resumed, stats.failed, stats.closed) == (1, 1, 0, 2)


def test_client_close_notify_is_answered(pki: ServerPKI, version: str) -> None:
    """A client that closes first (``SSLSocket.unwrap()``) gets the server's close_notify.

    Python 3.10's SSL protocol dropped that reply (CPython bpo-30698); the client
    then saw an unexpected EOF (SSLEOFError).
    """
    client = pki.client_context(version)

    def close_first(port: int) -> bool:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"ping")
            assert tls.recv(4) == b"ping"
            tls.unwrap()  # sends close_notify, then waits for the server's
            return True

    async def main() -> bool:
        async with await start_server(echo, "127.0.0.1", 0, ssl=pki.server_context(version)) as srv:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, close_first, srv.port)

    assert run(main)


def test_wait_closed_returns_with_finished_tasks_still_tracked(
    pki: ServerPKI, version: str
) -> None:
    """wait_closed() returns while a finished task is still in the set (its callback pending).

    A task leaves the set in its done callback, one turn of the loop after it
    finishes; from Python 3.12 on ``gather()`` of finished tasks never yields, so
    waiting on the whole set spun forever. The finished task is planted here.
    """

    async def main() -> int:
        srv = await start_server(echo, "127.0.0.1", 0, ssl=pki.server_context(version))
        finished = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        await finished
        srv._state.tasks.add(finished)  # done, and no done callback will remove it
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 10)
        return len(srv._state.tasks)

    assert run(main) == 1


# -- clients that close right after the handshake ----------------------------------------
#
# asyncio's SSL protocol logs "returning true from eof_received() has no effect when
# using ssl" when its application protocol asks to stay open after an EOF.
# asyncio.start_server(ssl=...) never does; start_server used to, when the EOF came
# in the same read as the client's last handshake flight (the protocol only learnt
# it ran over TLS when it was handed the TLS transport, a turn of the loop later).


def asyncio_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the ``asyncio`` logger said at WARNING or above."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("asyncio") and record.levelno >= logging.WARNING
    ]


def close_after_handshake(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None, *, ending: str
) -> bool:
    """Handshake, then end with the last flight: close_notify with it, or a bare FIN.

    The handshake runs through memory BIOs so that the client's last handshake
    flight and its close_notify leave in one ``send()`` and reach the server in
    one read, which is where the warning used to come from. Returns
    ``session_reused``.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost", session=session)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "the server closed during the handshake"
                incoming.write(data)
        if ending == "close_notify":
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()  # close_notify goes out; the server's reply is not awaited
        sock.sendall(outgoing.read())
        sock.shutdown(socket.SHUT_WR)  # a FIN after the last flight (and close_notify)
        while sock.recv(65536):  # until the server closes too
            pass
    return bool(tls.session_reused)


@pytest.mark.parametrize("ending", ["close_notify", "fin"])
def test_clients_closing_after_handshake_log_no_asyncio_warning(
    pki: ServerPKI, version: str, ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    """30 clients that close right after their handshake: asyncio logs nothing.

    On TLS 1.2 the connections resume, so that the client's Finished is the last
    handshake flight, as on every TLS 1.3 handshake.
    """
    ctx = pki.client_context(version)

    def clients(port: int) -> list[bool]:
        session = blocking_client(port, ctx).session if version == "1.2" else None
        return [close_after_handshake(port, ctx, session, ending=ending) for _ in range(30)]

    async def main() -> tuple[list[bool], Any]:
        loop = asyncio.get_running_loop()
        async with await start_server(echo, "127.0.0.1", 0, ssl=pki.server_context(version)) as srv:
            reused = await loop.run_in_executor(None, clients, srv.port)
            await settle(srv, 31 if version == "1.2" else 30)
            return reused, srv.statistics()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        reused, stats = run(main)
    assert reused == [version == "1.2"] * 30
    assert stats.failed == 0
    assert asyncio_warnings(caplog) == []


def test_openssl_s_client_reconnect_logs_no_asyncio_warning(
    pki: ServerPKI, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``openssl s_client -reconnect``, 5 runs of 6 connections: asyncio logs nothing.

    s_client sends close_notify right after each handshake; on the old code asyncio
    logged "returning true from eof_received() has no effect" for most of them.
    """
    openssl = require("openssl")

    async def s_client(port: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", str(pki.ca_file), "-verify_return_error",
            f"-tls{version.replace('.', '_')}", "-reconnect",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (out + err).decode(errors="replace")

    async def main() -> Any:
        async with await start_server(echo, "127.0.0.1", 0, ssl=pki.server_context(version)) as srv:
            for _ in range(5):
                await s_client(srv.port)
            await settle(srv, 30)
            return srv.statistics()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        stats = run(main)
    assert (stats.accepted, stats.failed, stats.closed) == (30, 0, 30)
    assert asyncio_warnings(caplog) == []
