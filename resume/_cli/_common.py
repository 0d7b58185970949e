# What every ``resume`` subcommand shares: the argument types, the one-line error,
# and the words for what went wrong.
#
# Theory of operation. A command-line error is ONE line on stderr, of the form
# ``resume COMMAND: what is wrong with which file/address/value; what to do``,
# and an exit code: 2 for usage (a bad option value, a file that cannot be
# used), 1 for a failure at run time (connection refused, port taken, disk
# full). Three mechanisms produce it:
#
# 1. Argument types (``port``, ``listen_port``, ``seconds``, ``server_name``,
#    ``count``): argparse calls them while parsing, and ``Parser.error`` prints
#    their message as one line (argparse's default is a usage block plus the
#    message) and exits 2.
# 2. ``CLIError``: a subcommand raises it with the line and the exit code;
#    ``resume._cli.main`` prints it.
# 3. The ``describe_*`` functions turn the exceptions of the layers below
#    (OSError, ssl.SSLError, trio's exception groups) into that line: they name
#    the file or address, since the errno text alone does not.
#
# Every port on the command line goes through ``parse_port``: ASCII digits
# only (``int()`` and ``str.isdigit()`` accept Arabic-Indic and other digits),
# 1-65535, or 0 where the option means "pick a free one".
from __future__ import annotations

import argparse
import errno
import ipaddress
import math
import os
import re
import socket
import ssl
import stat
import sys
from collections.abc import Iterator
from typing import NoReturn

from .._core.limits import PORT_MAX

__all__ = [
    "CLIError",
    "Parser",
    "count",
    "describe_connect_error",
    "describe_listen_error",
    "listen_port",
    "load_cert_chain",
    "parse_port",
    "plural",
    "port",
    "regular_file",
    "seconds",
    "server_name",
    "store_file",
]


class CLIError(Exception):
    """A failure to report as one line on stderr, with the exit code to return."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit code 2)."""

    #: The subcommands' parsers by name (filled by resume._cli.build_parser).
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


def plural(number: int, word: str, many: str | None = None) -> str:
    """``1 connection``, ``2 connections`` (or *many* for irregular words)."""
    return f"{number} {word if number == 1 else many or word + 's'}"


# -- argument types -----------------------------------------------------------------

_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_port(text: str, *, allow_zero: bool = False) -> int:
    """Parse a TCP port: ASCII digits, 1-65535 (0-65535 with *allow_zero*).

    Raises:
        ValueError: anything else, with a message naming the text.
    """
    low = 0 if allow_zero else 1
    if not _ASCII_DIGITS.fullmatch(text) or not low <= int(text) <= PORT_MAX:
        raise ValueError(f"the port must be a number from {low} to {PORT_MAX}, got {text!r}")
    return int(text)


