"""resume.trio: what only the trio adapter has (the shared rules are in test_client_scenarios)."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trio
import trio.testing
from clienthelpers import PKI, TrioEchoServer, start_echo_server

import resume
import resume.trio
from resume import SessionCache
from resume.testing import TLS_VERSION_NAMES


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pki() -> PKI:
    return PKI()


async def exchange(stream: resume.trio.ResumingSSLStream) -> bytes:
    await stream.send_all(b"ping")
    return bytes(await stream.receive_some())


class TestStreamSurface:
    async def test_forwarded_attributes(self, pki: PKI, tls_version: str) -> None:
        """The stream forwards the SSLObject's attributes, like trio.SSLStream."""
        ctx = pki.client_context(tls_version)
        ctx.set_alpn_protocols(["b"])
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=ctx, cache=SessionCache()
            )
            assert stream.version() == TLS_VERSION_NAMES[tls_version]
            assert stream.selected_alpn_protocol() == "b"
            assert stream.cipher() is not None
            assert stream.getpeercert()["subjectAltName"]
            assert stream.server_hostname == "127.0.0.1"
            assert stream.context is ctx
            assert isinstance(stream.transport_stream, trio.SocketStream)
            assert isinstance(stream.ssl_stream, trio.SSLStream)
            assert "full" in repr(stream)
            assert "selected_alpn_protocol" in dir(stream)
            with pytest.raises(AttributeError, match="no_such_thing"):
                stream.no_such_thing  # noqa: B018
            await stream.do_handshake()  # already done: a checkpoint
            await stream.wait_send_all_might_not_block()
            assert await exchange(stream) == b"ping"
            await stream.aclose()
            await stream.aclose()  # idempotent
            assert "closed" in repr(stream)
            assert stream.session_handle is None
            nursery.cancel_scope.cancel()

    async def test_cannot_be_constructed_directly(self, pki: PKI) -> None:
        """ResumingSSLStream is made by open_tls_stream or wrap_client_stream only."""
        with pytest.raises(TypeError, match="open_tls_stream"):
            resume.trio.ResumingSSLStream(None, None, https_compatible=False)  # type: ignore[arg-type]


class TestWrapClientStream:
    async def test_over_an_in_memory_transport(self, pki: PKI, tls_version: str) -> None:
        """A custom transport (here in memory) resumes, keyed by the name and port given."""
        cache = SessionCache()
        ctx = pki.client_context(tls_version)
        server_ctx = pki.server_context(tls_version)
        reused = []
        for _ in range(3):
            client_t, server_t = trio.testing.memory_stream_pair()
            server = trio.SSLStream(server_t, server_ctx, server_side=True)

            async def serve(server: trio.SSLStream[Any] = server) -> None:
                await server.do_handshake()
                await server.send_all(await server.receive_some())
                assert await server.receive_some() == b""
                await server.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                stream = await resume.trio.wrap_client_stream(
                    client_t, server_hostname="localhost", port=8443, ssl_context=ctx, cache=cache
                )
                assert stream.cache_key.port == 8443
                assert stream.cache_key.peer == "localhost"
                assert await exchange(stream) == b"ping"
                reused.append(stream.session_reused)
                await stream.aclose()
        assert reused == [False, True, True]

    async def test_declared_target_not_transport_peer_is_the_key(
        self, pki: PKI, tls_version: str
    ) -> None:
        """Through a 'proxy' (a transport to another port), sessions are filed under the target.

        The same server answers both; a session filed for the declared target port
        is not offered to a direct connection (CVE-2021-22890: proxy vs origin).
        """
        cache = SessionCache()
        ctx = pki.client_context(tls_version)
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            tunnel = await trio.open_tcp_stream("127.0.0.1", server.port)
            via = await resume.trio.wrap_client_stream(
                tunnel, server_hostname="localhost", port=1, ssl_context=ctx, cache=cache
            )
            await exchange(via)
            await via.aclose()
            direct = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, server_hostname="localhost", ssl_context=ctx, cache=cache
            )
            await exchange(direct)
            await direct.aclose()
            assert (via.cache_key.port, direct.cache_key.port) == (1, server.port)
            assert direct.session_reused is False
            assert server.reused == [False, False]
            nursery.cancel_scope.cancel()

    async def test_bad_arguments_close_the_transport(self, pki: PKI) -> None:
        """Bad input raises a clear error and the given transport is closed."""
        cases: list[tuple[dict[str, Any], type[Exception]]] = [
            ({"port": 0}, ValueError),
            ({"port": "443"}, TypeError),
            ({"port": 443, "cache": True}, TypeError),
            ({"port": 443, "ssl_context": ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)}, ValueError),
            ({"port": 443, "ssl_context": "ctx"}, TypeError),
        ]
        for kwargs, exc in cases:
            client_t, server_t = trio.testing.memory_stream_pair()
            with pytest.raises(exc):
                await resume.trio.wrap_client_stream(client_t, server_hostname="x.test", **kwargs)
            # The transport was closed: the other side sees EOF.
            assert await server_t.receive_some() == b""
            await server_t.aclose()


