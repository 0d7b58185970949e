"""resume.httpx sends safe requests as TLS 1.3 early data, and only those (issue 16, part 2).

Server: nginx (tests/nginx_server.py) with ``ssl_early_data on``; its access log
records ``$ssl_early_data`` ("1" for a request that came as early data) beside
``$ssl_session_reused``, so every claim below is the server's word, not the
client's. Clients: ``resume.httpx.AsyncHTTPTransport(early_data=True)`` on
asyncio and on trio, and ``HTTPTransport(early_data=True)``; each request goes
on a new connection (a new client per request). On TLS 1.2 there is no early
data: the same requests get their normal answers, none early.

nginx sends its fresh ticket after the client's Finished, so a connection whose
request went early and was answered at once (0.5-RTT) and then closed never
gets one: after a warm-up (a full handshake: two tickets) at most two
connections in a row can go early. The tests count on that and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from nginx_server import NginxServer, NginxSite, free_port

import resume
import resume.httpx
from resume._core.early import EarlyData
from resume._integrations import _httpcore
from resume._integrations.httpx import may_go_early

VERSIONS = ["TLSv1.2", "TLSv1.3"]
LIBRARIES = ["asyncio", "trio", "sync"]

#: A location that refuses early requests, as RFC 8470 asks of a server that must not run them.
TOO_EARLY = (
    "location /too-early { if ($ssl_early_data) { return 425 \"too early\\n\"; } "
    "return 200 \"late\\n\"; }"
)

#: A call: method, path, keyword arguments of ``client.request()``.
Call = tuple[str, str, dict[str, Any]]


class _SlowReplies:
    """A loopback TCP proxy that holds what the server sends for *delay* seconds.

    Why: nginx's ``$ssl_early_data`` is "1" for a request it runs before its
    handshake is complete. On bare loopback the client's Finished can reach
    nginx before nginx has run the early request, which then counts as not
    early (a race); with the server's flight held back, the Finished comes
    *delay* later, and the early request is run first. No timing is asserted.
    """

    def __init__(self, target: int, delay: float = 0.05) -> None:
        self.target = target
        self.delay = delay
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, 0.0), self._pipe(up_reader, writer, self.delay)
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def __enter__(self) -> _SlowReplies:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@dataclass
class Site:
    """An nginx server and the port clients reach it on (through _SlowReplies)."""

    server: NginxServer
    port: int
    tls13: bool

    def log(self, since: int, expect: int) -> list[dict[str, Any]]:
        """nginx's lines from *since* on, once there are *expect* of them (boundedly)."""
        # nginx logs a request after its response went out: wait for the lines.
        for _ in range(500):
            log = self.server.access_log()[since:]
            if len(log) >= expect:
                return log
            time.sleep(0.01)
        return self.server.access_log()[since:]


@contextlib.contextmanager
def _site(ca: trustme.CA, site: NginxSite) -> Iterator[Site]:
    with NginxServer(ca, [site]) as server, _SlowReplies(server.port()) as proxy:
        yield Site(server, proxy.port, site.protocols == ("TLSv1.3",))


@pytest.fixture(scope="module", params=VERSIONS)
def nginx(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[Site]:
    site = NginxSite(protocols=(request.param,), extra=f"ssl_early_data on; {TOO_EARLY}")
    with _site(ca, site) as running:
        yield running


def _cache() -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)


