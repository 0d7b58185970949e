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
#   _ClientTLS -- one TLS connection, without I/O
#       TLS runs over the connected stream's own read()/write() with memory
#       BIOs, the same way for async (asyncio and trio: it only awaits the
#       inner stream) and sync (httpcore's blocking socket stream). Everything
#       about the connection is decided once, in _ClientTLS: the session
#       boundary, the handshake, early data, reads, writes, error
#       classification and close_notify. Its operations (open, handshake,
#       read, write) are generators that yield what they need from the
#       network -- _FLUSH ("send what the SSL object queued") or _FLUSH_READ
#       ("send it, then give me bytes from the peer": the bytes, b"" at EOF) -- and
#       return their result. _AsyncTLSStream and _SyncTLSStream are the two
#       thin I/O loops (_drive) that answer those needs on the inner stream,
#       one with ``await``, one without; they hold no TLS logic.
#   start_tls() -- the session boundary
#       _ClientTLS.open(): the SSLObject is made by context.wrap_bio() inside
#       ClientConnection.begin(), so that the key and the session are chosen
#       in the call that makes it, from the context as httpcore left it (it
#       sets the ALPN list just before). A store attached to the cache is
#       read before that, off the event loop (async) or briefly (sync).
#   early data (``early_data=True`` on the backend, HTTP/1.1 only)
#       The handshake is deferred to the first write: the first bytes h11
#       writes on a new connection are the request head. If the request being
#       sent in this task or thread (EARLY_ATTEMPT, a context variable the
#       transport sets around the pool call) is allowed to go early,
#       resume._core.early.EarlyData decides and writes them as early data
#       (start() right after begin(), before the first handshake step), and
#       after the handshake settle() says what must still be written (all of
#       it when the server rejected the early data); the outcome is recorded
#       on the EarlyAttempt for the transport. Otherwise the handshake runs
#       first and the write follows. A read before any write runs the
#       handshake too. The rules on which requests may go early, and the
#       retry on ``425 Too Early``, are the transport's (httpx.py); the rules
#       on which connections may carry early data are EarlyData's. With
#       early data on, a TLS error of the handshake surfaces from the first
#       write (as httpcore.ConnectError, as from start_tls()), under the
#       write and read timeouts, and httpcore's connect ``retries`` do not
#       cover it.
#   errors
#       A fatal TLS error on a read or a write (a fatal alert, a bad record:
#       resume._core.policy.is_fatal) fails the connection: what it added to
#       the cache is removed. Any error or cancellation makes the close
#       unclean. An error before the handshake is done fails the connection
#       and is raised as httpcore's ConnectError (ConnectTimeout for a
#       timeout), as httpcore's own start_tls() does; TLS errors later as
#       ReadError / WriteError. A TLS stream cut without close_notify reads as
#       EOF (as httpcore's own backends, https_compatible).
#   idle
#       Before it reuses an idle HTTP/1.1 connection, httpcore asks the stream
#       whether it is readable, and drops it if so: the server must be closing
#       it. But after a request that went as early data and was answered
#       before the handshake ended (0.5-RTT), the server's fresh
#       NewSessionTicket arrives a round trip later, while the connection is
#       idle: every such connection would be dropped, and its ticket lost.
#       So a TLS stream answers is_readable itself: when the inner stream is
#       readable, it reads what is there without blocking (os.read() on the
#       socket, which the inner stream is known not to have buffered ahead:
#       httpcore's sync and trio streams never do, anyio's asyncio stream
#       when its read queue is empty; otherwise it answers True as before)
#       and hands it to _ClientTLS.idle_bytes(): a ticket or a key update is
#       processed (the ticket reaches the cache) and the connection stays;
#       application data (kept for the next read), close_notify, EOF or an
#       error mean the server is ending it.
#   close
#       httpcore closes a connection when the server asks (``Connection:
#       close``), when it expires in the pool, and when the client closes.
#       The connection is closed in the policy first (the next connection may
#       start at once), then close_notify is sent without waiting for the
#       peer's, so that servers with only a session-ID cache keep the session
#       (see resume._integrations._common): only while the connection is
#       established (no failed handshake, no fatal error); async, only when
#       the close is also clean (no error or cancellation: the record is
#       written to the inner stream with a short timeout); sync, after a
#       non-fatal error too, written with a zero timeout (it never blocks).
from __future__ import annotations

