"""A fatal TLS error in an HTTP client integration removes what its connection added.

The server (real OpenSSL through Python's ``ssl``, on memory BIOs so that it can
break a record) completes the handshake, lets its session tickets through, and
then sends the HTTP response in a record whose last byte is flipped: the
client's OpenSSL fails to authenticate it (``bad record mac``), a fatal error.
Sessions enter the cache as they arrive (TLS 1.2 at the end of the handshake,
TLS 1.3 with each ticket), so the cache held them before the error; the
connection's ``fail()`` must remove them again, as the trio and asyncio adapters
do and as OpenSSL's own cache does after a fatal alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator

import aiohttp
import httpx
import pytest
import requests
import trio
from serverhelpers import VERSIONS, ServerPKI

import resume
import resume.aiohttp
import resume.httpx
import resume.requests

#: OpenSSL's words for the broken record.
BAD_RECORD = r"BAD_RECORD_MAC|bad record mac"

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"


class BreakingServer:
    """Serves one request per connection with a broken response record; see the top."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def __enter__(self) -> BreakingServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=15)
        self._listener.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.context.wrap_bio(incoming, outgoing, server_side=True)

        def flush() -> None:
            data = outgoing.read()
            if data:
                raw.sendall(data)

        def feed() -> bool:
            data = raw.recv(65536)
            if not data:
                return False
            incoming.write(data)
            return True

        with raw, contextlib.suppress(OSError):
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    if not feed():
                        return
            flush()
            request = b""
            while b"\r\n\r\n" not in request:
                try:
                    request += obj.read(65536)
                except ssl.SSLWantReadError:
                    flush()
                    if not feed():
                        return
            flush()  # the tickets, if they were not sent yet
            obj.write(RESPONSE)
            record = bytearray(outgoing.read())
            record[-1] ^= 0xFF  # the record's authentication tag: a bad record mac
            raw.sendall(bytes(record))
            while raw.recv(65536):  # until the client goes away
                pass


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@pytest.fixture(params=VERSIONS)
def server(request: pytest.FixtureRequest, pki: ServerPKI) -> Iterator[BreakingServer]:
    with BreakingServer(pki.server_context(request.param)) as srv:
        yield srv


def _httpx_sync(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    transport = resume.httpx.HTTPTransport(verify=context, cache=cache)
    with httpx.Client(transport=transport) as client, pytest.raises(
        httpx.ReadError, match=BAD_RECORD
    ):
        client.get(url)


async def _httpx_async(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    transport = resume.httpx.AsyncHTTPTransport(verify=context, cache=cache)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadError, match=BAD_RECORD):
            await client.get(url)


def _requests(url: str, cache: resume.SessionCache, ca: str) -> None:
    with requests.Session() as session:
        session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
        with pytest.raises(requests.exceptions.SSLError, match=BAD_RECORD):
            session.get(url, verify=ca)


async def _aiohttp(url: str, cache: resume.SessionCache, ca: str) -> None:
    context = resume.create_client_context(cafile=ca)
    connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url) as r:
                await r.read()


CLIENTS: dict[str, Callable[[str, resume.SessionCache, str], None]] = {
    "httpx-sync": _httpx_sync,
    "httpx-asyncio": lambda *a: asyncio.run(_httpx_async(*a)),
    "httpx-trio": lambda *a: trio.run(_httpx_async, *a),
    "requests": _requests,
    "aiohttp": lambda *a: asyncio.run(_aiohttp(*a)),
}


#: Python 3.10's SSL transport leaves itself unclosed after a fatal error (aiohttp's own
#: connector too: asyncio's "unclosed transport" ResourceWarning, seen when it is collected).
_LEGACY_SSLPROTO = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
) if sys.version_info < (3, 11) else ()


@pytest.mark.parametrize(
    "client",
    [pytest.param(c, marks=_LEGACY_SSLPROTO) if c == "aiohttp" else c for c in CLIENTS],
)
def test_fatal_tls_error_removes_the_connections_sessions(
    server: BreakingServer, pki: ServerPKI, client: str
) -> None:
    """Sessions arrived, then a bad record: the cache holds none of them afterwards."""
    cache = resume.SessionCache(mode=resume.CacheMode.CLIENT)
    CLIENTS[client](f"https://localhost:{server.port}/", cache, str(pki.ca_file))
    stats = cache.statistics()
    assert stats.added >= 1, stats  # the sessions did arrive
    assert len(cache) == 0, stats  # and went again
