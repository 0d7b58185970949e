"""Resuming TLS clients for trio.

:func:`open_tls_stream` connects and resumes a cached session when one fits;
:func:`wrap_client_stream` does the same over a transport you already have.
Both return a :class:`ResumingSSLStream`. The rules of what may be resumed
where are described in :class:`resume.SessionKey`.
"""

from __future__ import annotations

from ._adapters.trio_client import ResumingSSLStream as ResumingSSLStream
from ._adapters.trio_client import open_tls_stream as open_tls_stream
from ._adapters.trio_client import wrap_client_stream as wrap_client_stream
from ._adapters.trio_server import TLSServer as TLSServer
from ._adapters.trio_server import TLSServerStream as TLSServerStream
from ._adapters.trio_server import serve_tls as serve_tls
from ._core.defaults import default_cache as default_cache
from ._core.key import SessionKey as SessionKey

__all__ = [
    "ResumingSSLStream",
    "SessionKey",
    "TLSServer",
    "TLSServerStream",
    "default_cache",
    "open_tls_stream",
    "serve_tls",
    "wrap_client_stream",
]

for _obj in (ResumingSSLStream, open_tls_stream, wrap_client_stream):
    _obj.__module__ = "resume.trio"
del _obj
