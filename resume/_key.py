# Theory of operation: the client cache key
# =========================================
#
# A client session may only be offered to the server it came from, under the
# TLS configuration it was made with. curl's catalogue of mistakes is the test
# plan: CVE-2016-5419 (a session resumed after the client certificate changed),
# CVE-2021-22890 (a proxy's ticket offered to the origin), CVE-2021-22924 and
# CVE-2022-27782 (configuration changes not compared before reuse) and
# CVE-2024-0853 (a session kept although a post-handshake check failed; that
# last one is the policy's business, see resume._client).
#
# The key is ``SessionKey(peer, port, digest)``:
#
# * ``peer`` is the server name the handshake verifies and sends as SNI, or the
#   address when there is no name. Names are compared case-insensitively
#   (lower-cased, as certificate matching does) and nothing else is folded: a
#   trailing dot, an IDNA spelling or an alias is another peer, which costs at
#   most a full handshake and never offers a session where it does not belong.
#   Addresses are written in their canonical form (``::1``, not ``0:0::1``).
# * ``port`` is the port of the server, not of a proxy in between.
# * ``digest`` is a SHA-256 digest, truncated to 128 bits, of everything the
#   ``ssl.SSLContext`` would verify or present: a random per-context token, the
#   verify mode, hostname checking, verify flags, protocol bounds, options,
#   host flags, post-handshake authentication, the cipher list
#   (``get_ciphers()``), the trust store (``get_ca_certs(binary_form=True)``),
#   and what the context was told since resume first saw it (below).
#
# Context identity. ``id(context)`` is recycled as soon as a context dies, so a
# session of a dead context could be offered on a new one with other settings.
# Each context instead gets a random 16-byte token the first time it is seen,
# kept in a WeakKeyDictionary (it dies with the context).
#
# What ``ssl`` cannot tell. There is no getter for the client certificate, the
# ALPN list, or a change of the trust store through a CA directory. The first
# time a context is seen, resume installs thin tracking wrappers as *instance*
# attributes over the methods that change those settings (load_cert_chain,
# load_verify_locations, load_default_certs, set_default_verify_paths,
# set_alpn_protocols, set_npn_protocols, set_ciphers, set_ecdh_curve). Each
# calls the class's own method and then records what changed (the certificate
# file's digest, the ALPN list, the CA data's digest) and bumps the context's
# generation, so the next connection gets a new key and a full handshake.
# Setters that replace a value (ALPN, ciphers) keep their latest value, so
# setting an ALPN list back gives the earlier key again; calls that add to the
# context (certificates, CA locations) are chained, so they never do. The
# settings in force before resume first saw the context are covered by its
# token: they cannot change without going through a tracked method. Calling
# the methods through the class (``ssl.SSLContext.load_cert_chain(ctx, ...)``)
# goes around the tracking; the documentation says so.
#
# Why not ``cert_store_stats()`` as a change detector: a context that trusts a
# CA *directory* (``capath``, the default paths on Debian) loads certificates
# from it into the store lazily, during verification, so the counts grow after
# the first handshake without any change of trust, and every context would lose
# its first resumption. The wrappers see the real changes and cost nothing per
# connection.
#
# Cost. Per connection, the key costs eight C getter calls (verify mode and
# friends: settable attributes that no wrapper can watch), one tuple compare
# and one dict look-up: about 2 us. The expensive part (get_ciphers(),
# get_ca_certs(), hashing) runs only when a context is first seen or changed.
from __future__ import annotations

import _ssl
import functools
import hashlib
import ipaddress
import os
import secrets
import ssl
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, final

__all__ = ["SessionKey", "context_digest", "make_key", "normalize_peer"]


@final
class SessionKey(NamedTuple):
    """The cache key of a client session: where it may be offered again.

    Two connections share sessions only when their keys are equal:

    * the same server name (compared case-insensitively; nothing else is folded,
      so ``example.com.`` is another peer), or the same address in canonical
      form when there is no name;
    * the same port of the TLS server (of the origin, not of a proxy);
    * the same :class:`ssl.SSLContext` *object* with the same settings: verify
      mode, hostname checking, verify flags, protocol bounds, options, host
      flags, post-handshake authentication, ciphers, trusted CAs, client
      certificate, ALPN list.

    The key is computed when the handshake starts. Settings that :mod:`ssl` has
    no getter for (client certificate, ALPN list, CA directories) are tracked:
    the first time resume sees a context it wraps, as instance attributes,
    ``load_cert_chain``, ``load_verify_locations``, ``load_default_certs``,
    ``set_default_verify_paths``, ``set_alpn_protocols``, ``set_npn_protocols``,
    ``set_ciphers`` and ``set_ecdh_curve``; each call after that gives the
    context's next connections a new key, hence a full handshake. Calling those
    methods through the class (``ssl.SSLContext.load_cert_chain(ctx, ...)``)
    bypasses the tracking: do not. Settings made before resume first saw the
    context are covered by the context's identity (a random token per object,
    not ``id()``, which is recycled).

    ALPN: there is no ``alpn=`` argument, because :mod:`ssl` sets ALPN on the
    context only and changing a shared context per connection would race;
    configure it with ``set_alpn_protocols()``, and use one context per ALPN
    list if connections need different lists at once.
    """

    #: The server name (lower case) or canonical address.
    peer: str
    #: The server's port.
    port: int
    #: 32 hex digits: the digest of the ``ssl.SSLContext``'s settings.
    digest: str


