"""resume's HTTP client classes are drop-ins for the clients' own (issue 17, item 6).

Each test compares resume's class with the class it replaces, on the same input:
the same constructor arguments, the same errors for bad certificate paths and
failed verification (over real TLS handshakes on loopback, which httpx's own
suite never runs), pickling, ``get_extra_info("sslcontext")``, and import cost.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import requests.adapters
import trio
from serverhelpers import VERSIONS, ServerPKI
from sessionid_server import SessionIdServer

import resume
import resume.aiohttp
import resume.httpx
import resume.requests
from resume.testing import ThrowawayPKI


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@pytest.fixture(params=VERSIONS)
def server(request: pytest.FixtureRequest, pki: ServerPKI) -> Iterator[SessionIdServer]:
    with SessionIdServer(pki.server_context(request.param)) as srv:
        yield srv


def _cache() -> resume.SessionCache:
    return resume.SessionCache(mode=resume.CacheMode.CLIENT)


# -- constructor arguments ----------------------------------------------------------------


def _params(cls: type[Any]) -> list[tuple[str, Any, Any]]:
    sig = inspect.signature(cls.__init__)
    return [
        (p.name, p.kind, p.default)
        for p in sig.parameters.values()
        if p.name not in ("self", "cache", "early_data")
    ]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (resume.requests.HTTPAdapter, requests.adapters.HTTPAdapter),
        (resume.httpx.HTTPTransport, httpx.HTTPTransport),
        (resume.httpx.AsyncHTTPTransport, httpx.AsyncHTTPTransport),
    ],
    ids=["requests", "httpx-sync", "httpx-async"],
)
def test_same_parameters_as_the_class_replaced(ours: type[Any], theirs: type[Any]) -> None:
    """The same parameters (names, kinds, order, defaults), plus our keyword-only ones."""
    assert _params(ours) == _params(theirs)
    cache = inspect.signature(ours.__init__).parameters["cache"]
    assert cache.kind is inspect.Parameter.KEYWORD_ONLY
    assert cache.default is None


def test_requests_adapter_positional_arguments() -> None:
    """``HTTPAdapter(5, 5, 3)``, as requests' own: pools, pool size and retries."""
    adapter = resume.requests.HTTPAdapter(5, 6, 3, True)
    state = adapter.__getstate__()
    assert [state[k] for k in ("_pool_connections", "_pool_maxsize", "_pool_block")] == [5, 6, True]
    assert adapter.max_retries.total == 3


@pytest.mark.parametrize("cls", [resume.httpx.HTTPTransport, resume.httpx.AsyncHTTPTransport])
def test_httpx_transport_positional_arguments(cls: Callable[..., Any]) -> None:
    """``HTTPTransport(False)``, as httpx's own: verify=False."""
    transport = cls(False)
    assert transport.ssl_context.verify_mode == ssl.CERT_NONE
    assert transport.ssl_context.check_hostname is False


# -- bad certificate paths: requests' own errors ----------------------------------------------


def _bad_settings(pki: ServerPKI, tmp_path: Path) -> dict[str, tuple[Any, Any]]:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    folder = tmp_path / "folder"
    folder.mkdir()
    ca = str(pki.ca_file)
    return {
        "verify-missing": (str(tmp_path / "missing.pem"), None),
        "verify-empty-file": (str(empty), None),
        "verify-empty-folder": (str(folder), None),
        "cert-missing": (ca, str(tmp_path / "missing-cert.pem")),
        "key-missing": (ca, (str(pki.client_cert_file), str(tmp_path / "missing-key.pem"))),
        "cert-folder": (ca, str(folder)),
        "cert-empty-file": (ca, str(empty)),
    }


BAD = [
    "verify-missing", "verify-empty-file", "verify-empty-folder", "cert-missing",
    "key-missing", "cert-folder", "cert-empty-file",
]


def _requests_error(url: str, adapter: requests.adapters.HTTPAdapter, verify: Any, cert: Any) -> (
    BaseException
):
    with requests.Session() as session:
        session.mount("https://", adapter)
        with pytest.raises(Exception) as info:  # noqa: PT011 - compared below
            session.get(url, verify=verify, cert=cert, timeout=10)
    return info.value


