"""The session boundary is decided when the SSL object is made (issue 8, finding 1).

Each test fills a cache with one connection, then opens a second connection
and changes one tracked setting of the client's context *while that connect is
in flight* (after the adapter was called, before the TCP connection exists):
in the trio adapter from a custom hostname resolver, in the asyncio adapter
from the running loop's ``sock_connect``. The strict setting must win: a
session made with ``CERT_NONE`` never lets a ``CERT_REQUIRED`` connection skip
verification, and any other change means a full handshake under the new
settings. The ``unchanged`` case proves that the same path resumes when
nothing changes, so the other cases could fail.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import trio
from clienthelpers import PKI, TrioEchoServer, cert_fingerprint, pin, start_echo_server

import resume.asyncio
import resume.trio
from resume import SessionCache

T = TypeVar("T")

#: The name the clients connect to; the test resolver maps it to 127.0.0.1.
FAKE_HOST = "boundary.invalid"


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@dataclass(frozen=True)
class Case:
    """How the client context starts, what changes in flight, and what must follow."""

    #: Called on a fresh pinned client context before the first connection.
    setup: Callable[[ssl.SSLContext, PKI], None]
    #: Called while the second connection is in flight.
    change: Callable[[ssl.SSLContext, PKI], None]
    #: "fails": the second connection must fail verification; "full": it must
    #: complete with a full handshake; "resumed": it must resume.
    outcome: str
    server_hostname: str = "localhost"
    request_client_cert: bool = False


def _trusting(ctx: ssl.SSLContext, pki: PKI) -> None:
    pki.ca.configure_trust(ctx)


def _loose(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE


def _no_name_check(ctx: ssl.SSLContext, pki: PKI) -> None:
    pki.ca.configure_trust(ctx)
    ctx.check_hostname = False


def _nothing(ctx: ssl.SSLContext, pki: PKI) -> None:
    pass


def _verify_required(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.verify_mode = ssl.CERT_REQUIRED


def _check_hostname(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.check_hostname = True


def _more_trust(ctx: ssl.SSLContext, pki: PKI) -> None:
    pki.other_ca.configure_trust(ctx)


def _client_cert(ctx: ssl.SSLContext, pki: PKI) -> None:
    pki.client_a.configure_cert(ctx)


def _alpn(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.set_alpn_protocols(["b"])


def _ciphers(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.set_ciphers("ECDHE+AESGCM:!AES128")


def _bounds(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED


def _verify_flags(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.verify_flags ^= ssl.VERIFY_X509_PARTIAL_CHAIN


def _options(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.options ^= ssl.OP_NO_TICKET


def _pha(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.post_handshake_auth = True


def _common_name(ctx: ssl.SSLContext, pki: PKI) -> None:
    ctx.hostname_checks_common_name = not ctx.hostname_checks_common_name


CASES: dict[str, Case] = {
    "unchanged": Case(_trusting, _nothing, "resumed"),
    "verify_mode": Case(_loose, _verify_required, "fails"),
    "check_hostname": Case(_no_name_check, _check_hostname, "fails", server_hostname="wrong.test"),
    "trust": Case(_trusting, _more_trust, "full"),
    "client_certificate": Case(_trusting, _client_cert, "full", request_client_cert=True),
    "alpn": Case(_trusting, _alpn, "full"),
    "ciphers": Case(_trusting, _ciphers, "full"),
    "protocol_bounds": Case(_trusting, _bounds, "full"),
    "verify_flags": Case(_trusting, _verify_flags, "full"),
    "options": Case(_trusting, _options, "full"),
    "post_handshake_auth": Case(_trusting, _pha, "full"),
    "hostname_checks_common_name": Case(_trusting, _common_name, "full"),
}


def _client_context(pki: PKI, version: str, case: Case) -> ssl.SSLContext:
    ctx = pin(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), version)
    case.setup(ctx, pki)
    return ctx


def _check(case: Case, server: TrioEchoServer, pki: PKI, outcome: object) -> None:
    # *outcome* is the second connection's session_reused, or the exception it raised.
    if case.outcome == "fails":
        assert isinstance(outcome, ssl.SSLCertVerificationError), outcome
        return
    assert not isinstance(outcome, BaseException), outcome
    assert outcome is (case.outcome == "resumed")
    last = server.records[-1]
    assert last.reused is (case.outcome == "resumed")
    if case.change is _client_cert:
        assert last.client_cert == cert_fingerprint(
            ssl.PEM_cert_to_DER_cert(pki.client_a.cert_chain_pems[0].bytes().decode())
        )
    if case.change is _alpn:
        assert last.alpn == "b"


class _Resolver(trio.abc.HostnameResolver):
    # Answers FAKE_HOST with 127.0.0.1, after calling *on_resolve* (the "in flight" hook).
    def __init__(self) -> None:
        self.on_resolve: Callable[[], None] = lambda: None

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        assert host == FAKE_HOST.encode()
        self.on_resolve()
        await trio.lowlevel.checkpoint()
        assert isinstance(port, (bytes, str, int))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        raise NotImplementedError


@pytest.mark.parametrize("name", list(CASES))
async def test_trio_setting_changed_in_flight(pki: PKI, tls_version: str, name: str) -> None:
    """trio: a setting changed during name resolution applies to the session choice too."""
    case = CASES[name]
    ctx = _client_context(pki, tls_version, case)
    cache = SessionCache()
    resolver = _Resolver()
    trio.socket.set_custom_hostname_resolver(resolver)

    async def connect() -> bool:
        stream = await resume.trio.open_tls_stream(
            FAKE_HOST, server.port, ssl_context=ctx, cache=cache,
            server_hostname=case.server_hostname,
        )
        async with stream:
            await stream.send_all(b"ping")
            assert await stream.receive_some(10) == b"ping"
        return stream.session_reused

    async with trio.open_nursery() as nursery:
        server = await start_echo_server(
            nursery, pki.server_context(tls_version, request_client_cert=case.request_client_cert)
        )
        try:
            assert await connect() is False
            assert len(cache) >= 1
            resolver.on_resolve = lambda: case.change(ctx, pki)
            outcome: object
            try:
                outcome = await connect()
            except trio.BrokenResourceError as exc:
                outcome = exc.__cause__
        finally:
            trio.socket.set_custom_hostname_resolver(None)
            nursery.cancel_scope.cancel()
    _check(case, server, pki, outcome)


async def in_asyncio(fn: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine function *fn* in a worker thread with its own asyncio loop."""

    async def main() -> T:
        return await fn()

    return await trio.to_thread.run_sync(asyncio.run, main())


