# ``resume man2rst FILE``: print the reST of a man page.
#
# FILE is a ``man`` rendering, with its headings (``MANWIDTH=80 man -P cat 3ssl NAME``)
# or in the heading-less one-paragraph-per-line format of the shipped pages; ``-``
# reads standard input. Bad input is reported on stderr with exit code 1; input over
# ``MAX_INPUT_BYTES`` is refused with exit code 2 before it is parsed (parsing is linear,
# but a page of the manual is under 100 KB: a bigger input is a mistake, not a page).
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["MAX_INPUT_BYTES", "register"]

#: The largest input ``resume man2rst`` reads (16 MiB); the longest page of
#: OpenSSL's manual is under 100 KB.
MAX_INPUT_BYTES = 16 * 1024 * 1024


class _TooBig(Exception):
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


def _run(args: argparse.Namespace) -> int:
    from ..manpage import ManPageError, parse
    from ..manpage._rst import to_rst

    source: str = args.file
    try:
        text = _read(source)
        name = None if source == "-" else Path(source).name.removesuffix(".txt").split(".")[0]
        page = parse(text, name=args.name or name or None)
    except _TooBig:
        print(f"resume man2rst: {source}: over the input limit of {MAX_INPUT_BYTES:,} bytes "
              "(16 MiB); a man page is far smaller: check the file", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"resume man2rst: {source}: no such file", file=sys.stderr)
        return 1
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
            "docs/manpages/source ('-' reads standard input). Input over 16 MiB "
            f"({MAX_INPUT_BYTES:,} bytes) is refused with exit status 2."
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
