# Theory of operation: serve_tls, a trio TLS server that resumes
# ==============================================================
#
# Why not trio.SSLStream
# ----------------------
# ``trio.SSLStream`` runs OpenSSL over memory BIOs: every flight of the
# handshake is copied out of an ``ssl.MemoryBIO`` in Python and handed to a
# trio socket, and every incoming chunk is copied back in. The profile of a bare
# SSLStream server under ``openssl s_time -reuse`` (see benchmarks/bench_server.py)
# shows that per connection roughly half of the server's CPU time is this Python
# plumbing (``_retry``, ``send_all``, the trio socket wrappers, three separate
# ``send()`` calls), not cryptography; that is where its 0.66-0.76 of
# ``openssl s_server``'s resumed rate goes.
#
# It also delays TLS 1.3 session tickets on purpose: OpenSSL writes the
# NewSessionTicket messages at the end of the server's handshake, and
# SSLStream holds them back until the application's first ``send_all``
# (python-trio/trio#819). A handler that only reads therefore never lets the
# client resume until the connection closes.
#
# So serve_tls lets OpenSSL talk to the socket itself: each accepted socket is
# non-blocking and wrapped in an ``ssl.SSLSocket``; an operation that would
# block raises ``SSLWantReadError``/``SSLWantWriteError`` and we wait for the
# file descriptor with ``trio.lowlevel.wait_readable``/``wait_writable``, then
# retry the same call. All TLS bytes move in C. Tickets go out with the last
# handshake flight, whether or not the handler ever writes.
#
# Where the time goes (and what was cut)
# --------------------------------------
# Profiled under ``s_time -reuse`` (cProfile, py-spy, perf; benchmarks/bench_server.py
# --profile): the server's CPU per resumed connection was about 0.30 ms (TLS 1.2)
# against 0.12 ms for ``openssl s_server``; libcrypto/libssl/libc took the same
# time in both, the rest was the Python interpreter running trio's scheduler:
# about 4 trips round the event loop per connection, each an epoll_wait, an
# epoll_ctl and a task step. So each connection now costs as few trips as the
# protocol allows: no per-connection cancel scope (a watchdog task enforces the
# handshake timeout by waking overdue handshakes with ``notify_closing()``), no
# ``notify_closing()`` on the normal close, and reads and writes that did not
# have to wait yield to the scheduler only every few calls (they are always
# cancellation points). That brought it to about 2.4 trips and 0.24 ms.
#
# Tried and dropped: TCP_DEFER_ACCEPT (see _open_listeners), and a "handshake
# reactor": one task stepping every handshake from a private epoll object that
# trio watches. It cost 20-40% more CPU per connection, not less: a nested epoll
# adds an epoll_wait and an epoll_ctl to every handshake flight.
#
# Never hang
# ----------
# * The handshake must finish within ``handshake_timeout``: a client that stalls
#   (or never reads, so that our flights cannot be written) is dropped and
#   counted failed. The watchdog checks four times per timeout (at least once a
#   second), so a handshake may run up to a quarter timeout longer.
# * The graceful close sends ``close_notify`` once and does not wait for the
#   peer's reply (as trio does); if the socket is full because the peer never
#   reads, it waits at most ``close_timeout``, then closes anyway. It is shielded
#   from cancellation, so a server shutdown still closes every socket.
# * A send that is cancelled half-way leaves an unknown part of a TLS record on
#   the wire: the stream is then broken, as trio.SSLStream's is.
#
# Early data (TLS 1.3 0-RTT)
# --------------------------
# With ``max_early_data`` > 0 the context is configured by
# server_settings.configure_server_context (replay gate, SSL_OP_NO_ANTI_REPLAY,
# SSL_CTX_set_max_early_data, always together) and each connection runs
# _Connection.run_early instead of run. The rules are SSL_read_early_data(3)'s:
# a server calls ``SSL_read_early_data()`` first, until it reports FINISH, and
# only then ``SSL_do_handshake()``/``SSL_read()``/``SSL_write()``; after the first
# call has returned it may answer with ``SSL_write_early_data()`` (0.5-RTT). The
# calls go through the binding (resume._openssl.binding) on the same ``SSL*``,
# talking to the same non-blocking socket, with the same WantRead/WantWrite waits.
#
#   1. run_early loops read_early_data until it returns data or FINISH. For a
#      client that sent none (or whose early data was rejected: a replay, an old
#      ticket, TLS 1.2) that loop *is* the handshake: OpenSSL completes it before
#      it reports FINISH; do_handshake() then returns at once and the handler
#      runs as on any server.
#   2. When early data was accepted, the handler runs at once, before the
#      handshake ends: that is the round trip saved. The stream then has an
#      _Early state: receive_some returns the bytes already read, then keeps
#      calling read_early_data (more early data) until FINISH, then completes the
#      handshake (the client's EndOfEarlyData and Finished), then reads as usual.
#      send_all before FINISH writes with write_early_data (0.5-RTT data, sent to a
#      client that has not yet proved it holds the ticket: the replay gate is what
#      makes that safe); after FINISH it completes the handshake first.
#   3. The handshake still has to end within handshake_timeout of the accept: the
#      stream stays in the watchdog's list until then, and an overdue stream is
#      broken for its handler at its next wait (or next call). A client that
#      sends early data and leaves ends the handler's stream with
#      BrokenResourceError; the connection counts as failed (its handshake never
#      completed).
#   4. When the handler returns (or calls aclose) before the handshake ended,
#      the rest of the early data is read and dropped and the handshake
#      completed, so that close_notify can be sent; bounded by the watchdog (and
#      close_timeout in aclose).
#
# Two tasks of one handler may drive the early phase at once (one receiving,
# one sending): completing the handshake is serialized by a trio.Lock of the
# early state, so at most one task waits on the socket for it. With
# ``max_early_data`` == 0 none of this runs: run() and the I/O methods are the
# ones above, with one ``is None`` test added to receive_some and send_all.
#
# Statistics are counted by the accept loop and the per-connection task (see
# resume._adapters.server_settings.ServerCounters); one trio thread, so plain integers suffice.
from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, final

