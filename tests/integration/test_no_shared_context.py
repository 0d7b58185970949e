"""No mutable SSLContext is shared between owners; sessions flow through the key (issue 18).

The attack this guards against: two transports made with the same arguments
used to hold one ``ssl.SSLContext``. When one owner loosened it for its own
transport (``verify_mode = CERT_NONE``, or an extra CA), every other transport
made alike, later ones included, accepted a server it must refuse.

Servers: one nginx per TLS version with two sites, both for ``localhost``: site
0 with a certificate of the CA the clients trust, site 1 with a certificate of
another CA (``evil``), which they must refuse. Clients: resume.httpx (async and
sync), resume.requests, resume.aiohttp, and the read-only
resume.default_ssl_context() through resume.trio and resume.asyncio.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import ssl
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import requests
import trio
import trustme
from nginx_server import NginxServer, NginxSite

import resume
import resume.aiohttp
import resume.asyncio
import resume.httpx
import resume.requests
import resume.trio
from resume._core.key import make_key
from resume._openssl import binding

VERSIONS = ["TLSv1.2", "TLSv1.3"]
TRUSTED, UNTRUSTED = 0, 1
#: Connections a second owner tries against the untrusted server.
TRIES = 3


@pytest.fixture(scope="module")
def evil() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module", params=VERSIONS)
def servers(request: pytest.FixtureRequest, evil: trustme.CA) -> Iterator[NginxServer]:
    sites = [
        NginxSite(protocols=(request.param,)),
        NginxSite(protocols=(request.param,), certificate=evil.issue_cert("localhost")),
    ]
    with NginxServer(trustme.CA(), sites) as server:
        yield server


@pytest.fixture
def trust_env(servers: NginxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx's verify=True (with trust_env) trusts SSL_CERT_FILE: the good CA only.
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _cert_none(context: ssl.SSLContext, evil: trustme.CA) -> None:
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE


def _extra_ca(context: ssl.SSLContext, evil: trustme.CA) -> None:
    context.load_verify_locations(cadata=evil.cert_pem.bytes().decode())


#: The ways an owner loosens its own context.
LOOSEN: dict[str, Callable[[ssl.SSLContext, trustme.CA], None]] = {
    "CERT_NONE": _cert_none,
    "extra CA": _extra_ca,
}


def _cache() -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)


def _url(server: NginxServer, site: int) -> str:
    return f"https://localhost:{server.port(site)}/"


def _flags(server: NginxServer, since: int, expect: int) -> str:
    # nginx logs a request after its response went out: wait (boundedly) for the lines.
    for _ in range(500):
        log = server.access_log()[since:]
        if len(log) >= expect:
            break
        time.sleep(0.01)
    return "".join(entry["reused"] for entry in server.access_log()[since:])


# -- httpx ----------------------------------------------------------------------------------

Transport = resume.httpx.AsyncHTTPTransport | resume.httpx.HTTPTransport


def _transport(flavour: str, cache: resume.SessionCache) -> Transport:
    if flavour == "sync":
        return resume.httpx.HTTPTransport(cache=cache)
    return resume.httpx.AsyncHTTPTransport(cache=cache)


def _httpx_get(transport: Transport, url: str) -> bool:
    """One request on a new connection; True if it succeeded, False if TLS refused it."""
    headers = {"Connection": "close"}
    try:
        if isinstance(transport, resume.httpx.HTTPTransport):
            with httpx.Client(transport=transport) as client:
                client.get(url, headers=headers).raise_for_status()
        else:
            async_transport = transport

            async def main() -> None:
                async with httpx.AsyncClient(transport=async_transport) as client:
                    (await client.get(url, headers=headers)).raise_for_status()

            asyncio.run(main())
    except httpx.ConnectError:
        return False
    return True


@pytest.mark.usefixtures("trust_env")
@pytest.mark.parametrize("loosen", list(LOOSEN))
@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_httpx_second_transport_refuses_the_untrusted_server(
    servers: NginxServer, evil: trustme.CA, flavour: str, loosen: str
) -> None:
    """A transport made like one whose context was loosened still refuses: 0 successes."""
    cache = _cache()
    first = _transport(flavour, cache)
    LOOSEN[loosen](first.ssl_context, evil)
    assert _httpx_get(first, _url(servers, UNTRUSTED))  # its owner asked for that
    successes, seconds = 0, []
    for _ in range(TRIES):
        second = _transport(flavour, cache)
        seconds.append(second)
        successes += _httpx_get(second, _url(servers, UNTRUSTED))
    assert successes == 0
    assert all(second.ssl_context is not first.ssl_context for second in seconds)
    assert _httpx_get(_transport(flavour, cache), _url(servers, TRUSTED))


@pytest.mark.usefixtures("trust_env")
@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_httpx_transports_made_alike_resume_each_other(
    servers: NginxServer, flavour: str
) -> None:
    """Each transport has its own context, and a new one's first connection resumes."""
    cache = _cache()
    since = len(servers.access_log())
    transports = [_transport(flavour, cache) for _ in range(4)]
    assert len({id(t.ssl_context) for t in transports}) == 4
    for transport in transports:
        assert _httpx_get(transport, _url(servers, TRUSTED))
    assert _flags(servers, since, 4) == ".rrr"