def _brief(log: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    # What an assertion message shows of nginx's lines.
    keys = ("connection", "reused", "early", "request", "status")
    return [tuple(entry[k] for k in keys) for entry in log]


def _send(
    library: str, site: Site, cache: resume.SessionCache, calls: list[Call], **options: Any
) -> list[httpx.Response]:
    """Make each call on a new client (so on a new connection) of *library*; the responses, read."""
    base = f"https://localhost:{site.port}"
    context = resume.create_client_context(cafile=site.server.ca_file)
    responses: list[httpx.Response] = []
    if library == "sync":
        for method, path, kwargs in calls:
            transport = resume.httpx.HTTPTransport(verify=context, cache=cache, **options)
            with httpx.Client(transport=transport) as client:
                responses.append(client.request(method, base + path, **kwargs))
        return responses

    async def main() -> None:
        for method, path, kwargs in calls:
            transport = resume.httpx.AsyncHTTPTransport(verify=context, cache=cache, **options)
            async with httpx.AsyncClient(transport=transport) as client:
                responses.append(await client.request(method, base + path, **kwargs))

    if library == "trio":
        trio.run(main)
    else:
        asyncio.run(main())
    return responses


def _exchange(
    library: str, site: Site, calls: list[Call], **options: Any
) -> tuple[list[httpx.Response], list[dict[str, Any]]]:
    """A warm-up GET (a full handshake), then *calls*; their responses and nginx's lines."""
    cache = _cache()
    since = len(site.server.access_log())
    _send(library, site, cache, [("GET", "/", {})], early_data=True)
    responses = _send(library, site, cache, calls, early_data=True, **options)
    log = site.log(since, 1 + len(calls))
    assert len(log) == 1 + len(calls), _brief(log)
    assert (log[0]["reused"], log[0]["early"]) == (".", ""), _brief(log)  # the warm-up
    return responses, log[1:]


@pytest.mark.parametrize("library", LIBRARIES)
def test_get_after_warm_up_goes_early(nginx: Site, library: str) -> None:
    """Two GETs after a warm-up, each on a new connection: both early on TLS 1.3, neither on 1.2.

    nginx's ``$ssl_early_data`` says so, and ``response.extensions["early_data"]``
    agrees; the answers are the normal ones either way.
    """
    calls: list[Call] = [("GET", "/", {}), ("HEAD", "/", {})]
    responses, log = _exchange(library, nginx, calls)
    early = nginx.tls13
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].text == "hello\n"
    assert [e["reused"] for e in log] == ["r", "r"], _brief(log)
    assert [e["early"] for e in log] == (["1", "1"] if early else ["", ""]), _brief(log)
    assert [r.extensions["early_data"] for r in responses] == [early, early]


@pytest.mark.parametrize("library", LIBRARIES)
def test_unsafe_methods_never_go_early(nginx: Site, library: str) -> None:
    """POST, PUT, PATCH, DELETE and a GET with a body, through ``early_data=True``: none early.

    Each goes on a new connection that resumes (so a ticket that allowed early
    data was offered every time), and nginx sees none of them as early data.
    Then a plain GET goes early (TLS 1.3): the tickets were good for it.
    """
    calls: list[Call] = [
        ("POST", "/", {"content": b"a=1"}),
        ("PUT", "/", {"content": b"a=1"}),
        ("PATCH", "/", {"content": b"a=1"}),
        ("DELETE", "/", {}),
        ("GET", "/", {"content": b"a body"}),
        ("POST", "/", {}),
        ("GET", "/", {}),
    ]
    responses, log = _exchange(library, nginx, calls)
    assert [e["request"].split()[0] for e in log] == [c[0] for c in calls], _brief(log)
    assert [e["early"] for e in log[:-1]] == [""] * (len(calls) - 1), _brief(log)
    assert [e["reused"] for e in log] == ["r"] * len(calls), _brief(log)
    assert [r.extensions["early_data"] for r in responses[:-1]] == [False] * (len(calls) - 1)
    assert log[-1]["early"] == ("1" if nginx.tls13 else ""), _brief(log)


@pytest.mark.parametrize("library", LIBRARIES)
def test_opt_out_extension_is_respected(nginx: Site, library: str) -> None:
    """``extensions={"early_data": False}`` keeps a GET out of early data; the next one goes."""
    calls: list[Call] = [("GET", "/", {"extensions": {"early_data": False}}), ("GET", "/", {})]
    responses, log = _exchange(library, nginx, calls)
    assert [e["reused"] for e in log] == ["r", "r"], _brief(log)
    assert [e["early"] for e in log] == ["", "1" if nginx.tls13 else ""], _brief(log)
    assert [r.extensions["early_data"] for r in responses] == [False, nginx.tls13]


