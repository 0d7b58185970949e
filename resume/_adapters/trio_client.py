# Theory of operation: the trio client adapter
# ============================================
#
# A thin shell around trio.SSLStream; every decision about sessions is made by
# resume._core.policy.ClientConnection. The adapter's only jobs are I/O and telling
# the policy what happened:
#
#   wrap_client_stream()
#     1-2. ClientConnection.begin(), the session boundary: the key and the
#        session to offer, computed from the context as it is when
#        trio.SSLStream(..., https_compatible=False) creates the SSLObject
#        (after the TCP connect: nothing is decided before it), then
#        resume._core.offer.offer() on trio's SSLObject (reached through
#        resume._compat, trio keeps it in a private attribute); going through offer() lets sessions
#        imported from DER work too, which ``SSLStream.session = ...`` would not.
#     3. With ``early_data=``: resume._core.early.EarlyData.start() on that
#        SSLObject, before its first do_handshake(). Where the rules there
#        allow it (a single-use ticket the key table offered, arrival capture,
#        the ticket's max_early_data holds the data), SSL_write_early_data()
#        puts the ClientHello and the early records in the outgoing BIO;
#        trio.SSLStream flushes that BIO after every step, the first
#        do_handshake() step included, so they leave in the first flight.
#     4. do_handshake(); then handshake_complete() (accepted or declined) and
#        EarlyData.settle(); then the caller's post_handshake check; then
#        send_all() of what settle() returned (all of the data when the server
#        rejected it or none went early): so the application's first bytes
#        arrive once, early or not, before anything it sends itself. They
#        are written after post_handshake, never to a server a check refused
#        (early data rides only on a session an earlier connection verified).
#        Any exception in 3-4 (cancellation included) ->
#        ClientConnection.fail() (the offer is dropped, nothing is kept), the
#        stream is closed forcefully, re-raise.
#
#   Early data and tickets. The ticket that carried early data was taken out
#   of the cache to be offered and is never stored again; the fresh tickets the
#   server sends enter the cache as they arrive (EarlyData refuses to send
#   early where sessions are captured at close instead).
#
#   ResumingSSLStream
#     - Sessions enter the cache as OpenSSL makes them (the policy's arrival
#       capture). A fatal TLS error in send_all or receive_some (is_fatal)
#       calls ClientConnection.fail(), which takes them out again.
#     - An error or cancellation in send_all (which breaks an SSLStream), or an
#       error in receive_some, marks the connection as not clean. A cancelled
#       receive_some does not: trio.SSLStream stays usable after it. Where
#       sessions are captured at close (no arrival capture for this context),
#       only a clean close stores: aclose() with no error seen, and a close
#       that itself succeeded; ``async with`` leaving on an exception is not
#       clean.
#
# Truncation and https_compatible. The inner SSLStream is always strict
# (https_compatible=False), so an EOF without close_notify raises and is seen
# as a cut. With ``https_compatible=True`` this stream turns that error into
# b"" for the caller, as trio would, but still marks the connection as not
# clean (which matters where sessions are captured at close); and its aclose()
# does not send close_notify (it closes the transport only), as trio does.
from __future__ import annotations

import ssl
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

import trio

from .._compat import ssl_object_of_trio_stream
from .._core.defaults import default_ssl_context, resolve_cache
from .._core.early import EarlyData, check_early_data
from .._core.handle import SessionHandle
from .._core.key import SessionKey, normalize_peer
from .._core.limits import check_port
from .._core.policy import ClientConnection, is_fatal
from .._stores.link import fetch_for_trio

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ResumingSSLStream", "open_tls_stream", "wrap_client_stream"]

#: The names a ResumingSSLStream forwards to its trio.SSLStream.
_FORWARDED = frozenset(
    {
        "context",
        "server_side",
        "server_hostname",
        "session",
        "getpeercert",
        "selected_npn_protocol",
        "cipher",
        "shared_ciphers",
        "compression",
        "pending",
        "get_channel_binding",
        "selected_alpn_protocol",
        "version",
    }
)

PostHandshake = Callable[["ResumingSSLStream"], object]


def _is_truncation(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, (ssl.SSLEOFError, ssl.SSLSyscallError)) or (
        isinstance(cause, ssl.SSLError) and "UNEXPECTED_EOF" in str(cause)
    )


