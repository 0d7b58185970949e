"""A requests adapter that resumes TLS sessions.

``session.mount("https://", resume.requests.HTTPAdapter())`` on a
:class:`requests.Session`. Needs ``pip install resume-tls[requests]``;
importing :mod:`resume` alone never imports requests.
"""

from __future__ import annotations

from ._integrations.requests import HTTPAdapter as HTTPAdapter

__all__ = ["HTTPAdapter"]

HTTPAdapter.__module__ = "resume.requests"
