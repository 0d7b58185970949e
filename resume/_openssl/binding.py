# Theory of operation: the guarded binding to the OpenSSL behind ``ssl``
# =====================================================================
#
# The standard library's :mod:`ssl` exposes neither session export
# (``i2d_SSL_SESSION``) nor ticket-key control. Both live in the very libssl
# that ``_ssl`` is linked against, so this module loads that library through
# the extension itself (``ctypes.CDLL(_ssl.__file__)``: ``dlsym`` on the
# extension's handle searches the extension and its dependencies, i.e. the
# libssl/libcrypto the interpreter really uses, never another copy on disk).
#
# Every unsafe line of ``resume`` is in this file. Nothing else imports ctypes.
#
# Finding the C pointers
# ----------------------
# CPython's ``_ssl`` objects keep their C pointer right after the object header
# (``object.__basicsize__`` bytes: 16 on a normal 64-bit build)::
#
#     PySSLContext  { PyObject_HEAD; SSL_CTX *ctx; ... }
#     PySSLSession  { PyObject_HEAD; SSL_SESSION *session; PySSLContext *ctx; }
#     PySSLSocket   { PyObject_HEAD; PyObject *Socket; SSL *ssl; PySSLContext *ctx; ...}
#
# That layout is private and may change. So before the first use, the *probe*
# (``_probe``) makes a real TLS 1.2 handshake between two memory-BIO
# ``SSLObject``s (no sockets) and checks the layout on those live objects, in an
# order that never dereferences a pointer before it is confirmed:
#
#   0. the build is one whose layout has been read in its sources and tested
#      (``_check_build``): CPython 3.10 to 3.13 with the GIL (a free-threaded
#      build changes object headers and lets another thread free an object
#      while we read it), on OpenSSL 1.1.1 or 3.x (not LibreSSL or BoringSSL,
#      whose ``SSL_SESSION`` accessors differ). Anything else is refused before
#      the library is even loaded, however well the later steps might pass: a
#      layout that happens to check out on one probe is not a layout we know;
#   1. every symbol resolves, and ``OpenSSL_version_num()`` equals
#      ``ssl.OPENSSL_VERSION_NUMBER`` (the library found is the one ``ssl`` uses);
#   2. the ``__basicsize__`` of each type covers the fields read;
#   3. back-pointers that must equal Python-visible ids, read without following
#      any pointer: the session's and the SSL object's ``ctx`` field are
#      ``id(context)``; the SSL object's ``Socket`` field is NULL for a BIO pair;
#   4. only then C is asked about the pointers, and each answer is compared with
#      a second, independent source: ``SSL_get_SSL_CTX(ssl)`` equals the
#      context's pointer, ``SSL_CTX_get_options()`` equals ``context.options``
#      (twice, with different values), ``SSL_get_session(ssl)`` is the
#      session's pointer (or, on a build that copies sessions, has its id),
#      ``SSL_SESSION_get_id/time/timeout`` equal ``SSLSession.id/time/timeout``,
#      ``SSL_get1_session(ssl)`` returns a session with that id (its extra
#      reference is dropped at once), and an ``i2d``/``d2i``/``i2d`` round trip
#      is byte-identical.
#
# Any mismatch or missing symbol is a *refusal*: :class:`~resume.UnsupportedError`
# with the reason, remembered for the life of the process (the probe never runs
# twice), while the rest of ``resume`` keeps working. A wrong guess is thus
# caught by step 3 (pure memory reads inside the object) before step 4 ever
# follows a pointer.
#
# After the probe, each call re-checks the cheap, dereference-free facts of the
# object it gets (the ``ctx`` back-pointer of an SSL object) and the session
# id/time of an :class:`ssl.SSLSession`, so a foreign object cannot slip in.
#
# The OpenSSL error queue is per thread and ``ssl`` reads it after its own
# failures: every failure path here drains it (``ERR_get_error``) into the
# message, so no stale error leaks into a later ``ssl`` exception.
#
# Early data
# ----------
# TLS 1.3 0-RTT (SSL_read_early_data(3)) is reached through the same SSL*:
# a client calls ``write_early_data`` after the session is set and before
# ``SSLObject.do_handshake()`` (OpenSSL then writes the ClientHello and the
# early records into the outgoing BIO); a server loops ``read_early_data``
# until FINISH before its first ordinary read. Both map SSL_get_error() onto
# ssl's own exceptions (SSLWantReadError, ...), so the callers' retry loops
# are the ones they already have. The replay gate is one process-wide
# ``SSL_CTX_set_allow_early_data_cb`` thunk routed by SSL_CTX* to a Python
# callable, kept alive for the life of the process like the other thunks;
# no route or any exception rejects the early data, never the handshake.
#
# Ticket-key callback
# -------------------
# ``SSL_CTX_set_tlsext_ticket_key_evp_cb()`` (OpenSSL 3.0) installs a C
# function called for every ticket the server issues (enc=1) or receives
# (enc=0). Ours is a ctypes ``CFUNCTYPE`` thunk that asks a Python object for
# the key (see resume._ticketkeys.ring), then calls ``EVP_EncryptInit_ex`` /
# ``EVP_DecryptInit_ex`` (AES-256-CBC) and ``EVP_MAC_CTX_set_params`` (HMAC
# key and digest, as an ``OSSL_PARAM`` array built here). The thunk is kept
# alive for the life of the process (a context may be used by C after its
# Python object is gone, e.g. through ``SSL_set_SSL_CTX``), and no exception
# ever crosses into C: it is logged (never key bytes) and the callback returns
# 0 ("no ticket" / "ticket not usable": the handshake goes on, in full).
# On OpenSSL 1.1.1, which lacks the EVP flavour, the same thunk is installed
# with ``SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, cb)`` and
# keys its ``HMAC_CTX`` with ``HMAC_Init_ex``; both flavours make identical
# tickets, so a mixed fleet shares them.
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import ssl
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, NamedTuple, Protocol

from .._compat import ssl_extension_path, ssl_object_inner
from .._core.errors import SessionDecodeError, UnsupportedError

__all__ = [
    "Binding",
    "ConnectionSettings",
    "SessionDecodeError",
    "available",
    "TicketKeyLookup",
    "binding",
    "refusal",
]

log = logging.getLogger("resume.openssl")

#: The size of the object header that precedes the C fields of the ``_ssl``
#: objects. The probe's layout checks all start from here; a test shifts it to
#: simulate a build whose layout is not the one expected.
_HEADER_SIZE: int = object.__basicsize__
_PTR: Final = ctypes.sizeof(ctypes.c_void_p)

#: The largest DER session accepted. A session holds a master secret, a ticket
#: (at most 65,535 bytes on the wire) and the peer's leaf certificate; 256 KiB
#: is far beyond any real one and keeps hostile input from costing much.
MAX_DER_SIZE: Final = 256 * 1024

_TLS_VERSIONS: Final = frozenset({0x0301, 0x0302, 0x0303, 0x0304})

# Constants from the OpenSSL 3.0 headers.
_OSSL_PARAM_UTF8_STRING: Final = 4
_OSSL_PARAM_OCTET_STRING: Final = 5
_OSSL_PARAM_UNMODIFIED: Final = ctypes.c_size_t(-1).value
_CRYPTO_EX_INDEX_SSL_SESSION: Final = 2
_TICKET_NAME_LEN: Final = 16
_TICKET_IV_LEN: Final = 16  # EVP_MAX_IV_LENGTH; AES-CBC uses 16
_TICKET_AES_LEN: Final = 32
_TICKET_HMAC_LEN: Final = 32




class _OSSLParam(ctypes.Structure):
    _fields_ = (
        ("key", ctypes.c_char_p),
        ("data_type", ctypes.c_uint),
        ("data", ctypes.c_void_p),
        ("data_size", ctypes.c_size_t),
        ("return_size", ctypes.c_size_t),
    )


_TICKET_CB = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # SSL *s
    ctypes.c_void_p,  # unsigned char key_name[16]
    ctypes.c_void_p,  # unsigned char iv[EVP_MAX_IV_LENGTH]
    ctypes.c_void_p,  # EVP_CIPHER_CTX *ctx
    ctypes.c_void_p,  # EVP_MAC_CTX *hctx
    ctypes.c_int,  # int enc
)

_EX_FREE_CB = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,  # void *parent
    ctypes.c_void_p,  # void *ptr
    ctypes.c_void_p,  # CRYPTO_EX_DATA *ad
    ctypes.c_int,  # int idx
    ctypes.c_long,  # long argl
    ctypes.c_void_p,  # void *argp
)

