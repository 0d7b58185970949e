"""Pooled HTTP clients resume beside their open connections, on real servers (issue 15).

Sessions enter the cache the moment OpenSSL makes them, so a connection a pool
opens beside a pooled one (a burst of concurrent requests) or a new client
sharing the cache while another client's connection sits idle can resume. Each
scenario runs every HTTP client through its resume integration: httpx on
asyncio, on trio and sync, aiohttp, and requests (threads for the burst).

The truth is the server's own record, never the client's: nginx's access log
(``$ssl_session_reused``, ``$connection``), the Node.js server's request log
(``isSessionReused()``) and stunnel's "TLS accepted: previous session reused"
lines (tests/nginx_server.py, tests/node_server.py, tests/stunnel_server.py).
Each test also checks that the client's count of accepted offers agrees with it.

Servers and what they teach:
- nginx: a session-ID cache and tickets; a fresh TLS 1.3 ticket on every
  handshake (2 after a full one, 1 after a resumed one). A held endpoint
  (``/slow?delay=200``) is proxied to a plain backend that waits 200 ms.
- Node.js: TLS 1.3 tickets only after full handshakes (2), none after resumed
  ones: a client that uses each ticket once resumes two connections in three;
  with ``tls13_ticket_reuse=True``, every one.
- stunnel with ``NO_TICKET``, TLS 1.2: a session-ID cache only, from which
  OpenSSL drops a session whose connection ended without close_notify.

Each test prints its counts (``pytest -rP`` shows them).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
import pytest
import requests
import trio
import trustme
from http_backend import HTTPBackend
from nginx_server import NginxServer, NginxSite
from node_server import NodeServer
from stunnel_server import StunnelServer

import resume
import resume.aiohttp
import resume.httpx
import resume.requests

CLIENTS = ["httpx-asyncio", "httpx-trio", "httpx-sync", "aiohttp", "requests"]
BODY = "hello\n"
#: Concurrent requests in a burst, and how long the server holds each one (ms).
BURST, HOLD = 10, 200
#: New clients opened while another client's connection sits idle.
N = 20

WARM_PATH = "/?warm-up"
IDLE_PATH = "/?idle"
NEW_PATH = "/?new"


# -- the servers and their records -----------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One line of a server's record: the connection, whether it resumed, the path."""

    connection: str
    reused: bool
    path: str | None  # None: stunnel logs connections, not requests
    close_notify: bool | None = None  # stunnel only: did the client send one?


@dataclass
class Peer:
    """A running server, how to reach it, and how to read its record."""

    name: str
    version: str
    port: int
    ca_file: Path
    context: ssl.SSLContext  # one client context per server, as a program would keep
    record: Callable[[], list[Record]]
    slow_path: str

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"


def _nginx_record(server: NginxServer) -> Callable[[], list[Record]]:
    def record() -> list[Record]:
        return [
            Record(e["connection"], e["reused"] == "r", e["request"].split(" ")[1])
            for e in server.access_log()
        ]

    return record


def _node_record(server: NodeServer) -> Callable[[], list[Record]]:
    def record() -> list[Record]:
        return [Record(str(e["connection"]), e["reused"], e["path"]) for e in server.requests()]

    return record


def _stunnel_record(server: StunnelServer) -> Callable[[], list[Record]]:
    def record() -> list[Record]:
        return [Record(str(c.number), c.reused, None, c.close_notify) for c in server.connections()]

    return record


