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
#
# Early data (TLS 1.3 0-RTT, ``early_data=True``; off by default). Which
# requests may go early is decided here, once, for both transports, by
# _EarlyExchange (no I/O; each transport only does the awaiting or not):
#
#   * only GET, HEAD and OPTIONS without a body (no Content-Length other than
#     0, no Transfer-Encoding): RFC 8470 allows early data for safe methods,
#     and a replayed first flight runs the request again;
#   * a request with ``extensions={"early_data": False}`` never goes early
#     (the extension only opts out: it cannot turn early data on);
#   * never on HTTP/2 transports: ALPN picks the protocol during the
#     handshake, and httpcore reads the choice right after start_tls(), so
#     the handshake cannot wait for the first request (``http2=True`` turns
#     early data off for the transport).
#
# The transport makes an EarlyAttempt for the request and sets it, around the
# pool call, as the request this task or thread is sending
# (resume._integrations._httpcore.sending). A new connection's TLS stream
# defers its handshake to its first write, reads the attempt there, and sends
# the request head through resume._core.early.EarlyData when the attempt is
# allowed (that class decides whether the connection may carry it: a session
# offered for this very context, a single-use ticket, its max_early_data) and
# records whether it went early and was accepted. A request on a pooled
# connection, whose handshake is long done, never goes early.
# ``response.extensions["early_data"]`` is True when the request went as
# early data and the server accepted it.
#
# ``425 Too Early`` (RFC 8470 5.2) for a request that went early and was
# accepted: the body is read (so that the connection goes back to the pool,
# its handshake done) and the request is sent once more, not allowed early:
# on that same connection when the pool hands it out again, or, if the server
# closed it, on a new one whose handshake runs first.
from __future__ import annotations

import functools
import os
import ssl
import sys
import typing
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, final

import httpx

from .._core.defaults import create_client_context, new_tracked_context, resolve_cache

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import httpcore
    from typing_extensions import Self

    from ._httpcore import EarlyAttempt

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


# -- early data: the rules, once for both transports -------------------------------------

#: The methods that may go as early data: safe ones (RFC 8470 section 4, RFC 9110 9.2.1).
EARLY_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

#: ``425 Too Early`` (RFC 8470 5.2): the server will not process the request as early data.
TOO_EARLY: Final = 425


def _has_body(request: httpx.Request) -> bool:
    # What h11 frames on the wire: a body needs Content-Length or Transfer-Encoding.
    headers = request.headers
    if "transfer-encoding" in headers:
        return True
    length = headers.get("content-length")
    return length is not None and length.strip() != "0"


def may_go_early(request: httpx.Request) -> bool:
    """True if the rules allow *request* to go as early data (see the top)."""
    return (
        request.method in EARLY_METHODS
        and not _has_body(request)
        and request.extensions.get("early_data", True) is not False
    )


@final
class _EarlyExchange:
    # One request through a transport: its early-data decisions, without I/O
    # (see the top). The first sending may go early if the transport and the
    # rules allow it; retry() allows one more sending, never early.

    __slots__ = ("attempt",)

    def __init__(self, enabled: bool, request: httpx.Request) -> None:
        from ._httpcore import EarlyAttempt  # loaded with the pool (see the top)

        self.attempt: EarlyAttempt = EarlyAttempt(allowed=enabled and may_go_early(request))

    def sending(self) -> AbstractContextManager[EarlyAttempt]:
        from ._httpcore import sending

        return sending(self.attempt)

    def retry(self, response: httpx.Response) -> bool:
        # 425 for a request that went early and was accepted: once more, after the handshake.
        if response.status_code != TOO_EARLY or self.attempt.accepted is not True:
            return False
        from ._httpcore import EarlyAttempt

        self.attempt = EarlyAttempt(allowed=False)
        return True

    def finish(self, response: httpx.Response) -> httpx.Response:
        response.extensions["early_data"] = self.attempt.accepted is True
        return response


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


