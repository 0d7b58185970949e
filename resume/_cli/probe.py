# ``resume probe``: does this server -- or this fleet -- really resume, on TLS 1.2
# and 1.3? A thin shell over resume._probe.run.run_probe (the blocking probe,
# run directly: the command has no event loop of its own to keep free) and
# resume._probe.model (the table, the verdicts, the JSON document).
#
# Exit status: 0 resumption works on every version the server speaks (and
# across the fleet with --all-addresses), 1 it does not or only partly, 2 the
# probe could not run (one line on stderr; with --json also a JSON document).
#
# The port of HOST:PORT goes through resume._cli._common.parse_port, like every
# other port on the command line: ASCII digits only, with the same message.
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import CLIError, parse_port, regular_file

__all__ = ["parse_host_port", "register", "run"]

_DESCRIPTION = """\
Probe a TLS server for session resumption, on TLS 1.2 and TLS 1.3 separately:
full handshake (version, cipher, certificate), TLS 1.2 session-ID and ticket
resumption, TLS 1.3 PSK resumption with the previous connection's ticket
(read after the handshake), tickets per handshake, whether a TLS 1.3 ticket is
accepted twice, the ticket lifetime hint, and the handshake time full vs
resumed. With --all-addresses, sessions made on each address the name
resolves to are offered to that address and, both ways, to the first one: a
fleet without shared ticket keys shows up at once, and the connections grow
linearly with the addresses (at most --max-addresses of them). Connections go
only to the addresses of HOST.
"""

_EPILOG = """\
exit status: 0 resumption works on every version the server speaks, 1 it does
not or only partly, 2 the probe could not run.

examples:
  resume probe example.org
  resume probe localhost:8443 --cafile ca.pem --tls 1.3 --attempts 10
  # two backends behind one name, without editing /etc/hosts
  resume probe www.example.test:443 --resolve www.example.test:10.0.0.2,10.0.0.3 \\
      --all-addresses --json
"""


def register(subparsers: Any) -> None:
    """Register the ``probe`` subcommand."""
    from .._probe.run import DEFAULT_MAX_ADDRESSES, MAX_ADDRESSES, MAX_ATTEMPTS, MAX_TIMEOUT

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "probe",
        help="find out whether a server (or a fleet) resumes TLS sessions",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", metavar="HOST[:PORT]", help="the server (port 443 by default; IPv6: [ADDR]:PORT)"
    )
    parser.add_argument(
        "--server-name", metavar="NAME", help="the name to send (SNI) and verify; default: HOST"
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--cafile", metavar="FILE", help="trust the CA certificates in FILE (PEM), not the system's"
    )
    trust.add_argument(
        "--insecure",
        action="store_true",
        help="go on when the certificate does not verify (the report says why it did not)",
    )
    parser.add_argument("--tls", choices=("1.2", "1.3"), help="probe only this TLS version")
    parser.add_argument(
        "--attempts", type=_number, default=5, metavar="N",
        help=f"resumption attempts per mechanism, 1-{MAX_ATTEMPTS} (default: %(default)s)",
    )
    parser.add_argument(
        "--all-addresses", action="store_true",
        help="probe every address HOST resolves to and show which resumes whose sessions",
    )
    parser.add_argument(
        "--max-addresses", type=_number, default=DEFAULT_MAX_ADDRESSES, metavar="N",
        help=(
            "with --all-addresses, refuse a name with more than N addresses, "
            f"1-{MAX_ADDRESSES} (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--resolve", metavar="NAME:ADDR[,ADDR]", action="append", default=[],
        help="use these addresses for NAME instead of resolving it (like curl's --resolve)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS",
        help=f"per connection, at most {MAX_TIMEOUT:g} (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (schema resume-probe/1)"
    )
    parser.set_defaults(func=run)


def _number(text: str) -> int:
    # argparse type: a whole number in ASCII digits (int() also takes "\uff15");
    # the range is checked by the probe, which names the limits.
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def parse_host_port(target: str, default_port: int = 443) -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (or ``[IPV6][:PORT]``, or a bare IPv6 address).

    The port is ASCII digits, 1-65535 (:func:`resume._cli._common.parse_port`).

    Raises:
        ValueError: an empty host or a bad port.
    """
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"expected [ADDRESS]:PORT, got {target!r}")
        port_text = rest[1:] if rest else str(default_port)
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:  # a name, or a bare IPv6 address
        host, port_text = target, str(default_port)
    if not host:
        raise ValueError(f"no host in {target!r}")
    return host, parse_port(port_text)


def run(args: argparse.Namespace) -> int:
    """Run ``resume probe``; return the exit code (0 works, 1 not or partly, 2 could not run)."""
    from .._probe.model import ProbeError, error_json
    from .._probe.run import ProbeOptions, parse_resolve, run_probe

    def fail(message: str) -> int:
        print(f"resume probe: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps(error_json(message)))
        return 2

    if args.cafile is not None:
        try:
            regular_file(args.cafile, "--cafile")
        except CLIError as exc:
            return fail(str(exc))
    try:
        host, port = parse_host_port(args.target)
        overrides = dict(parse_resolve(spec) for spec in args.resolve)
        opts = ProbeOptions(
            host=host,
            port=port,
            server_name=args.server_name,
            cafile=args.cafile,
            insecure=args.insecure,
            versions=(args.tls,) if args.tls else ("1.2", "1.3"),
            attempts=args.attempts,
            all_addresses=args.all_addresses,
            resolve=overrides.get(host),
            timeout=args.timeout,
            max_addresses=args.max_addresses,
        )
        result = run_probe(opts)
    except (ValueError, ProbeError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(result.render())
    return result.exit_status
