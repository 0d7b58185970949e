# Theory of operation: the client cache key
# =========================================
#
# A client session may only be offered to the server it came from, under the
# TLS configuration it was made with. curl's catalogue of mistakes is the test
# plan: CVE-2016-5419 (a session resumed after the client certificate changed),
# CVE-2021-22890 (a proxy's ticket offered to the origin), CVE-2021-22924 and
# CVE-2022-27782 (configuration changes not compared before reuse) and
# CVE-2024-0853 (a session kept although a post-handshake check failed; that
# last one is the policy's business, see resume._core.policy).
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
# * ``digest`` is a SHA-256 digest, truncated to 128 bits, of the context's
#   identity (below) and of every entry of KEY_TABLE below.
#
# One table, two digests. KEY_TABLE lists everything of an ``ssl.SSLContext``
# that a handshake verifies or presents, and how resume reads it. The
# in-process digest hashes the context's identity and the table's values; the
# persisted digest (``persisted_digests``, behind
# ``resume.stores.context_label_digest``) hashes the same values without the
# identity, plus the caller's label, so that another process that builds its
# context alike computes it too. No entry can be in one and not the other.
# (A store link that persists a context tracked from birth without being asked
# puts ``birth_record()`` in the label: the state of the CA directories the
# context reads, which the table names but cannot hold.)
#
# The boundary. The key is computed, and the session chosen, in the same
# synchronous call that creates the SSLObject (see
# ``ClientConnection.begin``), from the context's state at that moment: an
# ``await`` between the two would let a setting change unseen. The context is
# read again right after the SSLObject exists; if another thread changed it in
# between, the connection neither offers nor stores a session.
#
# Context identity: no shared contexts, shared keys. No mutable SSLContext is
# shared between owners (two HTTP transports, two adapters): a context handed
# to two owners is loosened for both when either changes it. Each owner has its
# own context, and sessions flow between contexts configured alike through the
# key. Which contexts are "alike" depends on what resume knows of their past:
#
# * a context resume saw being born (``track_new_context``: made by
#   create_client_context() or by the integrations, tracked before anything
#   was loaded into it; ``born_tracked``) is fully described by KEY_TABLE,
#   plus what its trust calls read from outside (``birth``: the state of the
#   CA directories and default verify paths named when they were called; CA
#   files are in the table by content). Its identity is that recipe, so two
#   such contexts configured alike get one digest, and any change the owner
#   makes to its own context (verify_mode, check_hostname, a CA, a client
#   certificate, ALPN) changes its digest, and only its. Sessions then cross
#   SSL_CTX objects: OpenSSL's client checks only the session-ID context (empty
#   on every client context), and resume offers through ``SSL_set_session()``
#   on the binding (resume._openssl.native), which ``ssl``'s own setter would
#   refuse ("Session refers to a different SSLContext"). Where the binding is
#   unavailable (``available()`` is None) that path does not exist, so these
#   contexts fall back to the random token below: their sessions do not flow
#   between contexts, only within each;
# * any other context gets a random 16-byte token the first time it is seen,
#   kept in a WeakKeyDictionary (it dies with the context): settings made on it
#   before resume saw it are not in the table, so only the context itself is
#   known to share them. (``id(context)`` would not do: it is recycled as soon
#   as a context dies, so a session of a dead context could be offered on a
#   new one with other settings.)
# * an untrackable context (below) is keyed by its token alone.
#
# Attacker's view of shared digests. Loosening one's own context
# (``verify_mode = CERT_NONE``, ``check_hostname = False``, another CA, a client
# certificate) changes its digest, so its sessions are never offered on a
# strict sibling, nor the sibling's on it. Two limits: a tracked method called
# through the class (``ssl.SSLContext.load_verify_locations(ctx, ...)``) goes
# unseen, and now also by the siblings; and a CA loaded while one of the
# context's handshakes is in flight reaches that handshake (the SSL object
# shares its context's X509_STORE), so the integrations check, after the
# handshake, that the context's digest is still the key's before storing
# (resume._integrations._common.handshake_complete).
#
# What ``ssl`` cannot tell. There is no getter for the client certificate, the
# ALPN list, or a change of the trust store through a CA directory. The first
# time a context is seen, resume installs thin tracking wrappers as *instance*
# attributes over the methods that change those settings (TRACKED_METHODS).
# Each calls the class's own method and then records what changed (the
# certificate file's digest, the ALPN list, the CA data's digest) and bumps the
# context's generation, so the next connection gets a new key and a full
# handshake. Setters that replace a value (ALPN) keep their latest value, so
# setting an ALPN list back gives the earlier key again, and setting the same
# list again changes nothing (not even the generation); calls that add to the
# context (certificates, CA locations) are chained, so they never do.
#
# What resume cannot know, and what it does then. A context is *untrackable*
# when a later change could escape the table: a tracking wrapper was removed
# (``del ctx.load_cert_chain``) or replaced, a tracked method was already
# replaced on the instance when resume first saw it, or an NPN list was set
# before (NPN's list is not visible in a ClientHello). An untrackable context
# gets one UntrackedContextWarning; it is never offered a session, none of its
# sessions is stored, and it is never persisted. Settings made *before* resume
# first saw a context are fixed parts of that context, covered in-process by
# its token; they matter only for the persisted digest, which has no token:
#
# * ALPN set before: read once, when the context is first seen, from a
#   ClientHello the context writes into a memory BIO (``_read_hello``); it is
#   then known like a tracked value.
# * a client certificate loaded before: visible only through the OpenSSL
#   binding (``SSL_CTX_get0_certificate()``). Persisting needs the binding
#   anyway, so the check runs when the context is registered for a store
#   (probing the binding when a context is first seen would cost every process
#   a fraction of a second on its first connection). A context that holds a
#   certificate tracking did not record, or whose history is in doubt (a
#   tracked certificate loaded after resume first saw it, with the binding
#   never asked before), is untrackable from then on. Contexts made by
#   create_client_context() are known to have started empty.
# * the CA certificates loaded before are visible (``get_ca_certs()``); the
#   contents of a CA directory are not: the label stands for them.
#
# Calling the methods through the class (``ssl.SSLContext.load_cert_chain(ctx,
# ...)``) goes around the tracking; the documentation says so.
#
# Why not ``cert_store_stats()`` as a change detector: a context that trusts a
# CA *directory* (``capath``, the default paths on Debian) loads certificates
# from it into the store lazily, during verification, so the counts grow after
# the first handshake without any change of trust, and every context would lose
# its first resumption. The wrappers see the real changes and cost nothing per
# connection.
#
# Cost. Per connection, the key costs eight C getter calls (verify mode and
# friends: settable attributes that no wrapper can watch), one look-up of the
# eight wrappers in the context's __dict__ (to see that none was removed), two
# tuple compares and one dict look-up. The expensive part (get_ciphers(),
# get_ca_certs(), hashing) runs only when a context is first seen or changed.
from __future__ import annotations

