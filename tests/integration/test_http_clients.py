"""The HTTP client integrations resume against real servers (issue 10).

Servers: nginx (tests/nginx_server.py; its access log's ``$ssl_session_reused`` is
the server's count) on TLS 1.2 and 1.3, and ``resume.trio.serve_tls`` with a small
HTTP responder. Clients: httpx (async on asyncio, async on trio, sync, HTTP/1.1
and HTTP/2), aiohttp and requests, each through resume's integration.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import requests
import trio
import trustme
from nginx_server import NginxServer, NginxSite, free_port

import resume
import resume.aiohttp
import resume.httpx
import resume.requests
import resume.trio

VERSIONS = ["TLSv1.2", "TLSv1.3"]
N = 20


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module", params=VERSIONS)
def nginx(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[NginxServer]:
    site = NginxSite(protocols=(request.param,), http2=True)
    with NginxServer(ca, [site]) as server:
        yield server


_CONTEXTS: dict[Path, ssl.SSLContext] = {}


def _verify(server: NginxServer) -> ssl.SSLContext:
    # One client context per server, as a program would keep one (httpx >= 0.28
    # deprecates verify=<path>).
    context = _CONTEXTS.get(server.ca_file)
    if context is None:
        context = _CONTEXTS[server.ca_file] = resume.create_client_context(cafile=server.ca_file)
    return context


def _new_cache() -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)


def _log(server: NginxServer, since: int, expect: int) -> list[dict[str, str]]:
    # nginx writes a request's log line after the response has gone out, so the
    # client can be done first: wait (boundedly) for the lines to arrive.
    for _ in range(500):
        log = server.access_log()[since:]
        if len(log) >= expect:
            return log
        time.sleep(0.01)
    return server.access_log()[since:]


def _reused(server: NginxServer, since: int, expect: int) -> str:
    return "".join(entry["reused"] for entry in _log(server, since, expect))


def _run_asyncio_and_check(
    server: NginxServer, run: Callable[[], object], expect: int = N
) -> str:
    since = len(server.access_log())
    run()
    flags = _reused(server, since, expect)
    assert len(flags) == expect, flags
    return flags


# -- 20 requests on new connections, each client -------------------------------------------


def test_httpx_asyncio_resumes(nginx: NginxServer) -> None:
    """httpx on asyncio: 20 requests, each on a new connection; at least 19 resumed."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    async def main() -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=_verify(nginx))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(N):
                r = await client.get(url, headers={"Connection": "close"})
                assert r.text == "hello\n"

    flags = _run_asyncio_and_check(nginx, lambda: asyncio.run(main()))
    assert flags.count("r") >= N - 1, flags
    assert cache.statistics().decisions["accepted"] >= N - 1


def test_httpx_trio_resumes(nginx: NginxServer) -> None:
    """httpx on trio: 20 requests, each on a new connection; at least 19 resumed."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    async def main() -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=_verify(nginx))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(N):
                r = await client.get(url, headers={"Connection": "close"})
                assert r.text == "hello\n"

    flags = _run_asyncio_and_check(nginx, lambda: trio.run(main))
    assert flags.count("r") >= N - 1, flags


def test_httpx_sync_resumes(nginx: NginxServer) -> None:
    """The sync httpx client: 20 requests, each on a new connection; at least 19 resumed."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    def main() -> None:
        transport = resume.httpx.HTTPTransport(cache=cache, verify=_verify(nginx))
        with httpx.Client(transport=transport) as client:
            for _ in range(N):
                r = client.get(url, headers={"Connection": "close"})
                assert r.text == "hello\n"

    flags = _run_asyncio_and_check(nginx, main)
    assert flags.count("r") >= N - 1, flags


