# The process-wide default client session cache, and the default client context.
#
# ``resume.trio.open_tls_stream()`` and ``resume.asyncio.open_connection()`` use
# the cache when no ``cache=`` is given, so that a program resumes sessions
# without any set-up, as a browser does. It is created on first use (so
# importing resume costs nothing) under a lock (threads may race to create it);
# it lives as long as the process. Its size and lifetime are OpenSSL's defaults.
#
# create_client_context() is ssl.create_default_context(Purpose.SERVER_AUTH)
# for resume: the same settings, but the context is tracked (resume._core.key) from
# the moment it exists ("born tracked"), so every later setting (client
# certificate, ALPN, CA locations) is part of its session keys, in memory and
# in a store, and contexts made alike share keys (and so sessions).
#
# The default context. Connections opened without a context all use
# default_ssl_context(), so that they resume each other's sessions even where
# sessions cannot cross contexts (no OpenSSL binding), and so that a
# connection does not pay for loading the system's CA certificates (tens of
# milliseconds). Being held by everyone, it must be changed by no one: no
# mutable SSLContext is shared between owners (one caller's ``verify_mode =
# CERT_NONE`` would loosen every other caller's connections, later ones
# included). So it is a _ReadOnlyContext: once built, setting or deleting an
# attribute raises AttributeError and every ``load_*``/``set_*`` method raises
# TypeError, before the class's method runs. (``ssl.SSLContext.verify_mode.__set__``
# called on it through the class goes around this, as it goes around
# everything; the key would still see the change, since resume reads the
# settings at every connection.) The same class serves the integrations that
# need a shared default (resume.aiohttp): read_only_context().
from __future__ import annotations

import functools
import os
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .cache import CacheMode, SessionCache
from .key import track_new_context

__all__ = [
    "create_client_context",
    "default_cache",
    "default_ssl_context",
    "new_tracked_context",
    "read_only_context",
    "resolve_cache",
]

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


def _configure(
    context: ssl.SSLContext,
    cafile: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None,
    capath: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None,
    cadata: str | bytes | None,
) -> ssl.SSLContext:
    # ssl.create_default_context(Purpose.SERVER_AUTH)'s settings, on a context
    # that was tracked before anything was set on it.
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

    Contexts made by this function with equal settings share session keys,
    so a session made through one is offered through another (where the
    OpenSSL binding is available: see :class:`~resume.SessionKey`). Each
    context is its caller's own: change it freely, and only its own keys change.

    Raises:
        FileNotFoundError, ssl.SSLError: as :meth:`ssl.SSLContext.load_verify_locations`.
    """
    return _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cafile, capath, cadata)


def new_tracked_context() -> ssl.SSLContext:
    """A bare client context (``ssl.SSLContext(PROTOCOL_TLS_CLIENT)``), tracked from birth.

    For integrations that build their contexts as their library does (no CA
    loaded yet); everything set on it afterwards is in its key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    track_new_context(context)
    return context


#: The flag, in a _ReadOnlyContext's __dict__, that says it is built.
_BUILT = "_resume_read_only"


class _ReadOnlyContext(ssl.SSLContext):
    # A client context whose settings cannot change once built; see the top.

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get(_BUILT):
            raise AttributeError(_refusal(f"set {name}"))
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get(_BUILT):
            raise AttributeError(_refusal(f"delete {name}"))
        super().__delattr__(name)


def _refusal(what: str) -> str:
    return (
        f"cannot {what}: this SSLContext is shared (resume.default_ssl_context() or an "
        "integration's default) and read-only; make your own with "
        "resume.create_client_context() and change that"
    )


def _refusing(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.get(_BUILT):
            raise TypeError(_refusal(f"call {name}()"))
        return original(self, *args, **kwargs)

    functools.update_wrapper(method, original)
    return method


# Every method that changes a context: load_cert_chain, load_verify_locations,
# set_alpn_protocols, set_ciphers, set_servername_callback, ... (whatever this
# Python has).
for _name in dir(ssl.SSLContext):
    _original = getattr(ssl.SSLContext, _name)
    if _name.startswith(("load_", "set_")) and callable(_original):
        setattr(_ReadOnlyContext, _name, _refusing(_name, _original))
del _name, _original


def read_only_context(*, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A new :func:`create_client_context` with the system's CAs and *alpn*, then read-only.

    Tracked from birth (its keys are those of any client context made alike),
    and refusing every change once built (see the top).
    """
    context = _configure(_ReadOnlyContext(ssl.PROTOCOL_TLS_CLIENT), None, None, None)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    context.__dict__[_BUILT] = True
    return context


def default_ssl_context() -> ssl.SSLContext:
    """Return the client context used when no ``ssl_context=``/``ssl=`` is given.

    One context, made on first use by :func:`~resume.create_client_context`'s
    recipe and shared by every such connection, so that they resume each
    other's sessions and do not each load the system's CA certificates. Since
    everyone holds it, nobody may change it: it is read-only. Setting or
    deleting an attribute (``verify_mode``, ``check_hostname``, ...) raises
    ``AttributeError``, and calling a ``load_*`` or ``set_*`` method
    (``load_verify_locations()``, ``load_cert_chain()``,
    ``set_alpn_protocols()``, ...) raises :class:`TypeError`. For other
    settings make your own context with :func:`~resume.create_client_context`
    and pass it; its sessions still flow to and from this one when its
    settings are the same.
    """
    global _CONTEXT
    context = _CONTEXT
    if context is None:
        with _LOCK:
            context = _CONTEXT
            if context is None:
                context = _CONTEXT = read_only_context()
    return context


default_ssl_context.__module__ = "resume"
create_client_context.__module__ = "resume"
