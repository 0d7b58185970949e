"""Speed and memory of ``resume.manpage.parse`` + ``to_rst`` as the input grows.

Parses generated pages of 10 KB, 100 KB, 1 MB and 10 MB, in both formats (the
heading-less one of the shipped pages and a headed ``man`` rendering), built by
repeating the paragraphs of the shipped pages, and pathological pages of about 1 MB:
one line of prose, one line without a space, a paragraph of 100,000 wrapped lines,
100,000 code lines, 50,000 headings, a SEE ALSO of 100,000 references and a NAME
of 20,000 functions. For each it prints the time per MB (parse + render) and the
peak memory per MB of input (``tracemalloc``, a separate run). Parsing is linear
when both figures stay flat as the size grows.

With ``--cli`` it measures instead what a user of ``resume man2rst FILE`` waits for:
one process per input (the interpreter's start included), its wall time, its peak
resident memory (``ru_maxrss``) and its exit status, on the hostile shapes of about
1 MiB and 16 MiB (the command's input limit) -- a normal page repeated, one huge
line, many tiny lines, bullet-like lines, deep indentation, lines that look like
headings, printable garbage, a page whose first paragraph is no NAME, and the
headed page. ``--cli --quick`` stops at 1 MiB; ``--cli --lift-limits`` runs the
command with its input limits lifted, to time the parser itself at 16 MiB;
``--cli --at-limits`` runs each shape as large as the command takes (2 MiB, 50,000
lines), the worst a user can be made to wait for.

Run: ``python -m benchmarks bench_manpage_speed`` (``--quick`` stops at 1 MB).
"""

from __future__ import annotations

import functools
import gc
import os
import random
import signal
import subprocess
import sys
import tempfile
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


# -- the command line, on hostile shapes -------------------------------------------


def _lines_to(size: int, make: Callable[[int], str], head: list[str], tail: list[str]) -> str:
    """*head*, then ``make(i)`` for i = 0, 1, ... until about *size* bytes, then *tail*."""
    used = sum(len(x.encode()) + 1 for x in head + tail)
    body: list[str] = []
    i = 0
    while used < size:
        line = make(i)
        body.append(line)
        used += len(line.encode()) + 1
        i += 1
    return "\n".join(head + body + tail)


_PLAIN_HEAD = [HEADER, "", NAME, ""]
_PLAIN_TAIL = ["", COPYRIGHT, "", FOOTER, ""]


def tiny_lines(size: int) -> str:
    """A heading-less page of one-character paragraphs: the most blocks per byte."""
    return _lines_to(size, lambda i: "ab"[i % 2], _PLAIN_HEAD, _PLAIN_TAIL)


def bullet_lines(size: int) -> str:
    """A heading-less page of bullet-like lines ("o x", "\u2022 y", "- z")."""
    marks = ("o", "\u2022", "-", "*", "+")
    return _lines_to(size, lambda i: f"{marks[i % 5]} SSL_bench", _PLAIN_HEAD, _PLAIN_TAIL)


def deep_indentation(size: int) -> str:
    """A headed page whose DESCRIPTION lines are indented by up to 4,000 columns."""
    head = [HEADER, "", "NAME", "       " + NAME, "", "DESCRIPTION"]
    return _lines_to(size, lambda i: " " * (7 + 4 * (i % 1000)) + "SSL_bench() frees", head,
                     ["", "3.2.1  2024-01-30  SSL_BENCH(3ssl)", ""])


def heading_lines(size: int) -> str:
    """A heading-less page of lines that look like headings ("SEE ALSO 17")."""
    names = ("DESCRIPTION", "NOTES", "RETURN VALUES", "SEE ALSO", "HISTORY", "BUGS")
    return _lines_to(size, lambda i: f"{names[i % 6]} {i}", _PLAIN_HEAD, _PLAIN_TAIL)


def garbage(size: int) -> str:
    """A header line, then printable ASCII garbage (seeded) in lines of 1-80 characters."""
    rng = random.Random(18)
    alphabet = "".join(map(chr, range(33, 127)))
    return _lines_to(size, lambda i: "".join(rng.choices(alphabet, k=rng.randint(1, 80))),
                     [HEADER, ""], [])


def no_name(size: int) -> str:
    """A header line, then normal prose with no NAME paragraph: not a man page."""
    return _lines_to(size, lambda i: "This is prose, not the NAME of a page.", [HEADER, ""], [])


def repeated_version(size: int) -> str:
    """A heading-less page of 8 KB lines of "OpenSSL 1 " (no verb): a cue read each line
    from every "OpenSSL" to its end."""
    return _lines_to(size, lambda i: "OpenSSL 1 " * 800, _PLAIN_HEAD, _PLAIN_TAIL)


def standard_digits(size: int) -> str:
    """A heading-less page of 8 KB lines of "RFC" and digits: a cue tried every digit as
    the last of the number."""
    return _lines_to(size, lambda i: "RFC" + "1" * 8000 + "!", _PLAIN_HEAD, _PLAIN_TAIL)


