# Theory of operation: every private name of CPython and trio that resume touches
# ================================================================================
#
# resume builds on the public APIs of ssl, trio and asyncio, except in the few
# places below, where the public API has no way to do the job. Each access is
# written once, here, with what it is for, since when it exists, and what
# happens when it is missing (a probe or a public fallback). No other module may
# name a private attribute of CPython or trio: tests/unit/test_layout.py checks
# that, and that only resume/_openssl/ imports ctypes.
#
# * ``_ssl._SSLContext`` (CPython 3.7+): the C type under ssl.SSLContext. Its
#   attribute getters return plain ints (ssl.SSLContext's properties wrap them
#   in enums, about 1 us each); resume.core.key reads eight of them per
#   connection. Fallback: ssl.SSLContext itself (same values, a little slower).
# * ``ssl.SSLContext._wrap_socket`` (CPython 3.7+): makes the C ``_SSLSocket``
#   that ssl.SSLSocket drives, without SSLSocket's Python constructor (3 us
#   instead of 29 us per accepted connection of resume.trio.serve_tls).
#   Fallback: None, and the server uses the public ``wrap_socket``.
# * ``SSLObject._sslobj`` / ``SSLSocket._sslobj``: the C ``_SSLSocket`` that
#   holds the ``SSL*``; the guarded binding (resume/_openssl) reads the pointer
#   from it and checks it before any C call. Fallback: None, and the binding
#   refuses (UnsupportedError).
# * ``_ssl.__file__``: the extension module whose libssl the binding loads
#   (the very library ssl uses). Fallback: None (a static build), and the
#   binding refuses.
# * ``trio.SSLStream._ssl_object`` (every trio release so far): the SSLObject
#   behind a trio.SSLStream, which resume must reach to offer a session before
#   the handshake (trio forwards ``session`` as an attribute, but only ssl's
#   DER-copying setter, not SSL_set_session()). No fallback exists: a trio
#   without it makes ssl_object_of_trio_stream raise a clear RuntimeError.
# * ``asyncio.sslproto.SSLProtocol`` (Python 3.10 only): 3.10's SSL protocol
#   closes the socket before its reply to a client's close_notify is written
#   (bpo-30698, fixed in 3.11 by the new SSL protocol); start_tls_server_310 is
#   3.10's ``loop.start_tls(server_side=True)`` step for step, with a subclass
#   that closes one loop turn later (its private _finalize, _sslpipe, _transport
#   and _app_transport). From 3.11 on it is None and loop.start_tls is used.
# * ``ssl.SSLContext._msg_callback`` (CPython 3.8+, a debugging hook): lets
#   ``resume probe`` count the NewSessionTicket messages a server sends.
#   Fallback: the count is reported as unknown.
# * ``socket.socket._real_close`` (every CPython 3): the one method through
#   which a socket really closes, by close() with no ``makefile()`` file open
#   or by the last such file's close (http.client reads a ``Connection:
#   close`` response body through one after it "closed" the connection).
#   ClosingSSLSocket calls its public ``on_real_close()`` hook there; the
#   blocking HTTP integrations (resume._integrations._common) finish the
#   connection and send close_notify in it. Fallback: should a Python stop
#   calling it, the hook is never called: the socket closes as a plain
#   SSLSocket (no close_notify), and the integration's own close path still
#   finishes the connection.
# * ``_SSLProtocolTransport._ssl_protocol`` and its ``_extra`` and
#   ``_sslcontext`` (asyncio's SSL transport, the legacy one of 3.10 and the
#   new one of 3.11+ alike): the mapping that ``get_extra_info()`` reads, and
#   the context the protocol was given, which it uses only to make its
#   SSLObject when the handshake starts. report_ssl_transport_context()
#   replaces both after the handshake: resume.aiohttp reports the user's
#   context instead of its per-connection stand-in. Fallback: False, nothing
#   changes (the stand-in, which forwards every attribute to the user's
#   context, is reported).
from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = [
    "RAW_SERVER_WRAP",
    "SSL_CONTEXT_C_TYPE",
    "ClosingSSLSocket",
    "install_msg_callback",
    "report_ssl_transport_context",
    "start_tls_server_310",
    "ssl_extension_path",
    "ssl_object_inner",
    "ssl_object_of_trio_stream",
]


def _c_context_type() -> Any:
    try:
        import _ssl
    except ImportError:  # pragma: no cover - ssl without its extension cannot exist
        return ssl.SSLContext
    return getattr(_ssl, "_SSLContext", ssl.SSLContext)


#: The C type whose attribute getters resume.core.key reads per connection.
SSL_CONTEXT_C_TYPE: Final[Any] = _c_context_type()

