# Offering a cached session on a connection, before its handshake.
#
# A handle over an ssl.SSLSession is offered by setting ``SSLObject.session``
# (``SSL_set_session()``). A handle over a native session (imported from DER by
# the OpenSSL binding) carries an ``offer(ssl_object)`` method that calls
# ``SSL_set_session()`` through the binding. The adapters call offer() and
# nothing else, so they need not know which kind of session they hold.
from __future__ import annotations

import ssl

from .errors import SessionError
from .handle import SessionHandle

__all__ = ["offer"]


def offer(ssl_object: ssl.SSLObject | ssl.SSLSocket, handle: SessionHandle) -> None:
    """Offer *handle*'s session on *ssl_object* before its handshake (``SSL_set_session()``)."""
    session = handle.ssl_session
    if session is not None:
        ssl_object.session = session
        return
    native_offer = getattr(handle.payload, "offer", None)
    if native_offer is None:
        raise SessionError(f"{handle!r} holds no TLS session that can be offered")
    native_offer(ssl_object)