@pytest.mark.parametrize("case", BAD)
def test_requests_bad_paths_raise_requests_own_errors(
    server: SessionIdServer, pki: ServerPKI, tmp_path: Path, case: str
) -> None:
    """A bad ``verify=``/``cert=`` path: the same exception type and message as requests' own."""
    verify, cert = _bad_settings(pki, tmp_path)[case]
    url = f"https://localhost:{server.port}/"
    theirs = _requests_error(url, requests.adapters.HTTPAdapter(), verify, cert)
    ours = _requests_error(url, resume.requests.HTTPAdapter(cache=_cache()), verify, cert)
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


# -- failed verification over real TLS: the clients' own errors ---------------------------------


def _httpx_error(url: str, transport: Any) -> BaseException:
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.HTTPError) as info:
        client.get(url)
    return info.value


async def _httpx_async_error(url: str, transport: Any) -> BaseException:
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.HTTPError) as info:
            await client.get(url)
    return info.value


@pytest.fixture(params=["unknown-ca", "wrong-name"])
def failing(
    request: pytest.FixtureRequest, pki: ServerPKI
) -> Iterator[tuple[SessionIdServer, ssl.SSLContext]]:
    """A server whose certificate the client context refuses, and that client context."""
    if request.param == "unknown-ca":
        server_context = pki.server_context("1.3")
        client = resume.create_client_context(cafile=ServerPKI().ca_file)
    else:  # a certificate for another name, from a trusted CA
        other = ThrowawayPKI("other.test")
        server_context = other.server_context("1.3")
        client = resume.create_client_context(cadata=other.ca.cert_pem.bytes().decode())
    with SessionIdServer(server_context) as srv:
        yield srv, client


@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
def test_httpx_verification_errors_as_httpx(
    failing: tuple[SessionIdServer, ssl.SSLContext], flavour: str
) -> None:
    """A certificate that fails verification: httpx's own exception type and message."""
    server, context = failing
    url = f"https://localhost:{server.port}/"
    if flavour == "sync":
        theirs = _httpx_error(url, httpx.HTTPTransport(verify=context))
        ours = _httpx_error(url, resume.httpx.HTTPTransport(verify=context, cache=_cache()))
    else:
        run: Callable[[Any], BaseException] = (
            (lambda t: asyncio.run(_httpx_async_error(url, t)))
            if flavour == "asyncio"
            else (lambda t: trio.run(_httpx_async_error, url, t))
        )
        theirs = run(httpx.AsyncHTTPTransport(verify=context))
        ours = run(resume.httpx.AsyncHTTPTransport(verify=context, cache=_cache()))
    assert type(ours) is type(theirs) is httpx.ConnectError
    assert "CERTIFICATE_VERIFY_FAILED" in str(ours)
    if flavour != "trio":  # httpcore's trio backend reports no message (an empty string)
        assert str(ours) == str(theirs)


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_httpx_over_tls_resumes_and_verify_false_works(
    server: SessionIdServer, pki: ServerPKI, flavour: str
) -> None:
    """A real TLS exchange through each transport: verified, resumed, and with verify=False."""
    url = f"https://localhost:{server.port}/"
    cache = _cache()
    context = resume.create_client_context(cafile=pki.ca_file)

    def sync_get(verify: Any) -> str:
        with httpx.Client(transport=resume.httpx.HTTPTransport(verify, cache=cache)) as c:
            return c.get(url).text

    async def async_get(verify: Any) -> str:
        transport = resume.httpx.AsyncHTTPTransport(verify, cache=cache)
        async with httpx.AsyncClient(transport=transport) as c:
            return (await c.get(url)).text

    get: Callable[[Any], str] = (
        sync_get if flavour == "sync" else (lambda v: asyncio.run(async_get(v)))
    )
    assert [get(context), get(context), get(False), get(False)] == ["hello\n"] * 4
    assert [e.reused for e in server.ended(4)] == [False, True, False, True]