@pytest.mark.parametrize("name", list(CASES))
async def test_asyncio_setting_changed_in_flight(pki: PKI, tls_version: str, name: str) -> None:
    """asyncio: a setting changed during the TCP connect applies to the session choice too."""
    case = CASES[name]
    ctx = _client_context(pki, tls_version, case)
    cache = SessionCache()

    async def connect(change: bool) -> object:
        loop = asyncio.get_running_loop()
        if change:
            original = loop.sock_connect

            async def sock_connect(sock: socket.socket, address: Any) -> None:
                case.change(ctx, pki)
                await original(sock, address)

            loop.sock_connect = sock_connect  # type: ignore[method-assign]
        try:
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", server.port, ssl=ctx, cache=cache,
                server_hostname=case.server_hostname,
            )
        except ssl.SSLError as exc:
            return exc
        async with writer:
            writer.write(b"ping")
            assert await reader.read(10) == b"ping"
        return writer.session_reused

    async with trio.open_nursery() as nursery:
        server = await start_echo_server(
            nursery, pki.server_context(tls_version, request_client_cert=case.request_client_cert)
        )
        assert await in_asyncio(lambda: connect(False)) is False
        assert len(cache) >= 1
        outcome = await in_asyncio(lambda: connect(True))
        nursery.cancel_scope.cancel()
    _check(case, server, pki, outcome)


@pytest.mark.parametrize("adapter", ["trio", "asyncio"])
async def test_an_empty_cache_fails_the_same_way(pki: PKI, tls_version: str, adapter: str) -> None:
    """Control: with no session to offer, the tightened connection fails verification."""
    ctx = _client_context(pki, tls_version, CASES["verify_mode"])
    ctx.verify_mode = ssl.CERT_REQUIRED

    async def asyncio_connect() -> object:
        try:
            await resume.asyncio.open_connection(
                "127.0.0.1", server.port, ssl=ctx, cache=SessionCache(),
                server_hostname="localhost",
            )
        except ssl.SSLError as exc:
            return exc
        return None  # pragma: no cover - the check below fails

    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        if adapter == "trio":
            with pytest.raises(trio.BrokenResourceError) as info:
                await resume.trio.open_tls_stream(
                    "127.0.0.1", server.port, ssl_context=ctx, cache=SessionCache(),
                    server_hostname="localhost",
                )
            outcome: object = info.value.__cause__
        else:
            outcome = await in_asyncio(asyncio_connect)
        nursery.cancel_scope.cancel()
    assert isinstance(outcome, ssl.SSLCertVerificationError)