import collections
import contextlib
import os
import ssl
from collections.abc import Generator, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, final

import httpcore

from .._core.early import EarlyData
from .._core.policy import ClientConnection, is_fatal
from ._common import fetch_blocking

__all__ = ["EARLY_ATTEMPT", "AsyncBackend", "EarlyAttempt", "SyncBackend", "sending"]

T = TypeVar("T")

#: Bytes read from the inner stream at a time (as httpcore reads).
_READ_SIZE = 65536

#: How long an async close waits to hand close_notify to the inner stream.
_NOTIFY_TIMEOUT = 1.0

# -- early data: what the transport tells the stream, per request ----------------------------


@dataclass
class EarlyAttempt:
    """One sending of one request: may it go as early data, and did it.

    Made by the transport's rules (resume._integrations.httpx) and filled in by
    the TLS stream whose first write carried the request.
    """

    #: The transport's rules allow this request to go as early data.
    allowed: bool
    #: The request went in the first flight (``SSL_write_early_data()``).
    sent: bool = False
    #: After the handshake: True accepted, False rejected (then sent again), None not sent.
    accepted: bool | None = None


#: The request being sent by this task or thread; see the top.
EARLY_ATTEMPT: ContextVar[EarlyAttempt | None] = ContextVar(
    "resume_httpx_early_attempt", default=None
)


@contextlib.contextmanager
def sending(attempt: EarlyAttempt) -> Iterator[EarlyAttempt]:
    """Make *attempt* the request being sent by this task or thread, for the block."""
    token = EARLY_ATTEMPT.set(attempt)
    try:
        yield attempt
    finally:
        EARLY_ATTEMPT.reset(token)


# -- one TLS connection without I/O ------------------------------------------------------------


class _Need:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: What an operation needs from the network: send what the SSL object queued
#: (answered with None); send it, then bytes from the peer (answered with them, b"" at EOF).
_FLUSH: Final = _Need("_FLUSH")
_FLUSH_READ: Final = _Need("_FLUSH_READ")

#: An operation of _ClientTLS: yields needs, is sent their answers, returns T.
Ops = Generator[_Need, "bytes | None", T]


@final
class _Done(Generic[T]):
    # What an operation returned.
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


def _is_truncation(exc: ssl.SSLError) -> bool:
    return isinstance(exc, (ssl.SSLEOFError, ssl.SSLSyscallError)) or "UNEXPECTED_EOF" in str(exc)


def _same(obj: ssl.SSLObject) -> ssl.SSLObject:
    return obj


