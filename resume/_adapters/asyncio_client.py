# Theory of operation: the asyncio client adapter
# ===============================================
#
# asyncio has no ``session=`` parameter anywhere. Its SSL transport builds its
# SSLObject by calling ``sslcontext.wrap_bio(incoming, outgoing, server_side=...,
# server_hostname=...)`` on whatever object it was given as ``ssl=`` (no type
# check on that path). So each connection gets a small stand-in,
# _OfferingContext, whose wrap_bio is the session boundary
# (ClientConnection.begin): it computes the key from the user's context as it
# is at that moment, chooses the session, calls the user's own
# SSLContext.wrap_bio, and offers the session on the new SSLObject through
# resume._core.offer.offer() (``SSL_set_session()``), before the handshake starts.
# asyncio calls wrap_bio after name resolution and the TCP connect, so a
# setting changed while those were awaited is seen: nothing about the session
# is decided before the SSLObject exists.
# The user's context is not changed (apart from the tracking wrappers every
# context gets, see resume._core.key), and the session belongs to it: ``ssl`` refuses
# a session of another SSL_CTX, so a copied or subclassed context could never
# resume. Every other attribute is forwarded to the real context, and the
# writer's get_extra_info("sslcontext") returns the real one.
#
# open_connection() is asyncio.open_connection() with that stand-in and two
# small subclasses:
#
#   _ResumingProtocol (StreamReaderProtocol) records that the transport saw an
#     EOF, so the writer can tell a clean end from a cut.
#   ResumingStreamWriter (StreamWriter) carries the ClientConnection and
#     decides, when the application calls close(), whether the close is clean.
#
# Clean or cut. asyncio's SSL protocol treats a TCP EOF without close_notify
# like a clean close (no error reaches the reader). The writer therefore asks
# the SSLObject itself when the peer has ended the stream: after a received
# close_notify, ``read()`` returns b"" or raises SSLZeroReturnError (both are
# SSL_ERROR_ZERO_RETURN; which one depends on whether our own close_notify went
# out too); after a bare EOF it raises SSLWantReadError (nothing more will come). A cut, an error
# seen by the reader (connection_lost with an exception), abort(), or leaving
# ``async with writer`` on an exception all make the close not clean: where
# sessions are captured at close (no arrival capture for this context),
# nothing is stored then. A close the application asks for while the
# connection is healthy is clean. With arrival capture (the default) the
# sessions are already in the cache; only a fatal TLS error seen by the reader
# (is_fatal) takes them out again.
#
# Early data (``early_data=``, TLS 1.3 0-RTT). The rules are
# resume._core.early.EarlyData's; this adapter only places its two calls:
#
#   EarlyData.start() in _OfferingContext.wrap_bio, right after begin() made
#     the SSLObject and offered the session: SSL_write_early_data() puts the
#     ClientHello and the early records in the outgoing MemoryBIO. asyncio's
#     SSL protocol flushes that BIO after its first do_handshake() step:
#     3.11+ (SSLProtocol._do_handshake -> _process_outgoing on
#     SSLWantReadError) and 3.10's _SSLPipe.do_handshake (feed_ssldata sends
#     whatever ``outgoing.pending`` holds), both before any byte arrives.
#   EarlyData.settle() once create_connection() returned (the handshake is
#     complete), then the caller's post_handshake check, then
#     ``transport.write()`` of what settle() returned (everything when the
#     server rejected the data or none went early) and ``drain()``, all before
#     open_connection() returns: the application's own writes come after it,
#     and the server's application gets the bytes once.
#   A failure at any point after the SSLObject exists (the early write, the
#     handshake, the check, the write after it) goes through
#     ClientConnection.fail(), like a failed handshake.
#
# ``writer.get_extra_info("early_data_accepted")`` (and the writer's
# ``early_data_accepted``) is True (accepted), False (rejected, sent again) or
# None (not sent early).
#
# TLS 1.3 tickets arrive after the handshake; asyncio's SSL protocol decrypts
# incoming data as it arrives, so by the time the application has read a
# response the tickets have been processed, and close() reads the latest one
# from the SSLObject.
from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

from .._core.defaults import default_ssl_context, resolve_cache
from .._core.early import EarlyData, check_early_data
from .._core.handle import SessionHandle
from .._core.key import SessionKey, make_key
from .._core.policy import ClientConnection, is_fatal
from .._stores.link import fetch_for_asyncio

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ResumingStreamWriter", "SessionInfo", "open_connection", "session_info"]

