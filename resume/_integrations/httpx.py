# Theory of operation: httpx transports that resume
# =================================================
#
# httpx sends requests through a transport; its default transports hand them
# to an httpcore connection pool, and httpcore opens connections through a
# *network backend*: ``connect_tcp()`` gives a stream, and
# ``stream.start_tls(ssl_context, server_hostname, timeout)`` upgrades it.
# That is httpcore's public extension point, and the only one used here:
#
#   AsyncHTTPTransport / HTTPTransport
#       httpx.AsyncBaseTransport / httpx.BaseTransport with httpx's arguments
#       (positionally too, in httpx's order, then ``cache=``), over a public
#       httpcore pool (AsyncConnectionPool, ...) given a resuming network
#       backend. Requests, responses and exceptions are translated as httpx's
#       own transports do (httpcore -> httpx exception classes).
#   the backends and the TLS streams (resume._integrations._httpcore)
#       the session boundary in start_tls(), fatal TLS errors, and the close
#       with close_notify: see there.
#
# Lazy httpcore. httpx imports httpcore only when a transport is made (and maps
# its exceptions from then on); so does this module: ``import resume.httpx``
# loads httpx, not httpcore. Everything that subclasses or names httpcore's
# classes lives in resume._integrations._httpcore, imported by _make_pool().
#
# The contexts. Each transport owns its context, as httpx's own transports do:
# no mutable SSLContext is shared between owners, because a context handed to
# two transports would be loosened for both when either one's owner changed
# it (``transport.ssl_context.verify_mode = CERT_NONE``), later transports
# included. Sessions still flow between transports configured alike, through
# the cache key: the context is built by httpx.create_ssl_context()'s recipe
# (httpx 0.28 and later: certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR
# with trust_env; no verification for ``verify=False``; ``cert=`` loaded into
# it) on a context resume tracks from birth (create_client_context(),
# new_tracked_context()), and such contexts share keys when their settings are
# equal (resume._core.key, "Context identity"), so a new transport's first
# connection resumes a session of an earlier transport. A context you pass as
# ``verify=`` is yours and used as it is. The ALPN list depends on http2 and is
# set on the context when the transport is made; httpcore's
# set_alpn_protocols() before every connection then sets the list the context
# already has (which resume._core.key treats as no change).
#
# Proxies: with ``proxy=`` the transport works as httpx's, without resumption
# (the port start_tls() would key on is the proxy's, not the origin's).
from __future__ import annotations

import functools
import os
import ssl
import sys
import typing
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

import httpx

from .._core.defaults import create_client_context, new_tracked_context, resolve_cache

if TYPE_CHECKING:
    import httpcore
    from typing_extensions import Self

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

#: httpx's DEFAULT_LIMITS.
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# -- exceptions, as httpx's own transports map them ----------------------------------------