@pytest.mark.usefixtures("trust_env")
@pytest.mark.parametrize("loosen", list(LOOSEN))
def test_httpx_loose_and_strict_transports_never_share_sessions(
    servers: NginxServer, evil: trustme.CA, loosen: str
) -> None:
    """A loosened transport's sessions are never offered on a strict one, nor the reverse."""
    cache = _cache()
    strict, loose = _transport("sync", cache), _transport("sync", cache)
    port = servers.port(TRUSTED)
    assert make_key(strict.ssl_context, "localhost", port) == make_key(
        loose.ssl_context, "localhost", port
    )
    LOOSEN[loosen](loose.ssl_context, evil)
    assert make_key(strict.ssl_context, "localhost", port) != make_key(
        loose.ssl_context, "localhost", port
    )
    since = len(servers.access_log())
    # strict, loose, loose, strict, strict against the trusted server.
    for transport in (strict, loose, loose, strict, strict):
        assert _httpx_get(transport, _url(servers, TRUSTED))
    assert _flags(servers, since, 5) == "..rrr"  # the loose one starts afresh
    # The loose one has a session of the untrusted server; the strict one is not offered it.
    assert _httpx_get(loose, _url(servers, UNTRUSTED))
    assert _httpx_get(loose, _url(servers, UNTRUSTED))
    assert not _httpx_get(strict, _url(servers, UNTRUSTED))


# -- requests -------------------------------------------------------------------------------


def _requests_get(adapter: resume.requests.HTTPAdapter, url: str, ca_file: Path) -> bool:
    with requests.Session() as session:
        session.mount("https://", adapter)
        try:
            response = session.get(url, verify=str(ca_file), headers={"Connection": "close"})
        except requests.exceptions.SSLError:
            return False
        response.raise_for_status()
        return True


@pytest.mark.parametrize("loosen", list(LOOSEN))
def test_requests_second_adapter_refuses_the_untrusted_server(
    servers: NginxServer, evil: trustme.CA, loosen: str
) -> None:
    """An adapter made like one whose context was loosened still refuses: 0 successes.

    (urllib3 sets ``verify_mode`` on the context before every connection, so
    ``CERT_NONE`` does not even last on the first adapter; an extra CA does.)
    """
    cache = _cache()
    first = resume.requests.HTTPAdapter(cache=cache)
    LOOSEN[loosen](first.ssl_context_for(str(servers.ca_file)), evil)
    _requests_get(first, _url(servers, UNTRUSTED), servers.ca_file)
    successes, seconds = 0, []
    for _ in range(TRIES):
        second = resume.requests.HTTPAdapter(cache=cache)
        seconds.append(second)
        successes += _requests_get(second, _url(servers, UNTRUSTED), servers.ca_file)
    assert successes == 0
    ca = str(servers.ca_file)
    assert all(s.ssl_context_for(ca) is not first.ssl_context_for(ca) for s in seconds)


def test_requests_adapters_made_alike_resume_each_other(servers: NginxServer) -> None:
    """Each adapter has its own context, and a new one's first connection resumes."""
    cache = _cache()
    since = len(servers.access_log())
    for _ in range(4):
        assert _requests_get(
            resume.requests.HTTPAdapter(cache=cache), _url(servers, TRUSTED), servers.ca_file
        )
    assert _flags(servers, since, 4) == ".rrr"