_get: Any = _ssl._SSLContext
# The settable attributes no wrapper can watch; read through the C getters so
# that no enum objects are built on the per-connection path.
_CHEAP_GETTERS: tuple[Callable[[ssl.SSLContext], Any], ...] = tuple(
    getattr(_get, name).__get__
    for name in (
        "verify_mode",
        "check_hostname",
        "verify_flags",
        "minimum_version",
        "maximum_version",
        "options",
        "_host_flags",
        "post_handshake_auth",
    )
)

#: Methods whose calls change what a handshake verifies or presents.
TRACKED_METHODS: tuple[str, ...] = (
    "load_cert_chain",
    "load_verify_locations",
    "load_default_certs",
    "set_default_verify_paths",
    "set_alpn_protocols",
    "set_npn_protocols",
    "set_ciphers",
    "set_ecdh_curve",
)


def _file_digest(path: object) -> str:
    try:
        with open(os.fspath(path), "rb") as f:  # type: ignore[call-overload]
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, TypeError):
        return f"unreadable:{path!r}"


#: Methods that replace a setting (the latest call is the state); the others add
#: to the context's state (certificates, trust), so every call counts, in order.
_REPLACING = frozenset({"set_alpn_protocols", "set_npn_protocols", "set_ciphers", "set_ecdh_curve"})


@final
class _ContextState:
    # What resume knows about one SSLContext. Guarded by _LOCK for updates.
    __slots__ = (
        "chain",
        "digest",
        "digest_generation",
        "generation",
        "keys",
        "latest",
        "snapshot",
        "token",
    )

    def __init__(self) -> None:
        self.token = secrets.token_bytes(16)
        self.generation = 0
        # The latest value given to each replacing setter (no secrets: ALPN
        # names, cipher strings), and a running SHA-256 over every adding call
        # (certificate and CA file digests), so memory stays bounded however
        # often the context is changed. Loading certificate A, then B, then A
        # again gives a third state, never the first: which one OpenSSL keeps
        # per key type is not visible, so no change is ever assumed undone.
        self.latest: dict[str, str] = {}
        self.chain = b""
        self.snapshot: tuple[Any, ...] | None = None
        self.digest = ""
        self.digest_generation = -1
        # Keys already built for this digest, by (peer as given, port): most
        # programs talk to few servers, so the per-connection key is a dict hit.
        self.keys: dict[tuple[str, int], SessionKey] = {}

    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if name == "load_cert_chain":
            certfile = args[0] if args else kwargs.get("certfile")
            keyfile = args[1] if len(args) > 1 else kwargs.get("keyfile")
            what = f"{_file_digest(certfile)}/{_file_digest(keyfile) if keyfile else ''}"
        elif name == "load_verify_locations":
            cafile = args[0] if args else kwargs.get("cafile")
            capath = args[1] if len(args) > 1 else kwargs.get("capath")
            cadata = args[2] if len(args) > 2 else kwargs.get("cadata")
            parts = []
            if cafile is not None:
                parts.append("file:" + _file_digest(cafile))
            if capath is not None:
                parts.append(f"path:{os.fsdecode(capath)}")
            if cadata is not None:
                data = cadata.encode() if isinstance(cadata, str) else bytes(cadata)
                parts.append("data:" + hashlib.sha256(data).hexdigest())
            what = ",".join(parts)
        elif name in ("set_alpn_protocols", "set_npn_protocols"):
            protocols = args[0] if args else kwargs.get("protocols", kwargs.get("alpn_protocols"))
            what = repr(list(protocols or ()))
        else:
            what = repr(args) + repr(sorted(kwargs.items()))
        with _LOCK:
            if name in _REPLACING:
                self.latest[name] = what
            else:
                self.chain = hashlib.sha256(self.chain + f"{name}:{what}".encode()).digest()
            self.generation += 1


_LOCK = threading.Lock()
_STATES: weakref.WeakKeyDictionary[ssl.SSLContext, _ContextState] = weakref.WeakKeyDictionary()