#: (name, aes_key, hmac_key) of the key to encrypt a new ticket with, or None.
EncryptKey = tuple[bytes, bytes, bytes]


class TicketKeyLookup(Protocol):
    """What the ticket-key callback asks; :class:`resume.ticketkeys.TicketKeyRing` does it."""

    def encryption_key(self) -> EncryptKey | None:
        """Return (name, aes_key, hmac_key) to encrypt a new ticket with, or None for none."""

    def decryption_key(self, name: bytes) -> tuple[bytes, bytes, bool] | None:
        """Return (aes_key, hmac_key, renew) for the key named *name*, or None."""


# (symbol, restype, argtypes); the binding refuses if any is missing.
_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("OpenSSL_version_num", ctypes.c_ulong, ()),
    ("ERR_get_error", ctypes.c_ulong, ()),
    ("ERR_clear_error", None, ()),
    ("ERR_error_string_n", None, (ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t)),
    ("i2d_SSL_SESSION", ctypes.c_int, (ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))),
    (
        "d2i_SSL_SESSION",
        ctypes.c_void_p,
        (ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_long),
    ),
    ("SSL_SESSION_free", None, (ctypes.c_void_p,)),
    ("SSL_SESSION_up_ref", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_SESSION_dup", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_SESSION_get_id", ctypes.c_void_p, (ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint))),
    ("SSL_SESSION_get_time", ctypes.c_long, (ctypes.c_void_p,)),
    ("SSL_SESSION_get_timeout", ctypes.c_long, (ctypes.c_void_p,)),
    ("SSL_SESSION_get_ticket_lifetime_hint", ctypes.c_ulong, (ctypes.c_void_p,)),
    ("SSL_SESSION_has_ticket", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_SESSION_is_resumable", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_SESSION_get_protocol_version", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_SESSION_get0_cipher", ctypes.c_void_p, (ctypes.c_void_p,)),
    (
        "SSL_SESSION_get_master_key",
        ctypes.c_size_t,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t),
    ),
    ("SSL_SESSION_set_ex_data", ctypes.c_int, (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)),
    ("SSL_get_session", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_get1_session", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_set_session", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
    ("SSL_get_SSL_CTX", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_is_server", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_is_init_finished", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_in_before", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_CTX_get_options", ctypes.c_uint64, (ctypes.c_void_p,)),
    ("SSL_CTX_get0_certificate", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_CTX_get_timeout", ctypes.c_long, (ctypes.c_void_p,)),
    ("SSL_CTX_set_timeout", ctypes.c_long, (ctypes.c_void_p, ctypes.c_long)),
    (
        "CRYPTO_get_ex_new_index",
        ctypes.c_int,
        (ctypes.c_int, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
         ctypes.c_void_p),
    ),
    ("CRYPTO_free_ex_index", ctypes.c_int, (ctypes.c_int, ctypes.c_int)),
)

# Needed only for ticket keys: the ciphers, then one of two callback flavours.
_TICKET_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("EVP_aes_256_cbc", ctypes.c_void_p, ()),
    (
        "EVP_EncryptInit_ex",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p),
    ),
    (
        "EVP_DecryptInit_ex",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p),
    ),
)
# OpenSSL 3.0: the callback gets an EVP_MAC_CTX (HMAC set up through OSSL_PARAMs).
_TICKET_EVP_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("SSL_CTX_set_tlsext_ticket_key_evp_cb", ctypes.c_int, (ctypes.c_void_p, _TICKET_CB)),
    ("EVP_MAC_CTX_set_params", ctypes.c_int, (ctypes.c_void_p, ctypes.POINTER(_OSSLParam))),
)
# OpenSSL 1.1.1 (deprecated in 3.0): the callback gets an HMAC_CTX, installed with
# SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, cb).
_TICKET_LEGACY_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("SSL_CTX_callback_ctrl", ctypes.c_long, (ctypes.c_void_p, ctypes.c_int, _TICKET_CB)),
    (
        "HMAC_Init_ex",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p),
    ),
    ("EVP_sha256", ctypes.c_void_p, ()),
)
_SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB: Final = 72

