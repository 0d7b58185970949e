# Theory of operation: the httpcore side of resume.httpx
# ======================================================
#
# resume.httpx's transports hand requests to public httpcore pools given the
# network backends below (see resume/_integrations/httpx.py for the whole
# picture). This module subclasses httpcore's classes, so it imports httpcore;
# resume.httpx imports it only when a transport is made, as httpx itself
# imports httpcore only then (``import resume.httpx`` stays as light as
# ``import httpx``).
#
#   AsyncBackend / SyncBackend
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
#   errors
#       A fatal TLS error on a read or a write (a fatal alert, a bad record:
#       resume._core.policy.is_fatal) fails the connection: what it added to
#       the cache is removed. Any error or cancellation makes the close unclean.
#   close
#       httpcore closes a connection when the server asks (``Connection:
#       close``), when it expires in the pool, and when the client closes.
#       The connection is closed in the policy first (the next connection may
#       start at once), then close_notify is sent without waiting for the
#       peer's, so that servers with only a session-ID cache keep the session
#       (resume._integrations._common.send_close_notify): async, when the close
#       is clean (the record is written to the inner stream with a short
#       timeout); sync, whenever the connection is established (no failed
#       handshake, no fatal error), on the socket made non-blocking.
from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any, cast, final

import httpcore

from .._core.policy import ClientConnection, TLSObject, is_fatal
from ._common import send_close_notify, wrap_socket

__all__ = ["AsyncBackend", "SyncBackend"]

#: Bytes read from the inner stream at a time (as httpcore reads).
_READ_SIZE = 65536

# -- async: TLS over an httpcore stream ------------------------------------------------------


def _is_truncation(exc: ssl.SSLError) -> bool:
    return isinstance(exc, (ssl.SSLEOFError, ssl.SSLSyscallError)) or "UNEXPECTED_EOF" in str(exc)


class _Bookkeeping:
    # What both TLS streams keep about their connection, and how an error on it
    # is recorded: unclean; a fatal TLS error fails it (see the top).
    _conn: ClientConnection | None
    _unclean: bool

    def _error(self, exc: BaseException) -> None:
        self._unclean = True
        if self._conn is not None and is_fatal(exc):
            self._conn.fail()


@final
class _AsyncTLSStream(_Bookkeeping, httpcore.AsyncNetworkStream):
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
            self._error(exc)
            if _is_truncation(exc):
                return b""  # as httpcore's own backends (https_compatible)
            raise httpcore.ReadError(str(exc)) from exc
        except BaseException as exc:
            self._error(exc)
            raise

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        obj = self._obj
        assert obj is not None
        try:
            obj.write(buffer)
            await self._flush(timeout)
        except ssl.SSLError as exc:
            self._error(exc)
            raise httpcore.WriteError(str(exc)) from exc
        except BaseException as exc:
            self._error(exc)
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
class AsyncBackend(httpcore.AsyncNetworkBackend):
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
class _SyncTLSStream(_Bookkeeping, httpcore.NetworkStream):
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
            self._error(exc)
            if _is_truncation(exc):
                return b""
            raise httpcore.ReadError(str(exc)) from exc
        except TimeoutError as exc:
            self._error(exc)
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            self._error(exc)
            raise httpcore.ReadError(str(exc)) from exc
        except BaseException as exc:
            self._error(exc)
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._tls.settimeout(timeout)
            self._tls.sendall(buffer)
        except TimeoutError as exc:
            self._error(exc)
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            self._error(exc)
            raise httpcore.WriteError(str(exc)) from exc
        except BaseException as exc:
            self._error(exc)
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                established = conn.established
                conn.close(cast("TLSObject", self._tls), clean=not self._unclean)
                if established:
                    send_close_notify(self._tls)  # see the top
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
class SyncBackend(httpcore.NetworkBackend):
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
