# Shared fixtures and the ``manpage`` marker.
#
# ``@pytest.mark.manpage("SSL_SESSION_free:desc-4", ...)`` marks a test as the proof
# of normative man-page sentences. A sentence ID is ``PAGE:SECTION-N``: PAGE is the
# man page's file name, SECTION the abbreviation of its section (desc, notes, ret,
# ...) and N the 1-based number of the sentence within that section (see
# resume.manpage). The docs build renders these marks as the conformance matrix;
# ``--conformance-report=PATH`` writes, for each sentence ID, the tests that prove
# it and their outcome in this run, with the reason of each skip (by convention it
# says "needs PROGRAM" when a program is missing; docs/browser_check.py relies on it).
from __future__ import annotations

import json
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conformance-report",
        metavar="PATH",
        default=None,
        help="write a JSON report of which test proves which man-page sentence, with outcomes",
    )


_OUTCOMES: dict[str, str] = {}
_SKIP_REASONS: dict[str, str] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker("manpage") is not None:
        outcome = report.outcome
        if call.when == "call" or outcome != "passed":
            previous = _OUTCOMES.get(item.nodeid)
            if previous in (None, "passed"):
                _OUTCOMES[item.nodeid] = outcome
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    _SKIP_REASONS[item.nodeid] = str(report.longrepr[2]).removeprefix(
                        "Skipped: "
                    )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--conformance-report")
    if not path:
        return
    sentences: dict[str, list[dict[str, str]]] = {}
    for item in session.items:
        for mark in item.iter_markers("manpage"):
            for sentence_id in mark.args:
                entry = {"test": item.nodeid, "outcome": _OUTCOMES.get(item.nodeid, "not run")}
                if item.nodeid in _SKIP_REASONS:
                    entry["reason"] = _SKIP_REASONS[item.nodeid]
                elif entry["outcome"] == "not run":
                    entry["reason"] = "the test run stopped before it"
                sentences.setdefault(str(sentence_id), []).append(entry)
    report = Path(path)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"sentences": sentences}, indent=2, sort_keys=True))


# -- unit tests open no network connection ---------------------------------------------
#
# Tests under tests/unit run no program but Python and open no TCP/UDP socket:
# this fixture makes any connect or bind on an internet socket fail there, so a
# unit test that needs a peer fails loudly instead of quietly becoming an
# integration test (those live in tests/integration and skip, outside CI, when
# their program is missing: see tests/programs.py).

_UNIT = Path(__file__).resolve().parent / "unit"
_INET = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True)
def _unit_tests_open_no_network(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _UNIT not in Path(str(request.node.path)).resolve().parents:
        return
    for name in ("connect", "connect_ex", "bind"):
        original = getattr(socket.socket, name)

        def guarded(
            self: socket.socket, *args: Any, _original: Any = original, _name: str = name
        ) -> Any:
            if self.family in _INET:
                raise AssertionError(
                    f"a unit test called socket.{_name}{args!r}: move it to tests/integration"
                )
            return _original(self, *args)

        monkeypatch.setattr(socket.socket, name, guarded)


# -- programs a test needs, checked before it starts -------------------------------------
#
# ``@pytest.mark.requires("openssl", "curl")`` runs tests/programs.require for each
# program in the setup phase: a skip raised there keeps its reason, while one
# raised inside a trio or asyncio test would reach pytest without it.


def pytest_runtest_setup(item: pytest.Item) -> None:
    from programs import require

    for mark in item.iter_markers("requires"):
        for program in mark.args:
            require(str(program))