#: ``ssl.SSLContext._wrap_socket``, or None where this CPython has no such method.
RAW_SERVER_WRAP: Final[Callable[..., Any] | None] = getattr(ssl.SSLContext, "_wrap_socket", None)


def ssl_object_inner(tls: object) -> Any:
    """Return the C ``_ssl._SSLSocket`` behind an SSLObject or SSLSocket, or None."""
    return getattr(tls, "_sslobj", None)


def ssl_extension_path() -> str | None:
    """Return the file of the ``_ssl`` extension module, or None (built in, or missing)."""
    try:
        import _ssl
    except ImportError:  # pragma: no cover - ssl without its extension cannot exist
        return None
    path = getattr(_ssl, "__file__", None)
    return str(path) if path else None


def ssl_object_of_trio_stream(stream: object) -> ssl.SSLObject:
    """Return the :class:`ssl.SSLObject` inside a ``trio.SSLStream``.

    Raises:
        RuntimeError: this trio keeps it elsewhere (resume needs a new release).
    """
    obj = getattr(stream, "_ssl_object", None)
    if not isinstance(obj, ssl.SSLObject):
        raise RuntimeError(
            "this trio.SSLStream has no _ssl_object: resume does not support this trio "
            "release yet"
        )
    return obj


def install_msg_callback(
    context: ssl.SSLContext, callback: Callable[..., None]
) -> bool:
    """Set ``context._msg_callback`` to *callback*; return False where the hook is missing."""
    if not hasattr(context, "_msg_callback"):
        return False
    try:
        context._msg_callback = callback
    except (AttributeError, TypeError):  # pragma: no cover - a changed hook
        return False
    return True


#: 3.10's server-side start_tls with the close_notify reply; None from 3.11 on.
start_tls_server_310: (
    Callable[
        [asyncio.AbstractEventLoop, asyncio.Transport, asyncio.BaseProtocol,
         ssl.SSLContext, float],
        Awaitable[asyncio.Transport],
    ]
    | None
) = None

if sys.version_info < (3, 11):
    from asyncio import sslproto

    class _SSLProtocol(sslproto.SSLProtocol):
        # 3.10's server-side SSL protocol, with the close_notify reply of
        # bpo-30698 written before the transport closes (see the theory above).
        def _finalize(self) -> None:
            self._sslpipe = None
            transport = self._transport
            if transport is not None:
                self._loop.call_soon(transport.close)

    async def _start_tls_310(
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        handshake_timeout: float,
    ) -> asyncio.Transport:
        # 3.10's BaseEventLoop.start_tls(server_side=True), step for step, with
        # _SSLProtocol in place of sslproto.SSLProtocol.
        waiter = loop.create_future()
        ssl_protocol = _SSLProtocol(
            loop,
            protocol,
            context,
            waiter,
            server_side=True,
            call_connection_made=False,
            # typeshed says int; 3.10 takes any number of seconds, as start_tls does.
            ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
        )
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = loop.call_soon(ssl_protocol.connection_made, transport)
        resumed = loop.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport

    start_tls_server_310 = _start_tls_310


class ClosingSSLSocket(ssl.SSLSocket):
    """An ssl.SSLSocket that calls :meth:`on_real_close` just before it really closes."""

    def on_real_close(self) -> None:
        """Called once the socket is about to close for real (no file of it open); override."""

    def _real_close(self) -> None:
        try:
            self.on_real_close()
        finally:
            super()._real_close()  # type: ignore[misc]


def report_ssl_transport_context(transport: object, context: object) -> bool:
    """After the handshake, make *transport* report *context* as its SSL context; see the top.

    Returns False (and changes nothing) where the transport is not asyncio's SSL
    transport as this module knows it.
    """
    protocol: Any = getattr(transport, "_ssl_protocol", None)
    extra = getattr(protocol, "_extra", None)
    if not isinstance(extra, dict) or "sslcontext" not in extra:
        return False
    extra["sslcontext"] = context
    if hasattr(protocol, "_sslcontext"):
        protocol._sslcontext = context
    return True


def set_ssl_transport_extra(transport: object, name: str, value: object) -> bool:
    """Make ``transport.get_extra_info(name)`` answer *value* on asyncio's SSL transport.

    asyncio keeps the SSL transport's extra info in its SSL protocol's ``_extra``
    dict (3.10 to 3.13) and offers no setter; resume.asyncio.start_server adds
    ``"early_data"`` there. Returns False (and changes nothing) where the
    transport is not asyncio's SSL transport as this module knows it.
    """
    protocol: Any = getattr(transport, "_ssl_protocol", None)
    extra = getattr(protocol, "_extra", None)
    if not isinstance(extra, dict):
        return False
    extra[name] = value
    return True