@pytest.mark.parametrize("library", ["asyncio", "trio", "sync"])
def test_httpx_http2_resumes(nginx: NginxServer, library: str) -> None:
    """HTTP/2 (ALPN h2): a new client per request; at least 19 of 20 resumed."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"
    verify = _verify(nginx)

    async def main() -> None:
        for _ in range(N):
            transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=verify, http2=True)
            async with httpx.AsyncClient(transport=transport) as client:
                r = await client.get(url)
                assert r.http_version == "HTTP/2"

    def sync_main() -> None:
        for _ in range(N):
            transport = resume.httpx.HTTPTransport(cache=cache, verify=verify, http2=True)
            with httpx.Client(transport=transport) as client:
                r = client.get(url)
                assert r.http_version == "HTTP/2"

    run: Callable[[], object] = {
        "asyncio": lambda: asyncio.run(main()),
        "trio": lambda: trio.run(main),
        "sync": sync_main,
    }[library]
    flags = _run_asyncio_and_check(nginx, run)
    assert flags.count("r") >= N - 1, flags


def test_aiohttp_resumes(nginx: NginxServer) -> None:
    """aiohttp: 20 requests, each on a new connection; at least 19 resumed (no race)."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"
    context = resume.create_client_context(cafile=nginx.ca_file)

    async def main() -> None:
        connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(N):
                async with session.get(url, headers={"Connection": "close"}) as r:
                    assert await r.text() == "hello\n"

    flags = _run_asyncio_and_check(nginx, lambda: asyncio.run(main()))
    assert flags.count("r") >= N - 1, flags


def test_requests_resumes(nginx: NginxServer) -> None:
    """requests: 20 requests, each on a new connection; at least 19 resumed."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    def main() -> None:
        with requests.Session() as session:
            session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
            for _ in range(N):
                r = session.get(url, verify=str(nginx.ca_file), headers={"Connection": "close"})
                assert r.text == "hello\n"

    flags = _run_asyncio_and_check(nginx, main)
    assert flags.count("r") >= N - 1, flags


def test_requests_new_session_per_request_resumes(nginx: NginxServer) -> None:
    """A new requests.Session per request still resumes: one context per configuration."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    def main() -> None:
        for _ in range(N):
            with requests.Session() as session:
                session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
                r = session.get(url, verify=str(nginx.ca_file), headers={"Connection": "close"})
                assert r.text == "hello\n"

    flags = _run_asyncio_and_check(nginx, main)
    assert flags.count("r") >= N - 1, flags


# -- ALPN re-sets and the key -----------------------------------------------------------------


def test_new_httpx_client_second_connection_resumes(nginx: NginxServer) -> None:
    """httpcore re-sets the same ALPN list before every connection: one key, no wasted handshake."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"

    async def main() -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=_verify(nginx))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                await client.get(url, headers={"Connection": "close"})

    flags = _run_asyncio_and_check(nginx, lambda: asyncio.run(main()), expect=2)
    assert flags == ".r"
    assert cache.statistics().keys == 1


def test_same_alpn_list_again_keeps_the_key() -> None:
    """set_alpn_protocols() with the list the context already has does not change the key."""
    context = resume.create_client_context()
    context.set_alpn_protocols(["http/1.1"])
    key = resume.make_key(context, "example.com", 443)
    context.set_alpn_protocols(["http/1.1"])
    assert resume.make_key(context, "example.com", 443) == key
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert resume.make_key(context, "example.com", 443) != key
    context.set_alpn_protocols(["http/1.1"])
    assert resume.make_key(context, "example.com", 443) == key


# -- pooling at the clients' defaults -------------------------------------------------------


@pytest.fixture(scope="module", params=VERSIONS)
def nginx_keepalive(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[NginxServer]:
    # The server closes each connection after 5 requests: pooled clients open new ones.
    site = NginxSite(protocols=(request.param,), extra="keepalive_requests 5;")
    with NginxServer(ca, [site]) as server:
        yield server


def _check_pooled(flags: str) -> None:
    # 20 requests, 4 connections: the first request of connections 2-4 resumed.
    assert len(flags) == N
    firsts = flags[::5]
    assert firsts[0] == "." and firsts[1:] == "rrr", flags


def test_pooling_at_defaults_httpx(nginx_keepalive: NginxServer) -> None:
    """httpx with its default pool: connections are reused, and each new one resumes."""
    server = nginx_keepalive
    url = f"https://localhost:{server.port()}/"

    async def main() -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=_new_cache(), verify=_verify(server))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(N):
                assert (await client.get(url)).text == "hello\n"

    _check_pooled(_run_asyncio_and_check(server, lambda: asyncio.run(main())))


def test_pooling_at_defaults_aiohttp(nginx_keepalive: NginxServer) -> None:
    """aiohttp with its default pool: connections are reused, and each new one resumes."""
    server = nginx_keepalive
    url = f"https://localhost:{server.port()}/"
    context = resume.create_client_context(cafile=server.ca_file)

    async def main() -> None:
        connector = resume.aiohttp.TCPConnector(cache=_new_cache(), ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(N):
                async with session.get(url) as r:
                    assert await r.text() == "hello\n"

    _check_pooled(_run_asyncio_and_check(server, lambda: asyncio.run(main())))


def test_pooling_at_defaults_requests(nginx_keepalive: NginxServer) -> None:
    """requests with its default pool: connections are reused, and each new one resumes."""
    server = nginx_keepalive
    url = f"https://localhost:{server.port()}/"

    def main() -> None:
        with requests.Session() as session:
            session.mount("https://", resume.requests.HTTPAdapter(cache=_new_cache()))
            for _ in range(N):
                assert session.get(url, verify=str(server.ca_file)).text == "hello\n"

    _check_pooled(_run_asyncio_and_check(server, main))


# -- what may be resumed where --------------------------------------------------------------


@pytest.fixture(scope="module", params=VERSIONS)
def nginx_names(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[NginxServer]:
    # Two names with different certificates on one port (SNI), and a second port.
    port = free_port(("127.0.0.1",))
    sites = [
        NginxSite(server_names=("alpha.test",), port=port, protocols=(request.param,)),
        NginxSite(server_names=("beta.test",), port=port, protocols=(request.param,)),
        NginxSite(server_names=("alpha.test",), protocols=(request.param,)),
    ]
    with NginxServer(ca, sites) as server:
        yield server


def test_sessions_never_cross_names_or_ports_httpx(nginx_names: NginxServer) -> None:
    """httpx: a session of alpha never goes to beta (SNI), nor to alpha's second port."""
    server = nginx_names
    cache = _new_cache()
    p1, p2 = server.port(0), server.port(2)

    async def main() -> None:
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=_verify(server))
        async with httpx.AsyncClient(transport=transport) as client:
            for name, port in [("alpha.test", p1)] * 3 + [("beta.test", p1)] * 3 + [
                ("alpha.test", p2)
            ] * 3:
                r = await client.get(
                    f"https://127.0.0.1:{port}/",
                    headers={"Connection": "close", "Host": name},
                    extensions={"sni_hostname": name},
                )
                assert r.status_code == 200

    since = len(server.access_log())
    asyncio.run(main())
    log = _log(server, since, 9)
    assert [(e["sni"], e["reused"]) for e in log] == [
        ("alpha.test", "."), ("alpha.test", "r"), ("alpha.test", "r"),
        ("beta.test", "."), ("beta.test", "r"), ("beta.test", "r"),
        ("alpha.test", "."), ("alpha.test", "r"), ("alpha.test", "r"),
    ]
    assert cache.statistics().keys == 3


