# ``resume connect``: TLS connections through a session cache that sits on a
# store, so that two runs in a row show resumption across processes, and
# ``--count N`` shows it within one run.
#
# Steps: build the client SSLContext (--cafile, --tls), open the store given by
# --sessions (none: an in-memory cache, which dies with the process), attach a
# SessionCache to it and register the context with the link (its keys become
# stable across processes; see resume._stores.link), then connect with
# resume.trio.open_tls_stream (before the TCP connect it fetches a session from
# the store in a thread), send one line, read the answer (with it come the TLS
# 1.3 tickets) and close cleanly: the clean close adds the connection's session to the cache, which
# writes it through to the store. Finally the link writes back what it fetched
# and did not use, and the store is closed.
#
# A store that is down never fails the connection: the link warns (stderr) and
# the handshake is a full one.
#
# The answer is one line, read until its newline, and no more than MAX_LINE
# bytes of it are kept: a server that sends an endless line (or a megabyte
# without a newline) ends the connection with a one-line error and exit 1, as
# soon as the limit is passed, instead of filling memory until --timeout. The
# newline is looked for in each new chunk only, so reading is linear too.
#
# Errors are one line naming the file, address or value at fault (see
# resume._cli._common): usage errors exit 2, failures to connect exit 1.
#
# Store keys. Stored sessions are sealed with a key that is not in the
# store. sqlite:PATH needs no option: the key file PATH.key is made on first
# use. redis:// needs --store-key-file FILE (made on first use too; copy it to
# every host that shares the store), or the loud --insecure-unauthenticated-store.
# Store URLs are shown with their password redacted.
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import warnings
from pathlib import Path
from typing import Any

from .._core.limits import TLS_VERSIONS
from ._common import (
    CLIError,
    count,
    describe_connect_error,
    plural,
    regular_file,
    seconds,
    server_name,
    store_file,
)

__all__ = ["MAX_LINE", "parse_target", "register", "run"]

#: The longest answer line ``resume connect`` reads (bytes, newline excluded).
MAX_LINE = 64 * 1024

#: The label under which ``resume connect`` registers its context with the store:
#: it sets no client certificate and no ALPN, so nothing else needs naming.
_LABEL = "resume connect v1"


def register(subparsers: Any) -> None:
    """Register the ``connect`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "connect",
        help="make TLS connections, resuming a stored session if there is one",
        description=(
            "Connect to HOST:PORT over TLS, send one line, read the answer and close "
            "cleanly; report the TLS version and whether the session was resumed. "
            "With --count N, connect N times through one session cache: the second "
            "connection resumes. With --sessions, sessions are kept in a store between "
            "runs: run the command twice and the second run resumes."
        ),
    )
    parser.add_argument("target", metavar="HOST:PORT", help="the server (IPv6: [ADDR]:PORT)")
    parser.add_argument(
        "--server-name", metavar="NAME", type=server_name,
        help="the name to send (SNI) and verify; default: HOST",
    )
    parser.add_argument(
        "--cafile", metavar="FILE", type=Path,
        help="trust the CA certificates in FILE (PEM) instead of the system's",
    )
    parser.add_argument(
        "--tls", choices=sorted(TLS_VERSIONS), help="use only this TLS version",
    )
    parser.add_argument(
        "--sessions", metavar="STORE",
        help=(
            "keep sessions in a store: sqlite:PATH (a file, created 0600) or "
            "redis://HOST:PORT/DB (also rediss://, unix://); default: none"
        ),
    )
    parser.add_argument(
        "--store-key-file", "--key-file", dest="key_file", metavar="FILE", type=Path,
        help=(
            "seal stored sessions with the 32-byte key in FILE (AES-256-GCM), made 0600 on "
            "first use; required with redis:// (give every host the same file); default "
            "for sqlite:PATH: PATH.key"
        ),
    )
    parser.add_argument(
        "--insecure-unauthenticated-store", action="store_true",
        help=(
            "use the store without a key: anyone who can write to it can make this "
            "command trust a server it should not (warns every time)"
        ),
    )
    parser.add_argument(
        "--message", default="hello", metavar="TEXT",
        help="the line to send (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=seconds, default=10.0, metavar="SECONDS",
        help="give up on a connection after this long (default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=count, default=1, metavar="N",
        help="connect N times, one after the other, through one session cache (default: 1)",
    )
    parser.add_argument(
        "--json", action="store_true",
        help="print each connection's result as one line of JSON",
    )
    parser.set_defaults(func=run)


def parse_target(target: str) -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (or ``[IPV6][:PORT]``) into host and port, 443 by default.

    The same rules as ``resume probe`` (:func:`resume._cli.probe.parse_host_port`).

    Raises:
        ValueError: a bad port, or an empty host.
    """
    from .probe import parse_host_port

    return parse_host_port(target)