import trio

from .._compat import RAW_SERVER_WRAP
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

__all__ = ["TLSServer", "TLSServerStream", "serve_tls"]

#: Accept errors that mean "out of resources": wait and retry (as trio.serve_listeners).
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
#: Accept errors about one connection that died in the queue: skip it.
_ACCEPT_SKIP_ERRNOS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
#: How many connections one wake-up of the accept loop takes at most, so a flood
#: of connections cannot starve the handshakes already running.
_ACCEPT_BATCH: Final = 32
#: The default size of receive_some() (the largest TLS record is 16 KiB).
_RECEIVE_SIZE: Final = 65536
#: receive_some()/send_all() that need not wait yield to the scheduler every this
#: many calls (see TLSServerStream._fast_checkpoint).
_FAST_YIELD: Final = 8
#: send_all() hands OpenSSL at most this much at once (bounded memory per call).
_SEND_CHUNK: Final = 256 * 1024

# (TCP_DEFER_ACCEPT, which would wake the accept loop only once the ClientHello is
# there, was tried and dropped: it added 4-5 ms to every other handshake on
# loopback, as the client's delayed ACK met the deferred accept.)

_wait_readable = trio.lowlevel.wait_readable
_wait_writable = trio.lowlevel.wait_writable
_WantRead = ssl.SSLWantReadError
_WantWrite = ssl.SSLWantWriteError

Handler = Callable[["TLSServerStream"], Awaitable[object]]


class _Busy:
    # A minimal conflict detector: two tasks must not send (or receive) at once.
    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False


def _wrap(
    context: ssl.SSLContext, sock: socket.socket, owner: object
) -> tuple[Any, Callable[[], object]]:
    # Wrap an accepted non-blocking socket for the server side; return the TLS
    # object and its one-shot SSL_shutdown() call.
    #
    # The fast path is the C object that ssl.SSLSocket itself drives
    # (SSLContext._wrap_socket, present from CPython 3.7 on): 3 us instead of
    # 29 us for SSLSocket's constructor, which also adds a getpeername() and two
    # settimeout() calls to every handshake step. Its read/write/do_handshake/
    # shutdown are SSL_read/SSL_write/SSL_do_handshake/SSL_shutdown on the
    # socket's descriptor. It holds only a weak reference to *sock*, so the
    # stream keeps *sock* alive. *owner* is what an SNI callback receives.
    if _RAW_WRAP is not None:
        try:
            raw = _RAW_WRAP(context, sock, True, None, owner=owner)
        except TypeError:  # pragma: no cover - a future CPython changed it
            pass
        else:
            return raw, raw.shutdown
    tls = context.wrap_socket(  # pragma: no cover - the public fallback
        sock, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=False
    )
    return tls, tls.unwrap  # pragma: no cover


_RAW_WRAP: Final = RAW_SERVER_WRAP

# SSL_read_early_data() return values and SSL_get_early_data_status() values
# (the binding's READ_EARLY_DATA_FINISH, EARLY_DATA_REJECTED, EARLY_DATA_ACCEPTED).
_EARLY_FINISH: Final = 2
_EARLY_REJECTED: Final = 1
_EARLY_ACCEPTED: Final = 2
#: The phases of an _Early state: reading early data, completing the handshake, done.
_READING: Final = 0
_HANDSHAKE: Final = 1
_DONE: Final = 2


class _SSLHandle:
    # What the binding's early-data calls take: an object whose ``_sslobj`` is
    # the C ``_ssl._SSLSocket`` (as in ssl.SSLObject/SSLSocket). serve_tls uses
    # that C object directly (see _wrap); the binding checks its SSL* before use.
    __slots__ = ("_sslobj",)

    def __init__(self, raw: object) -> None:
        self._sslobj = raw