def _response(
    response: httpcore.Response, stream: httpx.SyncByteStream | httpx.AsyncByteStream
) -> httpx.Response:
    return httpx.Response(
        status_code=response.status,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
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
    socket_options: Iterable[Any] | None, early_data: bool,
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
            socket_options=socket_options,
            network_backend=backend(cache, early_data=early_data and not http2),
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

    With ``early_data=True``, a request on a new TLS 1.3 connection that
    resumes a session may go out as early data (0-RTT, with
    ``SSL_write_early_data()`` before the handshake and
    ``SSL_get_early_data_status()`` after it): in the first flight, one round
    trip sooner.
    Only GET, HEAD and OPTIONS requests without a body may, never any other
    method; ``extensions={"early_data": False}`` keeps a request out of it.
    ``response.extensions["early_data"]`` is True when the request went as
    early data and the server accepted it (False otherwise). If the server
    rejects the early data, the request is sent again after the handshake,
    once; if it answers ``425 Too Early`` (RFC 8470), the request is retried
    once after the handshake, on the same connection when the pool hands it
    out again. HTTP/2 transports (``http2=True``) never send early data: the
    protocol is chosen during the handshake.

    .. warning::

       Early data can be replayed. Whoever records the first flight of a
       connection can send it to the server again, as often as the server
       lets them, and each copy runs the request again, without the client
       knowing: nginx, for one, does not refuse replays (its
       ``$ssl_early_data``, with ``425 Too Early`` for early requests it
       must not run, is the server's part). Turn early data on only for
       servers whose GET, HEAD and OPTIONS handlers are idempotent: no side
       effect (a counter, an order, a one-time link, a login) may happen
       twice because a request arrived twice.

    Args:
        cache: a :class:`resume.SessionCache` (with a store attached, say);
            None for the process-wide :func:`resume.default_cache`; False for
            no resumption (and so no early data).
        early_data: send allowed requests as TLS 1.3 early data on new
            connections that resume (see above and the warning). Off by
            default; no effect with ``http2=True``. With it, a new HTTP/1.1
            connection's handshake runs when its first request is written,
            so a TLS error of the handshake is raised then
            (``httpx.ConnectError``), under the write and read
            timeouts, and ``retries`` does not repeat it.

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
        early_data: bool = False,
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._early_data = bool(early_data)
        self._ssl_context, self._pool = _make_pool(
            True, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
            http2=http2, limits=limits, proxy=proxy, uds=uds, local_address=local_address,
            retries=retries, socket_options=socket_options, early_data=early_data,
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
        """Send *request* and return the response (as :class:`httpx.AsyncHTTPTransport`).

        With ``early_data=True``, a request the rules allow may go as early
        data, and ``425 Too Early`` is retried once after the handshake (see
        the class); ``response.extensions["early_data"]`` says whether it went
        early and was accepted.
        """
        exchange = _EarlyExchange(self._early_data, request)
        response = await self._send(request, exchange)
        if exchange.retry(response):
            await response.aread()  # the connection goes back to the pool
            response = await self._send(request, exchange)
        return exchange.finish(response)

    async def _send(self, request: httpx.Request, exchange: _EarlyExchange) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        with _MAPPED, exchange.sending():
            response = await self._pool.handle_async_request(
                _core_request(request, request.stream)
            )
        assert isinstance(response.stream, typing.AsyncIterable)
        return _response(response, _AsyncBody(response.stream))

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
    (``early_data`` included, and what replay means for it: see the warning
    there) and the behaviour are those of :class:`AsyncHTTPTransport`, over
    httpcore's blocking sockets (TLS on memory BIOs, with the session chosen
    when the SSL object is made).

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
        early_data: bool = False,
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._early_data = bool(early_data)
        self._ssl_context, self._pool = _make_pool(
            False, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
            http2=http2, limits=limits, proxy=proxy, uds=uds, local_address=local_address,
            retries=retries, socket_options=socket_options, early_data=early_data,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` of this transport's connections.

        See :attr:`AsyncHTTPTransport.ssl_context`.
        """
        return self._ssl_context

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return the response (as :class:`httpx.HTTPTransport`).

        See :meth:`AsyncHTTPTransport.handle_async_request` for early data.
        """
        exchange = _EarlyExchange(self._early_data, request)
        response = self._send(request, exchange)
        if exchange.retry(response):
            response.read()  # the connection goes back to the pool
            response = self._send(request, exchange)
        return exchange.finish(response)

    def _send(self, request: httpx.Request, exchange: _EarlyExchange) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        with _MAPPED, exchange.sending():
            response = self._pool.handle_request(_core_request(request, request.stream))
        assert isinstance(response.stream, typing.Iterable)
        return _response(response, _SyncBody(response.stream))

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
