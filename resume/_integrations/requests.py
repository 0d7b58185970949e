# Theory of operation: a requests adapter that resumes
# ====================================================
#
# requests sends through an HTTPAdapter, which keeps a urllib3 PoolManager;
# urllib3 opens a TLS connection in HTTPSConnection.connect(), which ends in
# ``ssl_context.wrap_socket(sock, server_hostname=...)`` on the pool's context.
# Two things stop resumption there, and this adapter changes both through the
# hooks requests and urllib3 document for subclasses:
#
#   1. No lasting context. Without ``ssl_context`` in the pool arguments,
#      urllib3 makes a new SSLContext per connection, and requests hands it a
#      CA file that urllib3 loads per connection: a parse per connection, and
#      contexts resume cannot key alike. HTTPAdapter.build_connection_pool_key_attributes
#      (the documented way to give pools a context) gives every pool of the
#      adapter one context per (verify, cert) configuration, made once by
#      create_client_context() with the CA file and the client certificate
#      loaded; cert_verify() then keeps requests from handing urllib3 the same
#      files again for each connection. Each adapter owns its contexts (no
#      mutable SSLContext is shared between owners, resume._integrations._common):
#      urllib3 itself sets ``verify_mode`` and ``check_hostname`` on them. A new
#      adapter (a new requests.Session per request) still resumes its
#      predecessors' sessions: contexts tracked from birth and configured alike
#      share their cache keys (resume._core.key, "Context identity").
#   2. No session boundary. The pool's ConnectionCls (urllib3's documented
#      class attribute; the pool class is chosen through the PoolManager's
#      ``pool_classes_by_scheme``) is _ResumingHTTPSConnection: its connect()
#      puts a per-connection stand-in (resume._integrations._common.
#      SocketOfferingContext) where urllib3 expects the context; urllib3 sets
#      ``verify_mode`` and the ALPN list on it (they reach the real context)
#      and calls its wrap_socket(), the boundary: the key and the session are
#      chosen when the SSLSocket is made, then the handshake runs.
#
# When the session is stored. http.client closes a connection whose response
# says ``Connection: close`` as soon as the headers are read (the response
# keeps the socket until its body is read), and urllib3 closes pooled
# connections when the pool is full, dropped or cleared. close() stores the
# session then, unless request() or getresponse() raised on this connection.
# TLS 1.3 tickets come before the response, so they have been read by then.
#
# Proxies: connections through a proxy (urllib3's ``proxy`` on the connection)
# do not resume: the port would be the proxy's.
from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Hashable
from typing import Any, cast

import requests
import requests.adapters
import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .._core.defaults import create_client_context, resolve_cache
from .._core.policy import ClientConnection, TLSObject
from ._common import SocketOfferingContext, file_state

__all__ = ["HTTPAdapter"]

#: Most contexts an adapter keeps (one per TLS configuration; then the oldest
#: goes, and pools that hold it keep it until they close).
_MAX_CONTEXTS = 64


