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
from resume.manpage import ManPageError, parse, parse_prototype, to_rst
from resume.manpage._parser import find_references

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
            if name in _WINDOWED and args and isinstance(args[0], str):
                self._counter.chars += _window(*args)
            else:
                self._counter.chars += sum(len(a) for a in args if isinstance(a, str))
            return method(*args, **kwargs)

        return counted


#: The pattern methods that take (string, pos, endpos).
_WINDOWED = frozenset({"search", "match", "fullmatch", "finditer", "findall"})


def _window(text: str, pos: int = 0, endpos: int | None = None) -> int:
    """How much of *text* ``pattern.search(text, pos, endpos)`` may read."""
    end = len(text) if endpos is None else min(endpos, len(text))
    return max(0, end - pos)


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
    # the shapes of issue 18: the most blocks per byte, list-like and heading-like
    # lines, deep indentation, and a NAME of names with punctuation in them
    "many one-letter lines": lambda n: plain(*["ab"[i % 2] for i in range(100 * n)]),
    "bullet-like lines": lambda n: plain(
        *[f"{'o*-+'[i % 4]} SSL_lin" if i % 5 else "\u2022 SSL_lin" for i in range(40 * n)]
    ),
    "lines like headings": lambda n: plain(
        *[f"{('DESCRIPTION', 'NOTES', 'SEE ALSO', 'BUGS')[i % 4]} {i}" for i in range(40 * n)]
    ),
    "deep indentation (headed)": lambda n: headed(
        "DESCRIPTION", *[" " * (7 + 4 * (i % 200)) + "SSL_lin() frees" for i in range(10 * n)]
    ),
    # every block named a word of 20 * n names: a search per name and block, quadratic
    "many hyphenated names": lambda n: "\n".join([
        HEADER, "", ", ".join(f"X-{i}" for i in range(10 * n)) + " - many", "",
        *[x for _ in range(n) for x in ("X is used here, and X-Y too.", "")],
        COPYRIGHT, "", FOOTER, "",
    ]),
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


def test_not_a_page_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text whose first paragraph is no NAME costs a few passes over its characters, not
    a parse: it took 40 s at 16 MiB to be called "not a man page"."""
    prose = "This is prose, not the NAME of a page."
    refused = "\n".join([HEADER, "", *[prose] * 4000, ""])
    page = plain(*[prose] * 4000)

    def rejected_work(text: str) -> int:
        with (
            monkeypatch.context() as patch,
            counting(patch) as counter,
            pytest.raises(ManPageError, match="not a man page: the NAME paragraph"),
        ):
            parse(text)
        return counter.chars + counter.lines

    # the checks of the whole text (control characters, overstrikes, lines) cost about
    # three units a character; parsing costs about fifty
    assert rejected_work(refused) < work(monkeypatch, page) / 10


# -- one call of a pattern reads its text a bounded number of times ----------------
#
# The cues once used patterns that were tried again from every match of their first
# part, reading to the end of the text each time: quadratic in one call, where the
# counting hook above sees one string handed over. The texts below are far longer
# than the rules' 8 KB window, so the old patterns would run for hours on them.

LONG = 200_000


def test_standard_name_in_one_pass() -> None:
    # "RFC" and digits: every digit was tried as the one that ends the number
    assert not sections_module._is_code("RFC" + "1" * LONG)  # a standard's name
    assert sections_module._is_code("RFC" + "1" * LONG + " =")  # no name: C
    assert sections_module._is_standard_name("RFC 5246, RFC 8446 (TLS 1.3)")
    assert sections_module._is_standard_name("RFC" + "1" * LONG)
    assert not sections_module._is_standard_name("RFC" + "1" * LONG + "!")


def test_c_line_end_in_one_pass() -> None:
    # "; /*" again and again: every ";" read on to the end for a closing "*/"
    assert not sections_module._ends_like_c("x; /*" * (LONG // 5) + "x")
    assert sections_module._ends_like_c("x; /*" * (LONG // 5) + "*/")
    assert sections_module._ends_like_c("int f(void); /* a comment */")


@pytest.mark.parametrize(
    ("text", "strong", "weak"),
    [
        ("OpenSSL 1 " * (LONG // 10), False, False),
        ("it was added " * (LONG // 13), False, False),
        ("added OpenSSL " * (LONG // 14) + "x", False, False),
        ("OpenSSL 1 " * (LONG // 10) + "deprecated", True, True),
        ("it was added " * (LONG // 13) + "in OpenSSL 3.0.", True, True),
        ("SSL_lin() was added in OpenSSL 1.1.0.", True, True),
        ("The function was made available. It exists in OpenSSL 3.", False, True),
        ("OpenSSL 1.1.0 and later deprecated it.", True, True),
    ],
)
def test_history_cues_in_one_pass(text: str, strong: bool, weak: bool) -> None:
    assert sections_module._history_strong(text) is strong
    assert sections_module._history(text) is weak


def test_return_value_cues_in_one_pass() -> None:
    assert not sections_module._errors_can_occur("the following " * (LONG // 14))
    assert sections_module._errors_can_occur("The following errors can currently occur:")
    callback = ("callback " * (LONG // 9), "The callback should return 1.")
    assert not sections_module._then_in_sentence(
        sections_module._CALLBACK, sections_module._SHOULD_RETURN, callback[0]
    )
    assert sections_module._then_in_sentence(
        sections_module._CALLBACK, sections_module._SHOULD_RETURN, callback[1]
    )


def test_parameter_in_one_pass() -> None:
    # many unclosed "a[": every word was tried as the name, reading on to the end (a
    # fast scan, but 200,000 characters took 8 s; the declaration is not cut to 8 KB)
    assert parse_prototype("int f(" + "a[ " * (15 * LONG // 3) + ")") is None
    prototype = parse_prototype("int f(const char *name[4][2], SSL *s)")
    assert prototype is not None
    assert [(p.type, p.name) for p in prototype.parameters] == [
        ("const char *", "name[4][2]"), ("SSL *", "s"),
    ]


def test_prototype_stars_in_one_pass() -> None:
    # a run of stars was split in every way between the return type and the name
    assert parse_prototype("int " + "*" * LONG + "(void)") is None
    prototype = parse_prototype("const char **SSL_names(SSL *s)")
    assert prototype is not None
    assert (prototype.return_type, prototype.name) == ("const char **", "SSL_names")


def test_references_on_long_names() -> None:
    """A name is at most 128 characters: a longer run gives its last 128 (as the pattern
    did), found from the "(3)" back, not from each character forward."""
    assert [str(r) for r in find_references("see " + "a" * LONG + "(3), b(7) and c.d(1)")] == [
        "a" * 128 + "(3)", "b(7)", "c.d(1)",
    ]
    assert find_references("_" * LONG) == []


def test_leading_blank_lines_in_one_pass() -> None:
    # they were popped one at a time from the front of the list of lines, each pop
    # moving all the others: 400,000 took 16 s
    page = parse("\n" * (15 * LONG) + plain("SSL_lin() does it.") + "\n" * (15 * LONG))
    assert page.name == "SSL_lin"
    assert page.blocks[-1].section == "COPYRIGHT"
