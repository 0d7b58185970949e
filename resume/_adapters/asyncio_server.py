# Theory of operation: start_server, the asyncio twin of serve_tls
# ================================================================
#
# ``asyncio.start_server(..., ssl=ctx)`` would do the TLS handshake inside the
# event loop and hide its outcome: a failed or timed-out handshake is only logged
# in debug mode, and the callback never learns whether the session was resumed.
# So we accept plain TCP and upgrade each connection ourselves with
# ``loop.start_tls()``, which raises on failure and honours a handshake timeout:
#
#   1. ``_AcceptProtocol.connection_made`` pauses reading at once (the ClientHello
#      must reach the SSL protocol, not us) and starts ``_upgrade``;
#   2. ``_upgrade`` awaits ``loop.start_tls(..., server_side=True,
#      ssl_handshake_timeout=...)`` with a ``StreamReaderProtocol`` (a subclass,
#      see below) as the application protocol, counts the handshake (resumed or
#      full) or the failure, and calls the protocol's ``connection_made`` with the
#      TLS transport (start_tls does not), which builds the ``StreamWriter`` and
#      runs the callback, exactly as ``asyncio.start_server`` does;
#   3. the callback runs in a task we track; when it returns the writer is
#      closed (``close_notify``; at most *close_timeout* seconds), as serve_tls
#      closes its stream.
#
# Reading stays paused until start_tls (CPython gh-103607, fixed in 3.11 but
# not in 3.10, which only takes security fixes): on 3.10 a ``pause_reading()``
# made inside ``connection_made`` is undone by the transport, which registers
# its reader right after ``connection_made`` returns while still believing it
# is paused. The ClientHello then reaches a protocol that drops it (ours, or
# 3.10's SSLProtocol before its own ``connection_made``), and the handshake
# hangs until *handshake_timeout*. So the first step of ``_upgrade`` resumes
# and pauses again: a no-op pair on a fixed Python (two ``epoll_ctl`` calls),
# and on 3.10 it takes the reader off the selector and cancels a read already
# queued for this turn of the loop. That first step runs before any read the
# selector reports after ``connection_made`` (the task was scheduled first), so
# no byte is lost.
#
# The reply to a client's close_notify (CPython bpo-30698, fixed in 3.11 by
# the new SSL protocol): 3.10's ``SSLProtocol`` closes the socket transport
# inside ``unwrap()``'s completion callback and only then writes the
# close_notify that ``unwrap()`` produced, which a closing transport drops. A
# client that closes first (``SSLSocket.unwrap()``, ``openssl s_client``) then
# sees an unexpected EOF instead of our close_notify. On 3.10 we therefore
# upgrade with ``resume._compat.start_tls_server_310``, the twin of 3.10's ``loop.start_tls`` with a
# protocol whose ``_finalize`` closes the transport one turn of the loop later,
# after that close_notify is written (a transport with buffered data flushes it
# before it closes). 3.10 takes security fixes only, so its ``SSLProtocol``
# does not change under us.
#
# asyncio's SSL protocol writes whatever OpenSSL produced after each step, so
# TLS 1.3 tickets leave right after the handshake, even to a callback that
# never writes, and transport writes never block the loop (they are buffered),
# so a client that never reads cannot stall the server; the close waits at most
# *close_timeout* (``ssl_shutdown_timeout``, Python 3.11+).
#
# The application protocol knows from birth that it runs over TLS. A plain
# ``StreamReaderProtocol`` learns it in ``connection_made`` (from the transport's
# ``sslcontext``), and until then its ``eof_received()`` returns True, "keep the
# transport open", which an SSL transport cannot do: asyncio's SSL protocol logs
# "returning true from eof_received() has no effect when using ssl". Step 2 calls
# ``connection_made`` one turn of the loop after the handshake ends, and a client
# that sends close_notify right behind its last handshake flight (``openssl
# s_client -reconnect``; any client that closes at once after a resumed TLS 1.2 or
# any TLS 1.3 handshake) has it read in that same turn, before. So the protocol
# is ``_TLSStreamReaderProtocol``, whose ``eof_received()`` always answers False
# (close), as ``asyncio.start_server(ssl=...)``'s own protocol does, and the log
# stays as quiet as plain asyncio's. The reader gets its EOF either way.
#
# Early data (TLS 1.3 0-RTT). asyncio's SSL protocol makes the connection's
# SSLObject itself, through ``SSLContext.wrap_bio()``, which builds an instance of
# the context's ``sslobject_class``; ``loop.start_tls()`` accepts only a real
# ``ssl.SSLContext`` (3.10 to 3.13), so a wrapper context is not possible. With
# ``max_early_data`` > 0 the context is configured for early data
# (server_settings.configure_server_context: replay gate, SSL_OP_NO_ANTI_REPLAY,
# SSL_CTX_set_max_early_data) and its ``sslobject_class`` is set, on that
# context only, to _EarlyDataSSLObject, which follows SSL_read_early_data(3):
#
#   * its ``do_handshake()`` first loops ``SSL_read_early_data()`` until FINISH,
#     keeping the early bytes; SSLWantReadError/SSLWantWriteError propagate, and
#     asyncio's SSL protocol flushes the outgoing BIO and calls again when more
#     input comes, exactly as for a plain handshake; then the real
#     ``SSL_do_handshake()``;
#   * its ``read()`` hands out the early bytes before any ordinary read, so they
#     reach the protocol (and the StreamReader) first, in order, on every Python
#     (3.11+ reads right after the handshake; 3.10's _SSLPipe in the same call).
#
# Unlike serve_tls, the callback runs after the handshake (asyncio offers no
# hook before), so the answer leaves after it too: no 0.5-RTT on asyncio, and
# the client's first response byte comes one round trip later than from
# serve_tls. ``writer.get_extra_info("early_data")`` is True when the first
# bytes came as accepted early data (set in the SSL protocol's extra info by
# resume._compat.set_ssl_transport_extra: the transport has no public setter).
#
# Resumption itself is OpenSSL's, as for serve_tls (see resume._adapters.server_settings).
from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, final