@final
class _ClientTLS:
    # One client TLS connection over memory BIOs, without I/O; see the top.

    def __init__(self, *, early_data: bool, notify_after_error: bool) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj: ssl.SSLObject | None = None
        self.conn: ClientConnection | None = None
        #: The handshake waits for the first write (early data on).
        self.deferred = False
        self.handshaken = False
        #: An error or a cancellation was seen: the close is not clean.
        self.unclean = False
        self.closed = False
        #: Application data that idle_bytes() decrypted, for the next read.
        self.kept = b""
        self._early_data = early_data
        self._notify_after_error = notify_after_error

    # -- the operations ------------------------------------------------------------------

    def open(
        self, context: ssl.SSLContext, server_hostname: str, port: int, cache: object
    ) -> Ops[None]:
        """Make the SSL object through the session boundary, then handshake unless deferred."""
        incoming, outgoing = self.incoming, self.outgoing

        def create() -> ssl.SSLObject:
            return context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)

        conn, obj = ClientConnection.begin(cache, context, server_hostname, port, create, _same)
        self.conn, self.obj = conn, obj
        if self._early_data:
            self.deferred = True
        else:
            yield from self.handshake(None)

    def handshake(self, early: EarlyData | None) -> Ops[None]:
        """Handshake; *early* (the first write) goes as early data where EarlyData allows."""
        obj, conn = self._parts()
        self.deferred = False
        if early is not None:
            early.start(conn, obj)  # SSL_write_early_data(), or nothing
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._feed((yield _FLUSH_READ))
        conn.handshake_complete(obj)
        if early is not None:
            rest = early.settle(obj)  # SSL_get_early_data_status()
            if rest:
                obj.write(rest)
        yield _FLUSH
        self.handshaken = True  # errors until here are the handshake's (see errors())

    def read(self, max_bytes: int) -> Ops[bytes]:
        """Up to *max_bytes* of application data; b"" at the end of the stream."""
        if self.deferred:
            yield from self.handshake(None)
        if self.kept:
            data, self.kept = self.kept[:max_bytes], self.kept[max_bytes:]
            return data
        obj = self.obj
        assert obj is not None
        while True:
            try:
                return obj.read(max_bytes)
            except ssl.SSLWantReadError:
                self._feed((yield _FLUSH_READ))  # a key update may have queued bytes
            except ssl.SSLZeroReturnError:
                return b""  # close_notify: the server ended the stream cleanly
            except ssl.SSLError as exc:
                if not _is_truncation(exc):
                    raise
                self._note(exc)
                return b""

    def write(self, data: bytes) -> Ops[None]:
        """Write *data*; the first write of a deferred connection may go as early data."""
        if self.deferred:
            attempt = EARLY_ATTEMPT.get()
            if data and attempt is not None and attempt.allowed:
                early = EarlyData(data)
                yield from self.handshake(early)
                attempt.sent, attempt.accepted = early.sent, early.accepted
                return
            yield from self.handshake(None)
        obj = self.obj
        assert obj is not None
        if data:
            obj.write(data)
            yield _FLUSH

    def idle_bytes(self, data: bytes) -> bool:
        """Bytes that came while the connection was idle (b"": EOF): is the server ending it?

        Post-handshake messages are processed (a NewSessionTicket reaches the
        cache as it arrives) and say no; application data (kept for the next
        read), close_notify, EOF and errors say yes. See the top.
        """
        obj = self.obj
        assert obj is not None
        self._feed(data)
        try:
            self.kept += obj.read(_READ_SIZE)
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLZeroReturnError:
            return True
        except ssl.SSLError as exc:
            self._note(exc)
            return True
        return True

    # -- errors and close --------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, later: type[httpcore.NetworkError]) -> Iterator[None]:
        """Classify what an operation raises (see the top).

        *later* is raised for a TLS error after the handshake (ReadError, WriteError).
        """
        try:
            yield
        except BaseException as exc:
            self._note(exc)
            if not self.handshaken:
                if self.conn is not None:
                    self.conn.fail()
                if isinstance(exc, httpcore.TimeoutException):
                    raise httpcore.ConnectTimeout(str(exc)) from exc
                if isinstance(exc, (ssl.SSLError, httpcore.NetworkError)):
                    raise httpcore.ConnectError(str(exc)) from exc
            elif isinstance(exc, ssl.SSLError):
                raise later(str(exc)) from exc
            raise

    def finish(self) -> bytes:
        """Close the connection in the policy; return the close_notify record to send, or b""."""
        self.closed = True
        conn, obj = self.conn, self.obj
        self.conn = None  # the cache is not kept alive by a closed stream
        if conn is None or obj is None:
            return b""
        notify = conn.established and (self._notify_after_error or not self.unclean)
        conn.close(obj, clean=not self.unclean)  # store first: the next connection may start
        if not notify:
            return b""
        with contextlib.suppress(ssl.SSLError, ValueError):
            obj.unwrap()  # queue close_notify; the reply is not awaited
        return self.outgoing.read()

    def advance(self, ops: Ops[T], reply: bytes | None) -> _Need | _Done[T]:
        """Run *ops* to its next need, sending it *reply* (what the last need gave)."""
        try:
            return ops.send(reply)
        except StopIteration as stop:
            return _Done(stop.value)

    # -- helpers -----------------------------------------------------------------------

    def _parts(self) -> tuple[ssl.SSLObject, ClientConnection]:
        obj, conn = self.obj, self.conn
        if obj is None or conn is None:
            raise httpcore.ConnectError("the TLS connection is closed")
        return obj, conn

    def _feed(self, data: bytes | None) -> None:
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def _note(self, exc: BaseException) -> None:
        # An error on the connection: unclean; a fatal TLS error fails it.
        self.unclean = True
        if self.conn is not None and is_fatal(exc):
            self.conn.fail()