class _ResumingHTTPSConnection(urllib3.connection.HTTPSConnection):
    # urllib3's HTTPSConnection with the session boundary in connect(); see the top.
    _resume_cache: object = None
    _resume_conn: ClientConnection | None = None
    _resume_unclean = False

    def connect(self) -> None:
        real = self.ssl_context
        if (
            not isinstance(real, ssl.SSLContext)
            or getattr(self, "proxy", None) is not None
            or self.port is None
        ):
            super().connect()
            return
        stand_in = SocketOfferingContext(real, self._resume_cache, int(self.port))
        self.ssl_context = stand_in  # type: ignore[assignment]
        self._resume_unclean = False
        try:
            super().connect()
        except BaseException:
            conn = stand_in.conn
            if conn is not None:
                conn.fail()  # a post-handshake check (fingerprint, hostname) failed
            raise
        finally:
            self.ssl_context = real
        self._resume_conn = stand_in.conn

    def request(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().request(*args, **kwargs)
        except BaseException:
            self._resume_unclean = True
            raise

    def getresponse(self) -> Any:
        try:
            return super().getresponse()
        except BaseException:
            self._resume_unclean = True
            raise

    def close(self) -> None:
        conn, self._resume_conn = self._resume_conn, None
        if conn is not None:
            tls = self.sock
            tls_object = cast("TLSObject", tls) if isinstance(tls, ssl.SSLSocket) else None
            conn.close(tls_object, clean=not self._resume_unclean)
        super().close()


def _pool_class(cache: object) -> type[urllib3.HTTPSConnectionPool]:
    connection = type(
        "_ResumingHTTPSConnection", (_ResumingHTTPSConnection,), {"_resume_cache": cache}
    )
    return type(
        "_ResumingHTTPSConnectionPool", (urllib3.HTTPSConnectionPool,),
        {"ConnectionCls": connection},
    )


class HTTPAdapter(requests.adapters.HTTPAdapter):
    """:class:`requests.adapters.HTTPAdapter` that resumes TLS sessions.

    Mount it on a session: ``session.mount("https://", resume.requests.HTTPAdapter())``.
    Each new HTTPS connection offers a session of an earlier one to the same
    server name, port and TLS configuration (see :class:`resume.SessionKey`),
    and a connection stores its session when urllib3 closes it after a
    response (``Connection: close``, a full pool, ``session.close()``).

    The TLS settings of a request (``verify=``, ``cert=``) select one
    :class:`ssl.SSLContext` of this adapter per configuration, made by
    :func:`resume.create_client_context` with the CA file (requests' own
    bundle for ``verify=True``) and the client certificate loaded once; a
    ``verify=False`` request gets a context of its own, so its sessions are
    never offered to a verifying connection. The contexts are the adapter's
    own; other adapters made alike resume its sessions through the cache key
    (where the OpenSSL binding is available; see :class:`resume.SessionKey`).
    Requests through a proxy do not resume.

    Args:
        cache: a :class:`resume.SessionCache`; None for the process-wide
            :func:`resume.default_cache`; False for no resumption.
        **kwargs: as for :class:`requests.adapters.HTTPAdapter`
            (``pool_connections``, ``pool_maxsize``, ``max_retries``, ``pool_block``).

    Raises:
        TypeError: *cache* is not a SessionCache, None or False.
    """

    def __init__(self, *, cache: object = None, **kwargs: Any) -> None:
        resolve_cache(cache)
        self._resume_cache = cache
        self._resume_contexts: dict[Hashable, ssl.SSLContext] = {}
        self._resume_lock = threading.Lock()
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Make the pool manager, with resuming HTTPS pools (as the base class's hook)."""
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        classes = dict(self.poolmanager.pool_classes_by_scheme)
        classes["https"] = _pool_class(self._resume_cache)
        self.poolmanager.pool_classes_by_scheme = classes

    def ssl_context_for(self, verify: bool | str = True, cert: Any = None) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` this adapter uses for requests with *verify* and *cert*.

        The adapter's own: one per configuration (and per state of the files
        it names: a replaced CA file gives a new context), made on first use
        and held by no other adapter, so a change made to it changes this
        adapter only. Give it to
        :meth:`resume.stores.StoreLink.register_context` to share its sessions
        through a store.

        Raises:
            OSError: a CA file or directory, or a certificate file, cannot be read.
        """
        files = cert if isinstance(cert, (tuple, list)) else (cert,)
        key = (verify, file_state(verify), repr(cert), tuple(file_state(f) for f in files))
        with self._resume_lock:
            context = self._resume_contexts.get(key)
            if context is None:
                context = _make_context(verify, cert)
                if len(self._resume_contexts) >= _MAX_CONTEXTS:
                    self._resume_contexts.pop(next(iter(self._resume_contexts)))
                self._resume_contexts[key] = context
            return context

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        """Give HTTPS pools their lasting context (see the requests documentation of this hook)."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params.get("scheme") == "https":
            context = self.ssl_context_for(verify, cert)
            pool_kwargs = {
                "ssl_context": context,
                "cert_reqs": "CERT_REQUIRED" if verify is not False else "CERT_NONE",
            }
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Check the CA bundle exists, then leave the files to the pool's context."""
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if url.lower().startswith("https") and issubclass(
            getattr(conn, "ConnectionCls", object), _ResumingHTTPSConnection
        ):
            # The context was made with these files: loading them again for each
            # connection would change its key (and cost a parse per connection).
            conn.ca_certs = None
            conn.ca_cert_dir = None
            conn.cert_file = None
            conn.key_file = None


def _make_context(verify: bool | str, cert: Any) -> ssl.SSLContext:
    if verify is False:
        context = create_client_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        location = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        if os.path.isdir(location):
            context = create_client_context(capath=location)
        else:
            context = create_client_context(cafile=location)
    # urllib3 sets this list before every connection; set now, the context's
    # key (and a store registration) is final from the start.
    context.set_alpn_protocols(["http/1.1"])
    if cert:
        if isinstance(cert, (tuple, list)):
            context.load_cert_chain(cert[0], cert[1] if len(cert) > 1 else None)
        else:
            context.load_cert_chain(cert)
    return context
