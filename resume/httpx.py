"""httpx transports that resume TLS sessions.

``httpx.AsyncClient(transport=resume.httpx.AsyncHTTPTransport())`` (asyncio or
trio) and ``httpx.Client(transport=resume.httpx.HTTPTransport())`` take
httpx's transport arguments plus ``cache=``. Needs ``pip install
resume-tls[httpx]``; importing :mod:`resume` alone never imports httpx.
"""

from __future__ import annotations

from ._integrations.httpx import AsyncHTTPTransport as AsyncHTTPTransport
from ._integrations.httpx import HTTPTransport as HTTPTransport

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

for _obj in (AsyncHTTPTransport, HTTPTransport):
    _obj.__module__ = "resume.httpx"
del _obj