#: asyncio.streams' default buffer limit (64 KiB).
_DEFAULT_LIMIT = 2**16

PostHandshake = Callable[["ResumingStreamWriter"], object]


def _same(obj: ssl.SSLObject) -> ssl.SSLObject:
    return obj


@final
class _OfferingContext:
    # Stands in for the user's SSLContext for one connection; see the top.
    __slots__ = ("_cache", "_context", "_peer", "_port", "conn", "early", "ssl_object")

    def __init__(
        self,
        context: ssl.SSLContext,
        cache: object,
        peer: str,
        port: int,
        early: EarlyData | None = None,
    ) -> None:
        self._context = context
        self._cache = cache
        self._peer = peer
        self._port = port
        self.early = early
        self.conn: ClientConnection | None = None
        self.ssl_object: ssl.SSLObject | None = None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        context = self._context

        def create() -> ssl.SSLObject:
            return context.wrap_bio(
                incoming, outgoing, server_side=server_side, server_hostname=server_hostname
            )

        self.conn, obj = ClientConnection.begin(
            self._cache, context, self._peer, self._port, create, _same
        )
        self.ssl_object = obj
        if self.early is not None:
            # Into the outgoing BIO; asyncio flushes it after the first handshake step.
            self.early.start(self.conn, obj)
        return obj

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _ResumingProtocol(asyncio.StreamReaderProtocol):
    # Records the EOF of the transport (clean or not; the writer asks the
    # SSLObject which).
    saw_eof = False

    def eof_received(self) -> bool:
        self.saw_eof = True
        return bool(super().eof_received())


