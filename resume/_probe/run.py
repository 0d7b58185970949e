# Theory of operation: the resumption probe's network part
# ========================================================
#
# Why blocking sockets in a worker thread, not trio or asyncio streams? The probe
# is a strictly sequential series of short connections whose handshake times it
# reports; on an event loop those times would include whatever else the loop
# runs. A plain blocking ``ssl.SSLSocket`` in one thread measures the handshake
# alone, and the same code serves trio and asyncio: :func:`resume.probe` hands
# :func:`run_probe` to the running library's to-thread facility (found with
# sniffio) and, when it is cancelled, sets a stop event that the worker checks
# before every connection, so an abandoned worker ends within one connection.
#
# Steps of run_probe (each numbered in the code):
#  1. check the arguments (attempts 1..100, timeout 0..60 s, max_addresses
#     1..256) and resolve the name (or take the --resolve override): the only
#     addresses ever contacted. With all_addresses, more than max_addresses
#     addresses (16 by default) is an error before any connection;
#  2. preflight on the first address: TCP connect, then one handshake that
#     verifies the certificate. A refused port, a non-TLS server or (without
#     ``insecure``) a certificate that does not verify ends the probe with a
#     ProbeError; with ``insecure`` the failure's reason is kept for the report;
#  3. per TLS version: N full handshakes (tickets counted, times taken), then the
#     resumption series (TLS 1.2: tickets, then session IDs with OP_NO_TICKET;
#     TLS 1.3: PSK chained from connection to connection, then one ticket
#     offered twice);
#  4. with all_addresses: for each cell (A, B) of the plan, sessions made on A
#     offered to B. The plan (model.fleet_plan) is the diagonal plus a star
#     around the first address: 3N - 2 cells, not N**2, so the connections grow
#     linearly with the addresses (at most FLEET_TRIES * 2 per cell and
#     mechanism; three mechanisms when both versions are spoken).
#
# TLS 1.3 tickets arrive after the handshake (DESIGN fact 2), so a TLS 1.3
# connection reads, without sending anything, until its tickets came in: it
# stops 50 ms after the last ticket, or after ``ticket_wait`` without any. The
# tickets are counted with a message callback on the SSLContext, a private
# CPython hook reached in exactly one function (_install_ticket_counter) with a
# fallback: without it the count is unknown and every wait is the full one.
# The fleet cells need less (the connect's ``tickets`` argument): the connection
# that makes a session stops at its first ticket, since only one is offered,
# and the connection a session is offered to waits for none, since only
# whether it resumed matters. With the plan, 15 addresses take about 2 s (80 s
# before; ``python -m benchmarks.probe_fleet 15``).
#
# Reading SSLSocket.session costs a DER round trip and, on CPython before the
# gh-116810 fix, some leaked C memory (DESIGN fact 7); the probe reads it once per
# connection, at most a few hundred times per run (attempts are bounded).
from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from .._compat import install_msg_callback
from .model import (
    NOT_PROBED,
    FleetMatrix,
    ProbeError,
    ProbeResult,
    ResumptionTally,
    VersionProbe,
    fleet_plan,
    median_ms,
)

__all__ = [
    "DEFAULT_MAX_ADDRESSES",
    "MAX_ADDRESSES",
    "MAX_ATTEMPTS",
    "MAX_TIMEOUT",
    "ProbeOptions",
    "parse_resolve",
    "run_probe",
]

#: Upper bounds: a probe is a handful of connections, never a load test.
MAX_ATTEMPTS = 100
MAX_TIMEOUT = 60.0
#: How many sessions per cell of a fleet matrix (each costs two connections).
FLEET_TRIES = 3
#: How many addresses ``all_addresses`` probes unless told otherwise, and the most
#: it may be told: with 3 mechanisms, 3 tries and 2 connections a try, a cell
#: costs up to 18 connections, so 16 addresses (46 cells) cost at most 828 and
#: 256 addresses at most 13,788.
DEFAULT_MAX_ADDRESSES = 16
MAX_ADDRESSES = 256
#: After the last TLS 1.3 ticket, how long the socket must stay quiet.
_TICKET_IDLE = 0.05

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class ProbeOptions:
    """The arguments of one probe (see :func:`resume.probe`)."""

    host: str
    port: int = 443
    server_name: str | None = None
    cafile: str | Path | None = None
    insecure: bool = False
    versions: tuple[str, ...] = ("1.2", "1.3")
    attempts: int = 5
    all_addresses: bool = False
    resolve: tuple[str, ...] | None = None
    timeout: float = 5.0
    ticket_wait: float = 0.5
    max_addresses: int = DEFAULT_MAX_ADDRESSES


