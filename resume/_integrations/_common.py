# Theory of operation: what the HTTP client integrations share
# ============================================================
#
# The integrations (httpx, aiohttp, requests) are thin, like the trio and
# asyncio adapters: every decision is ClientConnection's (resume._core.policy).
# Two shapes of I/O need the session boundary:
#
#   * a blocking socket (requests/urllib3, httpx's sync transport):
#     wrap_socket() below is SSLContext.wrap_socket() through
#     ClientConnection.begin(): the key and the session are chosen in the call
#     that creates the SSLSocket (with do_handshake_on_connect=False, so the
#     offer comes before the handshake), then the handshake runs and
#     handshake_complete() records accepted or declined.
#   * asyncio's wrap_bio() (aiohttp): the per-connection stand-in of
#     resume._adapters.asyncio_client, reused as it is.
#
# SocketOfferingContext is the stand-in for libraries that call
# ``context.wrap_socket(sock, server_hostname=...)`` on a context they were
# given and also set attributes on it (urllib3 sets ``verify_mode`` and calls
# ``set_alpn_protocols()`` before every connection): attribute reads, writes
# and method calls go to the real context (where the tracking wrappers of
# resume._core.key see them), and wrap_socket goes through the boundary.
#
# A store attached to the cache is read before the handshake, off any event
# loop: fetch_blocking() runs the link's fetch on the link's own thread pool and
# waits at most the link's fetch_wait, as fetch_for_trio/fetch_for_asyncio do.
#
# No shared contexts. No mutable SSLContext is shared between owners: each
# transport (httpx) or adapter (requests) makes its own, and what it exposes
# (``transport.ssl_context``, ``adapter.ssl_context_for()``) is its own. A
# context handed to two owners would be loosened for both when either changed
# it: ``verify_mode = CERT_NONE`` or an extra CA set by one program part for
# its transport would make every other transport built alike, later ones
# included, accept servers it must refuse. (aiohttp's default, shared by
# every connector, is read-only instead: resume._core.defaults.) Sessions flow
# between contexts configured alike through the cache key: the integrations
# build their contexts on contexts tracked from birth, whose keys are equal
# when their settings are (resume._core.key, "Context identity").
#
# A CA loaded into a context while a handshake is in flight reaches that
# handshake: ClientConnection.handshake_complete() then keeps nothing (see
# resume._core.policy).
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import ssl
from typing import Any, cast, final

from .._core.policy import ClientConnection, TLSObject
from .._stores.link import _plan

__all__ = [
    "SocketOfferingContext",
    "fetch_blocking",
    "file_state",
    "wrap_socket",
]


def _same(obj: ssl.SSLSocket) -> ssl.SSLSocket:
    return obj


def file_state(path: object) -> object:
    """(size, mtime) of the file at *path*, or None (no file, or not a path)."""
    try:
        st = os.stat(os.fspath(path))  # type: ignore[call-overload]
    except (OSError, TypeError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


def fetch_blocking(cache: object, context: ssl.SSLContext, peer: str, port: int) -> None:
    """Before a blocking connection: fetch its session from the cache's store, briefly.

    Does nothing when the cache has no store or already holds a session for
    the key. Waits at most the link's ``fetch_wait``; a slower fetch still
    fills the cache when it ends. Never raises for a store problem.
    """
    plan = _plan(cache, context, peer, port)
    if plan is None:
        return
    link, key = plan
    try:
        future = link._fetch_executor().submit(link._fetch_in_thread, key)
    except RuntimeError:  # the link was detached meanwhile
        return
    with contextlib.suppress(concurrent.futures.TimeoutError):
        future.result(timeout=link.fetch_wait)


def wrap_socket(
    context: ssl.SSLContext,
    sock: socket.socket,
    *,
    server_hostname: str,
    port: int,
    cache: object,
) -> tuple[ClientConnection, ssl.SSLSocket]:
    """Wrap a connected *sock* in TLS through the session boundary and handshake.

    The session is chosen when the SSLSocket is made (``SSL_set_session()``
    before the handshake). On a failed handshake the offer is dropped, the
    TLS socket is closed and the error propagates.
    """
    fetch_blocking(cache, context, server_hostname, port)

    def create() -> ssl.SSLSocket:
        return context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )

    conn, tls = ClientConnection.begin(cache, context, server_hostname, port, create, _same)
    try:
        tls.do_handshake()
        conn.handshake_complete(cast("TLSObject", tls))
    except BaseException:
        conn.fail()
        tls.close()
        raise
    return conn, tls


_OWN = frozenset({"_context", "_cache", "_port", "conn", "tls"})


@final
class SocketOfferingContext:
    """Stands in for an ``ssl.SSLContext`` for one connection; see the top."""

    __slots__ = ("_cache", "_context", "_port", "conn", "tls")

    def __init__(self, context: ssl.SSLContext, cache: object, port: int) -> None:
        object.__setattr__(self, "_context", context)
        object.__setattr__(self, "_cache", cache)
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "conn", None)
        object.__setattr__(self, "tls", None)

    _context: ssl.SSLContext
    _cache: object
    _port: int
    conn: ClientConnection | None
    tls: ssl.SSLSocket | None

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        if server_side or server_hostname is None or session is not None:
            # Not a client connection resume can key: plain wrap_socket.
            return self._context.wrap_socket(
                sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                suppress_ragged_eofs=suppress_ragged_eofs, server_hostname=server_hostname,
                session=session,
            )
        conn, tls = wrap_socket(
            self._context, sock, server_hostname=server_hostname, port=self._port,
            cache=self._cache,
        )
        object.__setattr__(self, "conn", conn)
        object.__setattr__(self, "tls", tls)
        return tls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._context, name, value)
