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
#       httpx.AsyncBaseTransport / httpx.BaseTransport with httpx's arguments,
#       over a public httpcore pool (AsyncConnectionPool, ...) given a resuming
#       network backend. Requests, responses and exceptions are translated
#       as httpx's own transports do (httpcore -> httpx exception classes).
#   _AsyncBackend / _SyncBackend
#       connect_tcp() through httpcore's own backend (AnyIOBackend on asyncio,
#       TrioBackend on trio, SyncBackend), remembering the port: start_tls()
#       does not get one, and the port is part of the session key.
#   start_tls() -- the session boundary
#       async: TLS over the connected stream's own read()/write() with memory
#       BIOs (_AsyncTLSStream), the SSLObject made by context.wrap_bio() inside
#       ClientConnection.begin(), so that the key and the session are chosen
#       in the call that makes it, from the context as httpcore left it (it
#       sets the ALPN list just before). The same code runs on asyncio and on
#       trio: it only awaits the inner stream.
#       sync: SSLContext.wrap_socket() on the connected socket through the
#       same boundary (resume._integrations._common.wrap_socket).
#   close
#       httpcore closes a connection when the server asks (``Connection:
#       close``), when it expires in the pool, and when the client closes.
#       A close with no error seen on the stream is clean: the session is
#       stored *before* the socket is closed, so the next connection, which
#       may start at once, finds it. An error or a cancellation on a read or a
#       write, or an EOF without close_notify, makes it unclean: nothing is
#       stored.
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

import contextlib
import os
import select
import socket
import ssl
import typing
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast, final

import httpcore
import httpx

from .._core.defaults import create_client_context, new_tracked_context, resolve_cache
from .._core.policy import ClientConnection, TLSObject
from ._common import wrap_socket

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

#: httpx's DEFAULT_LIMITS.
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

#: Bytes read from the inner stream at a time (as httpcore reads).
_READ_SIZE = 65536

# -- exceptions, as httpx's own transports map them ----------------------------------------

_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
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
        if exc is None or not isinstance(exc, Exception):
            return
        for source, target in _EXCEPTIONS:
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


# -- async: TLS over an httpcore stream ------------------------------------------------------


def _is_truncation(exc: ssl.SSLError) -> bool:
    return isinstance(exc, (ssl.SSLEOFError, ssl.SSLSyscallError)) or "UNEXPECTED_EOF" in str(exc)


@final
class _AsyncTLSStream(httpcore.AsyncNetworkStream):
    # A client TLS stream over another httpcore stream (memory BIOs); see the top.

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        import anyio  # httpx depends on it; it runs on asyncio and on trio

        self._inner = inner
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._send_lock = anyio.Lock()
        self._obj: ssl.SSLObject | None = None
        self._conn: ClientConnection | None = None
        self._unclean = False
        self._closed = False

    async def _flush(self, timeout: float | None) -> None:
        # Bytes are taken under the lock, so they leave in the order they were made.
        async with self._send_lock:
            data = self._outgoing.read()
            if data:
                await self._inner.write(data, timeout)

    async def _feed(self, timeout: float | None) -> None:
        data = await self._inner.read(_READ_SIZE, timeout)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def handshake(
        self,
        context: ssl.SSLContext,
        server_hostname: str,
        port: int,
        cache: object,
        timeout: float | None,
    ) -> None:
        incoming, outgoing = self._incoming, self._outgoing

        def create() -> ssl.SSLObject:
            return context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)

        try:
            conn, obj = ClientConnection.begin(
                cache, context, server_hostname, port, create, _same
            )
        except BaseException:
            self._closed = True
            await _close_quietly(self._inner)
            raise
        self._conn, self._obj = conn, obj
        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._flush(timeout)
                    await self._feed(timeout)
            await self._flush(timeout)
            conn.handshake_complete(obj)
        except BaseException as exc:
            conn.fail()
            self._closed = True
            await _close_quietly(self._inner)
            if isinstance(exc, ssl.SSLError):
                raise httpcore.ConnectError(str(exc)) from exc
            raise

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        obj = self._obj
        assert obj is not None
        try:
            while True:
                try:
                    data = obj.read(max_bytes)
                except ssl.SSLWantReadError:
                    await self._flush(timeout)  # a key update may have queued bytes
                    await self._feed(timeout)
                    continue
                return data
        except ssl.SSLZeroReturnError:
            return b""  # close_notify: the server ended the stream cleanly
        except ssl.SSLError as exc:
            self._unclean = True
            if _is_truncation(exc):
                return b""  # as httpcore's own backends (https_compatible)
            raise httpcore.ReadError(str(exc)) from exc
        except BaseException:
            self._unclean = True
            raise

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        obj = self._obj
        assert obj is not None
        try:
            obj.write(buffer)
            await self._flush(timeout)
        except ssl.SSLError as exc:
            self._unclean = True
            raise httpcore.WriteError(str(exc)) from exc
        except BaseException:
            self._unclean = True
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn, obj = self._conn, self._obj
        self._conn = None  # the cache is not kept alive by a closed stream
        try:
            if conn is not None:
                # Store first, then do I/O: the next connection may start at once.
                conn.close(obj, clean=not self._unclean)
            if obj is not None and not self._unclean:
                with contextlib.suppress(ssl.SSLError, ValueError):
                    obj.unwrap()  # queue close_notify; the reply is not awaited
                data = self._outgoing.read()
                if data:
                    with contextlib.suppress(Exception):  # the peer is gone: nothing to tell
                        await self._inner.write(data, 1.0)
        finally:
            await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("TLS inside TLS is not supported by resume.httpx")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._obj
        return self._inner.get_extra_info(info)