class _Stopped(Exception):
    pass


def parse_resolve(spec: str) -> tuple[str, tuple[str, ...]]:
    """Split ``NAME:ADDR[,ADDR...]`` (IPv6 addresses in brackets) into name and addresses.

    Raises:
        ProbeError: a malformed spec or an address that is not an IP address.
    """
    name, sep, rest = spec.partition(":")
    if not sep or not name or not rest:
        raise ProbeError(f"--resolve takes NAME:ADDR[,ADDR...], got {spec!r}")
    addresses = []
    for part in rest.split(","):
        address = part.strip().removeprefix("[").removesuffix("]")
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
        except OSError:
            raise ProbeError(f"--resolve: {part!r} is not an IP address") from None
        addresses.append(address)
    return name, tuple(addresses)


def _install_ticket_counter(context: ssl.SSLContext) -> Callable[[], int] | None:
    # SSLContext's message callback (a private debugging hook, reached through
    # resume._compat) sees every handshake message, so it can count
    # NewSessionTicket messages (content type 22, message type 4). Without it
    # (another Python, a future CPython), return None: unknown.
    count = [0]

    def callback(
        conn: object, direction: str, version: object, content_type: object,
        msg_type: object, data: bytes,
    ) -> None:
        try:
            if direction == "read" and int(content_type) == 22 and int(msg_type) == 4:  # type: ignore[call-overload]
                count[0] += 1
        except (TypeError, ValueError):
            pass

    if not install_msg_callback(context, callback):
        return None
    return lambda: count[0]


@dataclass
class _Conn:
    resumed: bool
    session: ssl.SSLSession | None
    handshake: float
    tickets: int
    protocol: str
    cipher: str


class _Client:
    """One client context (version, ticket setting) and its ticket counter."""

    def __init__(self, opts: ProbeOptions, version: str | None, *, tickets: bool, verify: bool):
        context = ssl.create_default_context(
            cafile=str(opts.cafile) if opts.cafile is not None else None
        )
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if version is None:
            versions = [_VERSIONS[v] for v in opts.versions]
            context.minimum_version, context.maximum_version = min(versions), max(versions)
        else:
            context.minimum_version = context.maximum_version = _VERSIONS[version]
        if not tickets:
            context.options |= ssl.OP_NO_TICKET
        self.context = context
        self.opts = opts
        self.counter = _install_ticket_counter(context)

    def connect(
        self, address: str, session: ssl.SSLSession | None, stop: threading.Event,
        *, tickets: str = "all",
    ) -> _Conn:
        # tickets: on TLS 1.3, wait for "all" the tickets (quiet for 50 ms after
        # the last one), only the "first" one, or "none" (the session is not used).
        if stop.is_set():
            raise _Stopped
        opts = self.opts
        sock = socket.create_connection((address, opts.port), timeout=opts.timeout)
        try:
            tls = self.context.wrap_socket(
                sock,
                server_hostname=opts.server_name or opts.host,
                session=session,
                do_handshake_on_connect=False,
            )
        except BaseException:
            sock.close()
            raise
        with tls:
            before = self.counter() if self.counter else 0
            start = time.perf_counter()
            tls.do_handshake()
            handshake = time.perf_counter() - start
            protocol = tls.version() or ""
            if protocol == "TLSv1.3" and tickets != "none":
                self._await_tickets(
                    tls, before, max(opts.ticket_wait, 4 * handshake), first=tickets == "first"
                )
            conn = _Conn(
                resumed=bool(tls.session_reused),
                session=tls.session,
                handshake=handshake,
                tickets=(self.counter() - before) if self.counter else -1,
                protocol=protocol,
                cipher=(tls.cipher() or ("",))[0],
            )
            _close_politely(tls)
        return conn

    def _await_tickets(
        self, tls: ssl.SSLSocket, before: int, wait: float, *, first: bool = False
    ) -> None:
        # Read (sending nothing) until the tickets came in: OpenSSL processes
        # NewSessionTicket inside SSL_read, which then wants more data. With
        # *first*, stop as soon as one came.
        tls.setblocking(False)
        deadline = time.monotonic() + min(wait, self.opts.timeout)
        seen = before
        quiet_until = deadline
        while True:
            now = time.monotonic()
            remaining = min(deadline, quiet_until) - now
            if remaining <= 0:
                return
            readable, _, _ = select.select([tls], [], [], remaining)
            if not readable:
                return
            try:
                if not tls.recv(16384):
                    return  # the server closed
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, OSError):
                return
            if self.counter is not None and self.counter() > seen:
                if first:
                    return
                seen = self.counter()
                quiet_until = time.monotonic() + _TICKET_IDLE