def test_sessions_never_cross_names_aiohttp(nginx_names: NginxServer) -> None:
    """aiohttp: a session of alpha never goes to beta (SNI)."""
    server = nginx_names
    cache = _new_cache()
    context = resume.create_client_context(cafile=server.ca_file)
    port = server.port(0)

    async def main() -> None:
        connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            for name in ["alpha.test"] * 2 + ["beta.test"] * 2:
                async with session.get(
                    f"https://127.0.0.1:{port}/", server_hostname=name,
                    headers={"Connection": "close", "Host": name},
                ) as r:
                    assert r.status == 200

    since = len(server.access_log())
    asyncio.run(main())
    log = _log(server, since, 4)
    assert [(e["sni"], e["reused"]) for e in log] == [
        ("alpha.test", "."), ("alpha.test", "r"), ("beta.test", "."), ("beta.test", "r"),
    ]


def test_verification_off_then_on_never_resumes(nginx: NginxServer) -> None:
    """A session made with verification off is never offered to a verifying connection."""
    url = f"https://localhost:{nginx.port()}/"
    cache = _new_cache()

    async def httpx_main() -> None:
        for verify in (False, False, _verify(nginx), _verify(nginx)):
            transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=verify)
            async with httpx.AsyncClient(transport=transport) as client:
                await client.get(url)

    flags = _run_asyncio_and_check(nginx, lambda: asyncio.run(httpx_main()), expect=4)
    assert flags == ".r.r"

    def requests_main() -> None:
        with requests.Session() as session:
            session.mount("https://", resume.requests.HTTPAdapter(cache=_new_cache()))
            for verify in (False, False, str(nginx.ca_file), str(nginx.ca_file)):
                session.get(url, verify=verify, headers={"Connection": "close"})

    import urllib3

    # A cache of its own: the requests contexts are configured as the httpx ones
    # above, so with the same cache they would resume the httpx sessions.
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        flags = _run_asyncio_and_check(nginx, requests_main, expect=4)
    assert flags == ".r.r"