@pytest.mark.parametrize("library", LIBRARIES)
def test_request_head_larger_than_the_ticket_allows_waits(nginx: Site, library: str) -> None:
    """A GET whose head exceeds the ticket's max_early_data (nginx: 16384) goes after the handshake.

    It is answered once, normally, not as early data; the GET after it goes early.
    """
    big = {f"X-Filler-{i}": "x" * 4000 for i in range(5)}  # about 20 KB of head
    calls: list[Call] = [("GET", "/", {"headers": big}), ("GET", "/", {})]
    responses, log = _exchange(library, nginx, calls)
    assert [(r.status_code, r.text) for r in responses] == [(200, "hello\n")] * 2
    assert [e["reused"] for e in log] == ["r", "r"], _brief(log)
    assert [e["early"] for e in log] == ["", "1" if nginx.tls13 else ""], _brief(log)
    assert [r.extensions["early_data"] for r in responses] == [False, nginx.tls13]


@pytest.mark.parametrize("library", LIBRARIES)
def test_http2_transport_never_sends_early_data(ca: trustme.CA, library: str) -> None:
    """``http2=True``: ALPN decides during the handshake, so no request goes early (TLS 1.3)."""
    config = NginxSite(protocols=("TLSv1.3",), http2=True, extra="ssl_early_data on;")
    with _site(ca, config) as site:
        cache = _cache()
        _send(library, site, cache, [("GET", "/", {})], early_data=True, http2=True)
        responses = _send(
            library, site, cache, [("GET", "/", {})] * 2, early_data=True, http2=True
        )
        log = site.log(0, 3)
    assert [r.http_version for r in responses] == ["HTTP/2", "HTTP/2"]
    assert [e["reused"] for e in log] == [".", "r", "r"], _brief(log)
    assert [e["early"] for e in log] == ["", "", ""], _brief(log)
    assert [r.extensions["early_data"] for r in responses] == [False, False]


@pytest.mark.parametrize("library", LIBRARIES)
def test_too_early_is_retried_once_after_the_handshake(nginx: Site, library: str) -> None:
    """``425 Too Early`` for an early GET: sent again once, after the handshake, on that connection.

    The location answers 425 to early requests: the client gets the real answer
    ("late"), and nginx's log shows each request answered once by the
    application (one 200, not early) after its early copy was refused with 425
    on the same connection (``$connection``). On TLS 1.2 nothing goes early:
    one 200 each.
    """
    calls: list[Call] = [("GET", "/too-early", {}), ("GET", "/too-early", {})]
    cache = _cache()
    since = len(nginx.server.access_log())
    _send(library, nginx, cache, [("GET", "/", {})], early_data=True)
    responses = _send(library, nginx, cache, calls, early_data=True)
    assert [(r.status_code, r.text) for r in responses] == [(200, "late\n")] * 2
    assert [r.extensions["early_data"] for r in responses] == [False, False]
    if nginx.tls13:
        log = nginx.log(since, 5)[1:]
        # The early copy refused, then the request after the handshake, on that
        # same connection (the pool hands it out again), not early.
        expected = [("1", "425"), ("", "200")] * 2
        assert [(e["early"], e["status"]) for e in log] == expected, _brief(log)
        assert log[0]["connection"] == log[1]["connection"], _brief(log)
        assert log[2]["connection"] == log[3]["connection"], _brief(log)
    else:
        log = nginx.log(since, 3)[1:]
        assert [(e["early"], e["status"]) for e in log] == [("", "200")] * 2, _brief(log)
    time.sleep(0.2)  # nothing more arrives: one answer per request
    assert len(nginx.server.access_log()) - since == (5 if nginx.tls13 else 3)


def _wait_readable(response: httpx.Response) -> None:
    # Until the connection's socket has bytes (the server's late ticket), at most 10 s.
    if response.extensions["early_data"]:
        sock = response.extensions["network_stream"].get_extra_info("socket")
        assert select.select([sock], [], [], 10.0)[0], "nothing arrived"