def _close_politely(tls: ssl.SSLSocket) -> None:
    # Send close_notify without waiting for the server's.
    try:
        tls.setblocking(False)
        tls.unwrap()
    except (ssl.SSLError, OSError, ValueError):
        pass


def _resolve(opts: ProbeOptions) -> tuple[str, ...]:
    if opts.resolve is not None:
        return opts.resolve
    try:
        infos = socket.getaddrinfo(opts.host, opts.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProbeError(f"cannot resolve {opts.host!r}: {_reason(exc)}") from None
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    if not found:
        raise ProbeError(f"{opts.host!r} resolves to no address")
    return tuple(found)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message)
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror).lower()
    return str(exc) or type(exc).__name__


def _check_options(opts: ProbeOptions) -> None:
    if not 1 <= opts.attempts <= MAX_ATTEMPTS:
        raise ProbeError(f"attempts must be 1-{MAX_ATTEMPTS}, got {opts.attempts}")
    if not 0 < opts.timeout <= MAX_TIMEOUT:
        raise ProbeError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} s")
    if not 0 < opts.ticket_wait <= MAX_TIMEOUT:
        raise ProbeError(f"ticket_wait must be more than 0 and at most {MAX_TIMEOUT:g} s")
    if not opts.versions or any(v not in _VERSIONS for v in opts.versions):
        raise ProbeError(f"versions must be among 1.2 and 1.3, got {opts.versions}")
    if not 0 < opts.port < 65536:
        raise ProbeError(f"the port must be 1-65535, got {opts.port}")
    if not opts.host:
        raise ProbeError("no host given")
    if not 1 <= opts.max_addresses <= MAX_ADDRESSES:
        raise ProbeError(
            f"max_addresses must be 1-{MAX_ADDRESSES}, got {opts.max_addresses}"
        )
    if opts.cafile is not None and not Path(opts.cafile).is_file():
        raise ProbeError(f"no CA file {str(opts.cafile)!r}")