def _install_tracking(context: ssl.SSLContext, state: _ContextState) -> None:
    # Instance attributes shadow the class's methods. The wrappers hold a weak
    # reference to the context, so no reference cycle keeps it alive.
    ref = weakref.ref(context)
    cls = type(context)
    for name in TRACKED_METHODS:
        original = getattr(cls, name, None)
        if original is None:  # pragma: no cover - e.g. NPN removed from a build
            continue

        def wrapper(
            *args: Any,
            _name: str = name,
            _original: Callable[..., Any] = original,
            **kwargs: Any,
        ) -> Any:
            ctx = ref()
            if ctx is None:  # pragma: no cover - the context is being destroyed
                raise ReferenceError("the SSLContext is gone")
            result = _original(ctx, *args, **kwargs)
            state.record(_name, args, kwargs)
            return result

        functools.update_wrapper(wrapper, original)
        context.__dict__[name] = wrapper


def _state(context: ssl.SSLContext) -> _ContextState:
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(context).__name__}")
    state = _STATES.get(context)
    if state is None:
        if _get.protocol.__get__(context) == ssl.PROTOCOL_TLS_SERVER:
            raise ValueError(
                "ssl_context is a server-side context (PROTOCOL_TLS_SERVER); a client "
                "needs ssl.create_default_context() or SSLContext(PROTOCOL_TLS_CLIENT)"
            )
        with _LOCK:
            state = _STATES.get(context)
            if state is None:
                state = _ContextState()
                _install_tracking(context, state)
                _STATES[context] = state
    return state


def _snapshot(context: ssl.SSLContext) -> tuple[Any, ...]:
    return tuple([getter(context) for getter in _CHEAP_GETTERS])


def _compute_digest(context: ssl.SSLContext, state: _ContextState, snap: tuple[Any, ...]) -> str:
    h = hashlib.sha256()
    h.update(state.token)
    h.update(repr(snap).encode())
    h.update(repr(sorted(state.latest.items())).encode())
    h.update(state.chain)
    h.update(repr([c["name"] for c in context.get_ciphers()]).encode())
    for der in context.get_ca_certs(binary_form=True):
        h.update(hashlib.sha256(der).digest())
    return h.hexdigest()[:32]


def context_digest(context: ssl.SSLContext) -> str:
    """Return the digest of *context*'s client settings (32 hex digits).

    Equal digests mean the same ``ssl.SSLContext`` object, with the same
    verification, trust store, client certificate, protocol bounds, options,
    ciphers and ALPN list. The first call on a context installs the tracking
    wrappers described in :mod:`resume._key` and computes the digest; later
    calls cost a few C getter calls unless a setting changed.

    Raises:
        TypeError: *context* is not an :class:`ssl.SSLContext`.
        ValueError: *context* is a server-side context.
    """
    return _current(context)[0]


def _current(context: ssl.SSLContext) -> tuple[str, dict[tuple[str, int], SessionKey]]:
    # The digest of the context's settings now, and the key memo that goes with it.
    state = _state(context)
    snap = _snapshot(context)
    generation = state.generation
    if snap == state.snapshot and generation == state.digest_generation:
        return state.digest, state.keys
    digest = _compute_digest(context, state, snap)
    keys: dict[tuple[str, int], SessionKey] = {}
    with _LOCK:
        if state.generation == generation:
            state.snapshot = snap
            state.digest = digest
            state.digest_generation = generation
            state.keys = keys
    return digest, keys


#: Most keys memoised per context (a crawler may meet millions of hosts).
_KEYS_PER_CONTEXT = 4096


@functools.lru_cache(maxsize=4096)
def normalize_peer(host: str) -> str:
    """Return *host* as the key spells it: canonical address, or lower-cased name.

    Raises:
        TypeError: *host* is not a str.
        ValueError: *host* is empty or contains a NUL or whitespace.
    """
    if not isinstance(host, str):
        raise TypeError(f"the server name must be a str, got {type(host).__name__}")
    if not host or any(c in host for c in "\x00 \t\r\n"):
        raise ValueError(f"invalid server name {host!r}")
    try:
        return ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host).compressed
    except ValueError:
        return host.lower()


def make_key(context: ssl.SSLContext, peer: str, port: int) -> SessionKey:
    """Build the :class:`SessionKey` of a connection to *peer*:*port* with *context*.

    Call it when the handshake starts (the settings then are the ones the
    handshake uses), not when a session or ticket arrives.

    Raises:
        TypeError: a wrong type for an argument.
        ValueError: an empty or malformed *peer*, a *port* outside 1-65535, or a
            server-side *context*.
    """
    if type(port) is not int:
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, got {type(port).__name__}")
        port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1-65535, got {port}")
    digest, keys = _current(context)
    key = keys.get((peer, port))
    if key is None:
        key = SessionKey(normalize_peer(peer), port, digest)
        if len(keys) < _KEYS_PER_CONTEXT:
            keys[(peer, port)] = key
    return key


SessionKey.__module__ = "resume"
