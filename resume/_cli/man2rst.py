# ``resume man2rst FILE``: print the reST of a man page.
#
# FILE is a ``man`` rendering, with its headings (``MANWIDTH=80 man -P cat 3ssl NAME``)
# or in the heading-less one-paragraph-per-line format of the shipped pages; ``-``
# reads standard input. Bad input is reported on stderr with exit code 1.
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from ..manpage import ManPageError, parse
    from ..manpage._rst import to_rst

    source: str = args.file
    try:
        if source == "-":
            text = sys.stdin.read()
            name = None
        else:
            path = Path(source)
            text = path.read_text(encoding="utf-8")
            name = path.name.removesuffix(".txt").split(".")[0] or None
        page = parse(text, name=args.name or name)
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
            "docs/manpages/source ('-' reads standard input)."
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
