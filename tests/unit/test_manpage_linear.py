"""Parsing and rendering a man page is linear in its size (no timing: work is counted).

A counting hook measures the work of ``parse`` + ``to_rst`` on inputs of size n and 4n:
the characters handed to regular expressions by ``resume.manpage`` and the Python
lines it executes. Linear work grows about 4 times; the quadratic spots this replaced
(a regex over the whole text per block, a joined string rescanned per line, a look
back over every code line) grow about 16 times. Backtracking inside one regex call
is not counted here: the pathological inputs below would run for hours with the old
patterns, and ``benchmarks/bench_manpage_speed.py`` times every shape.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType, SimpleNamespace
from typing import Any

import pytest

import resume.manpage._parser as parser_module
import resume.manpage._rst as rst_module
import resume.manpage._sections as sections_module
import resume.manpage._sentences as sentences_module
from resume.manpage import parse, parse_prototype, to_rst

MODULES: tuple[ModuleType, ...] = (parser_module, rst_module, sections_module, sentences_module)
FILES = {str(Path(m.__file__ or "")) for m in MODULES}
HEADER = "SSL_LIN(3ssl) OpenSSL SSL_LIN(3ssl)"
FOOTER = "2024-01-30 3.2.1"
NAME = "SSL_lin, SSL_lin_free - a generated page"
COPYRIGHT = "Copyright 2024 The OpenSSL Project Authors. All Rights Reserved."
PROSE = (
    "SSL_lin() frees the session, e.g. the one SSL_get_session(3) returned. "
    "Applications should not call it twice; see ssl(7) for the details."
)


class Counter:
    def __init__(self) -> None:
        self.chars = 0
        self.lines = 0


class CountingPattern:
    """A compiled pattern that adds the length of every string it is given."""

    def __init__(self, pattern: re.Pattern[str], counter: Counter) -> None:
        self._pattern = pattern
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pattern, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counter.chars += sum(len(a) for a in args if isinstance(a, str))
            return method(*args, **kwargs)

        return counted


def _counting_re(counter: Counter) -> SimpleNamespace:
    def wrap(name: str) -> Callable[..., Any]:
        function = getattr(re, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            # the pattern is args[0]: count the strings searched, not the pattern
            counter.chars += sum(len(a) for a in args[1:] if isinstance(a, str))
            return function(*args, **kwargs)

        return counted

    names = ("search", "match", "fullmatch", "findall", "finditer", "sub", "split")
    return SimpleNamespace(**{n: wrap(n) for n in names}, IGNORECASE=re.IGNORECASE,
                           I=re.I, escape=re.escape, compile=re.compile)


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counter = Counter()
    for module in MODULES:
        monkeypatch.setattr(module, "re", _counting_re(counter))
        for name, value in vars(module).copy().items():
            if isinstance(value, re.Pattern):
                monkeypatch.setattr(module, name, CountingPattern(value, counter))

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename not in FILES:
            return None
        if event == "line":
            counter.lines += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        yield counter
    finally:
        sys.settrace(previous)


def work(monkeypatch: pytest.MonkeyPatch, text: str) -> int:
    with monkeypatch.context() as patch, counting(patch) as counter:
        to_rst(parse(text))
    return counter.chars + counter.lines


def plain(*body: str) -> str:
    return "\n".join([HEADER, "", NAME, "", *body, "", COPYRIGHT, "", FOOTER, ""])


def headed(*body: str) -> str:
    return "\n".join([HEADER, "", "NAME", "       " + NAME, "", *body, "",
                      "3.2.1  2024-01-30  SSL_LIN(3ssl)", ""])


SHAPES: dict[str, Callable[[int], str]] = {
    "many paragraphs": lambda n: plain(
        "#include <openssl/ssl.h>", "", "void SSL_lin(SSL *s);", "",
        *[x for _ in range(n) for x in (PROSE, "")],
        "SSL_lin() returns 1 on success or 0 on error.",
    ),
    "one long line": lambda n: plain("SSL_lin() " + " ".join([PROSE] * n)),
    "one long paragraph (headed)": lambda n: headed(
        "DESCRIPTION", *["       SSL_lin() frees a ses-" if i % 3 else "       sion, e.g. it"
                         for i in range(10 * n)]
    ),
    "many code lines": lambda n: plain(
        "SSL_lin() is used like this:", *[f"    x{i} = SSL_lin(s, {i});" for i in range(10 * n)]
    ),
    "many headings (headed)": lambda n: headed(
        *[x for i in range(5 * n) for x in (f"HEADING {i}", "       SSL_lin() does it.", "")]
    ),
    "long SEE ALSO": lambda n: plain(
        "SSL_lin() does it.", ", ".join(f"SSL_lin_{i}(3)" for i in range(20 * n))
    ),
    "many functions": lambda n: "\n".join([
        HEADER, "", ", ".join(f"SSL_lin_{i}" for i in range(10 * n)) + " - many", "",
        *[x for i in range(n) for x in (f"SSL_lin_{i}() does it.", "")],
        COPYRIGHT, "", FOOTER, "",
    ]),
    "unbalanced SYNOPSIS": lambda n: plain(
        "#include <openssl/ssl.h>", "int SSL_lin(SSL *s,",
        *[f"            long a{i}," for i in range(5 * n)], "", PROSE,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_work_grows_linearly(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make = SHAPES[shape]
    small, large = work(monkeypatch, make(25)), work(monkeypatch, make(100))
    # linear: about 4 (less where a fixed part or the rules' bounded window of a long
    # block weighs); quadratic: about 16
    assert 1 < large / small < 5.5, (small, large)


def test_the_hook_sees_quadratic_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook itself: the old way of joining wrapped lines is caught."""

    def old_join(lines: list[str]) -> str:
        out = ""
        for line in lines:
            # the module's re at call time: the counting one
            hyphen = vars(parser_module)["re"].search(r"[A-Za-z0-9]-$", out)
            out = out + line if hyphen else f"{out} {line}"
        return out

    monkeypatch.setattr(parser_module, "_join_wrapped", old_join)
    make = SHAPES["one long paragraph (headed)"]
    small, large = work(monkeypatch, make(25)), work(monkeypatch, make(100))
    assert large / small > 8


def test_near_reference_list_is_read_in_one_pass() -> None:
    # every "andg(3)" can be a separator and a name or a name alone: the old pattern
    # tried 2**60 splits of this line before giving up
    line = "f(3)" + " andg(3)" * 60 + " and nothing else"
    page = parse(plain("SSL_lin() does it.", line))
    assert page.blocks[2].text == line


def test_unclosed_prototype_is_read_in_one_pass() -> None:
    # the old pattern tried every split of the 60 letters into words
    assert parse_prototype("int " + "a" * 60 + "(x") is None
    page = parse(plain("#include <openssl/ssl.h>", "", "int " + "a" * 60 + "(SSL *s", "",
                       PROSE))
    assert page.synopsis.other == ("int " + "a" * 60 + "(SSL *s",)
