"""Resuming TLS clients for asyncio.

:func:`open_connection` is :func:`asyncio.open_connection` that offers a cached
session before the handshake and stores the connection's session after a clean
close, with the same rules as :mod:`resume.trio` (see :class:`resume.SessionKey`).
"""

from __future__ import annotations

from ._asyncio import ResumingStreamWriter as ResumingStreamWriter
from ._asyncio import SessionInfo as SessionInfo
from ._asyncio import open_connection as open_connection
from ._asyncio import session_info as session_info
from ._asyncio_server import TLSServer as TLSServer
from ._asyncio_server import start_server as start_server
from ._defaults import default_cache as default_cache
from ._key import SessionKey as SessionKey

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