@dataclass(frozen=True)
class _Target:
    # What a TCP stream knows for start_tls(): the port (part of the session
    # key), the cache, and whether early data is on for its connections.
    port: int
    cache: object
    early_data: bool

    def open(self, tls: _ClientTLS, context: ssl.SSLContext, server_hostname: str) -> Ops[None]:
        return tls.open(context, server_hostname, self.port, self.cache)


#: What a TLS stream says to start_tls().
_NESTED: Final = "TLS inside TLS is not supported by resume.httpx"


def _extra_info(tls: _ClientTLS, inner: _Inner, info: str) -> Any:
    # A TLS stream's get_extra_info(): its SSL object, whether the server is
    # ending it, the rest from the inner stream.
    if info == "ssl_object":
        return tls.obj
    if info == "is_readable":
        return _ending(tls, inner)
    return inner.get_extra_info(info)


_Inner = httpcore.AsyncNetworkStream | httpcore.NetworkStream


def _ending(tls: _ClientTLS, inner: _Inner) -> bool:
    # httpcore asks this of an idle connection before it reuses it: is the
    # server ending it? Readable bytes are read at once, without blocking, and
    # given to the TLS connection (see the top, "idle").
    if not inner.get_extra_info("is_readable"):
        return False
    sock = inner.get_extra_info("socket")
    fileno = getattr(sock, "fileno", None)
    if not tls.handshaken or tls.closed or fileno is None or _may_hold_bytes(inner):
        return True
    try:
        data = os.read(fileno(), _READ_SIZE)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return tls.idle_bytes(data)


def _may_hold_bytes(inner: _Inner) -> bool:
    # True unless *inner* is known to hand out every byte it has read from its
    # socket: reading the socket behind its back would then reorder the bytes.
    # httpcore's sync and trio streams read only when asked; anyio's asyncio
    # stream queues what its transport read (read_queue, emptied by receive()).
    module = type(inner).__module__
    if module in ("httpcore._backends.sync", "httpcore._backends.trio"):
        return False
    if module == "httpcore._backends.anyio":
        protocol = getattr(getattr(inner, "_stream", None), "_protocol", None)
        queue = getattr(protocol, "read_queue", None)
        return not isinstance(queue, collections.deque) or bool(queue)
    return True


# -- async: the I/O loop over an httpcore stream (asyncio and trio) --------------------------


