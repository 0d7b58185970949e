# Theory of operation: an aiohttp connector that resumes
# ======================================================
#
# aiohttp opens connections in TCPConnector with asyncio's
# loop.create_connection(ssl=context, server_hostname=...), and asyncio makes the
# SSLObject by calling ``context.wrap_bio(...)``. resume.asyncio already has the
# stand-in for that call (_OfferingContext: its wrap_bio is the session boundary,
# ClientConnection.begin). What aiohttp does not offer is a public place to pass
# a per-connection ``ssl=`` object, so:
#
#   the one private access: TCPConnector._wrap_create_connection(), the method
#   aiohttp calls with the create_connection arguments of one connection
#   (``ssl``, ``server_hostname``, ``req``, the protocol factory first). It is
#   overridden in _create_connection() below, and nowhere else; should a future
#   aiohttp drop or rename it, the override is never called and the connector
#   works as aiohttp's own, without resumption (a later step moves such
#   accesses into resume/_compat.py). There the stand-in replaces ``ssl``, the
#   port is ``req.port`` (the origin's: aiohttp connects through a proxy with
#   another method, which is not overridden, so tunnelled connections never
#   resume), and the protocol factory makes a _ResumingHandler.
#
#   _ResumingHandler, a ResponseHandler (aiohttp's public protocol class) that
#   stores the session *when aiohttp closes the connection*, synchronously,
#   before the transport starts its TLS shutdown: on release with
#   ``Connection: close``, on keep-alive expiry, on connector close. Storing in
#   connection_lost() instead raced the next request, which aiohttp starts at
#   once while the closing transport still waits for the server's close_notify
#   (47-48 of 50 resumed). A connection returned to the pool for reuse stores
#   nothing yet: it serves the next request itself. An error seen on the
#   connection (set_exception) or an EOF without close_notify makes the close
#   unclean: nothing is stored. abort() is not an error in itself: aiohttp
#   aborts idle TLS connections when the connector closes.
#
# The context. No mutable SSLContext is shared between owners
# (resume._integrations._common). aiohttp gives every connector made without
# ``ssl=`` one verifying context, made at import and shared process-wide, and
# anyone can reach it (``transport.get_extra_info("sslcontext")``) and change
# it for all. A resume connector made without ``ssl=`` (or with ``ssl=True``)
# uses _DEFAULT_CONTEXT instead: aiohttp's recipe (ssl.create_default_context()
# and the ALPN list ``http/1.1``) on resume's read-only context
# (resume._core.defaults.read_only_context), also made at import, as aiohttp
# does, so that no connector loads the system's CAs on the event loop. It is
# shared by every resume connector, so that they resume each other's sessions,
# and it refuses every change, so that no owner can loosen it for the others.
# Requests made with ``ssl=False`` or a fingerprint use aiohttp's own
# non-verifying context, as with aiohttp's connector.
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from .._adapters.asyncio_client import _OfferingContext
from .._core.defaults import read_only_context, resolve_cache
from .._core.policy import ClientConnection
from .._stores.link import fetch_for_asyncio

__all__ = ["TCPConnector"]


def _peer_cut(obj: ssl.SSLObject) -> bool:
    # After the transport saw an EOF: did close_notify come first? (as resume.asyncio)
    try:
        obj.read(1)
    except ssl.SSLZeroReturnError:
        return False
    except ssl.SSLWantReadError:
        return True
    except (ssl.SSLError, ValueError):
        return True
    return False


class _ResumingHandler(ResponseHandler):
    # aiohttp's protocol, storing the session when aiohttp closes it; see the top.
    _resume_conn: ClientConnection | None = None
    _resume_obj: ssl.SSLObject | None = None
    _resume_unclean = False
    _resume_eof = False

    def _resume_finish(self, *, clean: bool) -> None:
        conn, self._resume_conn = self._resume_conn, None
        if conn is not None:
            conn.close(self._resume_obj, clean=clean and not self._resume_unclean)

    def set_exception(self, *args: Any, **kwargs: Any) -> None:
        self._resume_unclean = True
        super().set_exception(*args, **kwargs)

    def eof_received(self) -> None:
        self._resume_eof = True
        super().eof_received()

    def _resume_closing(self) -> None:
        obj = self._resume_obj
        cut = self._resume_eof and obj is not None and _peer_cut(obj)
        self._resume_finish(clean=not cut and self.exception() is None)

    def close(self) -> None:
        self._resume_closing()
        super().close()

    def abort(self) -> None:
        # aiohttp aborts idle TLS connections when the connector closes (so as
        # not to wait for the TLS shutdown): not an error. Errors reach the
        # handler through set_exception() first.
        self._resume_closing()
        super().abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        # The server ended the connection while it sat in the pool: clean only
        # after its close_notify.
        obj = self._resume_obj
        clean = exc is None and obj is not None and not _peer_cut(obj)
        self._resume_finish(clean=clean)
        super().connection_lost(exc)