@final
class ResumingSSLStream(trio.abc.Stream):
    """A client TLS stream that resumes sessions: a :class:`trio.SSLStream` and its bookkeeping.

    Made by :func:`open_tls_stream` or :func:`wrap_client_stream`, already
    handshaken. It behaves like the :class:`trio.SSLStream` it wraps
    (:meth:`send_all`, :meth:`receive_some`, :meth:`aclose`, and the forwarded
    ``ssl.SSLObject`` attributes such as ``version()``, ``cipher()``,
    ``getpeercert()`` and ``selected_alpn_protocol()``), and also says whether
    the session was resumed and which session is in use.

    The stream holds one reference to :attr:`session_handle` and frees it when
    it closes, however it closes (cancellation and errors included). The
    sessions it yields enter the cache as they arrive; a fatal TLS error, a
    failed handshake or check take them out again, a cut after a verified
    handshake does not (see :doc:`/howto/why-no-resumption`).
    """

    def __init__(
        self,
        ssl_stream: trio.SSLStream[Any],
        conn: ClientConnection,
        *,
        https_compatible: bool,
        _token: object = None,
    ) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError(
                "ResumingSSLStream cannot be created directly: use "
                "resume.trio.open_tls_stream() or resume.trio.wrap_client_stream()"
            )
        self._ssl_stream = ssl_stream
        self._ssl_object: ssl.SSLObject = ssl_object_of_trio_stream(ssl_stream)
        self._conn = conn
        self._https_compatible = https_compatible
        self._unclean = False
        self._closed = False
        self._session_reused = conn.reused
        self._early_data_accepted: bool | None = None

    # -- what this stream adds ----------------------------------------------------

    @property
    def session_reused(self) -> bool:
        """True if the server resumed the offered session (``SSL_session_reused()``)."""
        return self._session_reused

    @property
    def early_data_accepted(self) -> bool | None:
        """Whether the ``early_data=`` bytes went out as TLS 1.3 early data (0-RTT).

        True: they went in the first flight and the server accepted them
        (``SSL_get_early_data_status()`` is ``SSL_EARLY_DATA_ACCEPTED``).
        False: they went early and the server rejected them; the stream sent
        them again right after the handshake. None: none were sent early (no
        ``early_data=``, no session that allows them, data larger than the
        session's ``max_early_data``, TLS 1.2): they were sent after the
        handshake. In every case the server's application got them once.
        """
        return self._early_data_accepted

    @property
    def session_handle(self) -> SessionHandle | None:
        """The session in use: the resumed one, or the one the handshake made.

        None once the stream is closed (its reference is freed then) or when
        no session is available. For a full TLS 1.3 handshake this is the
        session before the server's tickets arrived (not resumable); the
        tickets cached as they arrive are other handles.
        """
        return None if self._closed else self._conn.handle

    @property
    def cache_key(self) -> SessionKey:
        """The :class:`~resume.SessionKey` this connection's sessions are filed under."""
        return self._conn.key

    @property
    def session_stored(self) -> bool:
        """True once a session of this connection entered the cache."""
        return self._conn.stored

    @property
    def ssl_stream(self) -> trio.SSLStream[Any]:
        """The :class:`trio.SSLStream` inside (use it only to read state)."""
        return self._ssl_stream

    @property
    def transport_stream(self) -> trio.abc.Stream:
        """The transport stream under TLS, as :attr:`trio.SSLStream.transport_stream`."""
        transport: trio.abc.Stream = self._ssl_stream.transport_stream
        return transport

    def __getattr__(self, name: str) -> Any:
        if name in _FORWARDED:
            return getattr(self._ssl_object, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *_FORWARDED]

    # -- the stream ---------------------------------------------------------------

    async def do_handshake(self) -> None:
        """Do nothing but checkpoint: the handshake is already done."""
        await self._ssl_stream.do_handshake()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send *data* (:meth:`trio.SSLStream.send_all`).

        .. warning:: As with :class:`trio.SSLStream`, a cancelled send_all
           leaves the stream unusable; its session is then not kept.
        """
        try:
            await self._ssl_stream.send_all(data)
        except BaseException as exc:
            self._unclean = True
            if is_fatal(exc):
                self._conn.fail()  # a fatal alert: what this connection added goes
            raise

    async def wait_send_all_might_not_block(self) -> None:
        """See :meth:`trio.SSLStream.wait_send_all_might_not_block`."""
        await self._ssl_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive and decrypt some data (:meth:`trio.SSLStream.receive_some`).

        Returns b"" when the server closed the TLS connection with close_notify;
        with ``https_compatible=True``, also when it cut the connection (which
        then does not feed the cache).
        """
        try:
            return await self._ssl_stream.receive_some(max_bytes)
        except trio.Cancelled:
            raise
        except trio.BrokenResourceError as exc:
            self._unclean = True
            if is_fatal(exc):
                self._conn.fail()  # a fatal alert: what this connection added goes
            if self._https_compatible and _is_truncation(exc):
                return b""
            raise
        except BaseException:
            self._unclean = True
            raise

    async def unwrap(self) -> tuple[trio.abc.Stream, bytes | bytearray]:
        """Shut TLS down cleanly and return the transport and leftover data.

        See :meth:`trio.SSLStream.unwrap`. A completed unwrap is a clean close.
        """
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        try:
            result = await self._ssl_stream.unwrap()
        except BaseException:
            self._finish(clean=False)
            raise
        self._finish(clean=not self._unclean)
        return result

    def _finish(self, *, clean: bool) -> None:
        self._closed = True
        self._conn.close(self._ssl_object, clean=clean)

    async def aclose(self) -> None:
        """Close the stream; on a clean close, store its session in the cache.

        Sends close_notify first unless ``https_compatible=True`` (as
        :meth:`trio.SSLStream.aclose`), then closes the transport. Frees the
        stream's reference to :attr:`session_handle` in every case.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        clean = not self._unclean
        try:
            if self._https_compatible:
                await self._ssl_stream.transport_stream.aclose()
            else:
                await self._ssl_stream.aclose()
        except BaseException:
            self._finish(clean=False)
            raise
        self._finish(clean=clean)

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
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("resumed" if self._session_reused else "full")
        return f"<resume.trio.ResumingSSLStream {state} key={self._conn.key!r}>"


_CONSTRUCT = object()


def _check_port(port: object) -> int:
    return check_port(port)
    return port


def _check_context(ssl_context: ssl.SSLContext | None) -> ssl.SSLContext:
    if ssl_context is None:
        return default_ssl_context()
    if not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(ssl_context).__name__}")
    return ssl_context


async def wrap_client_stream(
    transport_stream: trio.abc.Stream,
    *,
    server_hostname: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    cache: object = None,
    https_compatible: bool = False,
    post_handshake: PostHandshake | None = None,
    early_data: bytes | bytearray | memoryview | None = None,
) -> ResumingSSLStream:
    """Run a resuming TLS client handshake over an existing transport stream.

    For transports that :func:`open_tls_stream` does not make: a tunnel
    through a proxy, a Unix socket, an in-memory stream. The session key is
    *server_hostname* and *port* of the TLS server, never of a proxy in
    between (curl CVE-2021-22890 offered a proxy's ticket to the origin).

    Args:
        transport_stream: the connected transport; on failure it is closed.
        server_hostname: the TLS server's name (SNI and certificate check);
            an IP address string when there is no name.
        port: the TLS server's port.
        ssl_context: a client :class:`ssl.SSLContext`; None means
            :func:`~resume.default_ssl_context`, one shared
            :func:`ssl.create_default_context`. Configure ALPN on it with
            ``set_alpn_protocols()`` before (or between) connections: the list
            is part of the session key.
        cache: a :class:`~resume.SessionCache`; None for the process-wide
            :func:`~resume.default_cache`; False for no resumption.
        https_compatible: as for :class:`trio.SSLStream`: accept an EOF without
            close_notify as the end of data and close without sending
            close_notify. A connection that ended that way still never feeds
            the cache.
        post_handshake: called with the stream after the handshake, before it
            is returned; if it raises (a pin or an OCSP check failed, say), the
            connection is closed, its session is not kept, an offered session
            is dropped, and the exception propagates.
        early_data: bytes to send first, as TLS 1.3 early data (0-RTT,
            ``SSL_write_early_data()``) when a single-use ticket that allows
            that many early bytes is offered, else right after the handshake;
            if the server rejects them they are sent again after the
            handshake. Either way they are written before this returns and
            before anything the application sends, once.
            :attr:`ResumingSSLStream.early_data_accepted` tells which way
            they went. Early data can be replayed by an attacker who records
            it: send only what is safe to run twice (an idempotent request).
            A server may answer early data before its handshake ends
            (0.5-RTT); its fresh TLS 1.3 ticket then comes one round trip
            after that answer, so read on past it (the next response, or to
            the server's close) for the next connection to have a ticket:
            the ticket this one used is spent and never stored again.

    Returns:
        the handshaken :class:`ResumingSSLStream`.

    Raises:
        TypeError, ValueError: bad arguments (the transport is closed).
        trio.BrokenResourceError: the handshake failed (its ``__cause__`` is the
            :class:`ssl.SSLError`, e.g. a certificate verification error).
    """
    try:
        context = _check_context(ssl_context)
        _check_port(port)
        early = None if early_data is None else check_early_data(early_data)
        await fetch_for_trio(cache, context, server_hostname, port)  # a store, off the loop
    except BaseException:
        await trio.aclose_forcefully(transport_stream)
        raise
    return await _handshake(
        transport_stream,
        server_hostname,
        port,
        context,
        cache,
        https_compatible,
        post_handshake,
        early,
    )


async def _handshake(
    transport_stream: trio.abc.Stream,
    server_hostname: str,
    port: int,
    context: ssl.SSLContext,
    cache: object,
    https_compatible: bool,
    post_handshake: PostHandshake | None,
    early_data: bytes | None,
) -> ResumingSSLStream:
    # Steps 1-4 of the theory of operation; the arguments are checked already.
    def create() -> trio.SSLStream[Any]:
        return trio.SSLStream(
            transport_stream, context, server_hostname=server_hostname, https_compatible=False
        )

    try:
        conn, ssl_stream = ClientConnection.begin(
            cache, context, server_hostname, port, create, ssl_object_of_trio_stream
        )
    except BaseException:
        await trio.aclose_forcefully(transport_stream)
        raise
    try:
        tls = ssl_object_of_trio_stream(ssl_stream)
        early = None if not early_data else EarlyData(early_data)
        if early is not None:
            early.start(conn, tls)  # into the outgoing BIO: the first step flushes it
        await ssl_stream.do_handshake()
        conn.handshake_complete(tls)
        stream = ResumingSSLStream(
            ssl_stream, conn, https_compatible=https_compatible, _token=_CONSTRUCT
        )
        rest = b""
        if early is not None:
            rest = early.settle(tls)
            stream._early_data_accepted = early.accepted
        if post_handshake is not None:
            post_handshake(stream)
        if rest:
            await ssl_stream.send_all(rest)  # before the application's first byte
    except BaseException:
        conn.fail()
        await trio.aclose_forcefully(ssl_stream)
        raise
    return stream


async def open_tls_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    cache: object = None,
    server_hostname: str | None = None,
    https_compatible: bool = False,
    happy_eyeballs_delay: float | None = 0.25,
    local_address: str | None = None,
    post_handshake: PostHandshake | None = None,
    early_data: bytes | bytearray | memoryview | None = None,
) -> ResumingSSLStream:
    """Connect to *host*:*port* over TCP and TLS, resuming a cached session when one fits.

    The counterpart of :func:`trio.open_ssl_over_tcp_stream`. Before the
    handshake it offers a session from *cache* filed under the same server
    name, port and TLS settings (see :class:`~resume.SessionKey`), with
    ``SSL_set_session()``; each session the connection yields enters the
    cache as it arrives. TLS 1.3 tickets are used once; TLS 1.2 sessions until
    they expire. A TLS 1.3 server sends its tickets after the handshake, so
    they reach the client with the first data it reads: a connection that
    never receives anything yields no ticket.

    Args:
        host: the name or address to connect to.
        port: the TCP port.
        ssl_context: a client :class:`ssl.SSLContext`; None means
            :func:`~resume.default_ssl_context`, one shared, read-only
            :func:`ssl.create_default_context`. Sessions cross contexts only
            where their keys agree (see :class:`~resume.SessionKey`).
        cache: a :class:`~resume.SessionCache`; None (the default) for the
            process-wide :func:`~resume.default_cache`; False for no resumption.
        server_hostname: the name to send as SNI and verify; defaults to *host*.
            It, not *host*, is the peer of the session key.
        https_compatible: see :func:`wrap_client_stream`.
        happy_eyeballs_delay: passed to :func:`trio.open_tcp_stream`.
        local_address: passed to :func:`trio.open_tcp_stream`.
        post_handshake: see :func:`wrap_client_stream`.
        early_data: bytes to send first, as TLS 1.3 early data (0-RTT) when
            the offered session allows it, else right after the handshake:
            see :func:`wrap_client_stream`. The server's application gets
            them once either way.

    Returns:
        the handshaken :class:`ResumingSSLStream`.

    Raises:
        TypeError, ValueError: bad arguments, before any connection is made.
        OSError: the TCP connection failed.
        trio.BrokenResourceError: the TLS handshake failed.
    """
    context = _check_context(ssl_context)
    resolve_cache(cache)
    _check_port(port)
    early = None if early_data is None else check_early_data(early_data)
    name = host if server_hostname is None else server_hostname
    normalize_peer(name)
    await fetch_for_trio(cache, context, name, port)  # a store, off the loop
    tcp = await trio.open_tcp_stream(
        host, port, happy_eyeballs_delay=happy_eyeballs_delay, local_address=local_address
    )
    return await _handshake(
        tcp, name, port, context, cache, https_compatible, post_handshake, early
    )