class Peers:
    """Servers started on first use and kept for the module (one per kind and version)."""

    def __init__(self, stack: ExitStack) -> None:
        self.ca = trustme.CA()
        self._stack = stack
        self._peers: dict[tuple[str, str], Peer] = {}
        self._backend: HTTPBackend | None = None

    def get(self, name: str, version: str) -> Peer:
        peer = self._peers.get((name, version))
        if peer is None:
            peer = self._peers[name, version] = self._start(name, version)
        return peer

    def _start(self, name: str, version: str) -> Peer:
        protocols = (f"TLSv{version}",)
        if name == "nginx":
            if self._backend is None:
                self._backend = self._stack.enter_context(HTTPBackend())
            proxy = f"location /slow {{ proxy_pass http://127.0.0.1:{self._backend.port}; }}"
            site = NginxSite(protocols=protocols, extra=proxy)
            nginx = self._stack.enter_context(NginxServer(self.ca, [site]))
            return Peer(
                name, version, nginx.port(), nginx.ca_file, self._context(nginx.ca_file),
                _nginx_record(nginx), f"/slow?delay={HOLD}",
            )
        if name == "node":
            node = self._stack.enter_context(NodeServer(self.ca, protocols=protocols))
            return Peer(
                name, version, node.port, node.ca_file, self._context(node.ca_file),
                _node_record(node), f"/?delay={HOLD}",
            )
        assert name == "stunnel"
        stunnel = self._stack.enter_context(StunnelServer(self.ca, protocols=protocols))
        return Peer(
            name, version, stunnel.port, stunnel.ca_file, self._context(stunnel.ca_file),
            _stunnel_record(stunnel), f"/?delay={HOLD}",
        )

    @staticmethod
    def _context(ca_file: Path) -> ssl.SSLContext:
        return resume.create_client_context(cafile=ca_file)


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    with ExitStack() as stack:
        yield Peers(stack)


def _records(peer: Peer, since: int, expect: int) -> list[Record]:
    # nginx writes a request's line after its response has gone out, so the
    # client can be done first: wait (boundedly) for the lines to arrive.
    for _ in range(500):
        found = peer.record()[since:]
        if len(found) >= expect:
            return found
        time.sleep(0.01)
    return peer.record()[since:]


def _connections(records: list[Record]) -> list[Record]:
    """The first record of each connection, in order."""
    seen: dict[str, Record] = {}
    for r in records:
        seen.setdefault(r.connection, r)
    return list(seen.values())


def _new_cache(reuse: bool) -> resume.SessionCache:
    if reuse:
        return resume.SessionCache(mode=resume.CacheMode.CLIENT, tls13_ticket_reuse=True)
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)  # the defaults


# -- the clients -----------------------------------------------------------------------------


class AsyncClient(Protocol):
    async def get(self, url: str) -> None: ...
    async def aclose(self) -> None: ...


class SyncClient(Protocol):
    def get(self, url: str) -> None: ...
    def close(self) -> None: ...


class _HttpxAsync:
    def __init__(self, cache: resume.SessionCache, peer: Peer) -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=peer.context)
        self.client = httpx.AsyncClient(transport=transport)

    async def get(self, url: str) -> None:
        r = await self.client.get(url)
        assert (r.status_code, r.text) == (200, BODY)

    async def aclose(self) -> None:
        await self.client.aclose()


class _Aiohttp:
    def __init__(self, cache: resume.SessionCache, peer: Peer) -> None:
        connector = resume.aiohttp.TCPConnector(cache=cache, ssl=peer.context)
        self.session = aiohttp.ClientSession(connector=connector)

    async def get(self, url: str) -> None:
        async with self.session.get(url) as r:
            assert (r.status, await r.text()) == (200, BODY)

    async def aclose(self) -> None:
        await self.session.close()


class _HttpxSync:
    def __init__(self, cache: resume.SessionCache, peer: Peer) -> None:
        transport = resume.httpx.HTTPTransport(cache=cache, verify=peer.context)
        self.client = httpx.Client(transport=transport)

    def get(self, url: str) -> None:
        r = self.client.get(url)
        assert (r.status_code, r.text) == (200, BODY)

    def close(self) -> None:
        self.client.close()


class _Requests:
    def __init__(self, cache: resume.SessionCache, peer: Peer) -> None:
        self.session = requests.Session()
        self.session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
        self.verify = str(peer.ca_file)

    def get(self, url: str) -> None:
        r = self.session.get(url, verify=self.verify)
        assert (r.status_code, r.text) == (200, BODY)

    def close(self) -> None:
        self.session.close()