# -- aiohttp --------------------------------------------------------------------------------


async def _aiohttp_get(connector: aiohttp.TCPConnector, url: str) -> bool:
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(url, headers={"Connection": "close"}) as r:
                r.raise_for_status()
                await r.read()
        except aiohttp.ClientSSLError:
            return False
    return True


@pytest.mark.parametrize("loosen", list(LOOSEN))
def test_aiohttp_connector_ignores_a_loosened_aiohttp_default(
    servers: NginxServer, evil: trustme.CA, loosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's own default context, loosened by someone, is not what resume's connector uses.

    aiohttp shares one verifying context between all its connectors, and it can
    be reached (``transport.get_extra_info("sslcontext")``); here a copy of it
    stands in, so the loosening does not outlive the test.
    """
    import aiohttp.connector

    shared = aiohttp.connector._make_ssl_context(True)
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", shared)
    LOOSEN[loosen](shared, evil)

    async def main() -> int:
        successes = 0
        for _ in range(TRIES):
            connector = resume.aiohttp.TCPConnector(cache=_cache())
            successes += await _aiohttp_get(connector, _url(servers, UNTRUSTED))
        return successes

    assert asyncio.run(main()) == 0


def test_aiohttp_default_context_is_read_only(evil: trustme.CA) -> None:
    """The context resume's connectors share by default refuses every change."""
    from resume._integrations.aiohttp import _DEFAULT_CONTEXT

    for loosen in LOOSEN.values():
        with pytest.raises((AttributeError, TypeError), match="read-only"):
            loosen(_DEFAULT_CONTEXT, evil)
    assert _DEFAULT_CONTEXT.verify_mode == ssl.CERT_REQUIRED
    assert _DEFAULT_CONTEXT.check_hostname


def test_aiohttp_connectors_with_contexts_alike_resume_each_other(servers: NginxServer) -> None:
    """Connectors with their own contexts made alike: a new one's first request resumes."""
    since = len(servers.access_log())

    async def main() -> None:
        cache = _cache()
        for _ in range(3):
            context = resume.create_client_context(cafile=servers.ca_file)
            connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
            assert await _aiohttp_get(connector, _url(servers, TRUSTED))

    asyncio.run(main())
    assert _flags(servers, since, 3) == ".rr"


# -- resume.default_ssl_context() -----------------------------------------------------------


@pytest.mark.parametrize("loosen", list(LOOSEN))
async def test_default_context_refuses_to_be_loosened_trio(
    servers: NginxServer, evil: trustme.CA, loosen: str
) -> None:
    """Nobody can loosen the shared default context, so it keeps refusing: 0 successes."""
    refused = True
    try:
        LOOSEN[loosen](resume.default_ssl_context(), evil)
        refused = False
    except (AttributeError, TypeError):
        pass
    successes = 0
    for _ in range(TRIES):
        try:
            stream = await resume.trio.open_tls_stream(
                "localhost", servers.port(UNTRUSTED), cache=_cache()
            )
        except (trio.BrokenResourceError, ssl.SSLError):
            continue
        successes += 1
        await stream.aclose()
    assert successes == 0
    assert refused


@pytest.mark.parametrize("loosen", list(LOOSEN))
def test_default_context_refuses_to_be_loosened_asyncio(
    servers: NginxServer, evil: trustme.CA, loosen: str
) -> None:
    """The same through resume.asyncio.open_connection() without ``ssl=``."""
    with pytest.raises((AttributeError, TypeError)):
        LOOSEN[loosen](resume.default_ssl_context(), evil)

    async def main() -> int:
        successes = 0
        for _ in range(TRIES):
            try:
                _, writer = await resume.asyncio.open_connection(
                    "localhost", servers.port(UNTRUSTED), cache=_cache()
                )
            except ssl.SSLError:
                continue
            successes += 1
            writer.close()
        return successes

    assert asyncio.run(main()) == 0


# -- sessions cross contexts configured alike -------------------------------------------------


async def _trio_get(
    server: NginxServer, context: ssl.SSLContext, cache: resume.SessionCache
) -> bool:
    """A GET on a new connection through *context*; whether the handshake resumed."""
    stream = await resume.trio.open_tls_stream(
        "localhost", server.port(TRUSTED), ssl_context=context, cache=cache
    )
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while await stream.receive_some(65536):  # to the end: the TLS 1.3 tickets come first
        pass
    reused = stream.session_reused
    await stream.aclose()
    return reused


async def test_a_session_resumes_on_another_context_configured_alike(
    servers: NginxServer,
) -> None:
    """Made on context A, offered on a separate context B with SSL_set_session(): resumed."""
    if binding.available() is None:
        pytest.skip(f"the OpenSSL binding is unavailable: {binding.refusal()}")
    cache = _cache()
    contexts = [resume.create_client_context(cafile=servers.ca_file) for _ in range(3)]
    port = servers.port(TRUSTED)
    assert len({make_key(c, "localhost", port) for c in contexts}) == 1
    since = len(servers.access_log())
    assert [await _trio_get(servers, c, cache) for c in contexts] == [False, True, True]
    assert _flags(servers, since, 3) == ".rr"


async def test_without_the_binding_sessions_stay_with_their_context(
    servers: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where SSL_set_session() cannot be reached, alike contexts get different keys, no error."""
    from resume._core import policy

    monkeypatch.setattr(binding, "available", lambda: None)
    monkeypatch.setattr(policy, "available", lambda: None)
    cache = _cache()
    a, b = (resume.create_client_context(cafile=servers.ca_file) for _ in range(2))
    port = servers.port(TRUSTED)
    assert make_key(a, "localhost", port) != make_key(b, "localhost", port)
    results = [await _trio_get(servers, c, cache) for c in (a, b, a, b)]
    assert results == [False, False, True, True]


# -- a change of the context during a handshake ----------------------------------------------


@pytest.mark.parametrize("change", [False, True])
async def test_a_ca_loaded_during_a_handshake_stores_nothing(
    servers: NginxServer, evil: trustme.CA, change: bool
) -> None:
    """The SSL object shares its context's trust store: a CA loaded mid-handshake reaches it.

    So the session of that handshake belongs under no key: nothing is stored
    (it would otherwise be offered on a strict context configured alike).
    A TCP relay holds the server's answer until the CA is loaded.
    """
    hello_seen, release = trio.Event(), trio.Event()

    async def relay(client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", servers.port(TRUSTED))
        async with client, upstream, trio.open_nursery() as nursery:

            async def pump(
                source: trio.SocketStream, sink: trio.SocketStream, gate: trio.Event | None
            ) -> None:
                if gate is not None:
                    await gate.wait()
                try:
                    async for data in source:
                        await sink.send_all(data)
                        hello_seen.set()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, upstream, None)
            nursery.start_soon(pump, upstream, client, release)

    cache = _cache()
    context = resume.create_client_context(cafile=servers.ca_file)
    statuses: list[int] = []
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, relay, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=context)
        async with httpx.AsyncClient(transport=transport) as client, trio.open_nursery() as inner:

            async def request() -> None:
                r = await client.get(
                    f"https://localhost:{port}/", headers={"Connection": "close"}
                )
                statuses.append(r.status_code)

            inner.start_soon(request)
            await hello_seen.wait()
            if change:
                _extra_ca(context, evil)  # the owner changes its context meanwhile
            release.set()
        nursery.cancel_scope.cancel()
    assert statuses == [200]
    assert cache.statistics().keys == (0 if change else 1)


async def test_a_cached_session_does_not_keep_its_context_alive(servers: NginxServer) -> None:
    """A context per transport must die with it; its cached session still resumes elsewhere."""
    if binding.available() is None:
        pytest.skip(f"the OpenSSL binding is unavailable: {binding.refusal()}")
    cache = _cache()
    context = resume.create_client_context(cafile=servers.ca_file)
    assert not await _trio_get(servers, context, cache)
    gone = weakref.ref(context)
    del context
    gc.collect()
    assert gone() is None
    assert cache.statistics().keys == 1
    later = resume.create_client_context(cafile=servers.ca_file)
    assert await _trio_get(servers, later, cache)