Create = Callable[..., Awaitable[tuple[asyncio.Transport, ResponseHandler]]]

#: The context of connectors made without ``ssl=``: read-only, see the top.
_DEFAULT_CONTEXT = read_only_context(alpn=["http/1.1"])
#: aiohttp's older TLS arguments; with any of them, ``ssl=`` must stay unset.
_DEPRECATED_SSL = frozenset({"verify_ssl", "ssl_context", "fingerprint"})


async def _create_connection(
    connector: TCPConnector, create: Create, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[asyncio.Transport, ResponseHandler]:
    # The per-connection part of the one private hook; see the top.
    context = kwargs.get("ssl")
    name = kwargs.get("server_hostname")
    req = kwargs.get("req")
    port = getattr(req, "port", None)
    cache = connector._resume_cache
    if (
        not isinstance(context, ssl.SSLContext)
        or not isinstance(name, str)
        or not isinstance(port, int)
        or not args
        or cache is False
    ):
        return await create(*args, **kwargs)
    loop = asyncio.get_running_loop()
    await fetch_for_asyncio(cache, context, name, port)  # a store, off the loop
    stand_in = _OfferingContext(context, cache, name, port)
    kwargs["ssl"] = stand_in
    factory = args[0]
    args = (lambda: _ResumingHandler(loop=loop), *args[1:])
    del factory  # aiohttp's own factory makes a plain ResponseHandler(loop=loop)
    try:
        transport, protocol = await create(*args, **kwargs)
    except BaseException:
        if stand_in.conn is not None:
            stand_in.conn.fail()
        raise
    conn, obj = stand_in.conn, stand_in.ssl_object
    if conn is None or obj is None:  # pragma: no cover - asyncio made no SSLObject
        return transport, protocol
    try:
        conn.handshake_complete(obj)
    except BaseException:
        conn.fail()
        transport.abort()
        raise
    assert isinstance(protocol, _ResumingHandler)
    protocol._resume_conn = conn
    protocol._resume_obj = obj
    return transport, protocol


class TCPConnector(aiohttp.TCPConnector):
    """:class:`aiohttp.TCPConnector` that resumes TLS sessions.

    ``aiohttp.ClientSession(connector=resume.aiohttp.TCPConnector())``: each
    new HTTPS connection offers a session of an earlier one to the same server
    name, port and TLS configuration (see :class:`resume.SessionKey`), with
    ``SSL_set_session()``, and a connection stores its session when aiohttp
    closes it cleanly (``Connection: close``, keep-alive expiry, the
    connector's close), before the next request can start. Connections
    through a proxy do not resume.

    Without ``ssl=`` (or with ``ssl=True``), connections verify with one
    read-only :class:`ssl.SSLContext` that every resume connector shares
    (aiohttp's recipe: :func:`ssl.create_default_context` and the ALPN list
    ``http/1.1``); changing it raises, so that no code can loosen it for the
    other connectors. Pass ``ssl=`` a context of your own, from
    :func:`resume.create_client_context`, for other settings: connectors
    whose contexts are configured alike still resume each other's sessions
    (where the OpenSSL binding is available; see :class:`resume.SessionKey`).

    Args:
        cache: a :class:`resume.SessionCache`; None for the process-wide
            :func:`resume.default_cache`; False for no resumption.
        **kwargs: as for :class:`aiohttp.TCPConnector`.

    Raises:
        TypeError: *cache* is not a SessionCache, None or False.
    """

    def __init__(self, *, cache: object = None, **kwargs: Any) -> None:
        resolve_cache(cache)
        self._resume_cache = cache
        ssl_arg = kwargs.get("ssl", True)
        if (ssl_arg is True or ssl_arg is None) and not _DEPRECATED_SSL.intersection(kwargs):
            kwargs["ssl"] = _DEFAULT_CONTEXT  # see the top
        super().__init__(**kwargs)

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        # The one private access (see the top).
        return await _create_connection(self, super()._wrap_create_connection, args, kwargs)