import functools
import hashlib
import ipaddress
import operator
import os
import secrets
import ssl
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, final

from .._compat import SSL_CONTEXT_C_TYPE
from .errors import UntrackedContextWarning
from .limits import PORT_MAX, check_port

__all__ = [
    "KEY_TABLE",
    "TRACKED_METHODS",
    "KeyEntry",
    "SessionKey",
    "KeySettings",
    "connection_key",
    "connection_key_and_settings",
    "context_digest",
    "make_key",
    "normalize_peer",
    "birth_record",
    "persisted_digests",
    "still_current",
    "track_new_context",
    "tracked_from_birth",
]


@final
class SessionKey(NamedTuple):
    """The cache key of a client session: where it may be offered again.

    Two connections share sessions only when their keys are equal:

    * the same server name (compared case-insensitively; nothing else is folded,
      so ``example.com.`` is another peer), or the same address in canonical
      form when there is no name;
    * the same port of the TLS server (of the origin, not of a proxy);
    * the same TLS settings: verify mode, hostname checking, verify flags,
      protocol bounds, options, host flags, post-handshake authentication,
      ciphers and security level, trusted CAs, client certificate, ALPN list;
    * and the same :class:`ssl.SSLContext` *object*, except between contexts
      made by :func:`~resume.create_client_context` (and the HTTP
      integrations), which resume tracks from birth: those share keys when
      their settings are equal, so sessions flow between them (through
      ``SSL_set_session()``, where the OpenSSL binding is available; without
      it, sessions stay with their context).

    The key is computed, and the session chosen, in the call that creates the
    connection's SSL object, from the context's settings at that moment.
    Settings that :mod:`ssl` has no getter for (client certificate, ALPN list,
    CA directories) are tracked: the first time resume sees a context it wraps,
    as instance attributes, ``load_cert_chain``, ``load_verify_locations``,
    ``load_default_certs``, ``set_default_verify_paths``,
    ``set_alpn_protocols``, ``set_npn_protocols``, ``set_ciphers`` and
    ``set_ecdh_curve``; each call after that gives the context's next
    connections a new key, hence a full handshake. Calling those methods
    through the class (``ssl.SSLContext.load_cert_chain(ctx, ...)``) bypasses
    the tracking: do not. Removing or replacing a wrapper makes the context
    untrackable (see :class:`~resume.UntrackedContextWarning`). Create client
    contexts with :func:`~resume.create_client_context` so that everything is
    tracked from the start.

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


_C: Any = SSL_CONTEXT_C_TYPE


@final
class KeyEntry(NamedTuple):
    """One row of :data:`KEY_TABLE`: a setting of a client context, and how it is read."""

    #: The entry's name.
    name: str
    #: ``"attribute"``: a settable attribute, read at every connection;
    #: ``"getter"``: read back from the context when something changed;
    #: ``"tracked"``: recorded by the tracking wrappers (no getter exists).
    source: str
    #: Reads the entry's value (a repr-stable, process-independent value).
    read: Callable[[ssl.SSLContext, _ContextState], object]


def _attribute(name: str, attr: str) -> KeyEntry:
    # Read through the C getter: no enum objects on the per-connection path.
    getter = getattr(_C, attr).__get__
    return KeyEntry(name, "attribute", lambda context, state: getter(context))


def _tracked(name: str) -> KeyEntry:
    return KeyEntry(name, "tracked", lambda context, state: state.tracked.get(name, ""))


def _ca_certs(context: ssl.SSLContext, state: _ContextState) -> object:
    return sorted(hashlib.sha256(der).hexdigest() for der in context.get_ca_certs(True))


#: Everything that goes into a client key, in order. Both digests read this
#: table: the in-process one (with the context's identity: its random token,
#: or its recipe if it was tracked from birth) and the persisted one (with a
#: label instead).
KEY_TABLE: tuple[KeyEntry, ...] = (
    _attribute("verify_mode", "verify_mode"),
    _attribute("check_hostname", "check_hostname"),
    _attribute("verify_flags", "verify_flags"),
    _attribute("minimum_version", "minimum_version"),
    _attribute("maximum_version", "maximum_version"),
    _attribute("options", "options"),
    # hostname_checks_common_name and the other X509_CHECK_FLAG_* bits.
    _attribute("host_flags", "_host_flags"),
    _attribute("post_handshake_auth", "post_handshake_auth"),
    KeyEntry("ciphers", "getter", lambda c, s: [x["name"] for x in c.get_ciphers()]),
    # Set through set_ciphers("...@SECLEVEL=n"); it bounds the keys verification accepts.
    KeyEntry("security_level", "getter", lambda c, s: c.security_level),
    KeyEntry("ca_certs", "getter", _ca_certs),
    # load_verify_locations / load_default_certs / set_default_verify_paths calls.
    _tracked("trust_calls"),
    # load_cert_chain calls: digests of the certificate and key files.
    _tracked("client_certificate"),
    _tracked("alpn_protocols"),
    _tracked("npn_protocols"),
    _tracked("ecdh_curve"),
)

@final
class KeySettings(NamedTuple):
    """The ``"attribute"`` entries of :data:`KEY_TABLE`, as read for one key (C getter values)."""

    verify_mode: int
    check_hostname: bool
    verify_flags: int
    minimum_version: int
    maximum_version: int
    options: int
    host_flags: int
    post_handshake_auth: bool


_ATTRIBUTE_GETTERS: tuple[Callable[[ssl.SSLContext], Any], ...] = tuple(
    getattr(_C, attr).__get__
    for attr in (
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
assert len(_ATTRIBUTE_GETTERS) == sum(e.source == "attribute" for e in KEY_TABLE)
assert KeySettings._fields == tuple(e.name for e in KEY_TABLE if e.source == "attribute")

#: Methods whose calls change what a handshake verifies or presents, and the
#: KEY_TABLE entry each records into (None: the entry is read back by a getter).
_RECORDS: dict[str, str | None] = {
    "load_cert_chain": "client_certificate",
    "load_verify_locations": "trust_calls",
    "load_default_certs": "trust_calls",
    "set_default_verify_paths": "trust_calls",
    "set_alpn_protocols": "alpn_protocols",
    "set_npn_protocols": "npn_protocols",
    "set_ciphers": None,
    "set_ecdh_curve": "ecdh_curve",
}
#: Entries that calls add to (every call counts, in order); the others are replaced.
_ADDING = frozenset({"client_certificate", "trust_calls"})

#: The tracked methods.
TRACKED_METHODS: tuple[str, ...] = tuple(_RECORDS)


def _file_digest(path: object) -> str:
    try:
        with open(os.fspath(path), "rb") as f:  # type: ignore[call-overload]
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, TypeError):
        return f"unreadable:{path!r}"


def _protocols(protocols: object) -> str:
    # The recorded form of an ALPN/NPN list: the same for a tracked call and for
    # a list read from a ClientHello; no list and an empty list are alike.
    names = list(protocols or ())  # type: ignore[call-overload]
    return repr(names) if names else ""


def _path_state(path: object) -> str:
    # A CA directory or file named by a trust call: its name, and (size, mtime)
    # of the entry itself (a directory's changes when files come or go).
    try:
        name = os.fsdecode(path)  # type: ignore[arg-type]
        st = os.stat(name)
    except (OSError, TypeError, ValueError):
        return f"{path!r}:absent"
    return f"{name}:{st.st_size}:{st.st_mtime_ns}"


def _trust_sources(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    # What a trust call of a born-tracked context reads from outside that the
    # table cannot see: a CA directory (loaded lazily, during verification),
    # or OpenSSL's default file and directory (named by SSL_CERT_FILE and
    # SSL_CERT_DIR at the time of the call). CA files and data are in the
    # table by content (trust_calls, ca_certs).
    if name == "load_verify_locations":
        capath = args[1] if len(args) > 1 else kwargs.get("capath")
        return "" if capath is None else "dir:" + _path_state(capath)
    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env, paths.openssl_cafile)
    capath = os.environ.get(paths.openssl_capath_env, paths.openssl_capath)
    return f"default:{_path_state(cafile)},{_path_state(capath)}"


#: See _ContextState.memo.
_Memo = tuple[tuple[Any, ...] | None, int, str, dict[tuple[str, int], SessionKey], bytes]


@final
class _ContextState:
    # What resume knows about one SSLContext. Guarded by _LOCK for updates.
    __slots__ = (
        "birth",
        "born_tracked",
        "certificate_checked",
        "generation",
        "getter",
        "hello_pending",
        "installed",
        "memo",
        "token",
        "tracked",
        "unknown",
        "warned",
    )

    def __init__(self) -> None:
        self.token = secrets.token_bytes(16)
        self.generation = 0
        # KEY_TABLE's tracked entries: the latest value of a replacing setter (no
        # secrets: ALPN names, curve names), or a running SHA-256 over every
        # adding call (certificate and CA file digests), so memory stays bounded
        # however often the context is changed. Loading certificate A, then B,
        # then A again gives a third state, never the first: which one OpenSSL
        # keeps per key type is not visible, so no change is assumed undone.
        self.tracked: dict[str, str] = {}
        # The latest digest and what it was computed from, as ONE tuple so
        # that a reader never pairs a snapshot with another snapshot's digest
        # (another thread may replace it at any time):
        # (attribute snapshot, generation, digest, keys, stable values).
        # ``keys`` memoises the keys built for this digest, by (peer as given,
        # port): most programs talk to few servers, so the per-connection key
        # is a dict hit.
        self.memo: _Memo = (None, -1, "", {}, b"")
        # Why resume cannot know this context's state (None: it can).
        self.unknown: str | None = None
        self.warned = False
        # The wrappers installed, and a getter that reads them back from the
        # context's __dict__ in one C call.
        self.installed: tuple[Any, ...] = ()
        self.getter: Callable[[dict[str, Any]], Any] | None = None
        # The ClientHello could not be written yet (a context that cannot
        # handshake as it is); tried again when the context changes.
        self.hello_pending = False
        # Made by create_client_context(): nothing was set before tracking.
        self.born_tracked = False
        # For a born-tracked context: a running SHA-256 over what its trust calls
        # read from outside (see "Context identity" at the top).
        self.birth = ""
        self.certificate_checked = False

    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        entry = _RECORDS[name]
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
            given = args[0] if args else kwargs.get("protocols", kwargs.get("alpn_protocols"))
            what = _protocols(given)
        else:
            what = repr(args) + repr(sorted(kwargs.items()))
        outside = (
            _trust_sources(name, args, kwargs)
            if self.born_tracked and entry == "trust_calls"
            else None
        )
        with _LOCK:
            if outside is not None:
                self.birth = hashlib.sha256(f"{self.birth}|{outside}".encode()).hexdigest()
            if entry in _ADDING:
                previous = self.tracked.get(entry, "")
                chained = f"{previous}|{name}:{what}".encode()
                self.tracked[entry] = hashlib.sha256(chained).hexdigest()
            elif entry is not None:
                if self.tracked.get(entry, "") == what:
                    # The same value again (httpcore sets its ALPN list before
                    # every connection): nothing changed, the key stays.
                    return
                self.tracked[entry] = what
            self.generation += 1

    def set_unknown(self, reason: str) -> None:
        with _LOCK:
            if self.unknown is None:
                self.unknown = reason
                self.generation += 1


_LOCK = threading.RLock()
_STATES: weakref.WeakKeyDictionary[ssl.SSLContext, _ContextState] = weakref.WeakKeyDictionary()


def _install_tracking(context: ssl.SSLContext, state: _ContextState) -> None:
    # Instance attributes shadow the class's methods. The wrappers hold a weak
    # reference to the context, so no reference cycle keeps it alive.
    replaced = [name for name in TRACKED_METHODS if name in vars(context)]
    if replaced:
        # Wrapping the user's replacement would trust it to do what it says;
        # overwriting it would change the program. Neither: untrackable.
        state.unknown = (
            f"its {replaced[0]}() had been replaced on the instance before resume first saw it"
        )
        return
    ref = weakref.ref(context)
    cls = type(context)
    names, wrappers = [], []
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
        names.append(name)
        wrappers.append(wrapper)
    state.installed = tuple(wrappers)
    state.getter = operator.itemgetter(*names)


# -- reading what was set before tracking ------------------------------------------------

#: TLS extension numbers: ALPN (RFC 7301) and NPN (draft-agl-tls-nextprotoneg).
_EXT_ALPN = 16
_EXT_NPN = 13172


def _parse_hello(data: bytes) -> tuple[tuple[str, ...], bool]:
    """Return (ALPN names, NPN offered) from the TLS records of a ClientHello.

    Raises:
        ValueError: *data* is not a well-formed ClientHello.
    """
    body = bytearray()
    i = 0
    while i < len(data):
        if data[i] != 22 or i + 5 > len(data):  # handshake records only
            raise ValueError("not a handshake record")
        length = int.from_bytes(data[i + 3 : i + 5], "big")
        body += data[i + 5 : i + 5 + length]
        i += 5 + length
    if len(body) < 4 or body[0] != 1:
        raise ValueError("not a ClientHello")
    msg = bytes(body[4 : 4 + int.from_bytes(body[1:4], "big")])

    def take(pos: int, size_len: int) -> tuple[bytes, int]:
        if pos + size_len > len(msg):
            raise ValueError("truncated ClientHello")
        size = int.from_bytes(msg[pos : pos + size_len], "big")
        end = pos + size_len + size
        if end > len(msg):
            raise ValueError("truncated ClientHello")
        return msg[pos + size_len : end], end

    pos = 2 + 32  # legacy_version, random
    _, pos = take(pos, 1)  # legacy_session_id
    _, pos = take(pos, 2)  # cipher_suites
    _, pos = take(pos, 1)  # legacy_compression_methods
    extensions, _ = take(pos, 2)
    alpn: tuple[str, ...] = ()
    npn = False
    pos = 0
    while pos < len(extensions):
        if pos + 4 > len(extensions):
            raise ValueError("truncated extension")
        kind = int.from_bytes(extensions[pos : pos + 2], "big")
        size = int.from_bytes(extensions[pos + 2 : pos + 4], "big")
        ext = extensions[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if kind == _EXT_ALPN:
            names, q = [], 2
            while q < len(ext):
                n = ext[q]
                names.append(ext[q + 1 : q + 1 + n].decode("ascii"))
                q += 1 + n
            alpn = tuple(names)
        elif kind == _EXT_NPN:
            npn = True
    return alpn, npn


def _read_hello(context: ssl.SSLContext, state: _ContextState) -> None:
    # Once per context, when first seen: let it write a ClientHello into a memory
    # BIO (no socket, nothing sent) and read the ALPN list set before tracking.
    # The C-level _wrap_bio is used so that no subclass override runs.
    # The SSL object is kept in a variable until the exception is handled: freed
    # while SSLWantReadError propagates, its C free hooks (a FreeWatch of the
    # binding) would run with that exception pending.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = None
    try:
        hello = _C._wrap_bio(context, incoming, outgoing, False, "resume.invalid")
        hello.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except (ssl.SSLError, ValueError, OSError):
        state.hello_pending = True  # cannot handshake as it is: try again on a change
        return
    finally:
        del hello
    state.hello_pending = False
    try:
        alpn, npn = _parse_hello(outgoing.read())
    except (ValueError, UnicodeDecodeError):
        state.unknown = "its ClientHello could not be read to find the ALPN list"
        return
    if npn and "npn_protocols" not in state.tracked:
        state.unknown = "an NPN list was set before resume first saw it (NPN lists are not visible)"
    if alpn and "alpn_protocols" not in state.tracked:
        state.tracked["alpn_protocols"] = _protocols(alpn)


def _state(context: ssl.SSLContext, *, new: bool = False) -> _ContextState:
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(context).__name__}")
    state = _STATES.get(context)
    if state is None:
        if _C.protocol.__get__(context) == ssl.PROTOCOL_TLS_SERVER:
            raise ValueError(
                "ssl_context is a server-side context (PROTOCOL_TLS_SERVER); a client "
                "needs resume.create_client_context() or ssl.create_default_context()"
            )
        with _LOCK:
            state = _STATES.get(context)
            if state is None:
                state = _ContextState()
                _install_tracking(context, state)
                state.born_tracked = new
                if not new and state.unknown is None:
                    _read_hello(context, state)
                _STATES[context] = state
    return state


def track_new_context(context: ssl.SSLContext) -> None:
    """Start tracking *context*, which its caller has just created and not changed.

    Such a context is "born tracked": everything set on it afterwards is in its
    key, so it shares keys (and sessions) with other born-tracked contexts
    configured alike, where the OpenSSL binding is available.
    """
    _state(context, new=True)


# -- the digests ---------------------------------------------------------------------------


def _snapshot(context: ssl.SSLContext) -> tuple[Any, ...]:
    return tuple([getter(context) for getter in _ATTRIBUTE_GETTERS])


def _values(context: ssl.SSLContext, state: _ContextState, snap: tuple[Any, ...]) -> bytes:
    # KEY_TABLE's values, as the bytes both digests hash.
    attributes = iter(snap)
    values = [
        (e.name, next(attributes) if e.source == "attribute" else e.read(context, state))
        for e in KEY_TABLE
    ]
    return repr(values).encode()


_Current = tuple[str, dict[tuple[str, int], SessionKey], "_ContextState", tuple[Any, ...]]


def _sessions_cross_contexts() -> bool:
    # Can a session be offered on another SSL_CTX? Only through the binding's
    # SSL_set_session() (ssl's setter refuses). Probes the binding once per
    # process, when the first born-tracked context's digest is computed; the
    # policy probes it at the first connection's close anyway.
    from .._openssl.binding import available

    return available() is not None


def tracked_from_birth(context: ssl.SSLContext) -> bool:
    """True if resume tracked *context* from birth (:func:`track_new_context`).

    Such contexts have no per-context token: two of them share keys when
    their settings are equal, so a session made on one may be offered on
    another (the key decides whether they agree; this says only that the
    context is of a kind whose keys can agree with another's). Native
    sessions (resume._openssl.native) record it when captured and check it
    before ``SSL_set_session()`` on another context. A fixed fact of the
    context: it never changes.
    """
    state = _STATES.get(context)
    return state is not None and state.born_tracked


def birth_record(context: ssl.SSLContext) -> str | None:
    """What the trust calls of a context tracked from birth read from outside, or None.

    A digest of the CA directories and default verify paths (as
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` named them) that its trust calls
    named, with their size and modification time then (``birth`` of the
    context's state: see "Context identity" at the top). None for a context
    not tracked from birth. A store link puts it in the label of the contexts
    it persists on its own (resume._stores.link), since KEY_TABLE has the
    names of CA directories but not what they hold. It changes with every
    trust call, and so does the context's digest.
    """
    state = _STATES.get(context)
    if state is None or not state.born_tracked:
        return None
    return state.birth


def _current(context: ssl.SSLContext) -> _Current:
    # The digest of the context's settings now, the key memo that goes with it,
    # the state (whose ``unknown`` says whether the digest can be trusted), and
    # the attribute snapshot the digest was computed from (what the policy
    # compares with the SSL object's own settings).
    state = _state(context)
    if state.unknown is None and state.getter is not None:
        try:
            intact = state.getter(context.__dict__) == state.installed
        except KeyError:
            intact = False
        if not intact:
            state.set_unknown(
                "one of its tracked methods (load_cert_chain, set_alpn_protocols, ...) was "
                "removed or replaced on the instance, so later changes would go unseen"
            )
    snap = _snapshot(context)
    generation = state.generation
    memo = state.memo
    if snap == memo[0] and generation == memo[1]:
        return memo[2], memo[3], state, snap
    with _LOCK:
        if state.hello_pending and state.unknown is None:
            _read_hello(context, state)
            generation = state.generation
    stable = _values(context, state, snap)
    if state.unknown is not None:
        digest = hashlib.sha256(b"resume untrackable context\0" + state.token).hexdigest()[:32]
    elif state.born_tracked and _sessions_cross_contexts():
        # Known from birth: the recipe instead of the token (see the top).
        birth = f"resume key v3 born\0{state.birth}\0".encode()
        digest = hashlib.sha256(birth + stable).hexdigest()[:32]
    else:
        digest = hashlib.sha256(b"resume key v2\0" + state.token + stable).hexdigest()[:32]
    keys: dict[tuple[str, int], SessionKey] = {}
    with _LOCK:
        if state.generation == generation:
            state.memo = (snap, generation, digest, keys, stable)
    return digest, keys, state, snap


def _warn(state: _ContextState, stacklevel: int) -> None:
    if state.warned:
        return
    state.warned = True
    warnings.warn(
        f"resume cannot know the full state of this SSLContext: {state.unknown}. Its "
        "connections will neither resume nor store sessions. Create client contexts with "
        "resume.create_client_context() and configure them (load_cert_chain, "
        "set_alpn_protocols, ...) through their own methods.",
        UntrackedContextWarning,
        stacklevel=stacklevel + 1,
    )


def context_digest(context: ssl.SSLContext) -> str:
    """Return the digest of *context*'s client settings (32 hex digits).

    Equal digests mean the same entries of :data:`KEY_TABLE`, and the same
    ``ssl.SSLContext`` object, or two contexts tracked from birth
    (:func:`track_new_context`) whose trust calls read the same files (see
    "Context identity" in :mod:`resume._core.key`). The first call on a context installs the
    tracking wrappers described in :mod:`resume._core.key` and computes the digest;
    later calls cost a few C getter calls unless a setting changed.

    Raises:
        TypeError: *context* is not an :class:`ssl.SSLContext`.
        ValueError: *context* is a server-side context.
    """
    return _current(context)[0]


def still_current(context: ssl.SSLContext, digest: str) -> bool:
    """True if *context* still has the settings *digest* was computed from, and is trackable."""
    now, _, state, _ = _current(context)
    return now == digest and state.unknown is None


def _check_certificate(context: ssl.SSLContext, state: _ContextState) -> None:
    # Was a client certificate loaded before tracking began? See the top.
    if state.born_tracked or state.certificate_checked or state.unknown is not None:
        return
    from .._openssl.binding import binding
    from .errors import UnsupportedError

    if "client_certificate" in state.tracked:
        reason = (
            "a client certificate was loaded after resume first saw it, and whether "
            "one was loaded before cannot be told apart any more"
        )
    else:
        try:
            held = binding().context_has_certificate(context)
        except UnsupportedError as exc:
            reason = f"whether a client certificate was loaded before cannot be checked ({exc})"
        else:
            if not held:
                state.certificate_checked = True
                return
            reason = "a client certificate was loaded before resume first saw it"
    state.set_unknown(reason)


def persisted_digests(context: ssl.SSLContext, label: str) -> tuple[str, str | None]:
    """Return (in-process digest, persisted digest) of *context* now.

    The persisted digest hashes the same :data:`KEY_TABLE` values as the
    in-process one, without the context's identity, plus *label*. It is
    None when *context* is untrackable (or becomes so now: a client
    certificate it held before tracking began); the one
    :class:`~resume.UntrackedContextWarning` is then emitted.
    """
    state = _state(context)
    _check_certificate(context, state)
    digest, _, state, snap = _current(context)
    if state.unknown is not None:
        _warn(state, stacklevel=3)
        return digest, None
    memo = state.memo
    # Another thread may have replaced the memo meanwhile: then recompute.
    stable = memo[4] if memo[2] == digest else _values(context, state, snap)
    h = hashlib.sha256(b"resume store context v2\0")
    h.update(label.encode("utf-8", "surrogatepass") + b"\0")
    h.update(stable)
    return digest, h.hexdigest()[:32]


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


def connection_key(context: ssl.SSLContext, peer: str, port: int) -> tuple[SessionKey, bool]:
    """Return the key of a connection to *peer*:*port* with *context*, and whether to trust it.

    False means *context* is untrackable: its connections must neither offer
    nor store sessions (the one :class:`~resume.UntrackedContextWarning` is
    emitted here the first time).

    Raises:
        TypeError, ValueError: as :func:`make_key`.
    """
    key, trusted, _ = connection_key_and_settings(context, peer, port)
    return key, trusted


def connection_key_and_settings(
    context: ssl.SSLContext, peer: str, port: int
) -> tuple[SessionKey, bool, KeySettings]:
    """:func:`connection_key`, with the settings its digest was computed from.

    The settings are the ``"attribute"`` entries of :data:`KEY_TABLE` (verify
    mode, hostname check, verify flags, ...) exactly as hashed into the key's
    digest: the policy compares them with what the SSL object made next will
    really do (see ``resume._core.policy``).
    """
    if type(port) is not int or not 0 < port <= PORT_MAX:
        port = check_port(port)
    digest, keys, state, snap = _current(context)
    key = keys.get((peer, port))
    if key is None:
        key = SessionKey(normalize_peer(peer), port, digest)
        if len(keys) < _KEYS_PER_CONTEXT:
            keys[(peer, port)] = key
    settings = KeySettings(*snap)
    if state.unknown is not None:
        _warn(state, stacklevel=4)
        return key, False, settings
    return key, True, settings


def make_key(context: ssl.SSLContext, peer: str, port: int) -> SessionKey:
    """Build the :class:`SessionKey` of a connection to *peer*:*port* with *context*.

    The key of the settings *now*: the adapters call it in the call that
    creates the SSL object. A key computed earlier (to prefetch from a store,
    say) is a hint only.

    Raises:
        TypeError: a wrong type for an argument.
        ValueError: an empty or malformed *peer*, a *port* outside 1-65535, or a
            server-side *context*.
    """
    return connection_key(context, peer, port)[0]


SessionKey.__module__ = "resume"