@final
class _AsyncTLSStream(httpcore.AsyncNetworkStream):
    # _ClientTLS over another httpcore stream; see the top.

    def __init__(self, inner: httpcore.AsyncNetworkStream, tls: _ClientTLS) -> None:
        import anyio  # httpx depends on it; it runs on asyncio and on trio

        self._inner = inner
        self._tls = tls
        self._send_lock = anyio.Lock()

    async def _drive(
        self, ops: Ops[T], later: type[httpcore.NetworkError], timeout: float | None
    ) -> T:
        reply: bytes | None = None
        with self._tls.errors(later):
            while isinstance(need := self._tls.advance(ops, reply), _Need):
                await self._flush(timeout)
                reply = await self._inner.read(_READ_SIZE, timeout) if need is _FLUSH_READ else None
        return need.value

    async def _flush(self, timeout: float | None) -> None:
        # Bytes are taken under the lock, so they leave in the order they were made.
        async with self._send_lock:
            data = self._tls.outgoing.read()
            if data:
                await self._inner.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._drive(self._tls.read(max_bytes), httpcore.ReadError, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._drive(self._tls.write(buffer), httpcore.WriteError, timeout)

    async def aclose(self) -> None:
        if self._tls.closed:
            return
        try:
            notify = self._tls.finish()
            if notify:
                with contextlib.suppress(Exception):  # the peer is gone: nothing to tell
                    await self._inner.write(notify, _NOTIFY_TIMEOUT)
        finally:
            await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol(_NESTED)

    def get_extra_info(self, info: str) -> Any:
        return _extra_info(self._tls, self._inner, info)


@final
class _AsyncTCPStream(httpcore.AsyncNetworkStream):
    # A connected TCP stream of the inner backend that knows its port.

    def __init__(self, inner: httpcore.AsyncNetworkStream, target: _Target) -> None:
        self._inner = inner
        self._target = target

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
        target = self._target
        await _fetch(target.cache, ssl_context, server_hostname, target.port)
        tls = _ClientTLS(early_data=target.early_data, notify_after_error=False)
        stream = _AsyncTLSStream(self._inner, tls)
        try:
            opening = target.open(tls, ssl_context, server_hostname)
            await stream._drive(opening, httpcore.ConnectError, timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._inner.aclose()
            raise
        return stream

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

    def __init__(self, cache: object, *, early_data: bool = False) -> None:
        self._cache = cache
        self._early_data = early_data
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
        return _AsyncTCPStream(stream, _Target(port, self._cache, self._early_data))

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


# -- sync: the I/O loop over httpcore's blocking socket stream --------------------------------


@final
class _SyncTLSStream(httpcore.NetworkStream):
    # _ClientTLS over httpcore's sync socket stream; see the top.

    def __init__(self, inner: httpcore.NetworkStream, tls: _ClientTLS) -> None:
        self._inner = inner
        self._tls = tls

    def _drive(self, ops: Ops[T], later: type[httpcore.NetworkError], timeout: float | None) -> T:
        reply: bytes | None = None
        with self._tls.errors(later):
            while isinstance(need := self._tls.advance(ops, reply), _Need):
                self._flush(timeout)
                reply = self._inner.read(_READ_SIZE, timeout) if need is _FLUSH_READ else None
        return need.value

    def _flush(self, timeout: float | None) -> None:
        data = self._tls.outgoing.read()
        if data:
            self._inner.write(data, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._drive(self._tls.read(max_bytes), httpcore.ReadError, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._drive(self._tls.write(buffer), httpcore.WriteError, timeout)

    def close(self) -> None:
        if self._tls.closed:
            return
        try:
            notify = self._tls.finish()
            if notify:
                with contextlib.suppress(Exception):  # never blocks: zero timeout
                    self._inner.write(notify, 0.0)
        finally:
            self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol(_NESTED)

    def get_extra_info(self, info: str) -> Any:
        return _extra_info(self._tls, self._inner, info)


@final
class _SyncTCPStream(httpcore.NetworkStream):
    # A connected TCP stream of httpcore's SyncBackend that knows its port.

    def __init__(self, inner: httpcore.NetworkStream, target: _Target) -> None:
        self._inner = inner
        self._target = target

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
        if server_hostname is None:
            return self._inner.start_tls(ssl_context, server_hostname, timeout)
        target = self._target
        fetch_blocking(target.cache, ssl_context, server_hostname, target.port)
        tls = _ClientTLS(early_data=target.early_data, notify_after_error=True)
        stream = _SyncTLSStream(self._inner, tls)
        try:
            stream._drive(
                target.open(tls, ssl_context, server_hostname), httpcore.ConnectError, timeout
            )
        except BaseException:
            self._inner.close()
            raise
        return stream

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


@final
class SyncBackend(httpcore.NetworkBackend):
    # httpcore's SyncBackend, with resuming start_tls().

    def __init__(self, cache: object, *, early_data: bool = False) -> None:
        self._cache = cache
        self._early_data = early_data
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
        return _SyncTCPStream(stream, _Target(port, self._cache, self._early_data))

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
