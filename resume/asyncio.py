"""Resuming TLS clients for asyncio.

:func:`open_connection` is :func:`asyncio.open_connection` that offers a cached
session before the handshake and stores the connection's session after a clean
close, with the same rules as :mod:`resume.trio` (see :class:`resume.SessionKey`).
"""

from __future__ import annotations

from ._adapters.asyncio_client import ResumingStreamWriter as ResumingStreamWriter
from ._adapters.asyncio_client import SessionInfo as SessionInfo
from ._adapters.asyncio_client import open_connection as open_connection
from ._adapters.asyncio_client import session_info as session_info
from ._adapters.asyncio_server import TLSServer as TLSServer
from ._adapters.asyncio_server import start_server as start_server
from ._core.defaults import default_cache as default_cache
from ._core.key import SessionKey as SessionKey

__all__ = [
    "ResumingStreamWriter",
    "SessionInfo",
    "SessionKey",
    "TLSServer",
    "default_cache",
    "open_connection",
    "session_info",
    "start_server",
]

for _obj in (ResumingStreamWriter, SessionInfo, open_connection, session_info):
    _obj.__module__ = "resume.asyncio"
del _obj
