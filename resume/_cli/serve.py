# ``resume serve``: a TLS echo server on serve_tls, for trying clients against.
#
# Every TLS option is turned into the server's SSLContext by one function,
# build_server_context(args); a new option (say --ticket-keys) is one
# add_argument() in add_tls_options() and a few lines there.
#
# Early data (``--early-data``, ``--max-early-data N``) is serve_tls's
# max_early_data, always with a replay record; replay_record(args) picks it:
#
# * no --ticket-keys: tickets are sealed with this process's own random key, so
#   only this process can accept their early data: an in-memory record sees
#   every replay (the default);
# * --ticket-keys redis://...: the fleet shares tickets, so a replay can go to
#   any server: the record is fleet-wide, RedisReplayGuard in the same Redis
#   (or the one --replay-record names);
# * --ticket-keys file:PATH: other processes may read the same file, and an
#   in-memory record would not see the replays sent to them. Refused (exit 2)
#   unless --replay-record says where the record is: redis://... for a shared
#   one, or ``memory`` to state that this process is the only one serving
#   with those keys.
from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
from functools import partial
from typing import Any

import trio

from .._adapters.server_settings import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_EARLY_DATA,
    check_max_early_data,
    pin_tls_version,
)
from .._adapters.trio_server import TLSServer, TLSServerStream, serve_tls
from .._core.errors import StoreError
from .._core.replay import MemoryReplayGuard, ReplayGuard
from ._common import (
    CLIError,
    describe_listen_error,
    listen_port,
    load_cert_chain,
    plural,
    regular_file,
    seconds,
)

__all__ = ["add_tls_options", "build_server_context", "register", "replay_record", "run"]