from .._compat import set_ssl_transport_extra, start_tls_server_310
from .._core.replay import ReplayGuard
from .server_settings import (
    ServerCounters,
    ServerStatistics,
    check_max_early_data,
    check_port,
    check_seconds,
    check_server_context,
    configure_server_context,
)

__all__ = ["TLSServer", "start_server"]

ClientConnected = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], "Awaitable[object] | object"
]

#: The StreamReader buffer limit asyncio uses (asyncio.streams._DEFAULT_LIMIT).
_DEFAULT_LIMIT = 2**16
#: Bytes asked of each SSL_read_early_data() call (the largest record is 16 KiB).
_EARLY_READ_SIZE = 65536
# SSL_read_early_data() FINISH and SSL_get_early_data_status() REJECTED (binding values).
_EARLY_FINISH = 2
_EARLY_REJECTED = 1


class _EarlyDataSSLObject(ssl.SSLObject):
    # The SSLObject of a server context that accepts early data (see the module
    # comment). Attributes live in the instance dict, set on first use: asyncio
    # builds it with SSLObject._create(), which runs no __init__.
    _early_reading = True
    _early_bytes = b""
    #: True when the first bytes of the connection came as accepted early data.
    early_data = False

    def do_handshake(self) -> None:
        # SSL_read_early_data() until FINISH, then SSL_do_handshake(); see
        # SSL_read_early_data(3): a server must read early data first.
        if self._early_reading and self.server_side:
            from .._openssl.binding import binding

            read = binding().read_early_data
            while True:
                status, data = read(self, _EARLY_READ_SIZE)  # may raise SSLWant*Error
                if status == _EARLY_FINISH:
                    self._early_reading = False
                    break
                if data:
                    self._early_bytes += data
                    self.early_data = True
        super().do_handshake()

    def read(self, size: int = 1024, buffer: Any = None) -> Any:
        # The early bytes first (SSL_read_early_data()'s), then SSL_read().
        early = self._early_bytes
        if not early:
            return super().read(size, buffer)
        chunk, self._early_bytes = early[:size], early[size:]
        if buffer is None:
            return chunk
        memoryview(buffer)[: len(chunk)] = chunk
        return len(chunk)

    def pending(self) -> int:
        return len(self._early_bytes) + super().pending()