def _same(obj: ssl.SSLObject) -> ssl.SSLObject:
    return obj


async def _close_quietly(stream: httpcore.AsyncNetworkStream) -> None:
    with contextlib.suppress(Exception):
        await stream.aclose()


@final
class _AsyncTCPStream(httpcore.AsyncNetworkStream):
    # A connected TCP stream of the inner backend that knows its port.

    def __init__(self, inner: httpcore.AsyncNetworkStream, port: int, cache: object) -> None:
        self._inner = inner
        self._port = port
        self._cache = cache

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if server_hostname is None:
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        await _fetch(self._cache, ssl_context, server_hostname, self._port)
        tls = _AsyncTLSStream(self._inner)
        await tls.handshake(ssl_context, server_hostname, self._port, self._cache, timeout)
        return tls

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


async def _fetch(cache: object, context: ssl.SSLContext, peer: str, port: int) -> None:
    # A store attached to the cache is read off the loop, before the SSL object exists.
    import sniffio

    if sniffio.current_async_library() == "trio":
        from .._stores.link import fetch_for_trio

        await fetch_for_trio(cache, context, peer, port)
    else:
        from .._stores.link import fetch_for_asyncio

        await fetch_for_asyncio(cache, context, peer, port)


@final
class _AsyncBackend(httpcore.AsyncNetworkBackend):
    # httpcore's backend for the running library, with resuming start_tls().

    def __init__(self, cache: object) -> None:
        self._cache = cache
        self._backends: dict[str, httpcore.AsyncNetworkBackend] = {}

    def _inner(self) -> httpcore.AsyncNetworkBackend:
        import sniffio

        library = sniffio.current_async_library()
        backend = self._backends.get(library)
        if backend is None:
            backend = httpcore.TrioBackend() if library == "trio" else httpcore.AnyIOBackend()
            self._backends[library] = backend
        return backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner().connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )
        return _AsyncTCPStream(stream, port, self._cache)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # No port to key on: TLS over a Unix socket does not resume.
        return await self._inner().connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner().sleep(seconds)


# -- sync: TLS over a blocking socket ------------------------------------------------------


def _readable(sock: socket.socket) -> bool:
    # True if a read would not block (data, EOF or an error): a closed connection.
    if sock.fileno() == -1:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


@final
class _SyncTLSStream(httpcore.NetworkStream):
    # A client TLS socket made through the boundary; see the top.

    def __init__(self, tls: ssl.SSLSocket, conn: ClientConnection) -> None:
        self._tls = tls
        self._conn: ClientConnection | None = conn
        self._unclean = False
        self._closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._tls.settimeout(timeout)
            return self._tls.recv(max_bytes)
        except ssl.SSLZeroReturnError:
            return b""
        except ssl.SSLError as exc:
            self._unclean = True
            if _is_truncation(exc):
                return b""
            raise httpcore.ReadError(str(exc)) from exc
        except TimeoutError as exc:
            self._unclean = True
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            self._unclean = True
            raise httpcore.ReadError(str(exc)) from exc
        except BaseException:
            self._unclean = True
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._tls.settimeout(timeout)
            self._tls.sendall(buffer)
        except TimeoutError as exc:
            self._unclean = True
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            self._unclean = True
            raise httpcore.WriteError(str(exc)) from exc
        except BaseException:
            self._unclean = True
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close(cast("TLSObject", self._tls), clean=not self._unclean)
        finally:
            self._tls.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("TLS inside TLS is not supported by resume.httpx")

    def get_extra_info(self, info: str) -> Any:
        tls = self._tls
        if info == "ssl_object":
            return tls
        if info == "socket":
            return tls
        if info == "client_addr":
            return tls.getsockname()
        if info == "server_addr":
            return tls.getpeername()
        if info == "is_readable":
            return _readable(tls)
        return None