# Needed only to read what an SSL object will verify (ConnectionSettings); a
# build without them keeps the rest of the binding and the policy falls back to
# reading the context (see resume._core.policy).
_SETTINGS_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("SSL_get_verify_mode", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_get0_param", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("SSL_get_options", ctypes.c_uint64, (ctypes.c_void_p,)),
    ("SSL_ctrl", ctypes.c_long, (ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p)),
    ("X509_VERIFY_PARAM_get_flags", ctypes.c_ulong, (ctypes.c_void_p,)),
    ("X509_VERIFY_PARAM_get_hostflags", ctypes.c_uint, (ctypes.c_void_p,)),
    ("X509_VERIFY_PARAM_get0_host", ctypes.c_char_p, (ctypes.c_void_p, ctypes.c_int)),
    ("X509_VERIFY_PARAM_get1_ip_asc", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("CRYPTO_free", None, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)),
)
# Needed only for capturing sessions as OpenSSL makes them (Binding.watch_new_sessions).
_NEW_SESSION_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_NEW_SESSION_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    ("SSL_CTX_sess_set_new_cb", None, (ctypes.c_void_p, _NEW_SESSION_CB)),
    ("SSL_CTX_sess_get_new_cb", ctypes.c_void_p, (ctypes.c_void_p,)),
    (
        "SSL_CTX_ctrl",
        ctypes.c_long,
        (ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p),
    ),
    (
        "SSL_SESSION_get0_ticket",
        None,
        (ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)),
    ),
)
# Needed only for TLS 1.3 early data (0-RTT; see "Early data" above).
_ALLOW_EARLY_DATA_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_EARLY_DATA_PROTOTYPES: Final[tuple[tuple[str, Any, tuple[Any, ...]], ...]] = (
    (
        "SSL_write_early_data",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)),
    ),
    (
        "SSL_read_early_data",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)),
    ),
    ("SSL_get_early_data_status", ctypes.c_int, (ctypes.c_void_p,)),
    ("SSL_get_error", ctypes.c_int, (ctypes.c_void_p, ctypes.c_int)),
    ("SSL_SESSION_get_max_early_data", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("SSL_CTX_set_max_early_data", ctypes.c_int, (ctypes.c_void_p, ctypes.c_uint32)),
    ("SSL_CTX_get_max_early_data", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("SSL_CTX_set_recv_max_early_data", ctypes.c_int, (ctypes.c_void_p, ctypes.c_uint32)),
    ("SSL_CTX_get_recv_max_early_data", ctypes.c_uint32, (ctypes.c_void_p,)),
    (
        "SSL_CTX_set_allow_early_data_cb",
        None,
        (ctypes.c_void_p, _ALLOW_EARLY_DATA_CB, ctypes.c_void_p),
    ),
    ("SSL_get_client_random", ctypes.c_size_t, (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)),
)
#: ``SSL_get_early_data_status()`` values.
EARLY_DATA_NOT_SENT: Final = 0
EARLY_DATA_REJECTED: Final = 1
EARLY_DATA_ACCEPTED: Final = 2
#: ``SSL_read_early_data()`` values.
READ_EARLY_DATA_ERROR: Final = 0
READ_EARLY_DATA_SUCCESS: Final = 1
READ_EARLY_DATA_FINISH: Final = 2
#: ``SSL_OP_NO_ANTI_REPLAY``: turns off OpenSSL's own (per-process, stateful
#: ticket) replay protection; set only together with an allow-early-data gate.
OP_NO_ANTI_REPLAY: Final = 0x01000000
_SSL_ERROR_SSL: Final = 1
_SSL_ERROR_WANT_READ: Final = 2
_SSL_ERROR_WANT_WRITE: Final = 3
_SSL_ERROR_SYSCALL: Final = 5
_SSL_ERROR_ZERO_RETURN: Final = 6
_SSL_CTRL_SET_SESS_CACHE_MODE: Final = 44
_SSL_CTRL_GET_SESS_CACHE_MODE: Final = 45
_SSL_SESS_CACHE_CLIENT: Final = 0x0001
_SSL_SESS_CACHE_NO_INTERNAL_STORE: Final = 0x0200
_SSL_CTRL_GET_MIN_PROTO_VERSION: Final = 130
_SSL_CTRL_GET_MAX_PROTO_VERSION: Final = 131


class ConnectionSettings(NamedTuple):
    """What an SSL object will verify, read from its ``SSL*`` (not from its context).

    ``SSL_new()`` copies these from the ``SSL_CTX`` with the GIL released, so
    they are the truth about one connection even while another thread changes
    the context.
    """

    #: ``SSL_get_verify_mode()``: SSL_VERIFY_* bits (0 none, 1 peer, 3 peer + fail).
    verify_mode: int
    #: ``X509_VERIFY_PARAM_get_flags()`` of ``SSL_get0_param()``.
    verify_flags: int
    #: ``X509_VERIFY_PARAM_get_hostflags()``.
    host_flags: int
    #: ``X509_VERIFY_PARAM_get0_host(param, 0)``: the name checked, or None.
    host: str | None
    #: ``X509_VERIFY_PARAM_get1_ip_asc()``: the address checked, or None.
    ip: str | None
    #: ``SSL_get_options()``.
    options: int
    #: ``SSL_get_min_proto_version()`` / ``SSL_get_max_proto_version()`` (0: no bound).
    minimum_version: int
    maximum_version: int


def _read_ptr(obj: object, offset: int) -> int:
    # Read one pointer-sized field inside *obj* (never outside its basicsize).
    if offset < 0 or offset + _PTR > type(obj).__basicsize__:
        raise UnsupportedError(
            f"the {type(obj).__name__} object is {type(obj).__basicsize__} bytes, too small "
            f"for the field at offset {offset}: unknown _ssl object layout"
        )
    return ctypes.c_void_p.from_address(id(obj) + offset).value or 0


def _ssl_socket_of(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> Any:
    # The _ssl._SSLSocket behind an SSLObject / SSLSocket.
    inner = ssl_object_inner(ssl_object)
    if inner is None:
        if isinstance(ssl_object, ssl.SSLSocket):
            raise ValueError(
                "this SSLSocket is not connected yet: wrap a connected socket with "
                "do_handshake_on_connect=False, offer the session, then do_handshake()"
            )
        raise TypeError(
            f"expected an ssl.SSLObject or ssl.SSLSocket, got {type(ssl_object).__name__}"
        )
    return inner


class Binding:
    """The probed library: every call into libssl/libcrypto goes through here.

    Get the process-wide instance with :func:`binding`; it raises
    :class:`~resume.UnsupportedError` if the probe refused this build.
    """

    def __init__(
        self,
        lib: ctypes.CDLL,
        ticket_error: str | None,
        ticket_modes: tuple[str, ...],
        settings_error: str | None = None,
    ) -> None:
        self._lib = lib
        self.ticket_error = ticket_error
        #: Why :meth:`connection_settings` is unavailable, or None if it works.
        self.settings_error = settings_error
        #: Why :meth:`watch_new_sessions` is unavailable, or None if it works.
        self.new_session_error: str | None = None
        #: Why the early-data calls (``write_early_data`` and the rest) are
        #: unavailable, or None if they work.
        self.early_data_error: str | None = None
        #: The ticket-key callback flavours this OpenSSL offers, preferred first:
        #: "evp" (SSL_CTX_set_tlsext_ticket_key_evp_cb, 3.0) and "legacy"
        #: (SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB with an HMAC_CTX, 1.1.1).
        self.ticket_modes = ticket_modes
        self._keepalive: list[Any] = []
        self._ticket_params_digest = ctypes.create_string_buffer(b"SHA256")

    # -- errors --------------------------------------------------------------------

    def drain_errors(self) -> str:
        """Empty this thread's OpenSSL error queue; return its text (for messages)."""
        lib = self._lib
        texts = []
        buf = ctypes.create_string_buffer(256)
        for _ in range(16):
            code = lib.ERR_get_error()
            if not code:
                break
            lib.ERR_error_string_n(code, buf, len(buf))
            texts.append(buf.value.decode("ascii", "replace"))
        lib.ERR_clear_error()
        return "; ".join(texts)

    # -- pointers of Python objects -----------------------------------------------

    def ctx_ptr(self, context: ssl.SSLContext) -> int:
        """The ``SSL_CTX*`` of *context* (checked against ``SSL_CTX_get_options``)."""
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"expected an ssl.SSLContext, got {type(context).__name__}")
        ptr = _read_ptr(context, _HEADER_SIZE)
        if not ptr or self._lib.SSL_CTX_get_options(ptr) != context.options:
            raise UnsupportedError("the SSL_CTX pointer of this SSLContext does not check out")
        return ptr

    def ssl_ptr(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int:
        """The ``SSL*`` behind *ssl_object*, validated before it is used.

        The ``ctx`` field next to it must be ``id()`` of the object's context
        (a memory read, no dereference), and ``SSL_get_SSL_CTX()`` must return the
        context's own ``SSL_CTX*``.
        """
        inner = _ssl_socket_of(ssl_object)
        context = inner.context
        if _read_ptr(inner, _HEADER_SIZE + 2 * _PTR) != id(context):
            raise UnsupportedError("the SSL object's context field does not check out")
        ptr = _read_ptr(inner, _HEADER_SIZE + _PTR)
        if not ptr or self._lib.SSL_get_SSL_CTX(ptr) != self.ctx_ptr(context):
            raise UnsupportedError("the SSL pointer of this SSL object does not check out")
        return ptr

    def session_ptr(self, session: ssl.SSLSession) -> int:
        """The ``SSL_SESSION*`` of *session* (borrowed: valid while *session* lives).

        Checked by comparing ``SSL_SESSION_get_id()`` and ``SSL_SESSION_get_time()``
        with ``session.id`` and ``session.time``.
        """
        if not isinstance(session, ssl.SSLSession):
            raise TypeError(f"expected an ssl.SSLSession, got {type(session).__name__}")
        ptr = _read_ptr(session, _HEADER_SIZE)
        if not ptr or self.session_id(ptr) != session.id or self.session_time(ptr) != session.time:
            raise UnsupportedError("the SSL_SESSION pointer of this SSLSession does not check out")
        return ptr

    # -- SSL_CTX ----------------------------------------------------------------------

    def context_has_certificate(self, context: ssl.SSLContext) -> bool:
        """``SSL_CTX_get0_certificate() != NULL``: *context* holds a certificate of its own."""
        return bool(self._lib.SSL_CTX_get0_certificate(self.ctx_ptr(context)))

    def context_timeout(self, context: ssl.SSLContext) -> int:
        """``SSL_CTX_get_timeout()``: the session lifetime of *context*, in seconds."""
        return int(self._lib.SSL_CTX_get_timeout(self.ctx_ptr(context)))

    def set_context_timeout(self, context: ssl.SSLContext, seconds: int) -> int:
        """``SSL_CTX_set_timeout()``: set the session lifetime; return the previous one.

        On a server it bounds the internal session cache and is the lifetime hint
        of the tickets it issues.

        Raises:
            ValueError: *seconds* is not an int between 1 and 2**31 - 1.
        """
        value: object = seconds
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
            raise ValueError(f"a session timeout is 1 to 2**31-1 whole seconds, got {seconds!r}")
        return int(self._lib.SSL_CTX_set_timeout(self.ctx_ptr(context), value))

    # -- SSL_SESSION ----------------------------------------------------------------

    def session_id(self, ptr: int) -> bytes:
        """``SSL_SESSION_get_id()``."""
        length = ctypes.c_uint(0)
        data = self._lib.SSL_SESSION_get_id(ptr, ctypes.byref(length))
        if not data or length.value == 0:
            return b""
        return ctypes.string_at(data, min(length.value, 32))

    def session_time(self, ptr: int) -> int:
        """``SSL_SESSION_get_time()``."""
        return int(self._lib.SSL_SESSION_get_time(ptr))

    def session_timeout(self, ptr: int) -> int:
        """``SSL_SESSION_get_timeout()``."""
        return int(self._lib.SSL_SESSION_get_timeout(ptr))

    def session_ticket_lifetime_hint(self, ptr: int) -> int:
        """``SSL_SESSION_get_ticket_lifetime_hint()``."""
        return int(self._lib.SSL_SESSION_get_ticket_lifetime_hint(ptr))

    def session_has_ticket(self, ptr: int) -> bool:
        """``SSL_SESSION_has_ticket()``."""
        return bool(self._lib.SSL_SESSION_has_ticket(ptr))

    def session_protocol_version(self, ptr: int) -> int:
        """``SSL_SESSION_get_protocol_version()`` (0x0303 for TLS 1.2, 0x0304 for 1.3)."""
        return int(self._lib.SSL_SESSION_get_protocol_version(ptr))

    def session_free(self, ptr: int) -> None:
        """``SSL_SESSION_free()``: drop one C reference."""
        self._lib.SSL_SESSION_free(ptr)

    def session_up_ref(self, ptr: int) -> None:
        """``SSL_SESSION_up_ref()``: add one C reference."""
        if self._lib.SSL_SESSION_up_ref(ptr) != 1:  # pragma: no cover - cannot fail in 3.0
            raise MemoryError("SSL_SESSION_up_ref() failed")

    def session_dup(self, ptr: int) -> int:
        """``SSL_SESSION_dup()``: a deep copy with one reference."""
        copy = self._lib.SSL_SESSION_dup(ptr)
        if not copy:  # pragma: no cover - out of memory
            raise MemoryError(f"SSL_SESSION_dup() failed: {self.drain_errors()}")
        return int(copy)

    def i2d(self, ptr: int) -> bytes:
        """``i2d_SSL_SESSION()``: the DER encoding of the session at *ptr*.

        Raises:
            ValueError: OpenSSL reports the session as not valid (length 0).
        """
        lib = self._lib
        size = lib.i2d_SSL_SESSION(ptr, None)
        if size <= 0:
            raise ValueError(f"i2d_SSL_SESSION() cannot encode this session: {self.drain_errors()}")
        buf = ctypes.create_string_buffer(size)
        cursor = ctypes.c_void_p(ctypes.addressof(buf))
        written = lib.i2d_SSL_SESSION(ptr, ctypes.byref(cursor))
        try:
            if written != size:  # pragma: no cover - OpenSSL contract
                raise ValueError(f"i2d_SSL_SESSION() wrote {written} bytes, announced {size}")
            return buf.raw[:size]
        finally:
            ctypes.memset(buf, 0, size)

    def d2i(self, data: bytes | bytearray | memoryview) -> int:
        """``d2i_SSL_SESSION()`` with every check: a new ``SSL_SESSION*`` (one reference).

        Raises:
            TypeError: *data* is not bytes-like.
            SessionDecodeError: the bytes are not exactly one sane session.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"from_der() needs bytes, got {type(data).__name__}")
        raw = bytes(data)
        size = len(raw)
        if size == 0:
            raise SessionDecodeError("cannot decode a TLS session from empty input")
        if size > MAX_DER_SIZE:
            raise SessionDecodeError(
                f"{size} bytes is too long for a DER TLS session (the limit is {MAX_DER_SIZE})"
            )
        if raw[0] != 0x30:
            raise SessionDecodeError(
                "not a DER TLS session: it must start with an ASN.1 SEQUENCE (0x30)"
            )
        lib = self._lib
        lib.ERR_clear_error()
        buf = ctypes.create_string_buffer(raw, size)
        start = ctypes.addressof(buf)
        cursor = ctypes.c_void_p(start)
        try:
            ptr = lib.d2i_SSL_SESSION(None, ctypes.byref(cursor), size)
            if not ptr:
                reason = self.drain_errors() or "no reason given"
                raise SessionDecodeError(f"d2i_SSL_SESSION() rejected the input: {reason}")
            consumed = (cursor.value or start) - start
        finally:
            ctypes.memset(buf, 0, size)
        problem = None
        if consumed != size:
            problem = (
                f"the input has {size - consumed} trailing bytes after a "
                f"{consumed}-byte session (truncated concatenation or garbage?)"
            )
        elif self.session_protocol_version(ptr) not in _TLS_VERSIONS:
            problem = "the session's protocol version is not TLS 1.0-1.3"
        elif not lib.SSL_SESSION_get0_cipher(ptr):
            problem = "the session names no cipher suite"
        elif not 0 < lib.SSL_SESSION_get_master_key(ptr, None, 0) <= 64:
            problem = "the session has no usable master secret"
        elif not lib.SSL_SESSION_is_resumable(ptr):
            problem = "the session has neither a session id nor a ticket: it cannot resume"
        elif self.session_time(ptr) <= 0 or self.session_timeout(ptr) < 0:
            problem = "the session's time or timeout is out of range"
        if problem is not None:
            lib.SSL_SESSION_free(ptr)
            self.drain_errors()
            raise SessionDecodeError(problem)
        return int(ptr)

    # -- SSL --------------------------------------------------------------------------

    def get1_session(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int:
        """``SSL_get1_session()``: a new C reference to the connection's session, or 0.

        The caller owns the reference and must drop it with :meth:`session_free`.
        Unlike reading ``SSLObject.session``, nothing is copied or encoded (CPython
        round-trips that getter's session through DER and, before gh-116810 was
        fixed, leaked a reference each time).
        """
        return int(self._lib.SSL_get1_session(self.ssl_ptr(ssl_object)) or 0)

    def set_session(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, ptr: int) -> None:
        """``SSL_set_session()`` of a private copy of *ptr*, before the handshake.

        The connection gets its own copy (``SSL_SESSION_dup()``; no encoding,
        as CPython's ``SSLObject.session`` setter copies): ``SSL_free()`` of a
        connection that never sent close_notify marks its session not
        resumable (``ssl_clear_bad_session()``), which must not spoil the
        session at *ptr*, still cached for the next connection. *ptr* keeps
        its own reference.

        Raises:
            ValueError: *ssl_object* is server-side or its handshake has started.
        """
        ssl_ptr = self.ssl_ptr(ssl_object)
        lib = self._lib
        if lib.SSL_is_server(ssl_ptr):
            raise ValueError("cannot offer a session on a server-side connection")
        if lib.SSL_is_init_finished(ssl_ptr) or not lib.SSL_in_before(ssl_ptr):
            raise ValueError("cannot offer a session once the handshake has started")
        copy = self.session_dup(ptr)
        try:
            if lib.SSL_set_session(ssl_ptr, copy) != 1:
                raise ValueError(f"SSL_set_session() failed: {self.drain_errors()}")
        finally:
            self.session_free(copy)  # the connection holds its own reference

    def connection_settings(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> ConnectionSettings:
        """What *ssl_object* will verify, read from its ``SSL*``.

        ``SSL_get_verify_mode()``, ``SSL_get0_param()`` with
        ``X509_VERIFY_PARAM_get_flags()`` / ``get_hostflags()`` / ``get0_host()``
        / ``get1_ip_asc()``, ``SSL_get_options()`` and the protocol bounds.

        Raises:
            UnsupportedError: this OpenSSL lacks one of those calls, or the
                probe found them not to agree with ``ssl``.
        """
        if self.settings_error is not None:
            raise UnsupportedError(self.settings_error)
        return self._settings(self.ssl_ptr(ssl_object))

    def _settings(self, ssl_ptr: int) -> ConnectionSettings:
        lib = self._lib
        param = lib.SSL_get0_param(ssl_ptr)
        host = lib.X509_VERIFY_PARAM_get0_host(param, 0)
        ip_ptr = lib.X509_VERIFY_PARAM_get1_ip_asc(param)
        ip = None
        if ip_ptr:
            try:
                ip = ctypes.string_at(ip_ptr).decode("ascii")
            finally:
                lib.CRYPTO_free(ip_ptr, None, 0)
        return ConnectionSettings(
            verify_mode=int(lib.SSL_get_verify_mode(ssl_ptr)),
            verify_flags=int(lib.X509_VERIFY_PARAM_get_flags(param)),
            host_flags=int(lib.X509_VERIFY_PARAM_get_hostflags(param)),
            host=None if host is None else host.decode("utf-8", "surrogateescape"),
            ip=ip,
            options=int(lib.SSL_get_options(ssl_ptr)),
            minimum_version=int(lib.SSL_ctrl(ssl_ptr, _SSL_CTRL_GET_MIN_PROTO_VERSION, 0, None)),
            maximum_version=int(lib.SSL_ctrl(ssl_ptr, _SSL_CTRL_GET_MAX_PROTO_VERSION, 0, None)),
        )

    # -- new sessions -----------------------------------------------------------------

    def watch_new_sessions(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, target: Callable[[int], None]
    ) -> str | None:
        """Call ``target(session_ptr)`` for each session OpenSSL makes on *ssl_object*.

        The callback of ``SSL_CTX_sess_set_new_cb()``: a TLS 1.2 session at the
        end of a full handshake, each TLS 1.3 ticket in the read that processes
        it. *session_ptr* is borrowed for the call only: *target* must
        ``SSL_SESSION_dup()`` what it keeps (:meth:`session_dup`). Installs the
        process's one callback on the context the first time (see "New sessions"
        above) and routes the connection to *target* until the connection
        object dies or :meth:`unwatch_new_sessions` is called.

        Returns:
            None when routed; else why not (the reason is the same for every
            connection of that context).
        """
        context = ssl_object.context
        reason = _NEW_SESSION_CONTEXTS.get(context, _UNSEEN)
        if reason is _UNSEEN:
            reason = self._install_new_session_callback(context)
            _NEW_SESSION_CONTEXTS[context] = reason
        if reason is not None:
            return str(reason)
        ptr = self.ssl_ptr(ssl_object)

        def unroute(
            ref: Any, ptr: int = ptr, routes: dict[int, Any] = _NEW_SESSION_ROUTES
        ) -> None:
            # The SSL object is going (weakref callbacks run before SSL_free());
            # the table is bound here, as the module may be torn down at exit.
            route = routes.get(ptr)
            if route is not None and route[0] is ref:
                routes.pop(ptr, None)

        _NEW_SESSION_ROUTES[ptr] = (weakref.ref(ssl_object, unroute), target)
        return None

    def unwatch_new_sessions(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> None:
        """Stop routing *ssl_object*'s new sessions (idempotent)."""
        inner = ssl_object_inner(ssl_object)
        if inner is None:
            return
        ptr = _read_ptr(inner, _HEADER_SIZE + _PTR)
        route = _NEW_SESSION_ROUTES.get(ptr)
        if route is not None and route[0]() is ssl_object:
            _NEW_SESSION_ROUTES.pop(ptr, None)

    def _install_new_session_callback(self, context: ssl.SSLContext) -> str | None:
        if self.new_session_error is not None:
            return self.new_session_error
        if context.protocol != ssl.PROTOCOL_TLS_CLIENT:
            # SSL_SESS_CACHE_CLIENT on a context that also serves would stop its
            # TLS 1.2 session-id resumption as a server.
            return "the context is not a PROTOCOL_TLS_CLIENT context (it could also serve)"
        lib = self._lib
        ctx = self.ctx_ptr(context)
        ours = ctypes.cast(_NEW_SESSION_THUNK, ctypes.c_void_p).value
        installed = lib.SSL_CTX_sess_get_new_cb(ctx)
        if installed and installed != ours:
            return "another library installed a new-session callback on the context"
        mode = lib.SSL_CTX_ctrl(ctx, _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None)
        mode |= _SSL_SESS_CACHE_CLIENT | _SSL_SESS_CACHE_NO_INTERNAL_STORE
        lib.SSL_CTX_ctrl(ctx, _SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)
        lib.SSL_CTX_sess_set_new_cb(ctx, _NEW_SESSION_THUNK)
        return None

    def session_ticket(self, ptr: int) -> bytes:
        """``SSL_SESSION_get0_ticket()``: the session's ticket (b"" for none)."""
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        self._lib.SSL_SESSION_get0_ticket(ptr, ctypes.byref(data), ctypes.byref(size))
        if not data.value or not size.value:
            return b""
        return ctypes.string_at(data.value, size.value)

    def connection_ticket(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes:
        """The ticket of the connection's current session (``SSL_get_session()``), or b""."""
        ptr = self._lib.SSL_get_session(self.ssl_ptr(ssl_object))
        return self.session_ticket(ptr) if ptr else b""

    # -- early data (TLS 1.3 0-RTT) ----------------------------------------------------

    def _need_early_data(self) -> None:
        if self.early_data_error is not None:
            raise UnsupportedError(self.early_data_error)

    def _early_error(self, ssl_ptr: int, ret: int, call: str) -> BaseException:
        # Map SSL_get_error() of a failed early-data call onto ssl's exceptions,
        # so that callers retry exactly as they do around SSLObject calls.
        code = int(self._lib.SSL_get_error(ssl_ptr, ret))
        detail = self.drain_errors()
        if code == _SSL_ERROR_WANT_READ:
            return ssl.SSLWantReadError(code, f"{call}: the operation needs more input")
        if code == _SSL_ERROR_WANT_WRITE:
            return ssl.SSLWantWriteError(code, f"{call}: the operation needs to write")
        if code == _SSL_ERROR_ZERO_RETURN:
            return ssl.SSLZeroReturnError(code, f"{call}: the peer closed the TLS connection")
        if code == _SSL_ERROR_SYSCALL or "unexpected eof while reading" in detail:
            # OpenSSL 3 reports a bare EOF as SSL_R_UNEXPECTED_EOF_WHILE_READING;
            # ssl raises SSLEOFError for it, and so do these calls.
            return ssl.SSLEOFError(code, f"{call}: the connection ended ({detail or 'EOF'})")
        return ssl.SSLError(code, f"{call} failed: {detail or f'SSL_get_error() = {code}'}")

    def session_max_early_data(self, ptr: int) -> int:
        """``SSL_SESSION_get_max_early_data()``: the early bytes the session allows (0: none)."""
        self._need_early_data()
        return int(self._lib.SSL_SESSION_get_max_early_data(ptr))

    def offered_max_early_data(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int:
        """The ``max_early_data`` of the session set on a client before its handshake.

        ``SSL_SESSION_get_max_early_data(SSL_get_session(ssl))``; 0 when no
        session is set or the session allows no early data (TLS 1.2, or a
        server that did not offer it).
        """
        self._need_early_data()
        ptr = self._lib.SSL_get_session(self.ssl_ptr(ssl_object))
        return int(self._lib.SSL_SESSION_get_max_early_data(ptr)) if ptr else 0

    def write_early_data(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, data: bytes) -> int:
        """``SSL_write_early_data()``: encrypt *data* as early data; return the bytes taken.

        On a client it must be the first I/O call of the connection (it makes
        and writes the ClientHello first); on a server, it writes 0.5-RTT data
        once :meth:`read_early_data` has returned once. The records go to the
        object's outgoing BIO (or socket) like any write.

        Raises:
            ssl.SSLWantReadError, ssl.SSLWantWriteError: retry as for ``write()``.
            ssl.SSLError: OpenSSL refused (for example more than the session's
                ``max_early_data``, or a call in the wrong state).
        """
        self._need_early_data()
        ssl_ptr = self.ssl_ptr(ssl_object)
        view = bytes(data)
        written = ctypes.c_size_t(0)
        self._lib.ERR_clear_error()
        ret = self._lib.SSL_write_early_data(ssl_ptr, view, len(view), ctypes.byref(written))
        if ret != 1:
            raise self._early_error(ssl_ptr, ret, "SSL_write_early_data()")
        return int(written.value)

    def read_early_data(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, size: int
    ) -> tuple[int, bytes]:
        """``SSL_read_early_data()`` on a server: return (status, bytes).

        *status* is :data:`READ_EARLY_DATA_SUCCESS` (call again: more early
        data may follow) or :data:`READ_EARLY_DATA_FINISH` (no more early data:
        none was sent, it was rejected, or the client ended it; go on with the
        handshake and ordinary reads).

        Raises:
            ssl.SSLWantReadError, ssl.SSLWantWriteError: feed or flush the BIOs
                and call again (the server's first flight may be waiting in the
                outgoing BIO).
            ssl.SSLError: the handshake failed.
        """
        self._need_early_data()
        if size <= 0:
            raise ValueError(f"read size must be positive, got {size!r}")
        ssl_ptr = self.ssl_ptr(ssl_object)
        buf = ctypes.create_string_buffer(size)
        got = ctypes.c_size_t(0)
        self._lib.ERR_clear_error()
        ret = int(self._lib.SSL_read_early_data(ssl_ptr, buf, size, ctypes.byref(got)))
        if ret == READ_EARLY_DATA_ERROR:
            raise self._early_error(ssl_ptr, ret, "SSL_read_early_data()")
        return ret, buf.raw[: got.value]

    def early_data_status(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int:
        """``SSL_get_early_data_status()``: NOT_SENT 0, REJECTED 1, ACCEPTED 2.

        Meaningful once the handshake has completed.
        """
        self._need_early_data()
        return int(self._lib.SSL_get_early_data_status(self.ssl_ptr(ssl_object)))

    def set_max_early_data(
        self, context: ssl.SSLContext, max_early_data: int, recv_max_early_data: int | None = None
    ) -> None:
        """``SSL_CTX_set_max_early_data()`` and ``SSL_CTX_set_recv_max_early_data()``.

        *max_early_data* is what the tickets the server issues will allow;
        *recv_max_early_data* (default: the same) what it will read or skip.

        Raises:
            ValueError: a value outside 0 to 2**32-1.
        """
        self._need_early_data()
        recv = max_early_data if recv_max_early_data is None else recv_max_early_data
        checked: tuple[tuple[str, object], ...] = (
            ("max_early_data", max_early_data), ("recv_max_early_data", recv)
        )
        for name, value in checked:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                raise ValueError(f"{name} is 0 to 2**32-1 bytes, got {value!r}")
        ctx = self.ctx_ptr(context)
        if self._lib.SSL_CTX_set_max_early_data(ctx, max_early_data) != 1:
            raise ValueError(f"SSL_CTX_set_max_early_data() failed: {self.drain_errors()}")
        if self._lib.SSL_CTX_set_recv_max_early_data(ctx, recv) != 1:
            raise ValueError(f"SSL_CTX_set_recv_max_early_data() failed: {self.drain_errors()}")

    def max_early_data(self, context: ssl.SSLContext) -> tuple[int, int]:
        """``SSL_CTX_get_max_early_data()`` and ``SSL_CTX_get_recv_max_early_data()``."""
        self._need_early_data()
        ctx = self.ctx_ptr(context)
        return (
            int(self._lib.SSL_CTX_get_max_early_data(ctx)),
            int(self._lib.SSL_CTX_get_recv_max_early_data(ctx)),
        )

    def set_early_data_gate(
        self, context: ssl.SSLContext, gate: Callable[[bytes], bool] | None
    ) -> None:
        """``SSL_CTX_set_allow_early_data_cb()``: let ``gate(client_random)`` decide.

        OpenSSL calls the gate on a server, inside the handshake, for each
        ClientHello whose early data it would otherwise accept (a resumed
        TLS 1.3 session within the ticket-age window). *client_random* is the
        ClientHello's 32-byte random (``SSL_get_client_random()``), which the
        PSK binder covers, so a replayed first flight repeats it. True accepts
        the early data, False rejects it (the handshake goes on, 1-RTT). Any
        exception in the gate counts as False. ``gate=None`` removes the gate
        (OpenSSL then accepts).
        """
        self._need_early_data()
        ctx = self.ctx_ptr(context)
        if gate is None:
            _EARLY_DATA_GATES.pop(ctx, None)
            self._lib.SSL_CTX_set_allow_early_data_cb(ctx, _ALLOW_EARLY_DATA_CB(), None)
            return

        def forget(ref: Any, ctx: int = ctx, gates: dict[int, Any] = _EARLY_DATA_GATES) -> None:
            # The table is bound here: at interpreter exit the module's globals
            # may already be gone when the last contexts die.
            entry = gates.get(ctx)
            if entry is not None and entry[0] is ref:
                gates.pop(ctx, None)

        _EARLY_DATA_GATES[ctx] = (weakref.ref(context, forget), gate)
        self._lib.SSL_CTX_set_allow_early_data_cb(ctx, _ALLOW_EARLY_DATA_THUNK, None)

    def _client_random(self, ssl_ptr: int) -> bytes:
        buf = ctypes.create_string_buffer(32)
        size = int(self._lib.SSL_get_client_random(ssl_ptr, buf, 32))
        return buf.raw[:size]

    # -- ticket keys ------------------------------------------------------------------

    def install_ticket_callback(
        self, context: ssl.SSLContext, lookup: TicketKeyLookup, *, mode: str | None = None
    ) -> None:
        """Install the ticket-key callback on *context*.

        Uses ``SSL_CTX_set_tlsext_ticket_key_evp_cb()`` (OpenSSL 3.0) when the
        library has it, else ``SSL_CTX_callback_ctrl(ctx,
        SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, cb)`` with an ``HMAC_CTX`` (OpenSSL
        1.1.1); *mode* ("evp" or "legacy") forces one. Both produce the same
        tickets (AES-256-CBC, HMAC-SHA256), so servers of either kind share keys.

        Raises:
            UnsupportedError: this OpenSSL has no usable ticket-key callback.
            ValueError: unknown *mode*.
        """
        if self.ticket_error is not None:
            raise UnsupportedError(self.ticket_error)
        if mode is None:
            mode = self.ticket_modes[0]
        elif mode not in self.ticket_modes:
            raise ValueError(f"ticket callback mode {mode!r} is not one of {self.ticket_modes}")
        ctx = self.ctx_ptr(context)
        callback = _TICKET_CB(self._make_ticket_callback(lookup, legacy=mode == "legacy"))
        self._keepalive.append(callback)
        lib = self._lib
        if mode == "legacy":
            if "evp" in self.ticket_modes:
                # OpenSSL prefers an EVP callback if one is set: remove it.
                lib.SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, _TICKET_CB())
            ok = lib.SSL_CTX_callback_ctrl(ctx, _SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, callback) == 1
        else:
            ok = lib.SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, callback) == 1
        if not ok:  # pragma: no cover - these calls only store a pointer
            raise UnsupportedError(
                f"installing the ticket-key callback failed: {self.drain_errors()}"
            )

    def _make_ticket_callback(
        self, lookup: TicketKeyLookup, *, legacy: bool
    ) -> Callable[[int | None, int | None, int | None, int | None, int | None, int], int]:
        lib = self._lib
        cipher = lib.EVP_aes_256_cbc()
        digest = self._ticket_params_digest

        sha256 = lib.EVP_sha256() if legacy else None
        # SSL_version() of the connection being resumed: a TLS 1.3 server sends a
        # new ticket after a resumed handshake only when the decrypt callback
        # returns 2, and single-use clients (RFC 8446, C.4) need one for their next
        # connection. Its own prototype here, so the table above stays as it is.
        ssl_version = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(("SSL_version", lib))
        tls1_3 = 0x0304  # TLS1_3_VERSION

        def set_mac_key(hctx: int, hmac_key: bytes) -> bool:
            if legacy:
                return bool(lib.HMAC_Init_ex(hctx, hmac_key, len(hmac_key), sha256, None) == 1)
            key_buf = ctypes.create_string_buffer(hmac_key, len(hmac_key))
            params = (_OSSLParam * 3)()
            params[0] = _OSSLParam(
                b"key", _OSSL_PARAM_OCTET_STRING, ctypes.addressof(key_buf), len(hmac_key),
                _OSSL_PARAM_UNMODIFIED,
            )
            params[1] = _OSSLParam(
                b"digest", _OSSL_PARAM_UTF8_STRING, ctypes.addressof(digest), 6,
                _OSSL_PARAM_UNMODIFIED,
            )
            try:
                return bool(lib.EVP_MAC_CTX_set_params(hctx, params) == 1)
            finally:
                ctypes.memset(key_buf, 0, len(hmac_key))

        def callback(
            _ssl: int | None,
            key_name: int | None,
            iv: int | None,
            cctx: int | None,
            hctx: int | None,
            enc: int,
        ) -> int:
            # Returns: 1 ok; 2 (decrypt) ok but renew the ticket; 0 no ticket /
            # ticket unusable (full handshake). Never raises into C. Decrypting,
            # 2 on every TLS 1.3 resumption (a fresh ticket for the next
            # connection) and, on TLS 1.2, for a ticket of the previous key only.
            try:
                if not (key_name and iv and cctx and hctx):
                    return 0
                if enc == 1:
                    found = lookup.encryption_key()
                    if found is None:
                        return 0
                    name, aes_key, hmac_key = found
                    iv_bytes = os.urandom(_TICKET_IV_LEN)
                    ctypes.memmove(key_name, name, _TICKET_NAME_LEN)
                    ctypes.memmove(iv, iv_bytes, _TICKET_IV_LEN)
                    if lib.EVP_EncryptInit_ex(cctx, cipher, None, aes_key, iv) != 1:
                        lib.ERR_clear_error()
                        return -1
                    if not set_mac_key(hctx, hmac_key):
                        lib.ERR_clear_error()
                        return -1
                    return 1
                name = ctypes.string_at(key_name, _TICKET_NAME_LEN)
                entry = lookup.decryption_key(name)
                if entry is None:
                    return 0
                aes_key, hmac_key, renew = entry
                if not set_mac_key(hctx, hmac_key):
                    lib.ERR_clear_error()
                    return 0
                if lib.EVP_DecryptInit_ex(cctx, cipher, None, aes_key, iv) != 1:
                    lib.ERR_clear_error()
                    return 0
                if renew or (_ssl and ssl_version(_ssl) == tls1_3):
                    return 2
                return 1
            except BaseException:
                with contextlib.suppress(BaseException):
                    log.exception(
                        "ticket-key callback failed (%s); the handshake continues without "
                        "a ticket", "encrypt" if enc == 1 else "decrypt"
                    )
                return 0

        return callback

    # -- testing aid: watching a C session being freed --------------------------------

    def watch_frees(self) -> FreeWatch:
        """Count when watched ``SSL_SESSION``s are really freed (for the tests).

        Registers an ex-data index (``CRYPTO_get_ex_new_index`` for
        ``CRYPTO_EX_INDEX_SSL_SESSION``) whose free callback OpenSSL calls when a
        session's reference count reaches zero. Call :meth:`FreeWatch.close`
        when done.
        """
        return FreeWatch(self._lib)


class FreeWatch:
    """See :meth:`Binding.watch_frees`: :meth:`freed` lists the frees of each tag."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._freed: dict[int, list[int]] = {}
        self._tags: list[ctypes.c_int] = []

        def on_free(
            parent: int | None, ptr: int | None, _ad: int | None, _idx: int, _argl: int,
            _argp: int | None,
        ) -> None:
            try:
                if ptr:
                    tag = ctypes.c_int.from_address(ptr).value
                    self._freed.setdefault(tag, []).append(parent or 0)
            except BaseException:  # pragma: no cover - never raise into C
                pass

        self._callback = _EX_FREE_CB(on_free)
        _FREE_WATCH_KEEPALIVE.append(self._callback)
        self._index = lib.CRYPTO_get_ex_new_index(
            _CRYPTO_EX_INDEX_SSL_SESSION, 0, None, None, None, self._callback
        )
        if self._index < 0:  # pragma: no cover
            raise UnsupportedError("CRYPTO_get_ex_new_index() failed")

    def freed(self, tag: int) -> list[int]:
        """The pointers of the sessions tagged *tag* freed so far, in order.

        ``SSL_SESSION_dup()`` copies the tag, so copies OpenSSL makes (TLS 1.3
        tickets) appear too, under their own pointers.
        """
        return list(self._freed.get(tag, ()))

    def watch(self, ptr: int, tag: int) -> None:
        """Tag the session at *ptr*; its free will be listed by :meth:`freed`."""
        cell = ctypes.c_int(tag)
        self._tags.append(cell)  # must outlive the session: kept until close()
        if self._lib.SSL_SESSION_set_ex_data(ptr, self._index, ctypes.addressof(cell)) != 1:
            raise MemoryError("SSL_SESSION_set_ex_data() failed")  # pragma: no cover

    def close(self) -> None:
        """Unregister the index (``CRYPTO_free_ex_index``); the callback stays alive."""
        self._lib.CRYPTO_free_ex_index(_CRYPTO_EX_INDEX_SSL_SESSION, self._index)


# Callbacks given to C are never freed (C may call them until exit).
_FREE_WATCH_KEEPALIVE: list[Any] = []

# -- the one new-session callback -------------------------------------------------------
#
# One ctypes thunk for the whole process, made at import and never freed: an
# SSL_CTX may point at it for as long as the process lives (a collected thunk
# crashes the process at the next ticket, or calls whatever callback reused its
# memory). It routes by the SSL* it is given: a route is (weak reference to the
# SSL object, target). The weak reference proves the SSL* is still that
# connection's (an SSL object that is alive keeps its SSL* alive, so the address
# cannot have been reused), and its callback removes the route as the object
# goes. The thunk never raises into C and always returns 0: OpenSSL then frees
# the reference it lent (returning 1 without keeping it would leak ~3.9 KB per
# ticket); what the target keeps is a dup (a raw session of an SSL* later freed
# without close_notify turns non-resumable).

_NEW_SESSION_ROUTES: dict[int, tuple[Any, Callable[[int], None]]] = {}
_NEW_SESSION_CONTEXTS: weakref.WeakKeyDictionary[ssl.SSLContext, str | None] = (
    weakref.WeakKeyDictionary()
)
_UNSEEN: Final[Any] = object()


def _on_new_session(ssl_ptr: int | None, session_ptr: int | None) -> int:
    try:
        route = _NEW_SESSION_ROUTES.get(ssl_ptr or 0)
        if route is not None and session_ptr and route[0]() is not None:
            route[1](session_ptr)
    except BaseException:  # never into C
        with contextlib.suppress(BaseException):
            log.exception("resume: the new-session callback failed; the session is not kept")
    return 0


_NEW_SESSION_THUNK: Final = _NEW_SESSION_CB(_on_new_session)

# Early-data gates: one process-wide thunk for SSL_CTX_set_allow_early_data_cb,
# routed by the SSL_CTX* of the connection to the gate of its context. No
# route, a dead context or any exception rejects the early data (return 0):
# the safe answer, since the handshake then simply goes on in 1-RTT.
_EARLY_DATA_GATES: dict[int, tuple[Any, Callable[[bytes], bool]]] = {}


def _allow_early_data(ssl_ptr: int | None, _arg: int | None) -> int:
    try:
        b = _binding
        if b is None or not ssl_ptr:
            return 0
        entry = _EARLY_DATA_GATES.get(int(b._lib.SSL_get_SSL_CTX(ssl_ptr) or 0))
        if entry is None or entry[0]() is None:
            return 0
        return 1 if entry[1](b._client_random(ssl_ptr)) is True else 0
    except BaseException:  # never into C
        with contextlib.suppress(BaseException):
            log.exception("resume: the early-data gate failed; the early data is rejected")
        return 0


_ALLOW_EARLY_DATA_THUNK: Final = _ALLOW_EARLY_DATA_CB(_allow_early_data)

_lock = threading.Lock()
_binding: Binding | None = None
_refusal: str | None = None


def binding() -> Binding:
    """Return the probed binding, probing on first use.

    Raises:
        UnsupportedError: this Python build failed the probe (now or earlier).
    """
    global _binding, _refusal
    found = _binding
    if found is not None:
        return found
    with _lock:
        if _binding is not None:
            return _binding
        if _refusal is None:
            try:
                _binding = _probe()
                return _binding
            except UnsupportedError as exc:
                _refusal = str(exc)
            except Exception as exc:
                _refusal = f"the OpenSSL capability probe failed: {type(exc).__name__}: {exc}"
        raise UnsupportedError(
            f"{_refusal}. DER export/import and ticket keys are not available on this "
            f"Python build; the rest of resume works."
        )


def available() -> Binding | None:
    """Return the probed binding, or None if this build refused it (probing on first use).

    The cheap test the native session path makes per connection: once the
    probe has run, this is a read of a module global.
    """
    found = _binding
    if found is not None:
        return found
    if _refusal is not None:
        return None
    try:
        return binding()
    except UnsupportedError:
        return None


def refusal() -> str | None:
    """Probe if needed; return why the binding is unavailable, or None if it works."""
    try:
        binding()
    except UnsupportedError:
        return _refusal
    return None


def _reset_for_tests() -> None:
    # Forget the probe's outcome, so that a test can probe again.
    global _binding, _refusal
    with _lock:
        _binding = None
        _refusal = None


#: The Pythons whose ``_ssl`` object layout (see the top) this module was
#: checked against, in their sources and by the test suite (``nox -s tests``
#: runs on each). A new version joins only after both.
_KNOWN_PYTHONS: Final = frozenset({(3, 10), (3, 11), (3, 12), (3, 13)})


def _check_build(
    implementation: str | None = None,
    version: tuple[int, ...] | None = None,
    gil_disabled: bool | None = None,
    openssl: tuple[str, int] | None = None,
) -> None:
    # Step 0 of the probe: refuse any build we do not know. The arguments
    # default to this interpreter's facts; the tests pass others.
    if implementation is None:
        implementation = sys.implementation.name
    if version is None:
        version = tuple(sys.version_info[:2])
    if gil_disabled is None:
        import sysconfig

        gil_disabled = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if openssl is None:
        openssl = (ssl.OPENSSL_VERSION, ssl.OPENSSL_VERSION_NUMBER)
    if implementation != "cpython":
        raise UnsupportedError(f"the OpenSSL binding needs CPython (this is {implementation})")
    minor = tuple(version[:2])
    if minor not in _KNOWN_PYTHONS:
        known = ", ".join(f"{a}.{b}" for a, b in sorted(_KNOWN_PYTHONS))
        raise UnsupportedError(
            f"the _ssl object layout of Python {'.'.join(map(str, minor))} is not one "
            f"resume knows (it knows {known})"
        )
    if gil_disabled:
        raise UnsupportedError(
            "this is a free-threaded Python build, whose _ssl object layout resume does not know"
        )
    name, number = openssl
    # OPENSSL_VERSION_NUMBER is 0xMNNFFPPS: 1.1.1x is 0x10101xxx, 3.x is 0x3xxxxxxx.
    if not name.startswith("OpenSSL ") or not (number >> 28 == 3 or number >> 12 == 0x10101):
        raise UnsupportedError(
            f"ssl is built on {name!r} ({number:#x}); the binding knows OpenSSL 1.1.1 and 3.x"
        )


def _load() -> tuple[
    ctypes.CDLL, str | None, tuple[str, ...], str | None, str | None, str | None
]:
    if sys.implementation.name != "cpython":
        raise UnsupportedError(
            f"the OpenSSL binding needs CPython (this is {sys.implementation.name})"
        )
    path = ssl_extension_path()
    if not path:
        raise UnsupportedError(
            "_ssl is built into the interpreter (no extension file to load the library from)"
        )
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise UnsupportedError(f"cannot load {path}: {exc}") from None
    for name, restype, argtypes in _PROTOTYPES:
        try:
            func = getattr(lib, name)
        except AttributeError:
            raise UnsupportedError(
                f"the OpenSSL behind ssl ({ssl.OPENSSL_VERSION}) does not export {name}()"
            ) from None
        func.restype = restype
        func.argtypes = argtypes
    def bind(prototypes: tuple[tuple[str, Any, tuple[Any, ...]], ...]) -> str | None:
        for name, restype, argtypes in prototypes:
            try:
                func = getattr(lib, name)
            except AttributeError:
                return name
            func.restype = restype
            func.argtypes = argtypes
        return None

    modes = []
    missing = bind(_TICKET_PROTOTYPES)
    if missing is None:
        missing = bind(_TICKET_EVP_PROTOTYPES)
        if missing is None:
            modes.append("evp")
        missing = bind(_TICKET_LEGACY_PROTOTYPES)
        if missing is None:
            modes.append("legacy")
    ticket_error = None if modes else (
        f"ticket keys need {missing}(), which {ssl.OPENSSL_VERSION} does not export"
    )
    missing = bind(_SETTINGS_PROTOTYPES)
    settings_error = None if missing is None else (
        f"reading an SSL object's verify settings needs {missing}(), which "
        f"{ssl.OPENSSL_VERSION} does not export"
    )
    missing_new = bind(_NEW_SESSION_PROTOTYPES)
    missing_early = bind(_EARLY_DATA_PROTOTYPES)
    return lib, ticket_error, tuple(modes), settings_error, missing_new, missing_early


def _probe_pair() -> tuple[ssl.SSLContext, ssl.SSLObject, ssl.SSLObject]:
    # A real TLS 1.2 handshake between two memory-BIO SSLObjects (no sockets).
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("probe.invalid").configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    for ctx in (server_ctx, client_ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="probe.invalid")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for i, (obj, out, peer_in) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done):
            return client_ctx, client, server
    raise UnsupportedError("the probe's in-memory TLS handshake did not complete")


def _check_settings(b: Binding, context: ssl.SSLContext, ssl_ptr: int) -> str | None:
    # The probe's client verifies "probe.invalid" with CERT_REQUIRED: what its
    # SSL* reports must say so, and agree with the context's getters.
    got = b._settings(ssl_ptr)
    want = (3, context.verify_flags, "probe.invalid", None, context.options)
    if (got.verify_mode, got.verify_flags, got.host, got.ip, got.options) != want:
        return f"an SSL object's verify settings read through C disagree with ssl ({got})"
    return None


def _probe() -> Binding:
    # Step 0: a build we know, before anything is loaded.
    _check_build()
    lib, ticket_error, ticket_modes, settings_error, missing_new, missing_early = _load()
    b = Binding(lib, ticket_error, ticket_modes, settings_error)
    if missing_new is not None:
        b.new_session_error = (
            f"capturing sessions as they arrive needs {missing_new}(), which "
            f"{ssl.OPENSSL_VERSION} does not export"
        )
    if missing_early is not None:
        b.early_data_error = (
            f"TLS 1.3 early data needs {missing_early}(), which "
            f"{ssl.OPENSSL_VERSION} does not export"
        )
    # Step 1: the library is the one ssl uses.
    if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise UnsupportedError(
            f"the library found through _ssl reports version {lib.OpenSSL_version_num():#x}, "
            f"ssl reports {ssl.OPENSSL_VERSION_NUMBER:#x}"
        )
    header = _HEADER_SIZE
    client_ctx, client, _server = _probe_pair()
    inner = ssl_object_inner(client)
    session = client.session
    if session is None or not session.id:
        raise UnsupportedError("the probe's TLS 1.2 handshake produced no session")
    # Step 2 happens in _read_ptr: every read stays inside the object.
    # Step 3: back-pointers equal to Python ids; nothing is dereferenced yet.
    if _read_ptr(session, header + _PTR) != id(client_ctx):
        raise UnsupportedError(
            "unknown ssl.SSLSession layout: its context field is not the SSLContext"
        )
    if _read_ptr(inner, header + 2 * _PTR) != id(inner.context):
        raise UnsupportedError("unknown _ssl._SSLSocket layout: its context field does not match")
    if _read_ptr(inner, header) != 0:
        raise UnsupportedError("unknown _ssl._SSLSocket layout: a BIO pair has a socket field")
    ctx_ptr = _read_ptr(client_ctx, header)
    ssl_ptr = _read_ptr(inner, header + _PTR)
    sess_ptr = _read_ptr(session, header)
    for name, value in (("SSL_CTX", ctx_ptr), ("SSL", ssl_ptr), ("SSL_SESSION", sess_ptr)):
        if not value or value % _PTR:
            raise UnsupportedError(f"implausible {name} pointer: unknown _ssl object layout")
    # Step 4: ask C, compare with a second source.
    if lib.SSL_get_SSL_CTX(ssl_ptr) != ctx_ptr:
        raise UnsupportedError("SSL_get_SSL_CTX() disagrees with the SSLContext's pointer")
    if b.settings_error is None:  # before the options change below
        b.settings_error = _check_settings(b, client_ctx, ssl_ptr)
    for flip in (0, ssl.OP_CIPHER_SERVER_PREFERENCE):
        client_ctx.options ^= flip
        if lib.SSL_CTX_get_options(ctx_ptr) != client_ctx.options:
            raise UnsupportedError("SSL_CTX_get_options() disagrees with SSLContext.options")
    current = lib.SSL_get_session(ssl_ptr)
    if current != sess_ptr and (not current or b.session_id(current) != session.id):
        # A build whose SSLObject.session returns a copy (SSL_SESSION_dup) has a
        # different pointer but the same session id; anything else is a mismatch.
        raise UnsupportedError("SSL_get_session() disagrees with the SSLSession's pointer")
    checks = (
        ("id", b.session_id(sess_ptr), session.id),
        ("time", b.session_time(sess_ptr), session.time),
        ("timeout", b.session_timeout(sess_ptr), session.timeout),
        ("has_ticket", b.session_has_ticket(sess_ptr), session.has_ticket),
        ("ticket_lifetime_hint", b.session_ticket_lifetime_hint(sess_ptr),
         session.ticket_lifetime_hint),
    )
    for what, c_value, py_value in checks:
        if c_value != py_value:
            raise UnsupportedError(f"SSL_SESSION_get_{what}() disagrees with SSLSession.{what}")
    # SSL_get1_session() hands out a new reference to the same session (the
    # native capture of resume._openssl.native relies on it).
    taken = lib.SSL_get1_session(ssl_ptr)
    if not taken:
        raise UnsupportedError("SSL_get1_session() returned no session after a handshake")
    try:
        if b.session_id(taken) != session.id:
            raise UnsupportedError("SSL_get1_session() disagrees with SSLObject.session")
    finally:
        b.session_free(taken)
    der = b.i2d(sess_ptr)
    copy = b.d2i(der)
    try:
        if b.i2d(copy) != der or b.session_id(copy) != session.id:
            raise UnsupportedError("an i2d/d2i round trip of the probe session changed it")
    finally:
        b.session_free(copy)
    return b
