"""The HTTP client integrations send close_notify on every close (issue 15, item 5).

A server with only a session-ID cache (tests/sessionid_server.py: OpenSSL through
Python's ``ssl`` with ``OP_NO_TICKET``, as stunnel ``NO_TICKET``) forgets a session
whose client closed without close_notify. Each client opens a new connection per
request and closes it itself; the server records whether each connection resumed
and whether it ended with close_notify.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Callable, Iterator

import aiohttp
import httpx
import pytest
import requests
import trio
from serverhelpers import VERSIONS, ServerPKI
from sessionid_server import SessionIdServer

import resume
import resume.aiohttp
import resume.httpx
import resume.requests

#: Connections after the first (a full handshake): each must resume.
N = 20


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@pytest.fixture(params=VERSIONS)
def server(request: pytest.FixtureRequest, pki: ServerPKI) -> Iterator[SessionIdServer]:
    with SessionIdServer(pki.server_context(request.param)) as srv:
        yield srv


def _cache() -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)


def _one_request_httpx_sync(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    with httpx.Client(transport=resume.httpx.HTTPTransport(verify=context, cache=cache)) as client:
        assert client.get(url).text == "hello\n"


async def _one_request_httpx_async(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    transport = resume.httpx.AsyncHTTPTransport(verify=context, cache=cache)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(url)).text == "hello\n"


def _one_request_requests(url: str, cache: resume.SessionCache, ca: str) -> None:
    with requests.Session() as session:
        session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
        assert session.get(url, verify=ca).text == "hello\n"


async def _one_request_aiohttp(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as r:
        assert await r.text() == "hello\n"


CLIENTS: dict[str, Callable[[str, resume.SessionCache, str], None]] = {
    "httpx-sync": _one_request_httpx_sync,
    "httpx-asyncio": lambda *a: asyncio.run(_one_request_httpx_async(*a)),
    "httpx-trio": lambda *a: trio.run(_one_request_httpx_async, *a),
    "requests": _one_request_requests,
    "aiohttp": lambda *a: asyncio.run(_one_request_aiohttp(*a)),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_close_sends_close_notify_and_resumes(
    server: SessionIdServer, pki: ServerPKI, client: str
) -> None:
    """A new client per request, closed by the client: close_notify every time, 20 of 20 resumed."""
    url = f"https://localhost:{server.port}/"
    cache = _cache()
    for _ in range(N + 1):
        CLIENTS[client](url, cache, str(pki.ca_file))
    ended = server.ended(N + 1)
    assert [e.close_notify for e in ended] == [True] * (N + 1), ended
    assert [e.reused for e in ended] == [False] + [True] * N, ended


def test_requests_session_close_closes_pooled_connections(
    server: SessionIdServer, pki: ServerPKI
) -> None:
    """requests.Session.close() closes every pooled connection itself, with close_notify.

    The pools are kept alive (and the collector off), so only an explicit close
    can end their connections.
    """
    url = f"https://localhost:{server.port}/"
    session = requests.Session()
    adapter = resume.requests.HTTPAdapter(cache=_cache())
    session.mount("https://", adapter)
    gc.disable()
    try:
        assert session.get(url, verify=str(pki.ca_file)).text == "hello\n"
        pools = adapter.poolmanager.pools
        kept = [pools[key] for key in pools.keys()]  # noqa: SIM118 - it cannot iterate
        assert len(kept) == 1
        session.close()
        ended = server.ended(1, wait=5.0)
        assert [e.close_notify for e in ended] == [True]
    finally:
        gc.enable()
        for pool in kept:
            pool.close()



#: A response that ends its connection: the client closes right after the body.
CLOSING = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
    b"Connection: close\r\n\r\nhello\n"
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("client", ["requests", "httpx-sync", "aiohttp"])
def test_connection_close_response_ends_with_close_notify(
    pki: ServerPKI, version: str, client: str
) -> None:
    """``Connection: close`` from the server: the client closes after the body, with close_notify.

    http.client "closes" such a connection as soon as the headers are read and
    the socket really closes when the body has been read: close_notify comes then.
    One session (client, cache) serves every request, each on a new connection.
    """
    cache = _cache()
    with SessionIdServer(pki.server_context(version), response=CLOSING) as srv:
        url = f"https://localhost:{srv.port}/"
        ca = str(pki.ca_file)
        if client == "requests":
            with requests.Session() as session:
                session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
                for i in range(N + 1):
                    assert session.get(url, verify=ca).text == "hello\n"
                    srv.ended(i + 1)  # this connection ended before the next one
        elif client == "httpx-sync":
            context = resume.create_client_context(cafile=ca)
            transport = resume.httpx.HTTPTransport(verify=context, cache=cache)
            with httpx.Client(transport=transport) as c:
                for i in range(N + 1):
                    assert c.get(url).text == "hello\n"
                    srv.ended(i + 1)
        else:

            async def main() -> None:
                context = resume.create_client_context(cafile=ca)
                connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
                async with aiohttp.ClientSession(connector=connector) as session:
                    for i in range(N + 1):
                        async with session.get(url) as r:
                            assert await r.text() == "hello\n"
                        await asyncio.to_thread(srv.ended, i + 1)

            asyncio.run(main())
        ended = srv.ended(N + 1)
    assert [e.close_notify for e in ended] == [True] * (N + 1), ended
    assert [e.reused for e in ended] == [False] + [True] * N, ended


@pytest.mark.parametrize("version", VERSIONS)
def test_send_close_notify_never_waits_for_the_peer(pki: ServerPKI, version: str) -> None:
    """send_close_notify() on a blocking socket returns while the peer neither reads nor answers.

    Were it to wait for the peer's close_notify, it would block until the
    test's timeout. The peer then finds the alert; a second call, on the
    shut-down socket, raises nothing.
    """
    from resume._integrations._common import send_close_notify

    client_raw, server_raw = socket.socketpair()
    server = pki.server_context(version).wrap_socket(
        server_raw, server_side=True, do_handshake_on_connect=False
    )
    handshake = threading.Thread(target=server.do_handshake)
    handshake.start()
    client = pki.client_context(version).wrap_socket(client_raw, server_hostname="localhost")
    handshake.join()
    with client, server:
        client.settimeout(None)  # blocking, as urllib3's and httpcore's sockets
        send_close_notify(client)
        send_close_notify(client)
        assert server.recv(1024) == b""  # close_notify (a bare EOF would raise)
