# The ``resume`` command line. Each subcommand lives in its own module of this
# package and exposes ``register(subparsers)``, which adds its parser and sets
# ``func`` (a callable taking the parsed namespace and returning an exit code).
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ._common import CLIError, Parser

__all__ = ["build_parser", "main"]

#: The subcommand modules, in the order ``resume --help`` lists them.
_COMMANDS = ("demo", "serve", "connect", "probe", "man2rst")


def build_parser() -> Parser:
    """Build the ``resume`` argument parser with every subcommand registered."""
    parser = Parser(
        prog="resume",
        description=(
            "TLS session resumption for async Python. "
            "Start with 'resume demo' to see resumption at work on loopback."
        ),
    )
    parser.add_argument("--version", action="version", version=f"resume {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(subparsers)
    parser.commands = dict(subparsers.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``resume`` command line; return the exit code.

    Errors are one line on stderr (``resume COMMAND: ...``): exit code 2 for bad
    usage, 1 for a failure at run time. An unexpected exception is one line too;
    ``RESUME_DEBUG=1`` in the environment shows its traceback.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        parser.print_help(sys.stderr)
        return 2
    command = func.__module__.rpartition(".")[2]
    if extras:  # named by the subcommand, whose --help lists what it takes
        parser.commands.get(command, parser).error(
            f"unrecognized arguments: {' '.join(extras)}"
        )
    prog = f"resume {command}"
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``resume probe ... --json | head``): stop quietly,
        # and keep Python from failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    except CLIError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if os.environ.get("RESUME_DEBUG"):
            raise
        print(
            f"{prog}: unexpected error: {type(exc).__name__}: {exc} "
            "(RESUME_DEBUG=1 shows the traceback; please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
