# The process-wide default client session cache.
#
# ``resume.trio.open_tls_stream()`` and ``resume.asyncio.open_connection()`` use
# it when no ``cache=`` is given, so that a program resumes sessions without any
# set-up, as a browser does. It is created on first use (so importing resume
# costs nothing) under a lock (threads may race to create it); it lives as long
# as the process. Its size and lifetime are OpenSSL's defaults.
from __future__ import annotations

import ssl
import threading

from ._cache import CacheMode, SessionCache

__all__ = ["default_cache", "default_ssl_context", "resolve_cache"]

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


def default_ssl_context() -> ssl.SSLContext:
    """Return the client context used when no ``ssl_context=``/``ssl=`` is given.

    One :func:`ssl.create_default_context` made on first use and shared, so that
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
                context = _CONTEXT = ssl.create_default_context()
    return context
default_ssl_context.__module__ = "resume"