@final
class ResumingStreamWriter(asyncio.StreamWriter):
    """The writer of :func:`open_connection`: an :class:`asyncio.StreamWriter` that resumes.

    It behaves as the writer of :func:`asyncio.open_connection` and also says
    whether the session was resumed (:attr:`session_reused`, also
    ``get_extra_info("ssl_object").session_reused``) and which session is in
    use. It holds one reference to :attr:`session_handle` and frees it when
    closed. On a clean :meth:`close` (the application closes a healthy
    connection, or the server ended it with close_notify) the connection's
    session goes to the cache; after a cut, an error, :meth:`abort`, or an
    exception inside ``async with writer:``, nothing does.
    """

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: _ResumingProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
        *,
        conn: ClientConnection,
        context: ssl.SSLContext,
        ssl_object: ssl.SSLObject,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._resume_conn = conn
        self._resume_context = context
        self._resume_protocol = protocol
        self._resume_reader = reader
        self._ssl_object = ssl_object
        self._unclean = False
        self._finished = False
        self._reused = conn.reused
        self._early_data_accepted: bool | None = None

    @property
    def session_reused(self) -> bool:
        """True if the server resumed the offered session (``SSL_session_reused()``)."""
        return self._reused

    @property
    def early_data_accepted(self) -> bool | None:
        """Whether the ``early_data=`` bytes went out as TLS 1.3 early data (0-RTT).

        True: in the first flight, and the server accepted them
        (``SSL_get_early_data_status()`` is ``SSL_EARLY_DATA_ACCEPTED``).
        False: they went early and the server rejected them; they were sent
        again right after the handshake. None: none went early (no
        ``early_data=``, no session allowing them, too large, TLS 1.2); they
        were sent after the handshake. Also
        ``get_extra_info("early_data_accepted")``.
        """
        return self._early_data_accepted

    @property
    def session_handle(self) -> SessionHandle | None:
        """The session in use (resumed, or made by the handshake); None once closed."""
        return None if self._finished else self._resume_conn.handle

    @property
    def cache_key(self) -> SessionKey:
        """The :class:`~resume.SessionKey` this connection's sessions are filed under."""
        return self._resume_conn.key

    @property
    def session_stored(self) -> bool:
        """True once a session of this connection entered the cache."""
        return self._resume_conn.stored

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As :meth:`asyncio.StreamWriter.get_extra_info`; ``"sslcontext"`` is your context.

        ``"early_data_accepted"`` is :attr:`early_data_accepted` (True, False,
        or None when no early data was sent).
        """
        if name == "sslcontext":
            return self._resume_context
        if name == "early_data_accepted":
            return self._early_data_accepted
        return super().get_extra_info(name, default)

    def _peer_cut(self) -> bool:
        # Called at close. The peer ended the stream: with close_notify, or cut?
        if self._resume_reader.exception() is not None:
            return True
        if not self._resume_protocol.saw_eof:
            return False
        try:
            self._ssl_object.read(1)
        except ssl.SSLZeroReturnError:
            return False  # close_notify received (and ours sent): SSL_ERROR_ZERO_RETURN
        except ssl.SSLWantReadError:
            return True  # a bare EOF: no close_notify came
        except (ssl.SSLError, ValueError):
            return True
        return False  # b"" after close_notify (or data: the app stopped reading)

    def _finish(self, *, clean: bool) -> None:
        if not self._finished:
            self._finished = True
            if is_fatal(self._resume_reader.exception()):
                self._resume_conn.fail()  # a fatal alert: what this connection added goes
            self._resume_conn.close(self._ssl_object, clean=clean)

    def close(self) -> None:
        """Close the connection (sending close_notify); store its session if the close is clean."""
        if not self._finished:
            self._finish(clean=not self._unclean and not self._peer_cut())
        super().close()

    def abort(self) -> None:
        """Close at once without close_notify (``transport.abort()``); keep nothing."""
        self._unclean = True
        self._finish(clean=False)
        self.transport.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._unclean = True
        self.close()
        try:
            await self.wait_closed()
        except (OSError, ssl.SSLError):
            if exc_type is None:
                raise

    def __del__(self) -> None:
        # A writer dropped without close() never feeds the cache; its reference
        # is freed here (asyncio itself warns about the unclosed transport).
        try:
            self._unclean = True
            self._finish(clean=False)
        except AttributeError:  # pragma: no cover - half-built
            pass
        parent_del = getattr(super(), "__del__", None)  # StreamWriter has one since 3.11
        if parent_del is not None:
            parent_del()

    def __repr__(self) -> str:
        state = "closed" if self._finished else ("resumed" if self._reused else "full")
        return f"<resume.asyncio.ResumingStreamWriter {state} key={self._resume_conn.key!r}>"


@final
@dataclass(frozen=True)
class SessionInfo:
    """What :func:`session_info` reports about a connection."""

    #: True if the server resumed the offered session.
    session_reused: bool
    #: The session in use, or None once the connection is closed.
    session_handle: SessionHandle | None
    #: The key the connection's sessions are filed under.
    cache_key: SessionKey
    #: True once a session of the connection entered the cache.
    session_stored: bool


def session_info(writer: asyncio.StreamWriter) -> SessionInfo:
    """Report the resumption state of a connection made by :func:`open_connection`.

    Raises:
        TypeError: *writer* did not come from :func:`open_connection`.
    """
    if not isinstance(writer, ResumingStreamWriter):
        raise TypeError(
            f"session_info() needs a writer from resume.asyncio.open_connection(), "
            f"got {type(writer).__name__}"
        )
    return SessionInfo(
        writer.session_reused, writer.session_handle, writer.cache_key, writer.session_stored
    )


def _resolve_context(ssl_arg: object) -> ssl.SSLContext:
    if ssl_arg is None or ssl_arg is True:
        return default_ssl_context()
    if isinstance(ssl_arg, ssl.SSLContext):
        return ssl_arg
    if ssl_arg is False:
        raise ValueError(
            "resume.asyncio.open_connection() always uses TLS; use asyncio.open_connection() "
            "for a plain connection"
        )
    raise TypeError(f"ssl must be an ssl.SSLContext, True or None, got {type(ssl_arg).__name__}")


async def open_connection(
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: ssl.SSLContext | bool | None = None,
    cache: object = None,
    server_hostname: str | None = None,
    limit: int = _DEFAULT_LIMIT,
    post_handshake: PostHandshake | None = None,
    early_data: bytes | bytearray | memoryview | None = None,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, ResumingStreamWriter]:
    """Open a TLS connection like :func:`asyncio.open_connection`, resuming a cached session.

    The session to offer is looked up under the same key as
    :func:`resume.trio.open_tls_stream` uses (server name, port, TLS settings:
    see :class:`~resume.SessionKey`), computed when the connection's
    :class:`ssl.SSLObject` is made (after the TCP connect, from the context's
    settings then), and offered with ``SSL_set_session()`` before the
    handshake; each session the connection yields enters the cache as it
    arrives (TLS 1.3: every ticket, each used once).

    Args:
        host: the name or address to connect to (None with ``sock=``).
        port: the server's port; required (it is part of the session key),
            also with ``sock=``.
        ssl: a client :class:`ssl.SSLContext`; None or True means
            :func:`~resume.default_ssl_context`. Configure ALPN on the context
            with ``set_alpn_protocols()``: the list is part of the key.
        cache: a :class:`~resume.SessionCache`; None for the process-wide
            :func:`~resume.default_cache`; False for no resumption.
        server_hostname: the name to send as SNI and verify; defaults to
            *host*. It, not *host*, is the peer of the session key.
        limit: the reader's buffer limit, as for :func:`asyncio.open_connection`.
        post_handshake: called with the writer after the handshake; if it
            raises, the connection is aborted, nothing is kept, an offered
            session is dropped, and the exception propagates.
        early_data: bytes to send first, as TLS 1.3 early data (0-RTT,
            ``SSL_write_early_data()``) when a single-use ticket that allows
            that many early bytes is offered, else right after the handshake;
            if the server rejects them they are sent again after the
            handshake. Either way they are written (and drained) before this
            returns, ahead of anything the application writes, once.
            ``writer.get_extra_info("early_data_accepted")`` tells which way
            they went. Early data can be replayed by an attacker who records
            it: send only what is safe to run twice (an idempotent request).
            A server may answer early data before its handshake ends
            (0.5-RTT); its fresh TLS 1.3 ticket then comes one round trip
            after that answer, so read on past it (the next response, or to
            the server's close) for the next connection to have a ticket:
            the ticket this one used is spent and never stored again.
        **kwargs: passed to :meth:`asyncio.loop.create_connection`
            (``ssl_handshake_timeout``, ``local_addr``, ``sock``, ...).

    Returns:
        ``(reader, writer)``; the writer is a :class:`ResumingStreamWriter`.

    Raises:
        TypeError, ValueError: bad arguments, before any connection is made.
        OSError: the connection failed.
        ssl.SSLError: the handshake failed (e.g. :class:`ssl.SSLCertVerificationError`).
    """
    context = _resolve_context(ssl)
    resolve_cache(cache)
    if port is None:
        raise ValueError("port is required: it is part of the session key")
    name = server_hostname if server_hostname is not None else host
    if name is None:
        raise ValueError("server_hostname is required when host is None (sock=)")
    # Check every argument before connecting; this key is thrown away (the one
    # that counts is computed in wrap_bio, from the context as it is then).
    make_key(context, name, port)
    early = None if early_data is None else check_early_data(early_data)
    sock: socket.socket | None = kwargs.get("sock")
    if sock is None and host is None:
        raise ValueError("host is required unless sock= is given")
    await fetch_for_asyncio(cache, context, name, port)  # a store, off the loop

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = _ResumingProtocol(reader, loop=loop)
    # The key and the session are chosen in stand_in.wrap_bio(), not here.
    stand_in = _OfferingContext(context, cache, name, port, EarlyData(early) if early else None)
    # asyncio only calls wrap_bio() on its ssl= argument; typeshed wants an SSLContext.
    ssl_arg: Any = stand_in
    try:
        if sock is not None:
            transport, _ = await loop.create_connection(
                lambda: protocol, ssl=ssl_arg, server_hostname=name, **kwargs
            )
        else:
            assert host is not None
            transport, _ = await loop.create_connection(
                lambda: protocol, host, port, ssl=ssl_arg, server_hostname=name, **kwargs
            )
    except BaseException:
        if stand_in.conn is not None:
            stand_in.conn.fail()  # the handshake started: drop what was offered
        raise
    conn, ssl_object = stand_in.conn, stand_in.ssl_object
    assert conn is not None and ssl_object is not None
    try:
        conn.handshake_complete(ssl_object)
        writer = ResumingStreamWriter(
            transport, protocol, reader, loop, conn=conn, context=context, ssl_object=ssl_object
        )
        rest = b""
        if stand_in.early is not None:
            rest = stand_in.early.settle(ssl_object)
            writer._early_data_accepted = stand_in.early.accepted
        if post_handshake is not None:
            post_handshake(writer)
        if rest:
            writer.write(rest)  # before the application's first byte
            await writer.drain()
    except BaseException:
        conn.fail()
        transport.abort()
        raise
    return reader, writer
