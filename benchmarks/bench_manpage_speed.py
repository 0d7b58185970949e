"""Speed and memory of ``resume.manpage.parse`` + ``to_rst`` as the input grows.

Parses generated pages of 10 KB, 100 KB, 1 MB and 10 MB, in both formats (the
heading-less one of the shipped pages and a headed ``man`` rendering), built by
repeating the paragraphs of the shipped pages, and pathological pages of about 1 MB:
one line of prose, one line without a space, a paragraph of 100,000 wrapped lines,
100,000 code lines, 50,000 headings, a SEE ALSO of 100,000 references and a NAME
of 20,000 functions. For each it prints the time per MB (parse + render) and the
peak memory per MB of input (``tracemalloc``, a separate run). Parsing is linear
when both figures stay flat as the size grows.

Run: ``python -m benchmarks bench_manpage_speed`` (``--quick`` stops at 1 MB).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from itertools import cycle
from pathlib import Path

from resume.manpage import parse, to_rst

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "docs" / "manpages" / "source"
KB = 1024
MB = 1024 * KB

HEADER = "SSL_BENCH(3ssl) OpenSSL SSL_BENCH(3ssl)"
FOOTER = "2024-01-30 3.2.1"
NAME = "SSL_bench, SSL_bench_free - a generated page"
COPYRIGHT = (
    "Copyright 2024 The OpenSSL Project Authors. All Rights Reserved. Licensed under the "
    "Apache License 2.0 (the \"License\")."
)


def _prose() -> list[str]:
    """The prose paragraphs of the shipped pages (DESCRIPTION, NOTES, RETURN VALUES)."""
    out: list[str] = []
    for path in sorted(SHARED.glob("*.txt")):
        page = parse(path.read_text(), name=path.stem)
        out.extend(b.text for b in page.blocks
                   if b.section in ("DESCRIPTION", "NOTES") and b.kind != "code")
    return out


def _fill(size: int, paragraphs: Iterator[str], used: int) -> list[str]:
    body: list[str] = []
    while used < size:
        text = next(paragraphs)
        body.append(text)
        used += len(text) + 2
    return body


def plain_page(size: int) -> str:
    """A heading-less page of about *size* characters."""
    start = [HEADER, "", NAME, "", "#include <openssl/ssl.h>", "",
             "int SSL_bench(SSL *s, long n);", "", "void SSL_bench_free(SSL *s);", ""]
    end = ["SSL_bench() returns 1 on success or 0 on error.", "",
           "ssl(7), SSL_free(3)", "", "SSL_bench() was added in OpenSSL 3.2.", "",
           COPYRIGHT, "", FOOTER, ""]
    used = sum(len(x) + 1 for x in start + end)
    body = _fill(size, cycle(_prose()), used)
    return "\n".join(start + [x for t in body for x in (t, "")] + end)


def _wrap(text: str, indent: int = 7, width: int = 80) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and indent + len(line) + 1 + len(word) > width:
            lines.append(" " * indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(" " * indent + line)
    return lines


def headed_page(size: int) -> str:
    """A ``man`` rendering with headings of about *size* characters."""
    start = [HEADER, "", "NAME", "       " + NAME, "", "SYNOPSIS",
             "        #include <openssl/ssl.h>", "",
             "        int SSL_bench(SSL *s, long n);", "", "DESCRIPTION"]
    end = ["RETURN VALUES", "       SSL_bench() returns 1 on success or 0 on error.", "",
           "SEE ALSO", "       ssl(7), SSL_free(3)", "", "COPYRIGHT", *_wrap(COPYRIGHT), "",
           "3.2.1                          2024-01-30                  SSL_BENCH(3ssl)", ""]
    used = sum(len(x) + 1 for x in start + end)
    lines: list[str] = []
    for text in _fill(size, cycle(_prose()), used):
        lines.extend([*_wrap(text), ""])
    return "\n".join(start + lines + end)


def _plain_with(*body: str) -> str:
    return "\n".join([HEADER, "", NAME, "", *body, "", COPYRIGHT, "", FOOTER, ""])


def one_line_of_prose(size: int) -> str:
    words = cycle(" ".join(_prose()).split())
    parts: list[str] = []
    used = 0
    while used < size:
        word = next(words)
        parts.append(word)
        used += len(word) + 1
    return _plain_with("SSL_bench() " + " ".join(parts) + ".")


def one_line_without_space(size: int) -> str:
    return _plain_with("SSL_bench() " + "a.b-c_d(" * (size // 8) + ".")


def long_paragraph(lines: int) -> str:
    """A headed page whose DESCRIPTION is one paragraph of *lines* wrapped lines."""
    words = cycle(["SSL_bench()", "frees", "the", "session,", "hyphen-", "ated", "words",
                   "and", "a", "ref(3)", "too"])
    body = [f"       {next(words)} {next(words)} {next(words)}" for _ in range(lines)]
    return "\n".join([HEADER, "", "NAME", "       " + NAME, "", "DESCRIPTION", *body, "",
                      "3.2.1  2024-01-30  SSL_BENCH(3ssl)", ""])


def many_code_lines(lines: int) -> str:
    """A heading-less page with *lines* lines of C after one sentence of prose."""
    code = [f"    x{i} = SSL_bench(s, {i});" for i in range(lines)]
    return _plain_with("SSL_bench() is used like this:", *code)


def many_headings(count: int) -> str:
    body: list[str] = []
    for i in range(count):
        body.extend([f"HEADING {i % 997}", "       SSL_bench() does a thing here.", ""])
    return "\n".join([HEADER, "", "NAME", "       " + NAME, "", *body,
                      "3.2.1  2024-01-30  SSL_BENCH(3ssl)", ""])


def long_see_also(count: int) -> str:
    refs = ", ".join(f"SSL_bench_{i}(3)" for i in range(count))
    return _plain_with("SSL_bench() does a thing.", refs)


def many_functions(count: int) -> str:
    names = ", ".join(f"SSL_bench_{i}" for i in range(count))
    text = "\n".join([HEADER, "", f"{names} - many functions", "",
                      "SSL_bench_1() does a thing.", "", COPYRIGHT, "", FOOTER, ""])
    return text


def _run(text: str) -> int:
    page = parse(text)
    return len(to_rst(page))


def _measure(text: str) -> tuple[float, float]:
    """(seconds, peak bytes) of parse + to_rst; memory measured in a second run."""
    gc.collect()
    start = time.perf_counter()
    _run(text)
    seconds = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    try:
        _run(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seconds, peak


def _row(label: str, text: str) -> None:
    seconds, peak = _measure(text)
    size = len(text.encode()) / MB
    print(f"{label:<34} {size:8.2f} MB {seconds:8.2f} s {seconds / size:8.2f} s/MB "
          f"{peak / MB / size:8.1f} MB/MB", flush=True)


def main(argv: list[str]) -> None:
    sizes = [10 * KB, 100 * KB, 1 * MB] + ([] if "--quick" in argv else [10 * MB])
    print(f"{'page':<34} {'input':>11} {'time':>10} {'time/MB':>13} {'peak mem/input':>14}")
    cases: list[tuple[str, Callable[[], str]]] = []
    for size in sizes:
        label = f"{size // MB} MB" if size >= MB else f"{size // KB} KB"
        cases.append((f"plain, {label}", lambda size=size: plain_page(size)))
        cases.append((f"headed, {label}", lambda size=size: headed_page(size)))
    cases += [
        ("one 1 MB line of prose", lambda: one_line_of_prose(MB)),
        ("one 1 MB line without a space", lambda: one_line_without_space(MB)),
        ("one paragraph of 100,000 lines", lambda: long_paragraph(100_000)),
        ("100,000 code lines", lambda: many_code_lines(100_000)),
        ("50,000 headings", lambda: many_headings(50_000)),
        ("SEE ALSO of 100,000 references", lambda: long_see_also(100_000)),
        ("NAME of 20,000 functions", lambda: many_functions(20_000)),
    ]
    for label, make in cases:
        _row(label, make())