@functools.cache
def _exceptions() -> tuple[tuple[type[Exception], type[httpx.HTTPError]], ...]:
    # httpcore's exception classes and httpx's, most specific first; loaded
    # when httpcore is (see the top).
    import httpcore

    return (
        (httpcore.ConnectTimeout, httpx.ConnectTimeout),
        (httpcore.ReadTimeout, httpx.ReadTimeout),
        (httpcore.WriteTimeout, httpx.WriteTimeout),
        (httpcore.PoolTimeout, httpx.PoolTimeout),
        (httpcore.TimeoutException, httpx.TimeoutException),
        (httpcore.ConnectError, httpx.ConnectError),
        (httpcore.ReadError, httpx.ReadError),
        (httpcore.WriteError, httpx.WriteError),
        (httpcore.NetworkError, httpx.NetworkError),
        (httpcore.ProxyError, httpx.ProxyError),
        (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
        (httpcore.LocalProtocolError, httpx.LocalProtocolError),
        (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
        (httpcore.ProtocolError, httpx.ProtocolError),
    )


class _Mapped:
    # A context manager that re-raises httpcore's exceptions as httpx's (most
    # specific first, as httpx.HTTPTransport does).
    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or "httpcore" not in sys.modules:
            return
        for source, target in _exceptions():
            if isinstance(exc, source):
                raise target(str(exc)) from exc


_MAPPED = _Mapped()


# -- the transport's own context ------------------------------------------------------------

_DEPRECATED_VERIFY = (
    "`verify=<str>` is deprecated. Use `verify=ssl.create_default_context(cafile=...)` "
    "or `verify=ssl.create_default_context(capath=...)` instead."
)
_DEPRECATED_CERT = (
    "`cert=...` is deprecated. Use `verify=<ssl_context>` instead,"
    "with `.load_cert_chain()` to configure the certificate chain."
)


def _own_context(verify: ssl.SSLContext | str | bool, cert: Any, trust_env: bool) -> ssl.SSLContext:
    # httpx.create_ssl_context(verify, cert, trust_env), with the same warnings,
    # on a context tracked from birth; see the top.
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is False:
        context = new_tracked_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        warnings.warn(_DEPRECATED_VERIFY, DeprecationWarning, stacklevel=4)
        if os.path.isdir(verify):
            return create_client_context(capath=verify)
        return create_client_context(cafile=verify)
    elif trust_env and os.environ.get("SSL_CERT_FILE"):
        context = create_client_context(cafile=os.environ["SSL_CERT_FILE"])
    elif trust_env and os.environ.get("SSL_CERT_DIR"):
        context = create_client_context(capath=os.environ["SSL_CERT_DIR"])
    else:
        import certifi  # httpx depends on it

        context = create_client_context(cafile=certifi.where())
    if cert:
        warnings.warn(_DEPRECATED_CERT, DeprecationWarning, stacklevel=4)
        if isinstance(cert, str):
            context.load_cert_chain(cert)
        else:
            context.load_cert_chain(*cert)
    return context


# -- the transports ---------------------------------------------------------------------


def _core_request(request: httpx.Request, stream: Any) -> httpcore.Request:
    import httpcore  # loaded by then (see the top)

    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=stream,
        extensions=request.extensions,
    )


def _proxy_url(proxy: httpx.Proxy) -> httpcore.URL:
    import httpcore

    return httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )


@final
class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _MAPPED:
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            with _MAPPED:
                await aclose()