def _open_store(spec: str, key_file: Path | None, insecure: bool) -> Any:
    from .._stores.safefile import load_or_create_key, redact_url
    from ..stores import RedisStore, SQLiteStore

    is_sqlite = spec.startswith("sqlite:")
    if not is_sqlite and not spec.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"--sessions takes sqlite:PATH or redis://HOST:PORT/DB, got {redact_url(spec)!r}"
        )
    if insecure and key_file is not None:
        raise ValueError("give --store-key-file or --insecure-unauthenticated-store, not both")
    if not is_sqlite and key_file is None and not insecure:
        raise ValueError(
            "a Redis store needs --store-key-file FILE (a key Redis does not hold, made on "
            "first use; give every host the same file), or --insecure-unauthenticated-store"
        )
    key = None
    if key_file is not None:
        key, created = load_or_create_key(key_file)
        if created:
            print(f"resume connect: created store key file {str(key_file)!r}", file=sys.stderr)
    if is_sqlite:
        path = spec[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("sqlite: needs a path, e.g. sqlite:sessions.db")
        store_file(path, "--sessions")
        return SQLiteStore(path, key=key, insecure_unauthenticated=insecure)
    return RedisStore(spec, key=key, insecure_unauthenticated=insecure)


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    if args.cafile is not None:
        regular_file(args.cafile, "--cafile")
    context = ssl.create_default_context(
        cafile=str(args.cafile) if args.cafile is not None else None
    )
    if args.tls is not None:
        context.minimum_version = context.maximum_version = TLS_VERSIONS[args.tls]
    return context


class _LineTooLong(Exception):
    pass


async def _exchange(
    host: str, port: int, name: str, context: ssl.SSLContext, cache: Any, message: bytes
) -> dict[str, Any]:
    from ..trio import open_tls_stream

    stream = await open_tls_stream(
        host, port, ssl_context=context, cache=cache, server_hostname=name
    )
    async with stream:
        await stream.send_all(message)
        answer = bytearray()
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            end = data.find(b"\n")
            answer += data if end < 0 else data[:end]
            if len(answer) > MAX_LINE:
                raise _LineTooLong
            if end >= 0:
                break
        result = {
            "resumed": bool(stream.session_reused),
            "tls_version": stream.version(),
            "cipher": (stream.cipher() or ("",))[0],
            "answer": bytes(answer).decode("utf-8", "replace").rstrip("\r\n"),
        }
    result["stored"] = bool(stream.session_stored)
    return result


def run(args: argparse.Namespace) -> int:
    """Run ``resume connect``; return the exit code (0: every connection succeeded).

    Raises:
        CLIError: bad usage (code 2) or a connection that failed (code 1); the
            connections before it have been reported.

    Store warnings (a store that is down, an entry that was dropped) go to
    stderr as one line each; they never change the exit code.
    """
    from .._stores.base import StoreWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreWarning)
        try:
            return _run(args)
        finally:
            for w in caught:
                if issubclass(w.category, StoreWarning):
                    print(f"resume connect: warning: {_redacted(str(w.message), args)}",
                          file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _redacted(text: str, args: argparse.Namespace) -> str:
    # The store URL's password never reaches the terminal (the stores redact
    # it already; this is the last line of defence).
    from .._stores.safefile import scrub

    spec = getattr(args, "sessions", None)
    return scrub(text, spec) if spec else text


def _run(args: argparse.Namespace) -> int:
    import trio

    from .._core.cache import CacheMode, SessionCache
    from .._core.errors import ResumeError
    from ..stores import attach_store

    try:
        host, port = parse_target(args.target)
    except ValueError as exc:
        raise CLIError(str(exc), 2) from None
    name = args.server_name or host
    if args.key_file is not None and os.path.lexists(args.key_file):
        regular_file(args.key_file, "--store-key-file")
    try:
        context = _context(args)
        store = (
            _open_store(args.sessions, args.key_file, args.insecure_unauthenticated_store)
            if args.sessions else None
        )
    except ssl.SSLError as exc:
        raise CLIError(
            f"--cafile {args.cafile}: no usable CA certificate in it ({exc.reason or exc})", 2
        ) from None
    except (ValueError, OSError) as exc:
        raise CLIError(_redacted(str(exc), args), 2) from None
    except ResumeError as exc:
        raise CLIError(_redacted(str(exc), args), 1) from None
    cache = SessionCache(mode=CacheMode.CLIENT, timeout=24 * 3600)
    link = attach_store(cache, store) if store is not None else None
    shown = args.target

    def report(number: int, result: dict[str, Any]) -> None:
        result = {"server": args.target, "server_name": name, **result}
        if args.count > 1:
            result = {"connection": number, **result}
        if store is not None:
            result["store"] = "sqlite" if args.sessions.startswith("sqlite:") else "redis"
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            how = "resumed" if result["resumed"] else "full handshake"
            prefix = f"#{number} " if args.count > 1 else ""
            print(
                f"{prefix}{args.target}: {result['tls_version']}, {how}, "
                f"answer {result['answer']!r}",
                flush=True,
            )

    resumed = 0
    try:
        if link is not None:
            # Connections fetch from the store, off the loop, before they connect.
            link.register_context(context, label=_LABEL)
        message = (args.message.rstrip("\r\n") + "\n").encode()
        for number in range(1, args.count + 1):
            try:
                result = _run_trio(args.timeout, host, port, name, context, cache, message)
            except trio.TooSlowError:
                raise CLIError(
                    f"{shown}: no answer within {args.timeout:g} s (--timeout)"
                ) from None
            except _LineTooLong:
                prefix = f"connection {number} of {args.count}: " if args.count > 1 else ""
                raise CLIError(
                    f"{prefix}{shown}: the answer has no end of line within {MAX_LINE} bytes "
                    "(resume connect reads one line)"
                ) from None
            except (OSError, trio.BrokenResourceError, ssl.SSLError, ValueError) as exc:
                prefix = f"connection {number} of {args.count}: " if args.count > 1 else ""
                raise CLIError(
                    _redacted(prefix + describe_connect_error(exc, shown, name), args)
                ) from None
            resumed += result["resumed"]
            report(number, result)
    finally:
        if link is not None:
            link.close()
        if store is not None:
            store.close()
        cache.clear()
    if args.count > 1 and not args.json:
        print(f"{resumed} of {plural(args.count, 'connection')} resumed")
    return 0


def _run_trio(
    timeout: float, host: str, port: int, name: str, context: ssl.SSLContext, cache: Any,
    message: bytes,
) -> dict[str, Any]:
    import trio

    async def main() -> dict[str, Any]:
        with trio.fail_after(timeout):
            return await _exchange(host, port, name, context, cache, message)

    return trio.run(main)