@final
class _SyncTCPStream(httpcore.NetworkStream):
    # A connected TCP stream of httpcore's SyncBackend that knows its port.

    def __init__(self, inner: httpcore.NetworkStream, port: int, cache: object) -> None:
        self._inner = inner
        self._port = port
        self._cache = cache

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        sock = self._inner.get_extra_info("socket")
        if (
            server_hostname is None
            or not isinstance(sock, socket.socket)
            or isinstance(sock, ssl.SSLSocket)
        ):
            return self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            sock.settimeout(timeout)
            conn, tls = wrap_socket(
                ssl_context, sock, server_hostname=server_hostname, port=self._port,
                cache=self._cache,
            )
        except TimeoutError as exc:
            self._inner.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:  # ssl.SSLError included
            self._inner.close()
            raise httpcore.ConnectError(str(exc)) from exc
        except BaseException:
            self._inner.close()
            raise
        return _SyncTLSStream(tls, conn)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


@final
class _SyncBackend(httpcore.NetworkBackend):
    # httpcore's SyncBackend, with resuming start_tls().

    def __init__(self, cache: object) -> None:
        self._cache = cache
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )
        return _SyncTCPStream(stream, port, self._cache)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# -- the transports ---------------------------------------------------------------------


def _core_request(request: httpx.Request, stream: Any) -> httpcore.Request:
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



@dataclass(frozen=True)
class _Flavour:
    # The httpcore classes of one I/O style, and resume's network backend for it.
    direct: Callable[..., Any]
    http_proxy: Callable[..., Any]
    socks_proxy: Callable[..., Any]
    backend: Callable[[object], Any]


def _make_pool(
    flavour: _Flavour, cache: object, *, verify: ssl.SSLContext | str | bool, cert: Any,
    trust_env: bool, http1: bool, http2: bool, limits: httpx.Limits, proxy: Any,
    uds: str | None, local_address: str | None, retries: int,
    socket_options: Iterable[Any] | None,
) -> tuple[ssl.SSLContext, Any]:
    # What httpx's own transports do with their arguments, with the
    # transport's own context and resume's backend; returns (context, pool).
    # Through a proxy the pool is httpcore's own and connections do not resume.
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
        return context, flavour.direct(
            **pool_args, uds=uds, local_address=local_address, retries=retries,
            socket_options=socket_options, network_backend=flavour.backend(cache),
        )
    if proxy.url.scheme in ("http", "https"):
        return context, flavour.http_proxy(
            proxy_url=_proxy_url(proxy), proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw, proxy_ssl_context=proxy.ssl_context,
            socket_options=socket_options, **pool_args,
        )
    if proxy.url.scheme in ("socks5", "socks5h"):
        return context, flavour.socks_proxy(
            proxy_url=_proxy_url(proxy), proxy_auth=proxy.raw_auth, **pool_args
        )
    raise ValueError(
        "Proxy protocol must be either 'http', 'https', 'socks5', or 'socks5h', "
        f"but got {proxy.url.scheme!r}."
    )


_ASYNC = _Flavour(
    httpcore.AsyncConnectionPool, httpcore.AsyncHTTPProxy, httpcore.AsyncSOCKSProxy, _AsyncBackend
)
_SYNC = _Flavour(httpcore.ConnectionPool, httpcore.HTTPProxy, httpcore.SOCKSProxy, _SyncBackend)

@final
class AsyncHTTPTransport(httpx.AsyncBaseTransport):
    """:class:`httpx.AsyncHTTPTransport` that resumes TLS sessions, on asyncio and on trio.

    ``httpx.AsyncClient(transport=resume.httpx.AsyncHTTPTransport())`` offers,
    on each new connection, a session of an earlier connection to the same
    server name, port and TLS configuration (see :class:`resume.SessionKey`),
    with ``SSL_set_session()``, and stores the session of each connection that
    closes cleanly. HTTP/1.1 and HTTP/2 alike.

    The other arguments (``verify``, ``cert``, ``trust_env``, ``http1``,
    ``http2``, ``limits``, ``proxy``, ``uds``, ``local_address``,
    ``retries``, ``socket_options``) are those of
    :class:`httpx.AsyncHTTPTransport`. Each transport makes its own
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
        *,
        cache: object = None,
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
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._ssl_context, self._pool = _make_pool(
            _ASYNC, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
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
        *,
        cache: object = None,
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
    ) -> None:
        resolve_cache(cache)
        self._cache = cache
        self._ssl_context, self._pool = _make_pool(
            _SYNC, cache, verify=verify, cert=cert, trust_env=trust_env, http1=http1,
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