_ASYNC: dict[str, type[_HttpxAsync] | type[_Aiohttp]] = {
    "httpx-asyncio": _HttpxAsync, "httpx-trio": _HttpxAsync, "aiohttp": _Aiohttp,
}
_SYNC: dict[str, type[_HttpxSync] | type[_Requests]] = {
    "httpx-sync": _HttpxSync, "requests": _Requests,
}


def _run(client: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if client == "httpx-trio":
        trio.run(main)
    else:
        asyncio.run(main())


async def _all(client: str, calls: list[Callable[[], Awaitable[None]]]) -> None:
    if client == "httpx-trio":
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(call)
    else:
        await asyncio.gather(*(call() for call in calls))


def run_burst(client: str, peer: Peer, cache: resume.SessionCache) -> int:
    """A warm-up request, then BURST concurrent held ones on the same client.

    Returns how many sessions the cache held after the warm-up.
    """
    warm, slow = peer.url(WARM_PATH), peer.url(peer.slow_path)
    cached: list[int] = []
    if client in _ASYNC:
        make = _ASYNC[client]

        async def main() -> None:
            c = make(cache, peer)
            try:
                await c.get(warm)
                cached.append(len(cache))
                await _all(client, [lambda: c.get(slow)] * BURST)
            finally:
                await c.aclose()

        _run(client, main)
    else:
        s = _SYNC[client](cache, peer)
        try:
            s.get(warm)
            cached.append(len(cache))
            with ThreadPoolExecutor(BURST) as pool:
                list(pool.map(s.get, [slow] * BURST))
        finally:
            s.close()
    return cached[0]


def run_idle_pool(client: str, peer: Peer, cache: resume.SessionCache) -> None:
    """One client's connection stays open and idle while N new clients each make a request."""
    idle, new = peer.url(IDLE_PATH), peer.url(NEW_PATH)
    if client in _ASYNC:
        make = _ASYNC[client]

        async def main() -> None:
            first = make(cache, peer)
            try:
                await first.get(idle)
                for _ in range(N):
                    c = make(cache, peer)
                    try:
                        await c.get(new)
                    finally:
                        await c.aclose()
            finally:
                await first.aclose()

        _run(client, main)
    else:
        make_sync = _SYNC[client]
        first_sync = make_sync(cache, peer)
        try:
            first_sync.get(idle)
            for _ in range(N):
                s = make_sync(cache, peer)
                try:
                    s.get(new)
                finally:
                    s.close()
        finally:
            first_sync.close()


def _accepted(cache: resume.SessionCache) -> int:
    return cache.statistics().decisions.get("accepted", 0)


# -- a burst after a warm-up -----------------------------------------------------------------

BURSTS = [
    pytest.param(server, version, reuse, id=f"{server}-{version}{'-reuse' if reuse else ''}")
    for server in ("nginx", "node")
    for version, reuse in (("1.2", False), ("1.3", False), ("1.3", True))
]


@pytest.mark.requires("nginx", "node")
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("server", "version", "reuse"), BURSTS)
def test_burst_after_warm_up(
    peers: Peers, server: str, version: str, reuse: bool, client: str
) -> None:
    """After one request, 10 concurrent held requests: the connections opened beside resume.

    TLS 1.2 and TLS 1.3 with ticket reuse: every new connection. TLS 1.3 single-use:
    at least as many as there were tickets in the cache after the warm-up.
    """
    peer = peers.get(server, version)
    cache = _new_cache(reuse)
    since = len(peer.record())
    cached = run_burst(client, peer, cache)
    records = _records(peer, since, 1 + BURST)
    assert len(records) == 1 + BURST, records
    (warm,) = [r for r in records if r.path == WARM_PATH]
    new = [c for c in _connections(records) if c.connection != warm.connection]
    resumed = sum(c.reused for c in new)
    print(
        f"burst {server} TLS {version} {'reuse' if reuse else 'single-use'} {client}: "
        f"{resumed} of {len(new)} new connections resumed; {cached} sessions cached after "
        f"the warm-up; statistics {cache.statistics().decisions}"
    )
    assert not warm.reused
    # In the cache while the warm-up connection is still open: the TLS 1.2 session,
    # or both TLS 1.3 tickets of the full handshake (nginx and Node.js send 2).
    assert cached == (1 if version == "1.2" else 2)
    # A pool opens connections beside the busy one (all 9 or 10 of them, unless a
    # thread started so late that another's connection had come back).
    assert len(new) >= BURST // 2
    if version == "1.2" or reuse:
        assert resumed == len(new), records
    else:
        assert resumed >= min(cached, len(new)), records
    assert _accepted(cache) == resumed  # the client saw what the server saw