@pytest.mark.parametrize("library", LIBRARIES)
def test_connection_stays_pooled_after_an_early_request(nginx: Site, library: str) -> None:
    """After an early GET, the server's late ticket does not make the pool drop the connection.

    nginx answers an early request before its handshake ends and sends the
    fresh ticket a round trip later, while the connection sits idle in the
    pool. httpcore drops an idle connection whose socket is readable (the
    server must be closing it), unless the TLS stream says the bytes were
    only a ticket: then the next GET goes on the same connection
    (``$connection``), and the ticket is in the cache.
    """
    cache = _cache()
    since = len(nginx.server.access_log())
    _send(library, nginx, cache, [("GET", "/", {})], early_data=True)  # warm-up
    url = f"https://localhost:{nginx.port}/"
    context = resume.create_client_context(cafile=nginx.server.ca_file)
    held: list[int] = []
    if library == "sync":
        transport = resume.httpx.HTTPTransport(verify=context, cache=cache, early_data=True)
        with httpx.Client(transport=transport) as client:
            _wait_readable(client.get(url))
            held.append(len(cache))
            client.get(url)
    else:

        async def main() -> None:
            transport = resume.httpx.AsyncHTTPTransport(
                verify=context, cache=cache, early_data=True
            )
            async with httpx.AsyncClient(transport=transport) as client:
                _wait_readable(await client.get(url))
                held.append(len(cache))
                await client.get(url)

        if library == "trio":
            trio.run(main)
        else:
            asyncio.run(main())
    log = nginx.log(since, 3)[1:]
    assert log[0]["connection"] == log[1]["connection"], _brief(log)
    assert [e["early"] for e in log] == (["1", ""] if nginx.tls13 else ["", ""]), _brief(log)
    if nginx.tls13:
        assert len(cache) == held[0] + 1  # the late ticket, collected


class _Recorder:
    """Keeps each EarlyData the transports make (their outcome is read after the test)."""

    def __init__(self) -> None:
        self.made: list[EarlyData] = []

    def __call__(self, data: bytes) -> EarlyData:
        early = EarlyData(data)
        self.made.append(early)
        return early


@pytest.mark.parametrize("library", LIBRARIES)
def test_rejected_early_data_is_sent_again_once(
    ca: trustme.CA, tmp_path: Path, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx restarted with ``ssl_early_data off`` (same ticket key): each GET answered once.

    The tickets were issued while early data was on, so the client sends its
    GETs early; the new nginx resumes but rejects the early data, the client
    sends each request again after the handshake, and nginx runs each one
    exactly once, none as early data.
    """
    key_file = tmp_path / "ticket.key"
    key_file.write_bytes(os.urandom(80))
    leaf = ca.issue_cert("localhost")
    port = free_port(("127.0.0.1",))
    base: dict[str, Any] = {
        "protocols": ("TLSv1.3",), "port": port, "ticket_key_file": key_file,
        "certificate": leaf,
    }
    cache = _cache()
    with NginxServer(ca, [NginxSite(extra="ssl_early_data on;", **base)]) as on:
        _send(library, Site(on, port, True), cache, [("GET", "/", {})], early_data=True)
    recorder = _Recorder()
    monkeypatch.setattr(_httpcore, "EarlyData", recorder)
    with NginxServer(ca, [NginxSite(extra="ssl_early_data off;", **base)]) as off:
        site = Site(off, port, True)
        responses = _send(library, site, cache, [("GET", "/", {})] * 2, early_data=True)
        log = site.log(0, 2)
        time.sleep(0.2)  # nothing more arrives: one answer per request
        assert len(off.access_log()) == 2
    assert [(r.status_code, r.text) for r in responses] == [(200, "hello\n")] * 2
    assert [(e["reused"], e["early"], e["status"]) for e in log] == [("r", "", "200")] * 2
    assert [(e.sent, e.accepted) for e in recorder.made] == [(True, False)] * 2
    assert [r.extensions["early_data"] for r in responses] == [False, False]


def test_the_rules_allow_safe_methods_without_a_body_only() -> None:
    """may_go_early(): GET, HEAD, OPTIONS without a body and not opted out; nothing else."""
    url = "https://localhost/"
    for method in ("GET", "HEAD", "OPTIONS"):
        assert may_go_early(httpx.Request(method, url))
        assert not may_go_early(httpx.Request(method, url, content=b"x"))
        assert not may_go_early(httpx.Request(method, url, extensions={"early_data": False}))
    assert may_go_early(httpx.Request("GET", url, headers={"Content-Length": "0"}))
    chunked = httpx.Request("GET", url, content=iter([b"x"]))
    assert chunked.headers["Transfer-Encoding"] == "chunked"
    assert not may_go_early(chunked)
    for method in ("POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE"):
        assert not may_go_early(httpx.Request(method, url))