def _check_early_objects(context: ssl.SSLContext) -> None:
    # Refuse a context whose SSL objects are already someone else's subclass.
    current = context.sslobject_class
    if current is not ssl.SSLObject and current is not _EarlyDataSSLObject:
        raise ValueError(
            f"max_early_data needs the context's own SSL objects, but its sslobject_class "
            f"is {current.__name__}: use a plain ssl.SSLContext"
        )


def _use_early_data_objects(context: ssl.SSLContext) -> None:
    # Make wrap_bio() build _EarlyDataSSLObject for *context* (only this one).
    if context.sslobject_class is not _EarlyDataSSLObject:
        context.sslobject_class = _EarlyDataSSLObject


@final
class TLSServer:
    """A running :func:`start_server`: the :class:`asyncio.Server` and statistics.

    Use it as an async context manager, or call :meth:`close` and
    :meth:`wait_closed`.
    """

    def __init__(self, _state: _State) -> None:
        # Made by start_server only.
        self._state = _state

    @property
    def server(self) -> asyncio.Server:
        """The underlying :class:`asyncio.Server` (plain TCP; TLS is added per connection)."""
        server = self._state.server
        assert server is not None
        return server

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self.server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (the real one when bound to port 0)."""
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The server's context."""
        return self._state.context

    def statistics(self) -> ServerStatistics:
        """A snapshot of the handshake counters and ``SSLContext.session_stats()``."""
        return self._state.counters.snapshot(self._state.context)

    def is_serving(self) -> bool:
        """True while the server accepts connections."""
        return self.server.is_serving()

    async def serve_forever(self) -> None:
        """Accept connections until cancelled (``asyncio.Server.serve_forever()``)."""
        await self.server.serve_forever()

    def close(self) -> None:
        """Stop accepting and cancel the handshakes and callbacks in progress."""
        self.server.close()
        for task in list(self._state.tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the listening sockets and every connection task are done."""
        await self.server.wait_closed()
        # Wait for the tasks not done yet, until none is left (a finishing handshake
        # may start a callback task). Waiting on the set itself could spin: a done
        # task leaves it only when its done callback runs, on a later turn of the
        # loop, and from 3.12 on gather() of done tasks returns without yielding.
        while pending := [task for task in self._state.tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> TLSServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        names = [s.getsockname() for s in self.server.sockets]
        return f"<resume.asyncio.TLSServer {names}>"


@final
class _State:
    # What every connection of one server shares.
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: ClientConnected,
        context: ssl.SSLContext,
        handshake_timeout: float,
        close_timeout: float,
        limit: int,
        early: Any = None,
    ) -> None:
        #: The OpenSSL binding when the server accepts early data, else None.
        self.early = early
        self.loop = loop
        self.callback = callback
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        self.limit = limit
        self.counters = ServerCounters()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    def track(self, coro: Any) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def upgrade(self, transport: asyncio.Transport) -> None:
        counters = self.counters
        # Step 1 of the theory of operation, made true on every Python: the
        # reader must really be off the selector before start_tls swaps the
        # protocol (see "Reading stays paused" above).
        transport.resume_reading()
        transport.pause_reading()
        reader = asyncio.StreamReader(limit=self.limit, loop=self.loop)
        protocol = _TLSStreamReaderProtocol(reader, self._connected, loop=self.loop)
        kwargs: dict[str, Any] = {"ssl_handshake_timeout": self.handshake_timeout}
        if sys.version_info >= (3, 11):
            kwargs["ssl_shutdown_timeout"] = self.close_timeout
        try:
            if sys.version_info >= (3, 11):
                tls = await self.loop.start_tls(
                    transport, protocol, self.context, server_side=True, **kwargs
                )
            else:
                assert start_tls_server_310 is not None
                tls = await start_tls_server_310(
                    self.loop, transport, protocol, self.context, self.handshake_timeout
                )
        except asyncio.CancelledError:
            counters.failed += 1  # the server closed during the handshake
            counters.closed += 1
            transport.close()
            raise
        except Exception:
            # Failed or timed out (start_tls closed the transport already).
            counters.failed += 1
            counters.closed += 1
            transport.close()
            return
        if tls is None:  # pragma: no cover - the transport closed during the handshake
            counters.failed += 1
            counters.closed += 1
            return
        ssl_object = tls.get_extra_info("ssl_object")
        counters.handshake_done(bool(ssl_object is not None and ssl_object.session_reused))
        if self.early is not None:
            accepted = bool(getattr(ssl_object, "early_data", False))
            set_ssl_transport_extra(tls, "early_data", accepted)
            if accepted:
                counters.early_accepted += 1
            elif (
                ssl_object is not None
                and self.early.early_data_status(ssl_object) == _EARLY_REJECTED
            ):
                counters.early_rejected += 1
        else:
            set_ssl_transport_extra(tls, "early_data", False)
        protocol.connection_made(tls)

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # StreamReaderProtocol calls this from connection_made; run the user's
        # callback in a task we can cancel and close after.
        self.track(self._run_callback(reader, writer))

    async def _run_callback(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            result = self.callback(reader, writer)
            if inspect.isawaitable(result):
                await result
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the peer went away; only this connection ends
        except Exception as exc:
            self.loop.call_exception_handler(
                {
                    "message": "resume.asyncio.start_server: client_connected_cb raised",
                    "exception": exc,
                    "transport": writer.transport,
                }
            )
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), self.close_timeout)
            if not writer.transport.is_closing():  # pragma: no cover - defensive
                writer.transport.abort()
            self.counters.closed += 1


class _TLSStreamReaderProtocol(asyncio.StreamReaderProtocol):
    # A StreamReaderProtocol that is over TLS before connection_made tells it so
    # (see "The application protocol knows from birth" above).
    def eof_received(self) -> bool:
        super().eof_received()  # feeds the EOF to the reader
        return False  # let the SSL transport close, as it will anyway


class _AcceptProtocol(asyncio.Protocol):
    # The protocol of each accepted plain TCP connection, until start_tls replaces it.
    def __init__(self, _state: _State) -> None:
        # Made by start_server only.
        self._state = _state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        self._state.counters.accepted += 1
        self._state.track(self._state.upgrade(transport))

    def data_received(self, data: bytes) -> None:  # pragma: no cover - reading is paused
        pass


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
    host: str | None = None,
    port: int = 0,
    *,
    ssl: ssl.SSLContext,
    handshake_timeout: float = 10.0,
    close_timeout: float = 5.0,
    num_tickets: int | None = None,
    session_timeout: float | None = None,
    max_early_data: int = 0,
    replay_guard: ReplayGuard | None = None,
    limit: int = _DEFAULT_LIMIT,
    backlog: int = 100,
    reuse_address: bool | None = None,
    start_serving: bool = True,
) -> TLSServer:
    """Start a TLS server; call ``client_connected_cb(reader, writer)`` per connection.

    The asyncio counterpart of :func:`resume.trio.serve_tls`, shaped like
    :func:`asyncio.start_server`. Resumption works out of the box (OpenSSL's
    internal cache and tickets of *ssl*), also with client certificates;
    TLS 1.3 tickets leave right after the handshake. Each handshake must finish
    within *handshake_timeout* seconds or is dropped and counted failed. When
    the callback returns, the writer is closed (``close_notify``, at most
    *close_timeout* seconds). Whether a connection resumed is
    ``writer.get_extra_info("ssl_object").session_reused``.

    TLS 1.3 early data (0-RTT) is off unless *max_early_data* > 0. Then a
    resumed client may send up to that many bytes with its ClientHello; the
    server reads them first (``SSL_read_early_data()``), and the callback's
    reader returns them as the start of the stream, with
    ``writer.get_extra_info("early_data")`` True. Replay protection is always
    on with it, as for :func:`resume.trio.serve_tls`: ``SSL_OP_NO_ANTI_REPLAY``
    together with an allow-early-data gate (``SSL_CTX_set_allow_early_data_cb()``)
    asking *replay_guard*; a replayed first flight gets a 1-RTT handshake and
    never reaches the callback.

    .. note:: Unlike serve_tls, the callback runs after the handshake has
       completed (asyncio's SSL protocol gives no earlier hook), so the answer
       leaves one round trip later than serve_tls's 0.5-RTT answer: the client
       saves the round trip of sending its request, not the one of the
       handshake. To do this, *ssl*'s ``sslobject_class`` is set to a subclass
       of :class:`ssl.SSLObject` that reads the early data in its
       ``do_handshake()``; it must be ``ssl.SSLObject`` before.

    Args:
        client_connected_cb: ``cb(reader, writer)``, a plain function or a coroutine
            function.
        host: the address to bind; None means every interface.
        port: the TCP port; 0 picks a free one (see :attr:`TLSServer.port`).
        ssl: a server context (``ssl.PROTOCOL_TLS_SERVER``) with a certificate.
        handshake_timeout: seconds a client gets to finish its handshake.
        close_timeout: seconds the close may wait for the peer (Python 3.11+).
        num_tickets: TLS 1.3 tickets per handshake (``SSL_CTX_set_num_tickets()``).
        session_timeout: seconds a session stays resumable (``SSL_CTX_set_timeout()``).
        max_early_data: TLS 1.3 early data accepted per connection, in bytes
            (``SSL_CTX_set_max_early_data()``); 0, the default, accepts none.
        replay_guard: the ClientHello record that refuses replays
            (:class:`resume.replay.ReplayGuard`); default a new
            :class:`resume.replay.MemoryReplayGuard`. Servers sharing ticket
            keys need a shared record.
        limit: the StreamReader buffer limit.
        backlog: the ``listen()`` backlog.
        reuse_address: as for ``loop.create_server()``.
        start_serving: as for ``loop.create_server()``.

    Returns:
        the running :class:`TLSServer`.

    Raises:
        TypeError, ValueError: bad arguments (nothing is changed then), or
            *replay_guard* differs from the one *ssl* already serves early data with.
        UnsupportedError: *max_early_data* > 0 where the OpenSSL binding or its
            early-data calls are not available.
        OSError: the port cannot be bound.
    """
    context = check_server_context(ssl)
    handshake_timeout = check_seconds("handshake_timeout", handshake_timeout)
    close_timeout = check_seconds("close_timeout", close_timeout)
    check_port(port)
    check_max_early_data(max_early_data)
    if not callable(client_connected_cb):
        raise TypeError(
            f"client_connected_cb must be callable, got {type(client_connected_cb).__name__}"
        )
    if max_early_data:
        _check_early_objects(context)  # before anything changes
    guard = configure_server_context(
        context,
        num_tickets=num_tickets,
        session_timeout=session_timeout,
        max_early_data=max_early_data,
        replay_guard=replay_guard,
    )
    early = None
    if guard is not None:
        from .._openssl.binding import binding

        early = binding()
        _use_early_data_objects(context)
    loop = asyncio.get_running_loop()
    state = _State(
        loop, client_connected_cb, context, handshake_timeout, close_timeout, limit, early
    )
    state.server = await loop.create_server(
        lambda: _AcceptProtocol(state),
        host,
        port,
        backlog=backlog,
        reuse_address=reuse_address,
        start_serving=start_serving,
    )
    return TLSServer(state)


for _obj in (TLSServer, start_server):
    _obj.__module__ = "resume.asyncio"