@final
class _Early:
    # The early-data state of a stream whose handler runs before its handshake
    # completed (step 2 of "Early data" above).
    __slots__ = ("binding", "done", "handle", "lock", "pending", "phase")

    def __init__(self, binding: Any, handle: _SSLHandle, done: Callable[[], None]) -> None:
        self.binding = binding
        self.handle = handle
        #: Called once when the handshake completes (counts it, leaves the watchdog).
        self.done = done
        self.lock = trio.Lock()
        #: Early bytes read but not yet handed to receive_some.
        self.pending = b""
        self.phase = _READING


@final
class TLSServerStream(trio.abc.Stream):
    """One accepted TLS connection, handed to a :func:`serve_tls` handler.

    The handshake is done when the handler gets the stream. It behaves like a
    server-side :class:`trio.SSLStream` (``send_all``, ``receive_some``,
    ``aclose``, ``wait_send_all_might_not_block``) and tells how the connection
    was made: :attr:`session_reused`, :attr:`tls_version`, :attr:`peer`,
    :meth:`cipher`, :meth:`getpeercert`.

    ``receive_some`` returns ``b""`` when the peer closed with ``close_notify``;
    a peer that just drops the TCP connection (a "ragged EOF") raises
    :exc:`trio.BrokenResourceError`, as with trio.SSLStream.

    .. warning:: If ``send_all`` is cancelled, part of a record may have been
       written; the stream is then broken and every later call raises
       :exc:`trio.BrokenResourceError`.
    """

    __slots__ = (
        "__weakref__",
        "_broken",
        "_close_timeout",
        "_closed",
        "_early",
        "_early_data",
        "_fast",
        "_handshake_seconds",
        "_peer",
        "_receiving",
        "_sending",
        "_shutdown",
        "_socket",
        "_timed_out",
        "_tls",
    )

    def __init__(
        self,
        _sock: socket.socket,
        _peer: Any,
        _context: ssl.SSLContext,
        *,
        _close_timeout: float,
    ) -> None:
        # Made by serve_tls only (hence the private parameter names).
        sock, peer, context, close_timeout = _sock, _peer, _context, _close_timeout
        self._socket = sock
        self._peer = peer
        self._close_timeout = close_timeout
        self._closed = False
        self._broken = False
        self._handshake_seconds = math.nan
        self._timed_out = False
        self._fast = 0
        self._sending = _Busy("another task is already sending on this stream")
        self._receiving = _Busy("another task is already receiving on this stream")
        self._tls, self._shutdown = _wrap(context, sock, self)
        #: The early phase, while a handler runs before the handshake completed.
        self._early: _Early | None = None
        self._early_data = False

    # -- what the handshake gave ---------------------------------------------------

    @property
    def session_reused(self) -> bool:
        """True if the handshake resumed a session (``SSL_session_reused()``)."""
        return bool(self._tls.session_reused)

    @property
    def tls_version(self) -> str | None:
        """The negotiated protocol, e.g. ``"TLSv1.3"`` (``SSL_get_version()``).

        Also ``"TLSv1.3"`` while a stream with early data is still in its
        handshake (``ssl`` reports None until the handshake ends; early data
        exists only in TLS 1.3).
        """
        version: str | None = self._tls.version()
        if version is None and self._early_data:
            return "TLSv1.3"
        return version

    @property
    def early_data(self) -> bool:
        """True when the stream's first bytes came as accepted TLS 1.3 early data (0-RTT).

        The handler of such a stream runs before the handshake has completed
        (``SSL_read_early_data()`` returned data): what it reads first may be a
        replay of another connection as far as TLS can tell, though the server's
        replay guard refuses a ClientHello it has seen (see
        :func:`serve_tls`). False for every other stream.
        """
        return self._early_data

    @property
    def early_data_status(self) -> str:
        """``"accepted"``, ``"rejected"`` or ``"none"`` (``SSL_get_early_data_status()``).

        ``"rejected"`` means the client sent early data that the server skipped
        (its server has ``max_early_data`` 0, the ticket was too old, or the
        ClientHello was a replay); the client sends it again after the
        handshake. ``"none"`` when the client sent none, or when this Python's
        OpenSSL binding is not available.
        """
        if self._early_data:
            return "accepted"
        try:
            from .._openssl.binding import binding

            b = binding()
            if b.early_data_error is not None:
                return "none"
            status = b.early_data_status(_SSLHandle(self._tls))  # type: ignore[arg-type]
        except Exception:
            return "none"
        return {_EARLY_ACCEPTED: "accepted", _EARLY_REJECTED: "rejected"}.get(status, "none")

    @property
    def peer(self) -> Any:
        """The client's address, as ``socket.accept()`` returned it."""
        return self._peer

    @property
    def handshake_seconds(self) -> float:
        """Seconds from accepting the TCP connection to the end of the handshake."""
        return self._handshake_seconds

    @property
    def context(self) -> ssl.SSLContext:
        """The connection's context; an SNI callback may set another (``SSL_set_SSL_CTX()``)."""
        context: ssl.SSLContext = self._tls.context
        return context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._tls.context = context

    @property
    def socket(self) -> socket.socket:
        """The TCP socket (do not read or write it: OpenSSL does)."""
        return self._socket

    @property
    def session(self) -> ssl.SSLSession | None:
        """The connection's :class:`ssl.SSLSession` (``SSL_get_session()``)."""
        session: ssl.SSLSession | None = self._tls.session
        return session

    def cipher(self) -> tuple[str, str, int] | None:
        """The cipher in use, as ``ssl.SSLSocket.cipher()``."""
        cipher: tuple[str, str, int] | None = self._tls.cipher()
        return cipher

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The client's certificate, as ``ssl.SSLSocket.getpeercert()`` (None if none)."""
        return self._tls.getpeercert(binary_form)

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol agreed on, if any."""
        protocol: str | None = self._tls.selected_alpn_protocol()
        return protocol

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._broken else "open"
        return (
            f"<resume.trio.TLSServerStream peer={self._peer!r} "
            f"{self.tls_version} reused={self.session_reused} {state}>"
        )

    # -- I/O ----------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this TLS stream was closed")
        if self._broken:
            raise trio.BrokenResourceError("this TLS stream is broken")

    async def _handshake(self) -> None:
        # Step the handshake until OpenSSL says it is done; see the module comment.
        sock = self._socket
        do_handshake = self._tls.do_handshake
        try:
            while True:
                if self._timed_out:
                    raise trio.ClosedResourceError
                try:
                    do_handshake()
                    return
                except _WantRead:
                    await _wait_readable(sock)
                except _WantWrite:
                    await _wait_writable(sock)
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self._broken = True
            raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
        except trio.ClosedResourceError:  # the watchdog woke us: too slow
            self._broken = True
            raise trio.BrokenResourceError("TLS handshake timed out") from None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive and decrypt at most *max_bytes* bytes; ``b""`` at a clean EOF.

        See ``trio.abc.ReceiveStream.receive_some()``. Mirrors ``SSL_read()``.
        """
        if max_bytes is None:
            max_bytes = _RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receiving:
            self._check()
            if self._early is not None:
                early_bytes = await self._receive_early(max_bytes)
                if early_bytes:
                    return early_bytes
            sock = self._socket
            read = self._tls.read
            checkpointed = False
            while True:
                try:
                    data: bytes = read(max_bytes)
                    break
                except _WantRead:
                    await _wait_readable(sock)
                    checkpointed = True
                except _WantWrite:  # a key update or renegotiation wants to write
                    await _wait_writable(sock)
                    checkpointed = True
                except (ssl.SSLError, OSError) as exc:
                    self._broken = True
                    raise trio.BrokenResourceError(f"TLS connection broken: {exc}") from exc
            if not checkpointed:
                await self._fast_checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of *data* (``SSL_write()``).

        See ``trio.abc.SendStream.send_all()``.
        """
        with self._sending:
            self._check()
            view = memoryview(data).cast("B")
            if self._early is not None and await self._send_early(view):
                return
            sock = self._socket
            write = self._tls.write
            checkpointed = False
            try:
                for start in range(0, len(view), _SEND_CHUNK):
                    chunk = view[start : start + _SEND_CHUNK]
                    while True:
                        try:
                            write(chunk)
                            break
                        except _WantWrite:
                            await _wait_writable(sock)
                            checkpointed = True
                        except _WantRead:
                            await _wait_readable(sock)
                            checkpointed = True
            except (ssl.SSLError, OSError) as exc:
                self._broken = True
                raise trio.BrokenResourceError(f"TLS connection broken: {exc}") from exc
            except BaseException:
                # Cancelled half-way: part of a record may be on the wire.
                self._broken = True
                raise
            if not checkpointed:
                await self._fast_checkpoint()

    # -- the early phase (see "Early data" in the module comment) ------------------------

    def _early_failed(self, exc: BaseException) -> trio.BrokenResourceError:
        self._broken = True
        if isinstance(exc, trio.ClosedResourceError):
            return trio.BrokenResourceError("TLS handshake timed out")
        return trio.BrokenResourceError(f"TLS handshake failed: {exc}")

    async def _read_early(self, early: _Early, max_bytes: int) -> bytes:
        # One SSL_read_early_data() that returned: its bytes, or b"" at FINISH
        # (the phase then moves on to completing the handshake).
        sock = self._socket
        read = early.binding.read_early_data
        handle = early.handle
        try:
            while True:
                if self._timed_out:
                    raise trio.ClosedResourceError
                try:
                    status, data = read(handle, max_bytes)
                except _WantRead:
                    await _wait_readable(sock)
                    continue
                except _WantWrite:
                    await _wait_writable(sock)
                    continue
                if status == _EARLY_FINISH:
                    early.phase = _HANDSHAKE
                    return b""
                if data:
                    return bytes(data)
        except trio.ClosedResourceError as exc:
            if self._timed_out:
                raise self._early_failed(exc) from None
            raise
        except (ssl.SSLError, OSError) as exc:
            raise self._early_failed(exc) from exc

    async def _complete_early(self, *, discard: bool) -> None:
        # Drive the early phase to its end: read (and drop, with *discard*) the
        # early data left, then complete the handshake. One task at a time.
        early = self._early
        if early is None:
            return
        async with early.lock:
            while early.phase == _READING:
                dropped = await self._read_early(early, _RECEIVE_SIZE)
                if dropped and not discard:  # pragma: no cover - callers read it first
                    early.pending += dropped
            if early.phase == _HANDSHAKE:
                await self._handshake()
                early.phase = _DONE
                self._early = None
                early.done()

    async def _receive_early(self, max_bytes: int) -> bytes:
        # receive_some during the early phase: the bytes already read, then more
        # early data until FINISH, then the handshake; b"" once it is over (the
        # caller then reads as usual).
        early = self._early
        assert early is not None
        if early.pending:
            data, early.pending = early.pending[:max_bytes], early.pending[max_bytes:]
            await trio.lowlevel.checkpoint()
            return data
        if early.phase == _READING:
            async with early.lock:
                if early.phase == _READING:
                    data = await self._read_early(early, max_bytes)
                    if data:
                        return data
        await self._complete_early(discard=False)
        return b""

    async def _send_early(self, view: memoryview) -> bool:
        # send_all during the early phase. Before FINISH: write 0.5-RTT data with
        # SSL_write_early_data() and return True. After it: complete the
        # handshake and return False (the caller writes as usual).
        early = self._early
        assert early is not None
        if early.phase != _READING:
            await self._complete_early(discard=False)
            return False
        sock = self._socket
        write = early.binding.write_early_data
        handle = early.handle
        try:
            for start in range(0, len(view), _SEND_CHUNK):
                chunk = bytes(view[start : start + _SEND_CHUNK])
                while chunk:
                    if self._timed_out:
                        raise trio.ClosedResourceError
                    try:
                        chunk = chunk[write(handle, chunk) :]
                    except _WantWrite:
                        await _wait_writable(sock)
                    except _WantRead:
                        await _wait_readable(sock)
        except trio.ClosedResourceError as exc:
            if self._timed_out:
                raise self._early_failed(exc) from None
            raise
        except (ssl.SSLError, OSError) as exc:
            raise self._early_failed(exc) from exc
        except BaseException:
            self._broken = True  # cancelled half-way, as in send_all
            raise
        await trio.lowlevel.checkpoint()
        return True

    async def _fast_checkpoint(self) -> None:
        # A call that did not have to wait is always a cancellation point, but a
        # schedule point only every _FAST_YIELD-th time: a full yield per call
        # is a trip round the event loop, which costs more than a small TLS
        # read or write. Yielding regularly still keeps a peer that floods us
        # from starving the other tasks.
        self._fast += 1
        if self._fast >= _FAST_YIELD:
            self._fast = 0
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket can take more data."""
        with self._sending:
            self._check()
            await _wait_writable(self._socket)

    async def aclose(self) -> None:
        """Send ``close_notify`` (``SSL_shutdown()`` once) and close the socket.

        Does not wait for the peer's ``close_notify``. Waits at most the server's
        ``close_timeout`` for room in the socket, shielded from cancellation, so
        it never hangs and always closes the socket.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        await self._close(graceful=True, notify=True)
        await trio.lowlevel.checkpoint()

    async def _close(self, *, graceful: bool, notify: bool) -> None:
        # Close once. Sending close_notify normally needs no wait; when the
        # socket is full (a peer that does not read), wait for room at most
        # close_timeout, shielded so that a server shutdown still closes
        # gracefully. *notify* wakes other tasks blocked on the socket (not
        # needed when the connection's only task closes it).
        if self._closed:
            return
        if graceful and self._early is not None and not self._broken:
            # close_notify needs a completed handshake (step 4 of "Early data").
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + self._close_timeout
            ), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._complete_early(discard=True)
            graceful = self._early is None
        self._closed = True
        sock = self._socket
        try:
            if graceful and not self._broken:
                shutdown = self._shutdown
                try:
                    shutdown()
                except _WantWrite:
                    with trio.CancelScope(
                        shield=True, deadline=trio.current_time() + self._close_timeout
                    ):
                        while True:
                            await _wait_writable(sock)
                            try:
                                shutdown()
                                break
                            except _WantWrite:
                                continue
                            except (_WantRead, ssl.SSLError, OSError, ValueError):
                                break
                except (_WantRead, ssl.SSLError, OSError, ValueError):
                    pass  # _WantRead: close_notify is out; we do not wait for the peer's.
        finally:
            if notify:
                trio.lowlevel.notify_closing(sock)
            sock.close()


@final
class TLSServer:
    """A running :func:`serve_tls`: its listening sockets and statistics.

    ``task_status.started()`` hands this object to ``nursery.start()``.
    """

    def __init__(
        self,
        _listeners: list[socket.socket],
        _context: ssl.SSLContext,
        _counters: ServerCounters,
        _cancel_scope: trio.CancelScope,
    ) -> None:
        # Made by serve_tls only (hence the private parameter names).
        self._listeners = _listeners
        self._context = _context
        self._counters = _counters
        self._cancel_scope = _cancel_scope

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets (one per address family and address)."""
        return list(self._listeners)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each listening socket."""
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._listeners]

    @property
    def port(self) -> int:
        """The port of the first listening socket (the real one when bound to port 0)."""
        return int(self._listeners[0].getsockname()[1])

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The server's context."""
        return self._context

    def statistics(self) -> ServerStatistics:
        """A snapshot of the handshake counters and ``SSLContext.session_stats()``."""
        return self._counters.snapshot(self._context)

    def close(self) -> None:
        """Stop the server: stop accepting and cancel the running connections."""
        self._cancel_scope.cancel()

    def __repr__(self) -> str:
        return f"<resume.trio.TLSServer {self.addresses}>"


