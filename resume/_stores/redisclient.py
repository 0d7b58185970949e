# Theory of operation: a small Redis client with a deadline per call
# ==================================================================
#
# RedisStore (resume._stores.redis) and RedisKeySource (resume._ticketkeys.ring)
# talk to Redis through this module, and only through it. It speaks RESP2 (the
# protocol every Redis since 2.0 answers by default; no HELLO) over TCP, TLS
# (rediss://) or a Unix socket, and does four things a general client does not:
#
# 1. A deadline per call, not per socket read. redis-py's socket_timeout bounds
#    each recv(): a server that answers one byte at a time keeps one call alive
#    for ever. Here a call (connect, AUTH, SELECT, the command, the whole reply)
#    gets one monotonic deadline; before every socket operation the socket's
#    timeout is set to what is left of it, so the call returns or raises within
#    the deadline whatever the server does. (An ssl.SSLSocket applies its
#    timeout to a whole read, write or handshake, not to each recv() it makes
#    inside, so TLS is bounded the same way.) deadline() makes several calls
#    share one deadline: a store operation, or a ticket-key refresh, is one
#    call for its caller, whatever it sends.
#    Name resolution (getaddrinfo) is not bounded: use an address, or a name
#    that resolves from /etc/hosts, where a hung resolver is a concern.
# 2. A size limit per reply. Redis says how long a string or an array is before
#    sending it; a reply whose announced or received size passes the limits is
#    refused before anything is allocated for it, so an endless array or a
#    bulk string of 2 GB costs at most the limit. The limits come from what the
#    users store: a sealed session is at most 64 KiB (MAX_SESSION_LEN) plus
#    40 bytes, a sealed ticket-key ring about 500 bytes, the biggest array a
#    script returns has 2 elements. So: MAX_REPLY (1 MiB in all, 16 times the
#    largest entry), MAX_ELEMENTS (64 per array), MAX_DEPTH (4 nested arrays),
#    MAX_LINE (64 KiB for a status, error or length line).
# 3. Wrong types are errors. The expect_*() helpers check the shape of a reply
#    and raise RedisProtocolError (a StoreError) naming what came instead, so a
#    Redis that answers an integer where a string belongs never reaches the
#    callers as an AttributeError.
# 4. Every failure is a StoreError subclass with a one-line message that holds
#    no password (callers add the redacted URL).
#
# Connections. Idle connections are pooled (at most MAX_IDLE); a call takes one
# or connects, and gives it back only after a complete reply. A connection that
# failed in any way mid-call (timeout, bad reply, lost) is closed, never
# reused: its stream is out of step. A pooled connection may have died while
# idle (a restarted Redis): when one fails before any byte of the reply came
# back, the call is retried once on a new connection, within the same deadline
# (and the other idle connections, likely dead too, are dropped). After close()
# calls still work but their connections are not kept.
# Nothing here starts a thread, so a dead Redis never holds the process at
# exit longer than the deadline of the calls in flight. After os.fork() the
# child drops (closes its copies of) the parent's pooled connections instead of
# speaking on them.
#
# Scripts go as EVALSHA, and as EVAL when the server answers NOSCRIPT (a
# restarted server, SCRIPT FLUSH), inside the same deadline.
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias, final
from urllib.parse import parse_qsl, unquote, urlsplit

from .._core.errors import StoreError
from .safefile import redact_url

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_LINE",
    "MAX_REPLY",
    "ErrorReply",
    "RedisClient",
    "RedisConnectionError",
    "RedisError",
    "RedisProtocolError",
    "RedisReplyError",
    "RedisTimeout",
    "Reply",
    "Script",
    "expect_bytes",
    "expect_int",
    "expect_ok",
    "expect_pair",
    "parse_url",
]