def hyphenated_names(size: int) -> str:
    """Half a NAME of names such as "X-17", half paragraphs that name "X": every block was
    searched once per name."""
    names: list[str] = []
    used = 0
    while used < size // 2:
        names.append(f"X-{len(names)}")
        used += len(names[-1]) + 2
    head = [HEADER, "", ", ".join(names) + " - many names", ""]
    return _lines_to(size, lambda i: "X is used here.", head, _PLAIN_TAIL)


#: name -> generator, for ``--cli``.
CLI_SHAPES: dict[str, Callable[[int], str]] = {
    "normal page, repeated": plain_page,
    "normal page, headed": headed_page,
    "one huge line": one_line_of_prose,
    "many tiny lines": tiny_lines,
    "bullet-like lines": bullet_lines,
    "deep indentation": deep_indentation,
    "lines like headings": heading_lines,
    "printable garbage": garbage,
    "no NAME paragraph": no_name,
    "8 KB lines of 'OpenSSL 1 '": repeated_version,
    "8 KB lines of 'RFC' and digits": standard_digits,
    "NAME of hyphenated names": hyphenated_names,
}


#: ``resume man2rst FILE`` with its input limits lifted, to time the parser itself.
_LIFTED = (
    "import sys; from resume._cli import main, man2rst; "
    "man2rst.MAX_INPUT_BYTES, man2rst.MAX_INPUT_LINES = 64 << 20, 1 << 30; "
    "sys.exit(main(sys.argv[1:]))"
)


# Runs the command (argv[2:]) with a time limit (argv[1] seconds) and prints its peak
# resident memory in KiB, its exit code and its wall time on stderr's last line. A
# small process of its own, so that the peak is the command's: a child's ru_maxrss
# starts from what its parent held when it forked, and this benchmark holds the input.
_MEASURE = """\
import os, signal, subprocess, sys, threading, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
timer = threading.Timer(float(sys.argv[1]), os.kill, (child.pid, signal.SIGKILL))
timer.start()
_, status, usage = os.wait4(child.pid, 0)
timer.cancel()
child.returncode = os.waitstatus_to_exitcode(status)
seconds = time.perf_counter() - start
print(f"MEASURED {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {seconds}",
      file=sys.stderr)
"""


def _cli_row(
    label: str, text: str, *, lift: bool = False, env: dict[str, str] | None = None,
    timeout: float = 900.0,
) -> None:
    data = text.encode()
    del text
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as file:
        file.write(data)
    size = len(data)
    del data
    gc.collect()
    try:
        command = ["-c", _LIFTED] if lift else ["-m", "resume"]
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(timeout), sys.executable, *command,
             "man2rst", file.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False,
        )
    finally:
        os.unlink(file.name)
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    _, peak_kib, code, seconds = lines[-1].split()
    err = " ".join(lines[:-1])
    if int(code) == -signal.SIGKILL:
        err = f"stopped after {timeout:g} s"
    print(f"{label:<40} {size / MB:6.2f} MiB {float(seconds):7.2f} s "
          f"{int(peak_kib) / 1024:8.0f} MB exit {code}  {err[:70]}", flush=True)


def at_limits(make: Callable[[int], str]) -> str:
    """The shape made by *make*, as large as ``resume man2rst`` takes: under
    MAX_INPUT_BYTES and MAX_INPUT_LINES (its last lines, the footer, kept)."""
    from resume._cli.man2rst import MAX_INPUT_BYTES, MAX_INPUT_LINES

    size = MAX_INPUT_BYTES - 16 * KB
    while len(text := make(size).encode()) > MAX_INPUT_BYTES:  # a headed page's wrapping
        size = size * MAX_INPUT_BYTES // len(text) - 16 * KB
    lines = text.decode().split("\n")
    if len(lines) >= MAX_INPUT_LINES:
        lines = lines[: MAX_INPUT_LINES - 10] + lines[-8:]
    return "\n".join(lines)


def main_cli(argv: list[str]) -> None:
    sizes = [1 * MB] + ([] if "--quick" in argv else [16 * MB - 64 * KB])
    lift = "--lift-limits" in argv
    print(f"{'resume man2rst FILE':<40} {'input':>10} {'wall':>9} {'peak RSS':>11}"
          + ("  (input limits lifted)" if lift else ""))
    if "--at-limits" in argv:
        for name, make in CLI_SHAPES.items():
            _cli_row(f"{name}, at the limits", at_limits(make), lift=lift)
        return
    for size in sizes:
        for name, make in CLI_SHAPES.items():
            _cli_row(f"{name}, {size / MB:.0f} MiB", make(size), lift=lift)


def main(argv: list[str]) -> None:
    if "--cli" in argv:
        main_cli(argv)
        return
    sizes = [10 * KB, 100 * KB, 1 * MB] + ([] if "--quick" in argv else [10 * MB])
    print(f"{'page':<34} {'input':>11} {'time':>10} {'time/MB':>13} {'peak mem/input':>14}")
    cases: list[tuple[str, Callable[[], str]]] = []
    for size in sizes:
        label = f"{size // MB} MB" if size >= MB else f"{size // KB} KB"
        cases.append((f"plain, {label}", functools.partial(plain_page, size)))
        cases.append((f"headed, {label}", functools.partial(headed_page, size)))
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