class TestOpenTLSStream:
    @pytest.mark.parametrize(
        ("kwargs", "exc"),
        [
            ({"port": 0}, ValueError),
            ({"port": 70000}, ValueError),
            ({"port": True}, TypeError),
            ({"port": 443, "cache": "yes"}, TypeError),
            ({"port": 443, "ssl_context": object()}, TypeError),
            ({"port": 443, "server_hostname": ""}, ValueError),
        ],
    )
    async def test_bad_arguments_fail_before_connecting(
        self, kwargs: dict[str, object], exc: type[Exception]
    ) -> None:
        """Bad input is refused before any connection is attempted (the host does not resolve)."""
        with pytest.raises(exc):
            await resume.trio.open_tls_stream("does-not-resolve.invalid", **kwargs)  # type: ignore[arg-type]

    async def test_default_context_is_shared(self) -> None:
        """ssl_context=None uses one shared default context, so sessions can be reused."""
        assert resume.default_ssl_context() is resume.default_ssl_context()
        assert resume.default_ssl_context().verify_mode == ssl.CERT_REQUIRED

    async def test_refused_connection_leaves_the_cache_alone(self, pki: PKI) -> None:
        """A TCP failure before the handshake touches no cached session."""
        cache = SessionCache()
        ctx = pki.client_context("1.2")
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context("1.2"))
            port = server.port
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", port, ssl_context=ctx, cache=cache
            )
            await exchange(stream)
            await stream.aclose()
            server.cancel_scope.cancel()
        with pytest.raises(OSError, match="connect"):
            await resume.trio.open_tls_stream("127.0.0.1", port, ssl_context=ctx, cache=cache)
        assert len(cache) == 1
        assert cache.statistics().hits == 0


