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

from .._compat import start_tls_server_310
from .server_settings import (
    ServerCounters,
    ServerStatistics,
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
    ) -> None:
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
        limit: the StreamReader buffer limit.
        backlog: the ``listen()`` backlog.
        reuse_address: as for ``loop.create_server()``.
        start_serving: as for ``loop.create_server()``.

    Returns:
        the running :class:`TLSServer`.

    Raises:
        TypeError, ValueError: bad arguments (nothing is changed then).
        OSError: the port cannot be bound.
    """
    context = check_server_context(ssl)
    handshake_timeout = check_seconds("handshake_timeout", handshake_timeout)
    close_timeout = check_seconds("close_timeout", close_timeout)
    check_port(port)
    if not callable(client_connected_cb):
        raise TypeError(
            f"client_connected_cb must be callable, got {type(client_connected_cb).__name__}"
        )
    configure_server_context(context, num_tickets=num_tickets, session_timeout=session_timeout)
    loop = asyncio.get_running_loop()
    state = _State(loop, client_connected_cb, context, handshake_timeout, close_timeout, limit)
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
