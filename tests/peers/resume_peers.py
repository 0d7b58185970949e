"""A pytest plugin that runs an HTTP client's own test suite with resume's class swapped in.

``nox -s peers`` runs requests', httpx's and aiohttp's own test suites (from the
sdist of the installed version) twice, once as they are and once with this
plugin swapping resume's class in where the client makes its own:

* requests: ``requests.adapters.HTTPAdapter`` (and the name ``requests.sessions``
  mounts on every new Session) becomes :class:`resume.requests.HTTPAdapter`;
* httpx: ``httpx.HTTPTransport`` and ``httpx.AsyncHTTPTransport`` (also where
  ``httpx.Client`` makes its default transport) become resume's transports;
* aiohttp: ``aiohttp.TCPConnector`` (also where ``ClientSession`` makes its
  default connector) becomes :class:`resume.aiohttp.TCPConnector`.

The swap happens in ``pytest_configure``, before the suite's modules are
imported, so a test module that imports the name gets resume's class. Each
swapped run checks that the swap took effect: a new Session/Client/connector
made through the client's public API is resume's, and at least one instance was
made during the run; a swapped run where either fails exits with status 3.

Environment:
    RESUME_PEERS_CLIENT: ``requests``, ``httpx`` or ``aiohttp``.
    RESUME_PEERS_SWAP: ``1`` to swap resume's class in, ``0`` to run as is.
    RESUME_PEERS_REPORT: where to write the JSON report (outcome per test id).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

_OUTCOMES: dict[str, str] = {}
_MADE = [0]
_CHECKED: list[str] = []


def _count(cls: type[Any]) -> None:
    # Count the instances made during the run (wrapping __init__ on the class itself).
    original: Callable[..., None] = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _MADE[0] += 1
        original(self, *args, **kwargs)

    setattr(cls, "__init__", __init__)  # noqa: B010 - mypy refuses a plain assignment


def _swap_requests() -> None:
    import requests
    import requests.adapters
    import requests.sessions

    import resume.requests

    ours = resume.requests.HTTPAdapter
    _count(ours)
    for module in (requests, requests.adapters, requests.sessions):
        setattr(module, "HTTPAdapter", ours)  # noqa: B010
    adapter = requests.Session().get_adapter("https://example.com/")
    if not isinstance(adapter, ours):
        _CHECKED.append(f"a new requests.Session mounts {type(adapter)!r}")


def _swap_httpx() -> None:
    import httpx
    import httpx._client
    import httpx._transports.default

    import resume.httpx

    for name in ("HTTPTransport", "AsyncHTTPTransport"):
        ours = getattr(resume.httpx, name)
        _count(ours)
        for module in (httpx, httpx._client, httpx._transports.default):
            setattr(module, name, ours)
    with httpx.Client() as client:
        transport = client._transport
    if not isinstance(transport, resume.httpx.HTTPTransport):
        _CHECKED.append(f"a new httpx.Client uses {type(transport)!r}")


def _swap_aiohttp() -> None:
    import aiohttp
    import aiohttp.client
    import aiohttp.connector

    import resume.aiohttp

    ours = resume.aiohttp.TCPConnector
    _count(ours)
    for module in (aiohttp, aiohttp.client, aiohttp.connector):
        setattr(module, "TCPConnector", ours)  # noqa: B010
    if aiohttp.client.TCPConnector is not ours:  # pragma: no cover - a read-only module
        _CHECKED.append("aiohttp.client.TCPConnector is not resume's")


_SWAPS = {"requests": _swap_requests, "httpx": _swap_httpx, "aiohttp": _swap_aiohttp}


def _swapping() -> bool:
    return os.environ.get("RESUME_PEERS_SWAP") == "1"


def pytest_configure(config: pytest.Config) -> None:
    client = os.environ.get("RESUME_PEERS_CLIENT", "")
    if client not in _SWAPS:
        raise pytest.UsageError(f"RESUME_PEERS_CLIENT must be one of {sorted(_SWAPS)}")
    if _swapping():
        _SWAPS[client]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # One outcome per test: failed if any phase failed, else skipped/xfailed if
    # so, else passed.
    previous = _OUTCOMES.get(report.nodeid)
    if report.failed:
        outcome = "failed"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        outcome = previous or "passed"
    if previous in ("failed", "skipped", "xfailed"):
        return
    _OUTCOMES[report.nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    swapped = _swapping()
    if swapped and _MADE[0] == 0:
        _CHECKED.append("no instance of resume's class was made during the run")
    path = os.environ.get("RESUME_PEERS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "client": os.environ.get("RESUME_PEERS_CLIENT"),
                    "swapped": swapped,
                    "instances": _MADE[0],
                    "swap_problems": _CHECKED,
                    "outcomes": _OUTCOMES,
                },
                f,
                indent=1,
                sort_keys=True,
            )
    if swapped and _CHECKED:
        session.exitstatus = 3


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _swapping():
        terminalreporter.write_line(
            f"resume_peers: {_MADE[0]} instances of resume's class made; "
            f"swap problems: {_CHECKED or 'none'}"
        )