class TestCleanClose:
    async def test_https_compatible_cut_reads_as_eof_and_keeps_the_sessions(
        self, pki: PKI, tls_version: str
    ) -> None:
        """With https_compatible=True a cut reads as b""; the verified sessions stay."""
        cache = SessionCache()
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version), cut=True)
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1",
                server.port,
                ssl_context=pki.client_context(tls_version),
                cache=cache,
                https_compatible=True,
            )
            assert await exchange(stream) == b"ping"
            assert await stream.receive_some() == b""
            await stream.aclose()
            assert stream.session_stored
            assert len(cache) == (1 if tls_version == "1.2" else 2)
            nursery.cancel_scope.cancel()

    async def test_https_compatible_clean_close_is_kept(self, pki: PKI, tls_version: str) -> None:
        """With https_compatible=True a healthy connection closed by the client is kept."""
        cache = SessionCache()
        ctx = pki.client_context(tls_version)
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            for _ in range(2):
                stream = await resume.trio.open_tls_stream(
                    "127.0.0.1", server.port, ssl_context=ctx, cache=cache, https_compatible=True
                )
                await exchange(stream)
                await stream.aclose()
            assert server.reused == [False, True]
            nursery.cancel_scope.cancel()

    async def test_cancelled_receive_is_not_a_cut(self, pki: PKI, tls_version: str) -> None:
        """A receive_some cancelled by a timeout leaves the connection clean."""
        cache = SessionCache()
        async with trio.open_nursery() as nursery:
            server = await start_echo_server(nursery, pki.server_context(tls_version))
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=pki.client_context(tls_version), cache=cache
            )
            with trio.move_on_after(0.05) as scope:
                await stream.receive_some()  # the echo server sends nothing unasked
            assert scope.cancelled_caught
            assert await exchange(stream) == b"ping"
            await stream.aclose()
            assert stream.session_stored
            nursery.cancel_scope.cancel()

    async def test_server_close_notify_then_client_close_is_clean(
        self, pki: PKI, tls_version: str
    ) -> None:
        """The server ending with close_notify (receive_some() == b"") is a clean end."""
        cache = SessionCache()
        server_ctx = pki.server_context(tls_version)

        async def one_shot(tcp: trio.SocketStream) -> None:
            s = trio.SSLStream(tcp, server_ctx, server_side=True)
            await s.do_handshake()
            await s.send_all(await s.receive_some())
            await s.aclose()  # close_notify

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, one_shot, 0)
            port = listeners[0].socket.getsockname()[1]
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", port, ssl_context=pki.client_context(tls_version), cache=cache
            )
            assert await exchange(stream) == b"ping"
            assert await stream.receive_some() == b""
            await stream.aclose()
            assert stream.session_stored
            nursery.cancel_scope.cancel()

    async def test_unwrap_is_a_clean_close(self, pki: PKI, tls_version: str) -> None:
        """unwrap() (both sides exchange close_notify) stores the session and frees the handle."""
        cache = SessionCache()
        server_ctx = pki.server_context(tls_version)

        async def unwrapping(tcp: trio.SocketStream) -> None:
            s = trio.SSLStream(tcp, server_ctx, server_side=True)
            await s.do_handshake()
            await s.send_all(await s.receive_some())
            raw, _ = await s.unwrap()
            await raw.aclose()

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, unwrapping, 0)
            port = listeners[0].socket.getsockname()[1]
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", port, ssl_context=pki.client_context(tls_version), cache=cache
            )
            await exchange(stream)
            handle = stream.session_handle
            raw, leftover = await stream.unwrap()
            await raw.aclose()
            assert leftover == b""
            assert stream.session_stored
            assert handle is not None and (handle.freed or handle.owner is cache)
            with pytest.raises(trio.ClosedResourceError):
                await stream.unwrap()
            await stream.aclose()
            nursery.cancel_scope.cancel()

    async def test_cancelled_aclose_frees_the_streams_reference(
        self, pki: PKI, tls_version: str
    ) -> None:
        """A close interrupted by cancellation frees the stream's reference; sessions stay."""
        cache = SessionCache()
        async with trio.open_nursery() as nursery:
            server: TrioEchoServer = await start_echo_server(
                nursery, pki.server_context(tls_version)
            )
            stream = await resume.trio.open_tls_stream(
                "127.0.0.1", server.port, ssl_context=pki.client_context(tls_version), cache=cache
            )
            await exchange(stream)
            handle = stream.session_handle
            assert handle is not None
            refs = handle.refcount
            with trio.CancelScope() as scope:
                scope.cancel()
                await stream.aclose()
            assert stream.session_stored
            assert len(cache) == (1 if tls_version == "1.2" else 2)
            assert handle.freed or handle.refcount == refs - 1
            nursery.cancel_scope.cancel()
