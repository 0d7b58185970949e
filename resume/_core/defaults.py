# The process-wide default client session cache.
#
# ``resume.trio.open_tls_stream()`` and ``resume.asyncio.open_connection()`` use
# it when no ``cache=`` is given, so that a program resumes sessions without any
# set-up, as a browser does. It is created on first use (so importing resume
# costs nothing) under a lock (threads may race to create it); it lives as long
# as the process. Its size and lifetime are OpenSSL's defaults.
#
# create_client_context() is ssl.create_default_context(Purpose.SERVER_AUTH)
# for resume: the same settings, but the context is tracked (resume._core.key) from
# the moment it exists, so every later setting (client certificate, ALPN, CA
# locations) is part of its session keys, in memory and in a store.
from __future__ import annotations

import os
import ssl
import sys
import threading

from .cache import CacheMode, SessionCache
from .key import track_new_context

__all__ = ["create_client_context", "default_cache", "default_ssl_context", "resolve_cache"]

_LOCK = threading.Lock()
_DEFAULT: SessionCache | None = None
_CONTEXT: ssl.SSLContext | None = None


def default_cache() -> SessionCache:
    """Return the process-wide client :class:`~resume.SessionCache`, creating it on first use.

    Connections opened without ``cache=`` share it. It is an ordinary cache in
    ``CacheMode.CLIENT`` mode with OpenSSL's defaults (20,480 sessions, 300 s);
    call :meth:`~resume.SessionCache.clear` on it to forget every session.
    """
    global _DEFAULT
    cache = _DEFAULT
    if cache is None:
        with _LOCK:
            cache = _DEFAULT
            if cache is None:
                cache = _DEFAULT = SessionCache(mode=CacheMode.CLIENT)
    return cache


def resolve_cache(cache: object) -> SessionCache | None:
    """Turn a ``cache=`` argument into the cache to use, or None for no resumption.

    None means the default cache, False means none, a SessionCache means itself.

    Raises:
        TypeError: anything else (True included: say which cache).
    """
    if cache is None:
        return default_cache()
    if cache is False:
        return None
    if isinstance(cache, SessionCache):
        return cache
    raise TypeError(
        f"cache must be a resume.SessionCache, None (the default cache) or False "
        f"(no resumption), got {cache!r}"
    )


default_cache.__module__ = "resume"


def create_client_context(
    *,
    cafile: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
    capath: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
    cadata: str | bytes | None = None,
) -> ssl.SSLContext:
    """Create a client :class:`ssl.SSLContext` whose every setting resume tracks.

    The same as ``ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=...,
    capath=..., cadata=...)``: certificate and hostname verification on, the
    given CA locations or else the system's default ones, ``SSLKEYLOGFILE``
    honoured. Resume starts tracking the context before anything is loaded
    into it, so a client certificate (``load_cert_chain()``), an ALPN list
    (``set_alpn_protocols()``) or more CAs set on it afterwards are part of its
    session keys, and its sessions can be shared through a store
    (:meth:`resume.stores.StoreLink.register_context`). A context made
    otherwise and given a client certificate before resume first saw it
    cannot be registered for a store (:class:`~resume.UntrackedContextWarning`).

    Raises:
        FileNotFoundError, ssl.SSLError: as :meth:`ssl.SSLContext.load_verify_locations`.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    track_new_context(context)
    if sys.version_info >= (3, 13):  # as ssl.create_default_context() there
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context


def default_ssl_context() -> ssl.SSLContext:
    """Return the client context used when no ``ssl_context=``/``ssl=`` is given.

    One :func:`~resume.create_client_context` made on first use and shared, so that
    connections made without a context can resume each other's sessions
    (sessions never cross ``SSLContext`` objects). Do not change its settings:
    pass a context of your own instead.
    """
    global _CONTEXT
    context = _CONTEXT
    if context is None:
        with _LOCK:
            context = _CONTEXT
            if context is None:
                context = _CONTEXT = create_client_context()
    return context


default_ssl_context.__module__ = "resume"
create_client_context.__module__ = "resume"