_DESCRIPTION = """\
Run a TLS echo server: it sends back whatever a client sends, until the client
closes. Each connection gets one line on stderr with the client's address, the
TLS version, whether the session was resumed and what became of TLS 1.3 early
data (early-data=accepted, rejected or none), so you can watch resumption work
with any client. The server resumes out of the box (OpenSSL's session cache
and tickets) and stops cleanly on Ctrl-C.

With --early-data it accepts 0-RTT data from resumed TLS 1.3 clients and echoes
it before the handshake ends. Replayed first flights are always refused (their
early data is rejected, the handshake goes on in 1-RTT) by a record of the
ClientHellos seen: in memory, or in Redis for a fleet sharing --ticket-keys.
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

  # 0-RTT: save a ticket, then send early data with it
  resume serve --port 8443 --cert cert.pem --key key.pem --early-data
  echo hi | openssl s_client -connect 127.0.0.1:8443 -sess_out sess.pem
  openssl s_client -connect 127.0.0.1:8443 -sess_in sess.pem -early_data req.txt

  # a fleet: shared ticket keys and a shared replay record, in one Redis
  resume serve --cert cert.pem --key key.pem --early-data \\
      --ticket-keys redis://127.0.0.1:6379/0

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
    early = parser.add_argument_group("early data (TLS 1.3 0-RTT)")
    early.add_argument(
        "--early-data",
        action="store_true",
        help=f"accept early data from resumed TLS 1.3 clients "
        f"({DEFAULT_MAX_EARLY_DATA} bytes per connection), replays refused",
    )
    early.add_argument(
        "--max-early-data",
        type=_early_size,
        metavar="BYTES",
        help="accept up to this much early data per connection (implies --early-data)",
    )
    early.add_argument(
        "--replay-record",
        metavar="WHERE",
        help="where the ClientHellos seen are recorded: 'memory' (this process only) or "
        "redis://HOST:PORT/DB (shared by a fleet); default: memory, or the --ticket-keys "
        "Redis; required with --ticket-keys file:PATH",
    )
    early.add_argument(
        "--replay-timeout",
        type=_replay_timeout,
        default=DEFAULT_REPLAY_TIMEOUT,
        metavar="SECONDS",
        help="the longest a handshake waits for the Redis replay record before it refuses "
        f"the early data (default {DEFAULT_REPLAY_TIMEOUT:g}; the handshake still completes)",
    )
    parser.set_defaults(func=run)


#: The default bound of one call to a Redis replay record (RedisReplayGuard's).
DEFAULT_REPLAY_TIMEOUT = 0.05


def _replay_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most 10, got {text!r}"
        )
    return value


def _early_size(text: str) -> int:
    # Digits only (no sign, no "1e3"); the bounds are the servers' own check.
    size = int(text) if text.isascii() and text.isdigit() else 0
    try:
        size = check_max_early_data(size)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes from 1 to 4294967295, got {text!r}"
        )
    return size


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def replay_record(args: argparse.Namespace) -> ReplayGuard | None:
    """The replay record for ``--early-data`` (None when early data is off).

    See the comment atop this module for the rules.

    Raises:
        CLIError: (exit code 2) an unusable combination of options.
    """
    size = getattr(args, "max_early_data", None)
    enabled = bool(getattr(args, "early_data", False) or size)
    where = getattr(args, "replay_record", None)
    if not enabled:
        if where:
            raise CLIError("--replay-record needs --early-data", 2)
        return None
    keys = getattr(args, "ticket_keys", None) or ""
    if where is None:
        if keys.startswith(_REDIS_SCHEMES):
            where = keys
        elif keys:
            raise CLIError(
                "--early-data with --ticket-keys file:...: other processes reading that file "
                "accept the same tickets, and a replay sent to them would not be seen here; "
                "pass --replay-record redis://HOST:PORT/DB (shared), or --replay-record memory "
                "if this process is the only one serving with those keys",
                2,
            )
        else:
            where = "memory"
    if where == "memory":
        return MemoryReplayGuard()
    if where.startswith(_REDIS_SCHEMES):
        timeout = getattr(args, "replay_timeout", DEFAULT_REPLAY_TIMEOUT)
        return redis_replay_guard(where, timeout=timeout)
    raise CLIError(
        f"--replay-record: expected 'memory' or redis://HOST:PORT/DB, got {where!r}", 2
    )


def redis_replay_guard(url: str, *, timeout: float = DEFAULT_REPLAY_TIMEOUT) -> ReplayGuard:
    """A fleet-wide ClientHello record in the Redis at *url* (``RedisReplayGuard``).

    Connects once at start (``RedisReplayGuard.connect``), so that the first
    handshake with early data does not spend its 50 ms bound on connecting;
    an unreachable Redis is only logged (early data is then refused until it
    is back; handshakes still complete).

    Raises:
        CLIError: (exit code 2) *url* is bad.
    """
    from .._stores.replay import RedisReplayGuard
    from .._stores.safefile import scrub

    try:
        guard = RedisReplayGuard(url, timeout=timeout)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--replay-record: {scrub(str(exc), url)}", 2) from None
    try:
        guard.connect()
    except StoreError as exc:
        _log(f"resume serve: the replay record is unreachable, early data is refused until "
             f"it is back: {exc}")
    return guard


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _address(peer: Any) -> str:
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


async def _echo(stream: TLSServerStream) -> None:
    # With accepted early data this runs before the handshake ends: the version
    # and resumption are already decided (the ServerHello is out).
    _log(
        f"{_address(stream.peer)} {stream.tls_version} "
        f"{'resumed' if stream.session_reused else 'full handshake'} "
        f"early-data={stream.early_data_status}"
    )
    while data := await stream.receive_some():
        await stream.send_all(data)


async def _main(
    args: argparse.Namespace, context: ssl.SSLContext, guard: ReplayGuard | None = None
) -> None:
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
                max_early_data=(
                    0 if guard is None else (args.max_early_data or DEFAULT_MAX_EARLY_DATA)
                ),
                replay_guard=guard,
            )
        )
        for host, port in server.addresses:
            _log(f"listening on {_address((host, port))}")
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                _log(f"stopping ({signal.Signals(signum).name})")
                break
        stats = server.statistics()
        early = (
            f"; early data {stats.early_data_accepted} accepted, "
            f"{stats.early_data_rejected} rejected"
            if guard is not None else ""
        )
        _log(
            f"served {plural(stats.accepted, 'connection')}: {stats.resumed} resumed, "
            f"{stats.full} full, {stats.failed} failed{early}"
        )
        server.close()


def run(args: argparse.Namespace) -> int:
    """Run ``resume serve``; return the exit code."""
    try:
        context = build_server_context(args)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise CLIError(str(exc), 2) from None
    guard = replay_record(args)
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
        trio.run(_main, args, context, guard)
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
        close_record = getattr(guard, "close", None)
        if callable(close_record):
            close_record()
    return 0


def _unwrap(exc: BaseException) -> BaseException:
    # trio's nurseries wrap errors in exception groups; report the one inside.
    inner = getattr(exc, "exceptions", None)
    while inner and len(inner) == 1:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc
