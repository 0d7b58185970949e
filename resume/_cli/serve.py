# ``resume serve``: a TLS echo server on serve_tls, for trying clients against.
#
# Every TLS option is turned into the server's SSLContext by one function,
# build_server_context(args); a new option (say --ticket-keys) is one
# add_argument() in add_tls_options() and a few lines there.
from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
from functools import partial
from typing import Any

import trio

from .._adapters.server_settings import DEFAULT_HANDSHAKE_TIMEOUT, pin_tls_version
from .._adapters.trio_server import TLSServer, TLSServerStream, serve_tls
from ._common import (
    CLIError,
    describe_listen_error,
    listen_port,
    load_cert_chain,
    plural,
    regular_file,
    seconds,
)

__all__ = ["add_tls_options", "build_server_context", "register", "run"]

_DESCRIPTION = """\
Run a TLS echo server: it sends back whatever a client sends, until the client
closes. Each connection gets one line on stderr with the client's address, the
TLS version and whether the session was resumed, so you can watch resumption
work with any client. The server resumes out of the box (OpenSSL's session
cache and tickets) and stops cleanly on Ctrl-C.
"""

_EPILOG = """\
examples:
  # a self-signed certificate for a quick try
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \\
      -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem
  resume serve --port 8443 --cert cert.pem --key key.pem

  # connect twice, resuming the second time (TLS 1.2 shows "Reused")
  openssl s_client -connect 127.0.0.1:8443 -reconnect -tls1_2 </dev/null

  # require client certificates signed by ca.pem, TLS 1.3 only
  resume serve --port 8443 --cert cert.pem --key key.pem \\
      --cafile ca.pem --require-client-cert --tls 1.3

The log line "listening on HOST:PORT" shows the real port (useful with --port 0).
"""


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that shape the server's SSLContext (see build_server_context)."""
    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--cert", required=True, metavar="FILE", help="the server certificate chain (PEM)"
    )
    tls.add_argument(
        "--key", metavar="FILE", help="the private key (PEM); default: in the --cert file"
    )
    tls.add_argument(
        "--cafile", metavar="FILE", help="CA certificates to verify client certificates with (PEM)"
    )
    tls.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse clients without a certificate signed by --cafile",
    )
    tls.add_argument(
        "--tls", choices=("1.2", "1.3"), help="allow only this TLS version (default: both)"
    )
    tls.add_argument(
        "--num-tickets",
        type=_tickets,
        metavar="N",
        help="TLS 1.3 tickets sent per handshake (default: 2)",
    )
    tls.add_argument(
        "--ticket-keys",
        metavar="SOURCE",
        help="share session-ticket keys with the other servers of a fleet: "
        "redis://HOST:PORT/DB or file:PATH (rotated every 12 h; Redis needs a base64 "
        "32-byte RESUME_TICKET_KEYS_SECRET in the environment, which seals them there)",
    )
    tls.add_argument(
        "--insecure-unauthenticated-store",
        action="store_true",
        help="keep --ticket-keys in Redis without RESUME_TICKET_KEYS_SECRET: whoever can "
        "write to that Redis can install their own ticket keys (warns at every start)",
    )
    tls.add_argument(
        "--session-timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long a session stays resumable (default: 7200)",
    )