def test_requests_verification_error_as_requests(server: SessionIdServer) -> None:
    """A certificate from an unknown CA: requests' own SSLError, with the same message."""
    other = ServerPKI()
    url = f"https://localhost:{server.port}/"
    theirs = _requests_error(url, requests.adapters.HTTPAdapter(), str(other.ca_file), None)
    ours = _requests_error(url, resume.requests.HTTPAdapter(cache=_cache()), str(other.ca_file),
                           None)
    assert type(ours) is type(theirs) is requests.exceptions.SSLError
    assert str(ours) == str(theirs)


def test_aiohttp_verification_error_as_aiohttp(server: SessionIdServer) -> None:
    """A certificate from an unknown CA: aiohttp's own exception type and message."""
    other = ServerPKI()
    context = resume.create_client_context(cafile=other.ca_file)
    url = f"https://localhost:{server.port}/"

    async def error(make: Callable[[], aiohttp.TCPConnector]) -> BaseException:
        async with aiohttp.ClientSession(connector=make()) as session:
            with pytest.raises(aiohttp.ClientError) as info:
                await session.get(url)
        return info.value

    theirs = asyncio.run(error(lambda: aiohttp.TCPConnector(ssl=context)))
    ours = asyncio.run(error(lambda: resume.aiohttp.TCPConnector(ssl=context, cache=_cache())))
    assert type(ours) is type(theirs) is aiohttp.ClientConnectorCertificateError
    assert str(ours) == str(theirs)


# -- pickling a requests.Session ------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["default", "none", "own"])
def test_requests_session_with_adapter_pickles(
    server: SessionIdServer, pki: ServerPKI, choice: str
) -> None:
    """A Session with the adapter pickles; the cache choice survives as documented."""
    own = resume.SessionCache(mode=resume.CacheMode.CLIENT, size=77, per_key=2, timeout=60)
    cache: object = {"default": None, "none": False, "own": own}[choice]
    session = requests.Session()
    session.mount("https://", resume.requests.HTTPAdapter(3, 4, 2, cache=cache))
    copy = pickle.loads(pickle.dumps(session))
    adapter = copy.get_adapter("https://localhost/")
    assert isinstance(adapter, resume.requests.HTTPAdapter)
    state = adapter.__getstate__()
    assert (state["_pool_connections"], state["_pool_maxsize"], adapter.max_retries.total) == (
        3, 4, 2,
    )
    restored = adapter._resume_cache
    if choice == "own":
        assert isinstance(restored, resume.SessionCache)
        assert restored is not own
        assert (restored.size, restored.per_key, restored.timeout, restored.mode) == (
            77, 2, 60.0, resume.CacheMode.CLIENT,
        )
        assert len(restored) == 0
    else:
        assert restored is cache
    with copy:
        for _ in range(2):
            r = copy.get(f"https://localhost:{server.port}/", verify=str(pki.ca_file))
            assert r.text == "hello\n"
            copy.close()  # the next request opens a new connection
    assert [e.reused for e in server.ended(2)] == [False, choice != "none"]


# -- aiohttp: get_extra_info("sslcontext") ------------------------------------------------------


def test_aiohttp_transport_reports_the_users_context(pki: ServerPKI) -> None:
    """``transport.get_extra_info("sslcontext")`` is the context given to the connector."""
    context = resume.create_client_context(cafile=pki.ca_file)
    # A body that does not end: the response keeps its connection.
    unfinished = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello\n"

    async def main() -> object:
        connector = resume.aiohttp.TCPConnector(ssl=context, cache=_cache())
        async with aiohttp.ClientSession(connector=connector) as session, session.get(
            f"https://localhost:{srv.port}/"
        ) as r:
            assert r.connection is not None
            transport = r.connection.transport
            assert transport is not None
            return transport.get_extra_info("sslcontext")

    with SessionIdServer(pki.server_context("1.3"), response=unfinished) as srv:
        assert asyncio.run(main()) is context


# -- import cost ------------------------------------------------------------------------------


def _loads_httpcore(module: str) -> bool:
    code = f"import sys, {module}; print('httpcore' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return out.strip() == "True"


def test_import_resume_httpx_is_as_lazy_as_httpx() -> None:
    """``import resume.httpx`` loads httpcore only if ``import httpx`` does."""
    assert _loads_httpcore("resume.httpx") == _loads_httpcore("httpx")