def _open_listeners(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    # Like trio.open_tcp_listeners: every address getaddrinfo gives for host
    # (all interfaces, IPv4 and IPv6, when host is None), SO_REUSEADDR, IPv6-only
    # sockets for IPv6 so both families can share a port number.
    check_port(port)
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    listeners: list[socket.socket] = []
    unsupported = {errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}
    try:
        for family, type_, proto, _, addr in infos:
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                if exc.errno in unsupported:
                    continue
                raise
            try:
                if sys.platform != "win32":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            listeners.append(sock)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    if not listeners:
        raise OSError(f"no address to listen on for host={host!r}")
    return listeners


async def serve_tls(
    handler: Callable[[TLSServerStream], Awaitable[object]],
    port: int,
    *,
    ssl_context: ssl.SSLContext,
    host: str | None = None,
    handshake_timeout: float = 10.0,
    close_timeout: float = 5.0,
    num_tickets: int | None = None,
    session_timeout: float | None = None,
    max_early_data: int = 0,
    replay_guard: ReplayGuard | None = None,
    backlog: int = 128,
    task_status: trio.TaskStatus[TLSServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept TLS connections on *port* and run ``await handler(stream)`` for each.

    Resumption works out of the box: OpenSSL's internal session cache of
    *ssl_context* resumes TLS 1.2 session ids, and its tickets resume TLS 1.2
    and 1.3; TLS 1.3 tickets are sent right after the handshake, even to a
    handler that never writes. With client certificates
    (``verify_mode = CERT_REQUIRED``) it works too: CPython gives every context
    a session id context (``SSL_CTX_set_session_id_context()``).

    Each connection's handshake must finish within *handshake_timeout* seconds or
    the connection is dropped and counted failed; the handler then gets a
    :class:`TLSServerStream`, which is closed (``close_notify``, at most
    *close_timeout* seconds) when the handler returns. A handler that raises
    :exc:`trio.BrokenResourceError` (the peer went away) ends only its own
    connection; any other exception propagates and stops the server, as with
    :func:`trio.serve_tcp`.

    TLS 1.3 early data (0-RTT) is off unless *max_early_data* > 0. Then a
    resumed client may send up to that many bytes with its ClientHello, and the
    handler runs as soon as they are read (``SSL_read_early_data()``), before the
    handshake completes: the stream's :attr:`~TLSServerStream.early_data` is
    True, ``receive_some`` returns the early bytes first, and ``send_all``
    answers at once (0.5-RTT, ``SSL_write_early_data()``), which saves the
    client a round trip. Replay protection is always on with it: the context
    gets ``SSL_OP_NO_ANTI_REPLAY`` (stateless tickets, shareable by a fleet)
    together with an allow-early-data gate (``SSL_CTX_set_allow_early_data_cb()``)
    that asks *replay_guard* whether the ClientHello was seen before; a replayed
    first flight gets a 1-RTT handshake and its early data never reaches the
    handler. Early data can be replayed by an attacker to a server without such
    a record, so only act on it for requests that are safe to repeat
    (RFC 8470).

    Use it with ``nursery.start()`` to learn the port and read statistics::

        server = await nursery.start(partial(serve_tls, handler, 0, ssl_context=ctx))
        print(server.port, server.statistics())

    Runs until cancelled (or :meth:`TLSServer.close`).

    Args:
        handler: ``async def handler(stream: TLSServerStream)``.
        port: the TCP port; 0 picks a free one (see :attr:`TLSServer.port`).
        ssl_context: a server context (``ssl.PROTOCOL_TLS_SERVER``) with a
            certificate loaded.
        host: the address to bind; None means every interface (IPv4 and IPv6).
        handshake_timeout: seconds a client gets to finish its handshake.
        close_timeout: seconds the graceful close may wait for a peer that does
            not read.
        num_tickets: TLS 1.3 tickets sent per handshake
            (``SSL_CTX_set_num_tickets()``); None keeps the context's (2).
        session_timeout: seconds a session stays resumable
            (``SSL_CTX_set_timeout()``); None keeps the context's (7200).
        max_early_data: TLS 1.3 early data accepted per connection, in bytes
            (``SSL_CTX_set_max_early_data()``); 0, the default, accepts none
            (a client's early data is then rejected and sent again after the
            handshake).
        replay_guard: the ClientHello record that refuses replays
            (:class:`resume.replay.ReplayGuard`); default a new
            :class:`resume.replay.MemoryReplayGuard` for this server (enough
            for one process: tickets sealed with keys of its own cannot be
            used elsewhere). Servers sharing ticket keys need a shared record
            (``resume.replay.RedisReplayGuard``). A context already serving
            early data keeps its guard; another guard for it is refused.
        backlog: the ``listen()`` backlog.
        task_status: for ``nursery.start()``; started with the :class:`TLSServer`.

    Raises:
        TypeError, ValueError: bad arguments (nothing is changed then), or
            *replay_guard* differs from the one *ssl_context* already serves
            early data with.
        UnsupportedError: *max_early_data* > 0 where the OpenSSL binding or its
            early-data calls are not available.
        OSError: the port cannot be bound.
    """
    check_server_context(ssl_context)
    check_seconds("handshake_timeout", handshake_timeout)
    check_seconds("close_timeout", close_timeout)
    check_max_early_data(max_early_data)
    if not callable(handler):
        raise TypeError(f"handler must be an async callable, got {type(handler).__name__}")
    guard = configure_server_context(
        ssl_context,
        num_tickets=num_tickets,
        session_timeout=session_timeout,
        max_early_data=max_early_data,
        replay_guard=replay_guard,
    )
    early_binding = None
    if guard is not None:
        from .._openssl.binding import binding

        early_binding = binding()
    listeners = _open_listeners(host, port, backlog)
    counters = ServerCounters()
    try:
        async with trio.open_nursery() as nursery:
            server = TLSServer(listeners, ssl_context, counters, nursery.cancel_scope)
            connection = _Connection(
                handler,
                ssl_context,
                counters,
                float(handshake_timeout),
                float(close_timeout),
                early_binding,
            )
            nursery.start_soon(connection.watchdog)
            for listener in listeners:
                nursery.start_soon(_accept_loop, listener, nursery, connection, counters)
            task_status.started(server)
    finally:
        for listener in listeners:
            listener.close()


async def _accept_loop(
    listener: socket.socket,
    nursery: trio.Nursery,
    connection: _Connection,
    counters: ServerCounters,
) -> None:
    # socket.accept() would look up the listener's family and type as enums for
    # every connection; the raw _accept() and the numbers found once do not.
    raw_accept = getattr(listener, "_accept", None)
    family, proto = int(listener.family), listener.proto
    make_socket = socket.socket

    def accept() -> tuple[socket.socket, Any]:
        if raw_accept is None:  # pragma: no cover - not CPython
            return listener.accept()
        fd, peer = raw_accept()
        return make_socket(family, socket.SOCK_STREAM, proto, fileno=fd), peer

    start_soon = nursery.start_soon
    run = connection.run if connection.early_binding is None else connection.run_early
    nodelay = socket.TCP_NODELAY
    ipproto_tcp = socket.IPPROTO_TCP
    try:
        while True:
            await _wait_readable(listener)
            for _ in range(_ACCEPT_BATCH):
                try:
                    sock, peer = accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _ACCEPT_SKIP_ERRNOS:
                        continue
                    if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                        print(
                            f"resume.trio.serve_tls: accept() failed: {os.strerror(exc.errno)}; "
                            "retrying in 0.1 s",
                            file=sys.stderr,
                        )
                        await trio.sleep(0.1)
                        break
                    raise
                sock.setblocking(False)
                try:  # noqa: SIM105 - cheaper than suppress() per connection
                    sock.setsockopt(ipproto_tcp, nodelay, 1)
                except OSError:  # e.g. the peer already reset it
                    pass
                counters.accepted += 1
                start_soon(run, sock, peer, time.perf_counter())
    finally:
        trio.lowlevel.notify_closing(listener)


@final
class _Connection:
    # The per-connection task of serve_tls, with the server's settings bound once.
    #
    # No cancel scope per connection (one costs about as much as a handshake
    # step): the handshake timeout is kept by _watchdog, which wakes an overdue
    # handshake with notify_closing(); the close makes a shielded scope only in
    # the rare case that close_notify has to wait for room in the socket.
    __slots__ = (
        "_close_timeout",
        "_context",
        "_counters",
        "_handler",
        "_handshake_timeout",
        "early_binding",
        "pending",
    )

    def __init__(
        self,
        handler: Handler,
        context: ssl.SSLContext,
        counters: ServerCounters,
        handshake_timeout: float,
        close_timeout: float,
        early_binding: Any = None,
    ) -> None:
        #: The OpenSSL binding when the server accepts early data, else None.
        self.early_binding = early_binding
        self._handler = handler
        self._context = context
        self._counters = counters
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        #: Streams still in their handshake, with their deadline (trio time).
        self.pending: dict[TLSServerStream, float] = {}

    def _stream(self, sock: socket.socket, peer: Any) -> TLSServerStream | None:
        # The connection's stream, or None (counted failed and closed) when the
        # peer is already gone: nothing to serve.
        try:
            return TLSServerStream(sock, peer, self._context, _close_timeout=self._close_timeout)
        except (OSError, ValueError):
            sock.close()
            self._counters.failed += 1
            self._counters.closed += 1
            return None

    async def run(self, sock: socket.socket, peer: Any, accepted_at: float) -> None:
        counters = self._counters
        stream = self._stream(sock, peer)
        if stream is None:
            return
        pending = self.pending
        done = False  # the handshake completed
        try:
            pending[stream] = trio.current_time() + self._handshake_timeout
            try:
                await stream._handshake()
                done = True
            except trio.BrokenResourceError:
                pass
            finally:
                pending.pop(stream, None)
            if done:
                stream._handshake_seconds = time.perf_counter() - accepted_at
                counters.handshake_done(stream.session_reused)
                # A BrokenResourceError means the peer went away: only this
                # connection ends.
                with contextlib.suppress(trio.BrokenResourceError):
                    await self._handler(stream)
        finally:
            if not done:  # failed, timed out, or the server stopped meanwhile
                counters.failed += 1
            await stream._close(graceful=done, notify=False)
            counters.closed += 1

    async def run_early(self, sock: socket.socket, peer: Any, accepted_at: float) -> None:
        # run() for a server with max_early_data > 0 (see "Early data", steps 1-4).
        counters = self._counters
        stream = self._stream(sock, peer)
        if stream is None:
            return
        pending = self.pending
        done = False  # the handshake completed
        started = False  # the handler ran

        def finished() -> None:
            nonlocal done
            done = True
            pending.pop(stream, None)
            stream._handshake_seconds = time.perf_counter() - accepted_at
            counters.handshake_done(stream.session_reused)
            if stream._early_data:
                counters.early_accepted += 1
            elif b.early_data_status(handle) == _EARLY_REJECTED:
                counters.early_rejected += 1

        b = self.early_binding
        handle = _SSLHandle(stream._tls)
        early = _Early(b, handle, finished)
        try:
            pending[stream] = trio.current_time() + self._handshake_timeout
            try:
                first = await stream._read_early(early, _RECEIVE_SIZE)
                if first:
                    # Accepted: the handler runs before the handshake completes.
                    early.pending = first
                    stream._early = early
                    stream._early_data = True
                else:
                    await stream._handshake()  # returns at once after FINISH
                    finished()
            except trio.BrokenResourceError:
                pass
            finally:
                if not stream._early_data:
                    pending.pop(stream, None)
            if stream._early_data or done:
                started = True
                with contextlib.suppress(trio.BrokenResourceError):
                    await self._handler(stream)
        finally:
            if started and stream._early is not None and not stream._closed:
                # The handler returned inside the early phase: complete the
                # handshake (dropping unread early data) to close gracefully.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream._complete_early(discard=True)
            pending.pop(stream, None)
            if not done:
                counters.failed += 1
            await stream._close(graceful=done, notify=False)
            counters.closed += 1

    async def watchdog(self) -> None:
        # Drop handshakes that take longer than handshake_timeout: wake their
        # task (blocked on the socket) with ClosedResourceError.
        tick = min(1.0, self._handshake_timeout / 4)
        pending = self.pending
        while True:
            await trio.sleep(tick)
            if not pending:
                continue
            now = trio.current_time()
            for stream, deadline in list(pending.items()):
                if deadline <= now:
                    del pending[stream]
                    stream._timed_out = True
                    trio.lowlevel.notify_closing(stream._socket)


for _obj in (TLSServer, TLSServerStream, serve_tls):
    _obj.__module__ = "resume.trio"