# -- a new client beside an idle connection ---------------------------------------------------

IDLE_POOLS = [
    # server, version, ticket reuse, the least of N new connections that must resume
    pytest.param("nginx", "1.2", False, N, id="nginx-1.2"),
    pytest.param("nginx", "1.3", False, N, id="nginx-1.3"),
    pytest.param("stunnel", "1.2", False, N - 1, id="stunnel-1.2-no-ticket"),
    pytest.param("node", "1.2", False, N, id="node-1.2"),
    pytest.param("node", "1.3", False, 13, id="node-1.3"),
    pytest.param("node", "1.3", True, N - 1, id="node-1.3-reuse"),
]


@pytest.mark.requires("nginx", "node", "stunnel4")
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("server", "version", "reuse", "least"), IDLE_POOLS)
def test_new_client_beside_an_idle_connection(
    peers: Peers, server: str, version: str, reuse: bool, least: int, client: str
) -> None:
    """With one connection open and idle, 20 new clients sharing the cache resume.

    nginx: 20 of 20. stunnel NO_TICKET: at least 19. Node.js TLS 1.3 (no ticket after
    a resumed handshake): at least 13 single-use, at least 19 with ticket reuse.
    """
    peer = peers.get(server, version)
    cache = _new_cache(reuse)
    since = len(peer.record())
    run_idle_pool(client, peer, cache)
    records = _records(peer, since, 1 + N)
    connections = _connections(records)
    assert len(connections) == 1 + N, records
    idle, new = connections[0], connections[1:]
    if idle.path is not None:
        assert idle.path == IDLE_PATH and {c.path for c in new} == {NEW_PATH}
    resumed = sum(c.reused for c in new)
    ended = ""
    if server == "stunnel":
        ended = f"; {sum(c.close_notify is True for c in new)} of {N} sent close_notify"
    print(
        f"idle pool {server} TLS {version} {'reuse' if reuse else 'single-use'} {client}: "
        f"{resumed} of {len(new)} resumed "
        f"({''.join('r' if c.reused else '.' for c in new)}); "
        f"statistics {cache.statistics().decisions}{ended}"
    )
    assert not idle.reused
    assert resumed >= least, records
    assert _accepted(cache) == resumed


# -- what the helpers claim about the servers -------------------------------------------------


@pytest.mark.requires("nginx", "node")
@pytest.mark.parametrize(("server", "after_resumed"), [("nginx", 1), ("node", 0)])
def test_tls13_tickets_per_handshake(peers: Peers, server: str, after_resumed: int) -> None:
    """TLS 1.3: 2 tickets after a full handshake; after a resumed one nginx sends 1, Node 0."""
    peer = peers.get(server, "1.3")
    cache = _new_cache(False)
    transport = resume.httpx.HTTPTransport(cache=cache, verify=peer.context)
    added = []
    since = len(peer.record())
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            client.get(peer.url(NEW_PATH), headers={"Connection": "close"}).raise_for_status()
            added.append(cache.statistics().added)
    assert [r.reused for r in _records(peer, since, 2)] == [False, True]
    assert added == [2, 2 + after_resumed]
