"""An aiohttp connector that resumes TLS sessions.

``aiohttp.ClientSession(connector=resume.aiohttp.TCPConnector())``. Needs
``pip install resume-tls[aiohttp]``; importing :mod:`resume` alone never
imports aiohttp.
"""

from __future__ import annotations

from ._integrations.aiohttp import TCPConnector as TCPConnector

__all__ = ["TCPConnector"]

TCPConnector.__module__ = "resume.aiohttp"
