"""resume.asyncio: what only the asyncio adapter has (shared rules: test_client_scenarios).

The server is the trio echo server of clienthelpers; each asyncio client runs in
a worker thread under its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio
from clienthelpers import PKI, start_echo_server

import resume
import resume.asyncio
from resume import SessionCache

T = TypeVar("T")


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pki() -> PKI:
    return PKI()


async def in_asyncio(fn: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine function *fn* in a worker thread with its own asyncio loop."""

    async def main() -> T:
        return await fn()

    return await trio.to_thread.run_sync(asyncio.run, main())


async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    return await reader.read(100)


class TestOpenConnection:
    async def test_reader_writer_and_session_info(self, pki: PKI, tls_version: str) -> None:
        """The writer reports resumption three ways, all agreeing; sslcontext is the user's."""
        cache = SessionCache()
        ctx = pki.client_context(tls_version)

        async def client() -> tuple[bool, bool, bool]:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, cache=cache
            )
            assert await ping(reader, writer) == b"ping"
            assert writer.get_extra_info("sslcontext") is ctx
            assert writer.get_extra_info("peercert")["subjectAltName"]
            info = resume.asyncio.session_info(writer)
            assert info.cache_key == writer.cache_key and info.cache_key.port == port
            assert info.session_handle is writer.session_handle is not None
            assert "resume.asyncio.ResumingStreamWriter" in repr(writer)
            result = (
                info.session_reused,
                writer.session_reused,
                writer.get_extra_info("ssl_object").session_reused,
            )
            writer.close()
            await writer.wait_closed()
            assert writer.session_handle is None
            assert resume.asyncio.session_info(writer).session_stored == writer.session_stored
            return result

        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            port = server.port
            first = await in_asyncio(client)
            second = await in_asyncio(client)
            nursery.cancel_scope.cancel()
        assert first == (False, False, False)
        assert second == (True, True, True)

    async def test_over_an_existing_socket(self, pki: PKI, tls_version: str) -> None:
        """With sock=, the key is server_hostname and the port given."""
        cache = SessionCache()
        ctx = pki.client_context(tls_version)

        async def client() -> bool:
            sock = socket.create_connection(("127.0.0.1", port))
            reader, writer = await resume.asyncio.open_connection(
                sock=sock, port=port, server_hostname="localhost", ssl=ctx, cache=cache
            )
            await ping(reader, writer)
            assert writer.cache_key.peer == "localhost"
            writer.close()
            await writer.wait_closed()
            return writer.session_reused

        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            port = server.port
            assert [await in_asyncio(client) for _ in range(3)] == [False, True, True]
            nursery.cancel_scope.cancel()

    async def test_abort_keeps_the_verified_sessions(self, pki: PKI, tls_version: str) -> None:
        """writer.abort() closes at once; the sessions captured after the handshake stay."""
        cache = SessionCache()

        async def client() -> bool:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.client_context(tls_version), cache=cache
            )
            await ping(reader, writer)
            handle = writer.session_handle
            assert handle is not None
            refs = handle.refcount
            writer.abort()
            await writer.wait_closed()
            assert handle.freed or handle.refcount == refs - 1  # the writer's reference went
            writer.close()  # after abort: nothing more happens
            return writer.session_stored

        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            port = server.port
            assert await in_asyncio(client) is True
            nursery.cancel_scope.cancel()
        assert len(cache) == (1 if tls_version == "1.2" else 2)

    async def test_server_close_notify_is_a_clean_end(self, pki: PKI, tls_version: str) -> None:
        """A server that ends with close_notify leaves a clean connection: its session is kept."""
        cache = SessionCache()
        server_ctx = pki.server_context(tls_version)

        async def one_shot(tcp: trio.SocketStream) -> None:
            s = trio.SSLStream(tcp, server_ctx, server_side=True)
            await s.do_handshake()
            await s.send_all(await s.receive_some())
            await s.aclose()

        async def client() -> bool:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.client_context(tls_version), cache=cache
            )
            await ping(reader, writer)
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
            return writer.session_stored

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, one_shot, 0)
            port = listeners[0].socket.getsockname()[1]
            assert await in_asyncio(client) is True
            nursery.cancel_scope.cancel()

    async def test_refused_connection_leaves_the_cache_alone(self, pki: PKI) -> None:
        """A connection refused before the handshake keeps the cached TLS 1.2 session."""
        cache = SessionCache()
        ctx = pki.client_context("1.2")

        async def client() -> None:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, cache=cache
            )
            await ping(reader, writer)
            writer.close()
            await writer.wait_closed()

        async def refused() -> None:
            with pytest.raises(OSError, match="onnect"):
                await resume.asyncio.open_connection("127.0.0.1", port, ssl=ctx, cache=cache)

        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context("1.2"))
            port = server.port
            await in_asyncio(client)
            server.cancel_scope.cancel()
        await in_asyncio(refused)
        assert len(cache) == 1
        only = cache.get0(cache.keys()[0])
        assert only is not None and only.refcount == 1


    async def test_dropped_writer_frees_its_reference(self, pki: PKI, tls_version: str) -> None:
        """A writer garbage-collected without close() leaks no reference; its sessions stay."""
        cache = SessionCache()

        async def client() -> None:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=pki.client_context(tls_version), cache=cache
            )
            await ping(reader, writer)
            handle = writer.session_handle
            assert handle is not None
            refs = handle.refcount
            # The writer dies at ``del`` (reference counting); asyncio warns then
            # on 3.11+ (StreamWriter.__del__); 3.10's StreamWriter has no __del__.
            if sys.version_info >= (3, 11):
                with pytest.warns(ResourceWarning, match="unclosed"):  # noqa: PT031
                    del writer
                    gc.collect()
            else:
                del writer
                gc.collect()
            assert handle.freed or handle.refcount == refs - 1
            transport = reader._transport  # type: ignore[attr-defined]
            transport.abort()
            await asyncio.sleep(0)

        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            port = server.port
            await in_asyncio(client)
            nursery.cancel_scope.cancel()
        assert len(cache) == (1 if tls_version == "1.2" else 2)


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "exc", "match"),
        [
            ({"host": "x.invalid", "port": 443, "ssl": False}, ValueError, "always uses TLS"),
            ({"host": "x.invalid", "port": 443, "ssl": "yes"}, TypeError, "SSLContext"),
            ({"host": "x.invalid", "port": None}, ValueError, "port is required"),
            ({"host": None, "port": 443}, ValueError, "server_hostname"),
            ({"host": "x.invalid", "port": 443, "cache": True}, TypeError, "SessionCache"),
            ({"host": "x.invalid", "port": 0}, ValueError, "port"),
            (
                {"host": "x.invalid", "port": 443, "ssl": ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)},
                ValueError,
                "server-side",
            ),
        ],
    )
    async def test_refused_before_connecting(
        self, kwargs: dict[str, Any], exc: type[Exception], match: str
    ) -> None:
        """Bad input raises a clear error before any connection (the host does not resolve)."""

        async def client() -> None:
            with pytest.raises(exc, match=match):
                await resume.asyncio.open_connection(**kwargs)

        await in_asyncio(client)

    async def test_host_none_without_sock(self) -> None:
        """host=None needs sock=."""

        async def client() -> None:
            with pytest.raises(ValueError, match="sock"):
                await resume.asyncio.open_connection(None, 443, server_hostname="a.test")

        await in_asyncio(client)

    async def test_session_info_needs_a_resuming_writer(self) -> None:
        """session_info() of a plain asyncio writer is a TypeError."""
        with pytest.raises(TypeError, match="open_connection"):
            resume.asyncio.session_info(object())  # type: ignore[arg-type]