def _tickets(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 1000, got {text!r}")
    return int(text)


def build_server_context(args: argparse.Namespace) -> ssl.SSLContext:
    """Turn the TLS options into the server's SSLContext.

    Raises:
        CLIError: (exit code 2) a file cannot be read or the key does not match.
        ValueError: inconsistent options.
    """
    if args.require_client_cert and not args.cafile:
        raise ValueError("--require-client-cert needs --cafile (the CA that signs client certs)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_cert_chain(context, args.cert, args.key)
    if args.cafile:
        regular_file(args.cafile, "--cafile")
        try:
            context.load_verify_locations(cafile=args.cafile)
        except ssl.SSLError as exc:
            message = f"--cafile {args.cafile}: no usable CA certificate in it"
            raise CLIError(f"{message} ({exc.reason or exc})", 2) from None
        context.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
    if args.tls:
        pin_tls_version(context, args.tls)
    return context


def register(subparsers: Any) -> None:
    """Register the ``serve`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a TLS echo server that logs resumption",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; '' for all)"
    )
    parser.add_argument(
        "--port",
        type=listen_port,
        default=8443,
        help="TCP port (default: 8443; 0 picks a free one)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=seconds,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help=f"drop clients that take longer (default: {DEFAULT_HANDSHAKE_TIMEOUT:g})",
    )
    add_tls_options(parser)
    parser.set_defaults(func=run)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _address(peer: Any) -> str:
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


async def _echo(stream: TLSServerStream) -> None:
    _log(
        f"{_address(stream.peer)} {stream.tls_version} "
        f"{'resumed' if stream.session_reused else 'full handshake'}"
    )
    while data := await stream.receive_some():
        await stream.send_all(data)


async def _main(args: argparse.Namespace, context: ssl.SSLContext) -> None:
    async with trio.open_nursery() as nursery:
        server: TLSServer = await nursery.start(
            partial(
                serve_tls,
                _echo,
                args.port,
                ssl_context=context,
                host=args.host or None,
                handshake_timeout=args.handshake_timeout,
                num_tickets=args.num_tickets,
                session_timeout=args.session_timeout,
            )
        )
        for host, port in server.addresses:
            _log(f"listening on {_address((host, port))}")
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                _log(f"stopping ({signal.Signals(signum).name})")
                break
        stats = server.statistics()
        _log(
            f"served {plural(stats.accepted, 'connection')}: {stats.resumed} resumed, "
            f"{stats.full} full, {stats.failed} failed"
        )
        server.close()


def run(args: argparse.Namespace) -> int:
    """Run ``resume serve``; return the exit code."""
    try:
        context = build_server_context(args)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise CLIError(str(exc), 2) from None
    close_ticket_keys = None
    if getattr(args, "ticket_keys", None):
        from .._core.errors import ResumeError
        from .._stores.safefile import scrub
        from .._ticketkeys.ring import SECRET_ENV, install_from_spec

        insecure = getattr(args, "insecure_unauthenticated_store", False)
        if args.ticket_keys.startswith(("redis://", "rediss://", "unix://")) and not (
            insecure or os.environ.get(SECRET_ENV)
        ):
            print(
                f"resume serve: --ticket-keys: ticket keys in Redis need a 32-byte secret that "
                f"Redis does not hold: set {SECRET_ENV} (base64), or pass "
                f"--insecure-unauthenticated-store to run without one",
                file=sys.stderr,
            )
            return 2
        try:
            close_ticket_keys = install_from_spec(
                context, args.ticket_keys,
                insecure_unauthenticated=getattr(args, "insecure_unauthenticated_store", False),
            )
        except (OSError, ValueError, ResumeError) as exc:
            # The URL's password is redacted by the source; scrub() is the last defence.
            print(f"resume serve: --ticket-keys: {scrub(str(exc), args.ticket_keys)}",
                  file=sys.stderr)
            return 2
    try:
        trio.run(_main, args, context)
    except Exception as exc:
        leaf = _unwrap(exc)
        if isinstance(leaf, OSError):
            raise CLIError(describe_listen_error(leaf, args.host, args.port)) from None
        from .._core.errors import ResumeError

        if isinstance(leaf, (ValueError, TypeError, ResumeError)):
            raise CLIError(str(leaf)) from None
        raise
    finally:
        if close_ticket_keys is not None:
            close_ticket_keys()
    return 0


def _unwrap(exc: BaseException) -> BaseException:
    # trio's nurseries wrap errors in exception groups; report the one inside.
    inner = getattr(exc, "exceptions", None)
    while inner and len(inner) == 1:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc
