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