#: The most bytes one reply may take, all its parts together.
MAX_REPLY: Final = 1024 * 1024
#: The most elements of one array reply.
MAX_ELEMENTS: Final = 64
#: The most arrays nested in one reply.
MAX_DEPTH: Final = 4
#: The longest status, error, integer or length line.
MAX_LINE: Final = 64 * 1024
#: The most idle connections kept per client.
MAX_IDLE: Final = 8
#: Bytes asked of the socket per read.
_CHUNK: Final = 65536
_DEFAULT_PORT: Final = 6379
_INTEGER: Final = re.compile(rb"-?[0-9]{1,19}")
_CERT_REQS: Final = {
    "none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED,
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
#: Query parameters a URL may carry (the others redis-py takes tune its own client).
_QUERY: Final = frozenset({
    "db", "password", "username",
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
    "ssl_check_hostname",
})


# -- errors and replies ------------------------------------------------------------------


class RedisError(StoreError):
    """A Redis call failed (the message never holds a password)."""


class RedisTimeout(RedisError):
    """The call did not complete within its deadline."""


class RedisConnectionError(RedisError):
    """The server could not be reached, or closed the connection."""


class RedisProtocolError(RedisError):
    """The reply is not RESP2, passes a size limit, or is not of the expected type."""


class RedisReplyError(RedisError):
    """The server answered with an error reply (``-ERR ...``); the message is its text."""


@final
@dataclass(frozen=True)
class ErrorReply:
    """An error reply inside an array (a top-level one raises RedisReplyError)."""

    message: str


Reply: TypeAlias = "int | bytes | str | ErrorReply | list[Reply] | None"
Arg: TypeAlias = "bytes | str | int | float"


class _Lost(RedisConnectionError):
    # The connection ended; *clean*: before any byte of the reply arrived.
    def __init__(self, message: str, *, clean: bool) -> None:
        super().__init__(message)
        self.clean = clean


def _describe(reply: Reply) -> str:
    if reply is None:
        return "nil"
    if isinstance(reply, bool):  # pragma: no cover - never parsed
        return "a boolean"
    if isinstance(reply, int):
        return "an integer"
    if isinstance(reply, bytes):
        return f"a string of {len(reply)} bytes"
    if isinstance(reply, str):
        return f"the status {reply[:40]!r}"
    if isinstance(reply, ErrorReply):
        return f"the error {reply.message[:60]!r}"
    return f"an array of {len(reply)}"


def expect_bytes(reply: Reply, what: str) -> bytes | None:
    """*reply* if it is a string or nil, else RedisProtocolError naming *what*."""
    if reply is None or isinstance(reply, bytes):
        return reply
    raise RedisProtocolError(f"{what}: expected a string or nil, got {_describe(reply)}")


def expect_int(reply: Reply, what: str) -> int:
    """*reply* if it is an integer, else RedisProtocolError naming *what*."""
    if isinstance(reply, int) and not isinstance(reply, bool):
        return reply
    raise RedisProtocolError(f"{what}: expected an integer, got {_describe(reply)}")


def expect_pair(reply: Reply, what: str) -> tuple[bytes, bytes] | None:
    """*reply* if it is nil or an array of two strings, else RedisProtocolError."""
    if reply is None:
        return None
    if isinstance(reply, list) and len(reply) == 2:
        first, second = reply
        if isinstance(first, bytes) and isinstance(second, bytes):
            return first, second
    raise RedisProtocolError(f"{what}: expected nil or two strings, got {_describe(reply)}")


def expect_ok(reply: Reply, what: str) -> bool:
    """True for ``+OK``, False for nil (``SET ... NX`` that did not set), else an error."""
    if reply == "OK":
        return True
    if reply is None:
        return False
    raise RedisProtocolError(f"{what}: expected OK or nil, got {_describe(reply)}")


# -- URLs ----------------------------------------------------------------------------------


@final
@dataclass(frozen=True)
class Endpoint:
    """Where a Redis URL points, and how to log in (repr hides the password)."""

    scheme: str
    host: str
    port: int
    path: str
    db: int
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    tls: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """host:port, or the socket path: for messages."""
        if self.scheme == "unix":
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Read ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs as redis-py spells them.

    ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, ``unix://[[USER]:PASSWORD@]/PATH``;
    the query may give ``db``, ``username``, ``password`` and, for TLS,
    ``ssl_cert_reqs`` (none, optional, required), ``ssl_ca_certs``,
    ``ssl_ca_path``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``.

    Raises:
        ValueError: not such a URL (the message shows it redacted).
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a Redis URL: {shown!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {shown!r}")
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _QUERY:
            raise ValueError(
                f"not a Redis URL resume can use: unknown parameter {name!r} in {shown!r} "
                f"(it takes {', '.join(sorted(_QUERY))})"
            )
        query[name] = value
    username = unquote(parts.username) if parts.username else query.get("username") or None
    password = unquote(parts.password) if parts.password else query.get("password") or None
    db_text = query.get("db")
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise ValueError(f"not a Redis URL: {shown!r} names no socket path")
        host = ""
    else:
        path = ""
        host = parts.hostname or ""
        if not host:
            raise ValueError(f"not a Redis URL: {shown!r} names no host")
        if db_text is None and parts.path not in ("", "/"):
            db_text = parts.path.lstrip("/")
    try:
        db = int(db_text) if db_text not in (None, "") else 0
        if db < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"not a Redis URL: the database of {shown!r} is not a number") from None
    tls = tuple(sorted((k, v) for k, v in query.items() if k.startswith("ssl_")))
    if tls and scheme != "rediss":
        raise ValueError(f"not a Redis URL: ssl_* parameters need rediss://, in {shown!r}")
    for name, value in tls:
        if name == "ssl_cert_reqs" and value.lower() not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be none, optional or required, in {shown!r}")
        if name == "ssl_check_hostname" and value.lower() not in _TRUE | _FALSE:
            raise ValueError(f"ssl_check_hostname must be true or false, in {shown!r}")
    return Endpoint(
        scheme=scheme, host=host, port=port or _DEFAULT_PORT, path=path, db=db,
        username=username, password=password, tls=tls,
    )


# -- the wire ------------------------------------------------------------------------------


def _encode(args: Sequence[Arg]) -> bytes:
    # A command is an array of bulk strings.
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode("ascii")
        else:
            raise TypeError(f"a Redis argument is bytes, str, int or float, got {type(arg)!r}")
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def _remaining(deadline: float, seconds: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RedisTimeout(f"no complete answer within {seconds:g} s")
    return left


class _Connection:
    # One socket and the bytes read from it but not parsed yet.

    __slots__ = ("buffer", "pid", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.pid = os.getpid()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __del__(self) -> None:
        self.close()  # a client dropped without close(): no ResourceWarning


class _Call:
    # One request and its reply on one connection, under one deadline and budget.

    __slots__ = ("conn", "deadline", "left", "seconds", "started")

    def __init__(self, conn: _Connection, deadline: float, seconds: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.seconds = seconds
        self.left = MAX_REPLY
        self.started = False

    def _timeout(self) -> RedisTimeout:
        return RedisTimeout(f"no complete answer within {self.seconds:g} s")

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        sock = self.conn.sock
        try:
            while view:
                sock.settimeout(_remaining(self.deadline, self.seconds))
                sent = sock.send(view)
                view = view[sent:]
        except TimeoutError:
            raise self._timeout() from None
        except OSError as exc:
            raise _Lost(f"the connection failed: {exc}", clean=True) from None

    def _fill(self) -> None:
        sock = self.conn.sock
        try:
            sock.settimeout(_remaining(self.deadline, self.seconds))
            chunk = sock.recv(_CHUNK)
        except TimeoutError:
            raise self._timeout() from None
        except OSError as exc:
            raise _Lost(f"the connection failed: {exc}", clean=not self.started) from None
        if not chunk:
            raise _Lost("the server closed the connection", clean=not self.started)
        self.started = True
        self.conn.buffer += chunk

    def _spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise RedisProtocolError(f"the reply is larger than the limit of {MAX_REPLY} bytes")

    def _line(self) -> bytes:
        buffer = self.conn.buffer
        start = 0
        while True:
            end = buffer.find(b"\r\n", start)
            if end >= 0:
                break
            if len(buffer) > MAX_LINE:
                raise RedisProtocolError(
                    f"a reply line is longer than the limit of {MAX_LINE} bytes"
                )
            start = max(0, len(buffer) - 1)
            self._fill()
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        self._spend(end + 2)
        return line

    def _exact(self, count: int) -> bytes:
        self._spend(count + 2)  # before reading: a huge length is refused at once
        buffer = self.conn.buffer
        while len(buffer) < count + 2:
            self._fill()
        if buffer[count : count + 2] != b"\r\n":
            raise RedisProtocolError("a string of the reply does not end where it said")
        data = bytes(buffer[:count])
        del buffer[: count + 2]
        return data

    @staticmethod
    def _integer(text: bytes) -> int:
        if not _INTEGER.fullmatch(text):
            raise RedisProtocolError(f"not a Redis integer: {text[:30]!r}")
        return int(text)

    def reply(self, depth: int = 0) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return ErrorReply(rest.decode("utf-8", "replace"))
        if kind == b":":
            return self._integer(rest)
        if kind == b"$":
            length = self._integer(rest)
            if length == -1:
                return None
            if length < 0:
                raise RedisProtocolError(f"a string of length {length}")
            return self._exact(length)
        if kind == b"*":
            count = self._integer(rest)
            if count == -1:
                return None
            if not 0 <= count <= MAX_ELEMENTS:
                raise RedisProtocolError(
                    f"an array of {count} elements (the limit is {MAX_ELEMENTS})"
                )
            if depth >= MAX_DEPTH:
                raise RedisProtocolError(f"arrays nested deeper than {MAX_DEPTH}")
            return [self.reply(depth + 1) for _ in range(count)]
        raise RedisProtocolError(f"not a Redis (RESP2) reply: {line[:30]!r}")


@final
class Script:
    """A Lua script, sent as EVALSHA (EVAL when the server does not know it yet)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()


@final
class RedisClient:
    """A RESP2 client whose every call ends within *timeout* seconds (see the top).

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL (see :func:`parse_url`).
        timeout: seconds a call may take, from its start to the end of its reply,
            connecting and logging in included.

    Raises:
        ValueError: *url* is not a Redis URL, or *timeout* is not positive.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"the Redis timeout must be positive, got {timeout!r}")
        self.endpoint = parse_url(url)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._local = threading.local()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    # -- deadlines -----------------------------------------------------------------------

    @contextlib.contextmanager
    def deadline(self, seconds: float | None = None) -> Iterator[None]:
        """Calls made in this block, in this thread, share one deadline (*timeout* by default).

        Nested blocks keep the earlier deadline.
        """
        seconds = self.timeout if seconds is None else float(seconds)
        outer: tuple[float, float] | None = getattr(self._local, "deadline", None)
        mine = (time.monotonic() + seconds, seconds)
        self._local.deadline = mine if outer is None or mine[0] < outer[0] else outer
        try:
            yield
        finally:
            self._local.deadline = outer

    def _deadline(self) -> tuple[float, float]:
        current: tuple[float, float] | None = getattr(self._local, "deadline", None)
        return current or (time.monotonic() + self.timeout, self.timeout)

    # -- calls ---------------------------------------------------------------------------

    def call(self, *args: Arg) -> Reply:
        """Send one command and return its reply.

        Raises:
            RedisReplyError: the server answered with an error.
            RedisTimeout: no complete reply within the deadline.
            RedisConnectionError: the server cannot be reached or hung up.
            RedisProtocolError: the reply is not RESP2 or passes a size limit.
        """
        request = _encode(args)
        deadline, seconds = self._deadline()
        for attempt in range(2):
            conn, pooled = self._checkout(deadline, seconds)
            call = _Call(conn, deadline, seconds)
            try:
                call.send(request)
                reply = call.reply()
            except _Lost as exc:
                conn.close()
                if pooled and exc.clean and attempt == 0:
                    # A pooled connection that died while idle (a restarted
                    # server): its siblings likely did too. Once more, afresh.
                    self._drop_idle()
                    continue
                raise RedisConnectionError(str(exc)) from None
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            if isinstance(reply, ErrorReply):
                raise RedisReplyError(reply.message)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Reply:
        """Run *script* (EVALSHA, then EVAL on NOSCRIPT) within one deadline."""
        with self.deadline():
            try:
                return self.call("EVALSHA", script.sha, len(keys), *keys, *args)
            except RedisReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            return self.call("EVAL", script.source, len(keys), *keys, *args)

    def close(self) -> None:
        """Close the connections; a later call still works, on a connection of its own."""
        self._closed = True
        self._drop_idle()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- connections ---------------------------------------------------------------------

    def _checkout(self, deadline: float, seconds: float) -> tuple[_Connection, bool]:
        pid = os.getpid()
        stale: list[_Connection] = []
        conn = None
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if candidate.pid == pid:
                    conn = candidate
                    break
                stale.append(candidate)  # the parent's, after a fork
        for old in stale:
            old.close()
        if conn is not None:
            return conn, True
        return self._connect(deadline, seconds), False

    def _checkin(self, conn: _Connection) -> None:
        if conn.buffer or conn.pid != os.getpid():
            conn.close()  # bytes after the reply: out of step
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            options = dict(self.endpoint.tls)
            context = ssl.create_default_context(
                cafile=options.get("ssl_ca_certs"), capath=options.get("ssl_ca_path")
            )
            if "ssl_certfile" in options:
                context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
            reqs = _CERT_REQS[options.get("ssl_cert_reqs", "required").lower()]
            check = options.get("ssl_check_hostname")
            context.check_hostname = (
                reqs != ssl.CERT_NONE if check is None else check.lower() in _TRUE
            )
            context.verify_mode = reqs
            self._tls = context
        return self._tls

    def _connect(self, deadline: float, seconds: float) -> _Connection:
        ep = self.endpoint
        sock: socket.socket | None = None
        try:
            if ep.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(_remaining(deadline, seconds))
                sock.connect(ep.path)
            else:
                sock = socket.create_connection(
                    (ep.host, ep.port), timeout=_remaining(deadline, seconds)
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.scheme == "rediss":
                context = self._tls_context()
                sock.settimeout(_remaining(deadline, seconds))
                sock = context.wrap_socket(sock, server_hostname=ep.host)
        except TimeoutError:
            if sock is not None:
                sock.close()
            raise RedisTimeout(
                f"could not connect to {ep.where} within {seconds:g} s"
            ) from None
        except (OSError, ValueError) as exc:
            if sock is not None:
                sock.close()
            raise RedisConnectionError(f"cannot connect to {ep.where}: {exc}") from None
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        conn = _Connection(sock)
        try:
            if ep.password is not None:
                login: tuple[str, ...] = (ep.password,)
                if ep.username is not None:
                    login = (ep.username, ep.password)
                self._login(conn, deadline, seconds, "AUTH", *login)
            if ep.db:
                self._login(conn, deadline, seconds, "SELECT", ep.db)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _login(conn: _Connection, deadline: float, seconds: float, *args: Arg) -> None:
        call = _Call(conn, deadline, seconds)
        try:
            call.send(_encode(args))
            reply = call.reply()
        except _Lost as exc:
            raise RedisConnectionError(str(exc)) from None
        name = str(args[0])
        if isinstance(reply, ErrorReply):
            raise RedisReplyError(f"{name} failed: {reply.message}")
        if reply != "OK":
            raise RedisProtocolError(f"{name}: expected OK, got {_describe(reply)}")
