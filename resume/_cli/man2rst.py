# ``resume man2rst FILE``: print the reST of a man page.
#
# FILE is a ``man`` rendering, with its headings (``MANWIDTH=80 man -P cat 3ssl NAME``)
# or in the heading-less one-paragraph-per-line format of the shipped pages; ``-``
# reads standard input. Bad input is reported on stderr with exit code 1.
#
# Input limits, checked before anything is parsed (exit code 2, one line). Parsing is
# linear, but not cheap: about 1.3 s and 52 MB of memory per MiB of prose, and a cost
# per line (a block each) that makes one-letter lines the dearest shape: 6 s and
# 150 MB per MiB (``python -m benchmarks bench_manpage_speed --cli``). A man page is
# small: the longest of OpenSSL's manual is under 100 KB and 2,000 lines, the longest
# on the machine this was measured on (cmake-modules(7)) 880 KB and 20,607 lines at
# 80 columns. So:
#
# * MAX_INPUT_BYTES, 2 MiB (it was 16 MiB: 16 MiB of one-letter lines took 212 s and
#   6.3 GB), and
# * MAX_INPUT_LINES, 50,000 lines,
#
# leave more than twice the longest page seen, and keep the dearest input the
# command takes under 3 s and 100 MB (``--cli --at-limits``). An input that is no man
# page (no header line, no NAME paragraph of names, a dash and a summary) is refused
# from its first lines.
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["MAX_INPUT_BYTES", "MAX_INPUT_LINES", "register"]

_MIB = 1024 * 1024

#: The largest input ``resume man2rst`` reads (2 MiB); the longest page of
#: OpenSSL's manual is under 100 KB.
MAX_INPUT_BYTES = 2 * _MIB

#: The most lines ``resume man2rst`` reads; the longest page of OpenSSL's manual has
#: under 2,000.
MAX_INPUT_LINES = 50_000


class _TooBig(Exception):
    pass


class _TooLong(Exception):
    pass


def _read(source: str) -> str:
    """The text of FILE (or of standard input for ``-``), at most MAX_INPUT_BYTES."""
    if source == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # a text stream without bytes under it (a test's StringIO)
            text: str = sys.stdin.read(MAX_INPUT_BYTES + 1)
            if len(text.encode("utf-8")) > MAX_INPUT_BYTES:
                raise _TooBig
            return text
        data: bytes = buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(source, "rb") as file:
            data = file.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _TooBig
    return data.decode("utf-8")


def _size(count: int) -> str:
    return f"{count / _MIB:g} MiB" if count >= _MIB else f"{count / 1024:g} KiB"


def _run(args: argparse.Namespace) -> int:
    from ..manpage import ManPageError, parse
    from ..manpage._rst import to_rst

    source: str = args.file
    try:
        text = _read(source)
        if text.count("\n") >= MAX_INPUT_LINES:
            raise _TooLong
        name = None if source == "-" else Path(source).name.removesuffix(".txt").split(".")[0]
        page = parse(text, name=args.name or name or None)
    except _TooBig:
        print(f"resume man2rst: {source}: over the input limit of {MAX_INPUT_BYTES:,} bytes "
              f"({_size(MAX_INPUT_BYTES)}); a man page is far smaller: check the file",
              file=sys.stderr)
        return 2
    except _TooLong:
        print(f"resume man2rst: {source}: over the input limit of {MAX_INPUT_LINES:,} lines; "
              "a man page is far shorter: check the file", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"resume man2rst: {source}: no such file", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"resume man2rst: {source}: cannot read it: {exc}", file=sys.stderr)
        return 1
    except ManPageError as exc:
        print(f"resume man2rst: {source}: {exc}", file=sys.stderr)
        return 1
    known = {}
    for page_name in args.link or ():
        known[page_name] = page_name
    sys.stdout.write("\n".join(to_rst(page, known_pages=known)) + "\n")
    return 0


def register(subparsers: Any) -> None:
    """Register ``resume man2rst FILE``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "man2rst",
        help="print a man page (man rendering, with or without headings) as reStructuredText",
        description=(
            "Print the reStructuredText of a man page. FILE is the output of "
            "'MANWIDTH=80 man -P cat 3ssl NAME', or the heading-less format of "
            "docs/manpages/source ('-' reads standard input). Input over "
            f"{_size(MAX_INPUT_BYTES)} ({MAX_INPUT_BYTES:,} bytes) or "
            f"{MAX_INPUT_LINES:,} lines is refused with exit status 2."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the man page text, or - for stdin")
    parser.add_argument(
        "--name", help="the page name used in sentence IDs (default: from the file name)"
    )
    parser.add_argument(
        "--link", action="append", metavar="PAGE",
        help="a page generated alongside, linked with :doc: from SEE ALSO (repeatable)",
    )
    parser.set_defaults(func=_run)