def _preflight(opts: ProbeOptions, address: str, stop: threading.Event) -> tuple[bool, str]:
    # Step 2: is there a TLS server, and does its certificate verify?
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    target = f"{host}:{opts.port}" + (f" ({address})" if address != opts.host else "")
    try:
        socket.create_connection((address, opts.port), timeout=opts.timeout).close()
    except OSError as exc:
        raise ProbeError(f"cannot connect to {target}: {_reason(exc)}") from None
    name = opts.server_name or opts.host
    try:
        client = _Client(opts, None, tickets=True, verify=True)
    except (ssl.SSLError, OSError) as exc:
        raise ProbeError(f"cannot load the CA file: {_reason(exc)}") from None
    try:
        client.connect(address, None, stop)
    except ssl.SSLCertVerificationError as exc:
        reason = _reason(exc)
        if not opts.insecure:
            raise ProbeError(
                f"the certificate of {target} does not verify: {reason} "
                "(trust its CA with --cafile FILE, or probe anyway with --insecure)"
            ) from None
        return False, reason
    except ssl.SSLError as exc:
        if exc.reason in _VERSION_REFUSALS:
            # Not a TLS problem but a version the server does not speak: each
            # version's probe reports it as not spoken (verdict, not an error).
            versions = ", ".join(opts.versions)
            return False, f"not checked: the server speaks none of TLS {versions}"
        raise ProbeError(f"no TLS handshake with {target}: {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise ProbeError(f"no TLS handshake with {target}: {_reason(exc)}") from None
    return True, f"verified for {name}"


#: OpenSSL's reasons for a handshake that failed on the protocol version alone.
_VERSION_REFUSALS: Final = frozenset(
    {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
     "WRONG_VERSION_NUMBER", "TLSV1_ALERT_INTERNAL_ERROR"}
)


def _probe_version(
    opts: ProbeOptions, version: str, address: str, verified: bool, cert_reason: str,
    stop: threading.Event,
) -> VersionProbe:
    # Step 3.
    client = _Client(opts, version, tickets=True, verify=verified)
    fulls: list[_Conn] = []
    try:
        for _ in range(opts.attempts):
            fulls.append(client.connect(address, None, stop))
    except (ssl.SSLError, OSError) as exc:
        if fulls:
            raise ProbeError(f"TLS {version}: a full handshake failed: {_reason(exc)}") from None
        return VersionProbe(version=version, supported=False, error=_reason(exc))
    full_times = [c.handshake for c in fulls]
    resumed_times: list[float] = []
    first = fulls[-1]
    ticket_counts = [c.tickets for c in fulls if c.tickets >= 0]

    def series(c: _Client, session: ssl.SSLSession | None) -> ResumptionTally:
        resumed = 0
        for _ in range(opts.attempts):
            conn = c.connect(address, session, stop)
            (resumed_times if conn.resumed else full_times).append(conn.handshake)
            resumed += conn.resumed
            session = conn.session  # chain: the next attempt offers the newest
        return ResumptionTally(resumed, opts.attempts)

    session_id: ResumptionTally | None = None
    reuse: bool | None = None
    after_resumed: int | None = None
    session = first.session
    has_ticket = session is not None and session.has_ticket
    if version == "1.2":
        ticket = (
            series(client, session) if has_ticket
            else ResumptionTally(0, 0, "server sent no ticket")
        )
        no_ticket = _Client(opts, version, tickets=False, verify=verified)
        first_id = no_ticket.connect(address, None, stop)
        full_times.append(first_id.handshake)
        if first_id.session is not None and first_id.session.id:
            session_id = series(no_ticket, first_id.session)
        else:
            session_id = ResumptionTally(0, 0, "server gave no session ID")
    else:
        if has_ticket:
            ticket, after_resumed = _policy_chain(opts, client, address, stop, resumed_times)
            # One ticket, offered twice (informative; RFC 8446 C.4).
            fresh = client.connect(address, None, stop)
            full_times.append(fresh.handshake)
            once = client.connect(address, fresh.session, stop)
            twice = client.connect(address, fresh.session, stop)
            reuse = twice.resumed if once.resumed else None
        else:
            ticket = ResumptionTally(0, 0, "server sent no ticket")
    lifetime = session.ticket_lifetime_hint if session is not None and has_ticket else None
    advice = ""
    if version == "1.3" and ticket.attempts and not ticket.works:
        advice = _tls13_advice(after_resumed, reuse)
    return VersionProbe(
        version=version,
        supported=True,
        protocol=first.protocol,
        cipher=first.cipher,
        certificate_verified=verified,
        certificate_reason=cert_reason,
        session_id=session_id,
        ticket=ticket,
        tickets_per_handshake=max(ticket_counts) if ticket_counts else None,
        ticket_reuse_accepted=reuse,
        ticket_lifetime_hint=lifetime,
        client_session_timeout=session.timeout if session is not None else None,
        full_handshake_ms=median_ms(full_times),
        resumed_handshake_ms=median_ms(resumed_times),
        advice=advice,
        tickets_after_resumption=after_resumed if version == "1.3" and has_ticket else None,
    )


def _policy_chain(
    opts: ProbeOptions, client: _Client, address: str, stop: threading.Event,
    resumed_times: list[float],
) -> tuple[ResumptionTally, int | None]:
    # TLS 1.3 as resume's clients do it by default: every ticket the server
    # sends is kept (SessionCache, per_key) and each is offered once; a
    # connection that finds no ticket makes a full handshake, which refills the
    # pool. One full handshake seeds the pool; then ``attempts`` connections are
    # counted. Also returns the most tickets a resumed connection brought (None:
    # unknown), which tells servers that send tickets only after full handshakes.
    from .._core.cache import SessionCache
    from .._core.policy import TLSObject
    from .._integrations._common import wrap_socket

    cache = SessionCache()
    name = opts.server_name or opts.host
    resumed = 0
    after_resumed: int | None = 0 if client.counter is not None else None
    for index in range(opts.attempts + 1):
        if stop.is_set():
            raise _Stopped
        sock = socket.create_connection((address, opts.port), timeout=opts.timeout)
        before = client.counter() if client.counter else 0
        start = time.perf_counter()
        try:
            conn, tls = wrap_socket(
                client.context, sock, server_hostname=name, port=opts.port, cache=cache
            )
        except BaseException:
            sock.close()
            raise
        with tls:
            handshake = time.perf_counter() - start
            client._await_tickets(tls, before, max(opts.ticket_wait, 4 * handshake))
            reused = bool(tls.session_reused)
            if index:
                resumed += reused
                if reused:
                    resumed_times.append(handshake)
                    if client.counter is not None and after_resumed is not None:
                        after_resumed = max(after_resumed, client.counter() - before)
            conn.close(cast("TLSObject", tls), clean=True)
            _close_politely(tls)
    return ResumptionTally(resumed, opts.attempts), after_resumed


def _tls13_advice(after_resumed: int | None, reuse: bool | None) -> str:
    # Why a TLS 1.3 chain fell short, and what would help.
    if after_resumed == 0:
        if reuse:
            return (
                "the server sends tickets only after full handshakes; it accepts a reused "
                "ticket, so SessionCache(tls13_ticket_reuse=True) would resume every connection"
            )
        return (
            "the server sends tickets only after full handshakes and refuses a reused ticket: "
            "a connection makes a full handshake whenever the client's tickets run out"
        )
    return "the server declined tickets it had sent (restarted, rotated its keys, or forgot them)"


def _fleet(
    opts: ProbeOptions, version: str, addresses: Sequence[str], verified: bool,
    stop: threading.Event,
) -> list[FleetMatrix]:
    # Step 4: sessions made on A offered to B, for every cell (A, B) of the plan.
    mechanisms = [("ticket", True), ("session-id", False)] if version == "1.2" else [("psk", True)]
    tries = min(opts.attempts, FLEET_TRIES)
    plan = fleet_plan(len(addresses))
    not_probed = ResumptionTally(0, 0, NOT_PROBED)
    matrices = []
    for mechanism, tickets in mechanisms:
        client = _Client(opts, version, tickets=tickets, verify=verified)
        cells = [[not_probed] * len(addresses) for _ in addresses]
        for i, j in plan:
            resumed = attempts = 0
            note = ""
            for _ in range(tries):
                made = client.connect(addresses[i], None, stop, tickets="first")
                usable = made.session is not None and (
                    made.session.has_ticket if tickets else bool(made.session.id)
                )
                if not usable:
                    note = "no ticket" if tickets else "no session ID"
                    break
                attempts += 1
                offered = client.connect(addresses[j], made.session, stop, tickets="none")
                resumed += offered.resumed
            cells[i][j] = ResumptionTally(resumed, attempts, note)
        matrices.append(FleetMatrix(
            version, mechanism, tuple(addresses), tuple(tuple(row) for row in cells),
            reference=addresses[0] if len(addresses) > 2 else None,
        ))
    return matrices


def run_probe(opts: ProbeOptions, stop: threading.Event | None = None) -> ProbeResult:
    """Run the whole probe with blocking sockets; return what it found.

    Raises:
        ProbeError: the probe could not run (one-line reason).
    """
    stop = stop if stop is not None else threading.Event()
    started = time.monotonic()
    _check_options(opts)  # 1.
    addresses = _resolve(opts)
    if opts.all_addresses and len(addresses) > opts.max_addresses:
        raise ProbeError(
            f"{opts.host} has {len(addresses)} addresses, more than max_addresses "
            f"({opts.max_addresses}) allows with all_addresses: raise it (--max-addresses N) "
            "or name fewer (--resolve NAME:ADDR,...)"
        )
    address = addresses[0]
    try:
        verified, cert_reason = _preflight(opts, address, stop)  # 2.
        versions = tuple(
            _probe_version(opts, v, address, verified, cert_reason, stop)
            for v in sorted(opts.versions)
        )
        # A version the server does not speak is a finding ("not spoken", exit 1),
        # not an error, even when it is the only one probed.
        fleet: list[FleetMatrix] = []
        if opts.all_addresses:
            for v in versions:
                if v.supported:
                    fleet += _fleet(opts, v.version, addresses, verified, stop)  # 4.
    except _Stopped:
        raise ProbeError("the probe was cancelled") from None
    except (ssl.SSLError, OSError) as exc:
        raise ProbeError(f"the probe failed midway: {_reason(exc)}") from None
    return ProbeResult(
        host=opts.host,
        port=opts.port,
        server_name=opts.server_name or opts.host,
        address=address,
        addresses=addresses,
        versions=versions,
        fleet=tuple(fleet),
        seconds=time.monotonic() - started,
    )


async def probe(
    host: str,
    port: int = 443,
    *,
    server_name: str | None = None,
    cafile: str | Path | None = None,
    insecure: bool = False,
    versions: Sequence[str] = ("1.2", "1.3"),
    attempts: int = 5,
    all_addresses: bool = False,
    resolve: Sequence[str] | None = None,
    timeout: float = 5.0,
    ticket_wait: float = 0.5,
    max_addresses: int = DEFAULT_MAX_ADDRESSES,
) -> ProbeResult:
    """Find out whether a TLS server -- or every address of a fleet -- resumes sessions.

    For each TLS version (1.2 and 1.3 unless *versions* says otherwise) the probe
    makes *attempts* full handshakes, then *attempts* resumptions per mechanism:
    TLS 1.2 session IDs (the client offers no ticket, ``SSL_OP_NO_TICKET``) and
    tickets, TLS 1.3 PSKs from the previous connection's ticket (read after the
    handshake, as ``SSL_get1_session(3)`` requires on TLS 1.3). It counts the
    tickets per handshake, tries one TLS 1.3 ticket twice, and times full and
    resumed handshakes. With *all_addresses*, sessions made on each address the
    name resolves to are offered to the same address and, both ways, to the
    first address (a star: 3N - 2 cells of the N x N matrix, so the cost grows
    linearly with the addresses).

    Usable from trio and from asyncio: the connections are blocking sockets in a
    worker thread (``trio.to_thread.run_sync`` or ``asyncio.to_thread``), so the
    handshake times do not include the event loop's other work. Cancelling the
    call stops the worker before its next connection.

    Args:
        host: the server's name or address; traffic goes only to its addresses.
        port: the TCP port.
        server_name: the name sent (SNI) and verified; default *host*.
        cafile: trust the CA certificates in this PEM file instead of the system's.
        insecure: go on when the certificate does not verify (the report says why).
        versions: the TLS versions to probe, among "1.2" and "1.3".
        attempts: resumption attempts per mechanism (1-100).
        all_addresses: also build the "session from A resumes on B" matrices.
        max_addresses: with *all_addresses*, the most addresses to probe (1-256);
            a name with more is a ProbeError before any connection.
        resolve: use these addresses for *host* instead of resolving it (like
            curl's ``--resolve``), e.g. ``("127.0.0.2", "127.0.0.3")``.
        timeout: per connection, in seconds (at most 60).
        ticket_wait: how long a TLS 1.3 connection waits for tickets when none
            come (it stops 50 ms after the last one otherwise).

    Returns:
        The :class:`~resume.ProbeResult`; its ``exit_status`` is 0 when resumption
        works on every version the server speaks.

    Raises:
        ProbeError: the probe could not run (unknown host, refused port, no TLS,
            a certificate that does not verify without *insecure*, bad arguments).
    """
    import sniffio

    opts = ProbeOptions(
        host=host, port=port, server_name=server_name, cafile=cafile, insecure=insecure,
        versions=tuple(versions), attempts=attempts, all_addresses=all_addresses,
        resolve=tuple(resolve) if resolve is not None else None, timeout=timeout,
        ticket_wait=ticket_wait, max_addresses=max_addresses,
    )
    stop = threading.Event()
    library = sniffio.current_async_library()
    try:
        if library == "trio":
            import trio

            return await trio.to_thread.run_sync(run_probe, opts, stop, abandon_on_cancel=True)
        if library == "asyncio":
            import asyncio

            return await asyncio.to_thread(run_probe, opts, stop)
        raise ProbeError(f"resume.probe runs under trio or asyncio, not {library}")
    finally:
        stop.set()  # a cancelled call's worker stops before its next connection


probe.__module__ = "resume"