def port(text: str) -> int:
    """argparse type: a port in 1-65535."""
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def listen_port(text: str) -> int:
    """argparse type: a port to listen on, 0-65535 (0 picks a free one)."""
    try:
        return parse_port(text, allow_zero=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (0 picks a free port)") from None


def seconds(text: str) -> float:
    """argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a finite number of seconds greater than 0, got {text!r}"
        )
    return value


def count(text: str) -> int:
    """argparse type: how many times, 1-100000."""
    if not _ASCII_DIGITS.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {value}")
    return value


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def server_name(text: str) -> str:
    """argparse type: a DNS name (IDN allowed) or an IP address, without a port."""
    if not text:
        raise argparse.ArgumentTypeError(
            "the name must not be empty (leave --server-name out to use the HOST of HOST:PORT)"
        )
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return text
    if ":" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server name: give the name alone, the port goes in HOST:PORT"
        )
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.removesuffix(".").split(".")
    if not ascii_name or len(ascii_name) > 253 or not all(map(_LABEL.fullmatch, labels)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server name: expected a DNS name such as example.com "
            "(letters, digits, '-' and '.', no spaces) or an IP address"
        )
    return text


# -- files ---------------------------------------------------------------------------


def regular_file(path: str | os.PathLike[str], option: str) -> None:
    """Check that *path* (given with *option*) is a regular file this process can read.

    Raises:
        CLIError: (exit code 2) it is missing, not a regular file (a FIFO would
            block the read), or unreadable.
    """
    shown = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CLIError(f"{option} {shown}: no such file", 2) from None
    except OSError as exc:
        raise CLIError(f"{option} {shown}: cannot read it: {exc.strerror}", 2) from None
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(f"{option} {shown}: not a regular file ({_kind(st.st_mode)})", 2)
    if not os.access(path, os.R_OK):
        raise CLIError(f"{option} {shown}: permission denied (cannot read it)", 2)


def store_file(path: str, option: str) -> None:
    """Check that an SQLite store at *path* can be a regular file (existing or new).

    Raises:
        CLIError: (exit code 2) *path* is a FIFO, a directory, a device, or its
            folder does not exist.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise CLIError(f"{option} sqlite:{path}: no such directory {folder}", 2) from None
        return
    except OSError as exc:
        raise CLIError(f"{option} sqlite:{path}: {exc.strerror}", 2) from None
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(
            f"{option} sqlite:{path}: not a regular file ({_kind(st.st_mode)}); "
            "give the path of a database file",
            2,
        )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def _no_password() -> bytes:
    # Without this callback OpenSSL asks for a key's passphrase on the terminal.
    raise CLIError("", 2)


def load_cert_chain(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    """``context.load_cert_chain(cert, key)``, with errors that name the file at fault.

    Raises:
        CLIError: (exit code 2) a file is missing, not PEM, encrypted, or the key
            is not the certificate's.
    """
    regular_file(cert, "--cert")
    if key is not None:
        regular_file(key, "--key")
    key_file = key if key is not None else cert
    key_option = "--key" if key is not None else "--cert"
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except CLIError:
        raise CLIError(
            f"{key_option} {key_file}: the private key is encrypted; "
            "give an unencrypted key (e.g. openssl pkey -in KEY -out plain.pem)",
            2,
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise CLIError(_describe_cert_error(exc, cert, key), 2) from None


def _describe_cert_error(exc: Exception, cert: str, key: str | None) -> str:
    try:
        with open(cert, "rb") as f:
            cert_text = f.read(1 << 20)
        key_text = cert_text
        if key is not None:
            with open(key, "rb") as f:
                key_text = f.read(1 << 20)
    except OSError as read_error:
        return f"cannot read the certificate or key: {read_error}"
    reason = getattr(exc, "reason", None)
    if b"-----BEGIN CERTIFICATE-----" not in cert_text:
        return f"--cert {cert}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)"
    if b"PRIVATE KEY-----" not in key_text:
        if key is None:
            return f"--cert {cert}: no private key in it; give the key file with --key FILE"
        return f"--key {key}: no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)"
    if reason == "KEY_VALUES_MISMATCH":
        where = f"--cert {cert} and --key {key}" if key is not None else f"--cert {cert}"
        return f"{where}: the certificate and the private key do not match"
    where = f"--cert {cert}" + (f" / --key {key}" if key is not None else "")
    return f"{where}: cannot load the certificate or the key ({_ssl_text(exc)})"


def _ssl_text(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.library or 'SSL'}: {exc.reason}"
    return str(exc)


# -- network errors ------------------------------------------------------------------


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    # The exceptions at the bottom of groups and causes, where the real reason is.
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        inner = getattr(current, "exceptions", None)
        if isinstance(inner, tuple) and inner:
            stack.extend(reversed(inner))
        elif current.__cause__ is not None:
            stack.append(current.__cause__)
        else:
            yield current


def describe_connect_error(exc: BaseException, target: str, name: str) -> str:
    """Say why connecting to *target* (verifying *name*) failed, and what to do."""
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, ssl.SSLCertVerificationError):
            reason = (leaf.verify_message or leaf.reason or str(leaf)).rstrip(".")
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                hint = "pass the name the certificate is for with --server-name NAME"
            else:
                hint = "if the server's CA is not a public one, trust it with --cafile FILE"
            return f"{target}: certificate verification failed for {name!r}: {reason}; {hint}"
    for leaf in leaves:
        if isinstance(leaf, ConnectionRefusedError):
            return f"{target}: connection refused (is a server listening on that port?)"
    for leaf in leaves:
        if isinstance(leaf, OSError) and leaf.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"{target}: {leaf.strerror or 'unreachable'} (check the address)"
        if isinstance(leaf, socket.gaierror):
            return f"{target}: cannot resolve the host name ({leaf.strerror or leaf})"
    for leaf in leaves:
        if isinstance(leaf, ssl.SSLError):
            return f"{target}: TLS handshake failed: {_ssl_text(leaf)}"
    leaf = leaves[0] if leaves else exc
    if isinstance(leaf, OSError) and leaf.strerror:
        return f"{target}: {leaf.strerror}"
    text = str(leaf) or type(leaf).__name__
    return f"{target}: {text}"


def describe_listen_error(exc: OSError, host: str, port: int) -> str:
    """Say why listening on *host*:*port* failed, and what to do."""
    where = f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the address is already in use; "
            "stop the other server or pick another --port (0 picks a free one)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {where}: permission denied "
            "(ports below 1024 need privileges; pick a --port above 1023)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine (--host)"
    return f"cannot listen on {where}: {exc.strerror or exc}"