@final
class _SyncBody(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _MAPPED:
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _MAPPED:
                close()


def _set_alpn(context: ssl.SSLContext, http2: bool) -> None:
    # The list httpcore sets before every connection, set now: the context's key
    # (and a store registration, which maps it) is then final from the start.
    context.set_alpn_protocols(["http/1.1", "h2"] if http2 else ["http/1.1"])


def _proxy_of(proxy: Any) -> httpx.Proxy | None:
    if proxy is None:
        return None
    return httpx.Proxy(url=proxy) if isinstance(proxy, (str, httpx.URL)) else proxy



def _make_pool(
    asynchronous: bool, cache: object, *, verify: ssl.SSLContext | str | bool, cert: Any,
    trust_env: bool, http1: bool, http2: bool, limits: httpx.Limits, proxy: Any,
    uds: str | None, local_address: str | None, retries: int,
    socket_options: Iterable[Any] | None,
) -> tuple[ssl.SSLContext, Any]:
    # What httpx's own transports do with their arguments, with the
    # transport's own context and resume's backend; returns (context, pool).
    # Through a proxy the pool is httpcore's own and connections do not resume.
    import httpcore  # here, as httpx does (see the top)

    from . import _httpcore

    if asynchronous:
        direct: Any = httpcore.AsyncConnectionPool
        http_proxy: Any = httpcore.AsyncHTTPProxy
        socks_proxy: Any = httpcore.AsyncSOCKSProxy
        backend: Any = _httpcore.AsyncBackend
    else:
        direct, http_proxy, socks_proxy = (
            httpcore.ConnectionPool, httpcore.HTTPProxy, httpcore.SOCKSProxy
        )
        backend = _httpcore.SyncBackend
    context = _own_context(verify, cert, trust_env)
    _set_alpn(context, http2)
    proxy = _proxy_of(proxy)
    pool_args: dict[str, Any] = {
        "ssl_context": context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": http1,
        "http2": http2,
    }
    if proxy is None:
        return context, direct(
            **pool_args, uds=uds, local_address=local_address, retries=retries,
            socket_options=socket_options, network_backend=backend(cache),
        )
    if proxy.url.scheme in ("http", "https"):
        return context, http_proxy(
            proxy_url=_proxy_url(proxy), proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw, proxy_ssl_context=proxy.ssl_context,
            socket_options=socket_options, **pool_args,
        )
    if proxy.url.scheme in ("socks5", "socks5h"):
        return context, socks_proxy(
            proxy_url=_proxy_url(proxy), proxy_auth=proxy.raw_auth, **pool_args
        )
    raise ValueError(
        "Proxy protocol must be either 'http', 'https', 'socks5', or 'socks5h', "
        f"but got {proxy.url.scheme!r}."
    )



@final
class AsyncHTTPTransport(httpx.AsyncBaseTransport):
    """:class:`httpx.AsyncHTTPTransport` that resumes TLS sessions, on asyncio and on trio.

    ``httpx.AsyncClient(transport=resume.httpx.AsyncHTTPTransport())`` offers,
    on each new connection, a session of an earlier connection to the same
    server name, port and TLS configuration (see :class:`resume.SessionKey`),
    with ``SSL_set_session()``, and keeps the sessions the server sends as
    they arrive. HTTP/1.1 and HTTP/2 alike. Each connection sends
    close_notify when it closes (servers with only a session-ID cache forget
    the session of a client that does not), and a fatal TLS error on a
    connection takes its sessions out of the cache again.

    The other arguments (``verify``, ``cert``, ``trust_env``, ``http1``,
    ``http2``, ``limits``, ``proxy``, ``uds``, ``local_address``,
    ``retries``, ``socket_options``) are those of
    :class:`httpx.AsyncHTTPTransport`, positionally too, in its order;
    errors are httpx's own. Each transport makes its own
    :class:`ssl.SSLContext` from them, as httpx does
    (:attr:`ssl_context`); transports made with the same TLS arguments
    resume each other's sessions all the same, through the cache key (where
    the OpenSSL binding is available; see :class:`resume.SessionKey`). A
    context passed as ``verify=`` is used as it is. With ``proxy=``,
    connections do not resume.

    Args:
        cache: a :class:`resume.SessionCache` (with a store attached, say);
            None for the process-wide :func:`resume.default_cache`; False for
            no resumption.

    Raises:
        TypeError: *cache* is not a SessionCache, None or False.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
        *,
        cache: object = None,
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._ssl_context, self._pool = _make_pool(
            True, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
            http2=http2, limits=limits, proxy=proxy, uds=uds, local_address=local_address,
            retries=retries, socket_options=socket_options,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` of this transport's connections: its own.

        No other transport holds it (unless you passed it as ``verify=`` to
        several), so changing it changes this transport only, and gives its
        next connections new session keys. Give it to
        :meth:`resume.stores.StoreLink.register_context` so that its sessions
        are stored for other processes.
        """
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return the response (as :class:`httpx.AsyncHTTPTransport`)."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        with _MAPPED:
            response = await self._pool.handle_async_request(
                _core_request(request, request.stream)
            )
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncBody(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection (each clean close stores its session)."""
        with _MAPPED:
            await self._pool.aclose()

    async def __aenter__(self) -> Self:
        with _MAPPED:
            await self._pool.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        with _MAPPED:
            await self._pool.__aexit__(exc_type, exc_value, traceback)


@final
class HTTPTransport(httpx.BaseTransport):
    """:class:`httpx.HTTPTransport` that resumes TLS sessions (the sync client).

    ``httpx.Client(transport=resume.httpx.HTTPTransport())``; the arguments
    and the behaviour are those of :class:`AsyncHTTPTransport`, over blocking
    sockets (``SSLContext.wrap_socket()`` with the session chosen when the
    TLS socket is made).

    Raises:
        TypeError: *cache* is not a SessionCache, None or False.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
        *,
        cache: object = None,
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._ssl_context, self._pool = _make_pool(
            False, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
            http2=http2, limits=limits, proxy=proxy, uds=uds, local_address=local_address,
            retries=retries, socket_options=socket_options,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` of this transport's connections.

        See :attr:`AsyncHTTPTransport.ssl_context`.
        """
        return self._ssl_context

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return the response (as :class:`httpx.HTTPTransport`)."""
        assert isinstance(request.stream, httpx.SyncByteStream)
        with _MAPPED:
            response = self._pool.handle_request(_core_request(request, request.stream))
        assert isinstance(response.stream, typing.Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_SyncBody(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close every pooled connection (each clean close stores its session)."""
        with _MAPPED:
            self._pool.close()

    def __enter__(self) -> Self:
        with _MAPPED:
            self._pool.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        with _MAPPED:
            self._pool.__exit__(exc_type, exc_value, traceback)
