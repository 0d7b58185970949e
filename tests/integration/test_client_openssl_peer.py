"""Both client adapters against ``openssl s_server``, a peer nobody here wrote.

Three server set-ups: TLS 1.2 with session ids (``-no_ticket``), TLS 1.2 with
RFC 5077 tickets, TLS 1.3 with tickets. Each runs 100 sequential connections
through one cache and checks the resumption rate (target: at least 99% of the
connections that can resume, i.e. all but the first).
"""

from __future__ import annotations

import asyncio

import pytest
import trio
from clienthelpers import PKI, SServer, s_server

import resume.asyncio
import resume.trio
from resume import SessionCache

pytestmark = pytest.mark.requires("openssl")

CONNECTIONS = 100

SETUPS = {
    "tls1.2-session-ids": ("1.2", False),
    "tls1.2-tickets": ("1.2", True),
    "tls1.3-tickets": ("1.3", True),
}


@pytest.fixture(params=list(SETUPS))
def setup(request: pytest.FixtureRequest) -> tuple[str, str, bool]:
    version, tickets = SETUPS[request.param]
    return request.param, version, tickets


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def check_session_kind(cache: SessionCache, version: str, tickets: bool) -> None:
    """The cached session is of the kind the server was set up for."""
    (key,) = cache.keys()
    handle = cache.get0(key)
    assert handle is not None
    if version == "1.2" and not tickets:
        assert handle.id and not handle.has_ticket  # a server-side session id
    else:
        assert handle.has_ticket


async def trio_run(server: SServer, pki: PKI, version: str, cache: SessionCache) -> list[bool]:
    ctx = pki.client_context(version)
    reused = []
    for i in range(CONNECTIONS):
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", server.port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        line = f"hello {i}\n".encode()
        await stream.send_all(line)
        got = b""
        while not got.endswith(b"\n"):
            got += await stream.receive_some()
        assert got == line[:-1][::-1] + b"\n"
        reused.append(stream.session_reused)
        await stream.aclose()
    return reused


def asyncio_run(server: SServer, pki: PKI, version: str, cache: SessionCache) -> list[bool]:
    ctx = pki.client_context(version)

    async def main() -> list[bool]:
        reused = []
        for i in range(CONNECTIONS):
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", server.port, ssl=ctx, cache=cache, server_hostname="localhost"
            )
            line = f"hello {i}\n".encode()
            writer.write(line)
            assert await reader.readline() == line[:-1][::-1] + b"\n"
            reused.append(writer.session_reused)
            writer.close()
            await writer.wait_closed()
        return reused

    return asyncio.run(main())


def resumption_rate(reused: list[bool]) -> float:
    # Every connection after the first can resume.
    return sum(reused[1:]) / (len(reused) - 1)


async def test_trio_client_against_s_server(pki: PKI, setup: tuple[str, str, bool]) -> None:
    """The trio client resumes >= 99% of the resumable connections to openssl s_server."""
    _, version, tickets = setup
    cache = SessionCache()
    with s_server(pki, version, tickets=tickets) as server:
        reused = await trio_run(server, pki, version, cache)
    assert reused[0] is False
    assert resumption_rate(reused) >= 0.99, reused
    check_session_kind(cache, version, tickets)


async def test_asyncio_client_against_s_server(pki: PKI, setup: tuple[str, str, bool]) -> None:
    """The asyncio client resumes >= 99% of the resumable connections to openssl s_server."""
    _, version, tickets = setup
    cache = SessionCache()
    with s_server(pki, version, tickets=tickets) as server:
        reused = await trio.to_thread.run_sync(asyncio_run, server, pki, version, cache)
    assert reused[0] is False
    assert resumption_rate(reused) >= 0.99, reused
    check_session_kind(cache, version, tickets)


async def test_s_server_restart_declines_and_recovers(pki: PKI) -> None:
    """A restarted s_server (new keys, empty cache) declines the old session; the next resumes."""
    cache = SessionCache()
    ctx = pki.client_context("1.3")

    async def one(port: int) -> bool:
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        await stream.send_all(b"abc\n")
        got = b""
        while not got.endswith(b"\n"):
            got += await stream.receive_some()
        await stream.aclose()
        return stream.session_reused

    with s_server(pki, "1.3") as first:
        assert [await one(first.port) for _ in range(2)] == [False, True]
    # A new s_server on another port is another key; to make the *same* key meet a
    # server that forgot, file the sessions of the first under the second's port.
    with s_server(pki, "1.3") as second:
        for key in list(cache.keys()):
            handle = cache.take(key)
            assert handle is not None
            moved = resume.SessionKey(key.peer, second.port, key.digest)  # type: ignore[attr-defined]
            cache.add(moved, handle)
            handle.free()
        assert [await one(second.port) for _ in range(2)] == [False, True]