# -- why: the logger and the counters ----------------------------------------------------------


def test_decisions_are_logged_and_counted(
    nginx: NginxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """One DEBUG record per decision on the ``resume`` logger, and counters by reason."""
    cache = _new_cache()
    url = f"https://localhost:{nginx.port()}/"
    caplog.set_level(logging.DEBUG, logger="resume")

    def main() -> None:
        transport = resume.httpx.HTTPTransport(cache=cache, verify=_verify(nginx))
        with httpx.Client(transport=transport) as client:
            for _ in range(3):
                client.get(url, headers={"Connection": "close"})

    main()
    reasons = [getattr(r, "resume_reason", None) for r in caplog.records if r.name == "resume"]
    assert reasons == ["no session", "offered", "accepted", "offered", "accepted"]
    assert cache.statistics().decisions == {"no session": 1, "offered": 2, "accepted": 2}
    for record in caplog.records:
        assert "localhost:" in record.getMessage()


def test_declined_offer_is_logged(ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    """A server that forgot the session (restarted) declines the offer: "declined" is counted."""
    cache = _new_cache()
    caplog.set_level(logging.DEBUG, logger="resume")
    site = NginxSite(
        protocols=("TLSv1.2",), session_tickets=False, port=free_port(("127.0.0.1",))
    )
    server = NginxServer(ca, [site])
    with server:
        url = f"https://localhost:{server.port()}/"
        transport = resume.httpx.HTTPTransport(cache=cache, verify=_verify(server))
        with httpx.Client(transport=transport) as client:
            client.get(url, headers={"Connection": "close"})
        server.stop()
        server.start()  # a new process: its session cache is empty
        url = f"https://localhost:{server.port()}/"
        with httpx.Client(transport=transport) as client:
            client.get(url, headers={"Connection": "close"})
    assert cache.statistics().decisions.get("declined") == 1


# -- resume.trio.serve_tls -----------------------------------------------------------------


def _server_context(ca: trustme.CA, version: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    v = ssl.TLSVersion.TLSv1_2 if version == "TLSv1.2" else ssl.TLSVersion.TLSv1_3
    context.minimum_version = context.maximum_version = v
    return context


@pytest.mark.parametrize("version", VERSIONS)
async def test_httpx_trio_against_serve_tls(
    ca: trustme.CA, tmp_path: Path, version: str
) -> None:
    """httpx on trio against resume.trio.serve_tls: at least 19 of 20 new connections resumed."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"

    async def handler(stream: resume.trio.TLSServerStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        await stream.send_all(body)

    cache = _new_cache()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(
                resume.trio.serve_tls, handler, 0,
                ssl_context=_server_context(ca, version), host="127.0.0.1",
            )
        )
        context = resume.create_client_context(cafile=ca_file)
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=context)
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(N):
                r = await client.get(f"https://localhost:{server.port}/")
                assert r.text == "hello\n"
        stats = server.statistics()
        nursery.cancel_scope.cancel()
    assert stats.resumed >= N - 1, stats


# -- a store: the first request of a new process -----------------------------------------------


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_store_first_request_of_a_new_process_resumes(
    nginx: NginxServer, tmp_path: Path, client: str
) -> None:
    """With a SQLite store, a new cache and a new context (a new process) resume at once."""
    from resume.stores import SQLiteStore, attach_store

    url = f"https://localhost:{nginx.port()}/"
    db = tmp_path / "sessions.db"
    decisions = []
    for _ in range(2):  # two "processes": nothing shared but the store file
        cache = _new_cache()
        store = SQLiteStore(db)
        link = attach_store(cache, store)
        if client == "httpx":
            context = resume.create_client_context(cafile=nginx.ca_file)
            transport = resume.httpx.HTTPTransport(cache=cache, verify=context)
            link.register_context(transport.ssl_context, label="test")
            with httpx.Client(transport=transport) as c:
                c.get(url, headers={"Connection": "close"}).raise_for_status()
        else:
            adapter = resume.requests.HTTPAdapter(cache=cache)  # its own new context
            link.register_context(adapter.ssl_context_for(str(nginx.ca_file)), label="test")
            with requests.Session() as session:
                session.mount("https://", adapter)
                session.get(url, verify=str(nginx.ca_file), headers={"Connection": "close"})
        link.close()
        store.close()
        decisions.append(cache.statistics().decisions)
        cache.clear()
    assert decisions[0] == {"no session": 1}
    assert decisions[1] == {"offered": 1, "accepted": 1}
