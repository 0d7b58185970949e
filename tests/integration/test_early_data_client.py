"""Client early data (TLS 1.3 0-RTT) against real servers: ``openssl s_server`` and nginx.

Both clients (``resume.trio.open_tls_stream`` and ``resume.asyncio.open_connection``)
pass ``early_data=`` and must deliver it exactly once whichever way it went:
in the first flight and accepted, in the first flight and rejected (sent again
after the handshake), or after the handshake (no session, TLS 1.2, too large).
The servers' own records are the judge:

* ``openssl s_server -early_data`` prints "Early data received:" for each
  connection whose early data it read, and every byte it received (each
  connection's marker must appear once);
* nginx (``ssl_early_data on``) logs ``$ssl_early_data`` = "1" for a request it
  read as early data, and one line per request it answered.

Every test runs under TLS 1.2 too, where nothing may go early and the data
still arrives once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from clienthelpers import PKI
from nginx_server import NginxServer, NginxSite
from programs import require

import resume.asyncio
import resume.trio
from resume import SessionCache

pytestmark = pytest.mark.requires("openssl")

#: How long a test waits for s_server to print what it received (it normally
#: takes milliseconds; this only bounds a hung peer).
_OUTPUT_WAIT = 20.0


@pytest.fixture(params=["1.3", "1.2"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["trio", "asyncio"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


# -- running one connection with either client ------------------------------------------


@dataclass
class Exchange:
    """What one client connection saw."""

    accepted: bool | None
    reused: bool
    received: bytes
    #: The session id of the session the connection resumed (b"" when not resumed).
    resumed_id: bytes


@dataclass
class Plan:
    """What one connection does: its early data, then the rest."""

    early: bytes
    #: Sent right after open_tls_stream/open_connection returned.
    then: bytes = b""
    #: A blocking step run in a thread after *then* (e.g. make s_server answer).
    after: Callable[[], None] | None = None
    #: Read until the data ends with this; None: to the end of the stream.
    until: bytes | None = None
    post_handshake: Callable[[Any], object] | None = None
    #: Connect to this port instead (a relay); the session key keeps *port*.
    via: int | None = None


async def exchange(
    kind: str, port: int, context: ssl.SSLContext, cache: SessionCache, early: bytes, **plan: Any
) -> Exchange:
    """Connect with ``early_data=early`` and carry out the rest of the :class:`Plan`, then close."""
    if kind == "trio":
        return await _exchange_trio(port, context, cache, Plan(early, **plan))
    return await trio.to_thread.run_sync(
        asyncio.run, _exchange_asyncio(port, context, cache, Plan(early, **plan))
    )


async def _exchange_trio(
    port: int, context: ssl.SSLContext, cache: SessionCache, plan: Plan
) -> Exchange:
    options: dict[str, Any] = {
        "ssl_context": context, "cache": cache, "early_data": plan.early,
        "post_handshake": plan.post_handshake,
    }
    if plan.via is None:
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, server_hostname="localhost", **options
        )
    else:
        tcp = await trio.open_tcp_stream("127.0.0.1", plan.via)
        stream = await resume.trio.wrap_client_stream(
            tcp, server_hostname="localhost", port=port, **options
        )
    async with stream:
        handle = stream.session_handle
        resumed_id = handle.id if stream.session_reused and handle is not None else b""
        if plan.then:
            await stream.send_all(plan.then)
        if plan.after is not None:
            await trio.to_thread.run_sync(plan.after)
        got = b""
        while plan.until is None or not got.endswith(plan.until):
            chunk = await stream.receive_some()
            if not chunk:
                break
            got += chunk
        return Exchange(stream.early_data_accepted, stream.session_reused, got, resumed_id)


async def _exchange_asyncio(
    port: int, context: ssl.SSLContext, cache: SessionCache, plan: Plan
) -> Exchange:
    options: dict[str, Any] = {
        "ssl": context, "cache": cache, "early_data": plan.early,
        "post_handshake": plan.post_handshake, "server_hostname": "localhost",
    }
    if plan.via is None:
        reader, writer = await resume.asyncio.open_connection("127.0.0.1", port, **options)
    else:
        sock = socket.create_connection(("127.0.0.1", plan.via))
        reader, writer = await resume.asyncio.open_connection(sock=sock, port=port, **options)
    async with writer:
        handle = writer.session_handle
        resumed_id = handle.id if writer.session_reused and handle is not None else b""
        if plan.then:
            writer.write(plan.then)
        if plan.after is not None:
            await asyncio.get_running_loop().run_in_executor(None, plan.after)
        got = b""
        while plan.until is None or not got.endswith(plan.until):
            chunk = await reader.read(65536)
            if not chunk:
                break
            got += chunk
        accepted = writer.get_extra_info("early_data_accepted")
        assert accepted is writer.early_data_accepted
        return Exchange(accepted, writer.session_reused, got, resumed_id)


def cached_ids(cache: SessionCache) -> list[bytes]:
    """The session ids of every session in *cache* (taken out and freed: read once)."""
    ids = []
    for key in list(cache.keys()):
        while (handle := cache.take(key)) is not None:
            ids.append(handle.id)
            handle.free()
    return ids


def cached_ids_peek(cache: SessionCache) -> list[bytes]:
    """The session ids in *cache*, leaving them there."""
    ids = []
    for key in list(cache.keys()):
        taken = []
        while (handle := cache.take(key)) is not None:
            taken.append(handle)
        for handle in taken:
            ids.append(handle.id)
            cache.add(key, handle)
            handle.free()
    return ids


# -- openssl s_server -early_data ---------------------------------------------------------


class EarlySServer:
    """``openssl s_server -early_data`` in its plain mode, on 127.0.0.1 and a free port.

    In that mode s_server reads early data (``SSL_read_early_data()``), prints
    "Early data received:" and the bytes, prints every later byte too, and
    sends what is written to its stdin. Its stdin stays open (a pipe) so that
    it never sees an end of input.
    """

    def __init__(self, pki: PKI, version: str, *, max_early_data: int | None = None) -> None:
        openssl = require("openssl")
        self._dir = tempfile.TemporaryDirectory()
        pem = Path(self._dir.name) / "server.pem"
        pki.server_cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        args = [
            openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", str(pem), "-early_data",
            "-tls1_3" if version == "1.3" else "-tls1_2",
        ]
        if max_early_data is not None:
            args += ["-max_early_data", str(max_early_data)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._lock = threading.Lock()
        self._out = bytearray()
        self.port = self._wait_ready()
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _wait_ready(self) -> int:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            match = re.match(rb"ACCEPT\s+\S*:(\d+)", raw)
            if match:
                return int(match.group(1))
        self.close()
        raise RuntimeError("openssl s_server exited before it listened")

    def _drain_output(self) -> None:
        stdout = self.proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # Popen's default buffering
        while chunk := stdout.read1(65536):
            with self._lock:
                self._out += chunk

    def output(self) -> bytes:
        with self._lock:
            return bytes(self._out)

    def wait_for(self, marker: bytes) -> None:
        """Block until *marker* appears in s_server's output (bounded)."""
        deadline = time.monotonic() + _OUTPUT_WAIT
        while marker not in self.output():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"s_server never printed {marker!r}: {self.output()[-800:]!r}")
            time.sleep(0.005)

    def settled(self, text: bytes, count: int) -> bytes:
        """The output once *text* appears *count* times in it (bounded wait).

        s_server flushes its "Early data received:" header after the bytes,
        and the output reaches this process through a pipe and a thread.
        """
        deadline = time.monotonic() + _OUTPUT_WAIT
        while (out := self.output()).count(text) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return out

    def answer(self, marker: bytes, reply: bytes) -> Callable[[], None]:
        """A blocking step: once *marker* arrived, send *reply* to the client."""

        def step() -> None:
            self.wait_for(marker)
            assert self.proc.stdin is not None
            self.proc.stdin.write(reply)
            self.proc.stdin.flush()

        return step

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_drain"):
            self._drain.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._dir.cleanup()


@contextmanager
def early_s_server(pki: PKI, version: str, **kwargs: Any) -> Iterator[EarlySServer]:
    server = EarlySServer(pki, version, **kwargs)
    try:
        yield server
    finally:
        server.close()


async def s_server_round(
    kind: str, server: EarlySServer, context: ssl.SSLContext, cache: SessionCache, i: int,
    data: bytes | None = None,
) -> Exchange:
    """One connection to s_server: *data* (a marker line by default) as early data, one reply."""
    marker = f"early-data-{kind}-{i}\n".encode()
    early = marker if data is None else data
    return await exchange(
        kind, server.port, context, cache, early,
        after=server.answer(early[-12:], b"reply-%d\n" % i), until=b"reply-%d\n" % i,
    )


class TestOpenSSLServer:
    """Against ``openssl s_server -early_data``."""

    async def test_early_data_arrives_once(
        self, pki: PKI, tls_version: str, client_kind: str
    ) -> None:
        """TLS 1.3: resumed connections send early, s_server reads it once; TLS 1.2: never early."""
        cache, context = SessionCache(), pki.client_context(tls_version)
        with early_s_server(pki, tls_version) as server:
            results = [
                await s_server_round(client_kind, server, context, cache, i)
                for i in range(4)
            ]
            out = server.settled(b"Early data received:", 3 if tls_version == "1.3" else 0)
        assert [r.received for r in results] == [b"reply-%d\n" % i for i in range(4)]
        assert [r.reused for r in results] == [False, True, True, True]
        for i in range(4):
            assert out.count(f"early-data-{client_kind}-{i}\n".encode()) == 1, out
        if tls_version == "1.3":
            assert [r.accepted for r in results] == [None, True, True, True]
            assert out.count(b"Early data received:") == 3
        else:
            assert [r.accepted for r in results] == [None, None, None, None]
            assert out.count(b"Early data received:") == 0

    async def test_size_limit(self, pki: PKI, tls_version: str, client_kind: str) -> None:
        """Data larger than the ticket's max_early_data waits for the handshake, and arrives."""
        cache, context = SessionCache(), pki.client_context(tls_version)
        small = b"s" * 52 + b"-fits-in-64\n"  # exactly what the tickets allow
        large = b"L" * 52 + b"-one-too-big\n"  # one byte more
        assert (len(small), len(large)) == (64, 65)
        with early_s_server(pki, tls_version, max_early_data=64) as server:
            first = await s_server_round(client_kind, server, context, cache, 0)
            fits = await s_server_round(client_kind, server, context, cache, 1, small)
            too = await s_server_round(client_kind, server, context, cache, 2, large)
            out = server.settled(b"Early data received:", 1 if tls_version == "1.3" else 0)
        assert first.accepted is None
        assert fits.reused and too.reused
        assert fits.accepted is (True if tls_version == "1.3" else None)
        assert too.accepted is None  # not sent early: the connection lived on
        assert too.received == b"reply-2\n"
        assert out.count(small) == 1 and out.count(large) == 1
        assert out.count(b"Early data received:") == (1 if tls_version == "1.3" else 0)

    async def test_server_that_lost_its_keys_rejects_and_data_arrives_once(
        self, pki: PKI, tls_version: str, client_kind: str
    ) -> None:
        """A ticket that allowed early data meets a server that cannot use it: rejected, resent."""
        cache, context = SessionCache(), pki.client_context(tls_version)
        with early_s_server(pki, tls_version) as first:
            await s_server_round(client_kind, first, context, cache, 0)
        with early_s_server(pki, tls_version) as second:
            # The same key, a server that never issued the ticket (another process,
            # other ticket keys): move the cached sessions under its port.
            for key in list(cache.keys()):
                while (handle := cache.take(key)) is not None:
                    moved = resume.SessionKey(key.peer, second.port, key.digest)  # type: ignore[attr-defined]
                    cache.add(moved, handle)
                    handle.free()
            rejected = await s_server_round(client_kind, second, context, cache, 1)
            again = await s_server_round(client_kind, second, context, cache, 2)
            out = second.settled(b"Early data received:", 1 if tls_version == "1.3" else 0)
        assert rejected.reused is False
        assert rejected.accepted is (False if tls_version == "1.3" else None)
        assert rejected.received == b"reply-1\n"
        assert out.count(f"early-data-{client_kind}-1\n".encode()) == 1
        # And the fresh tickets of that server carry early data again.
        assert again.reused is True
        assert again.accepted is (True if tls_version == "1.3" else None)
        assert out.count(b"Early data received:") == (1 if tls_version == "1.3" else 0)


# -- nginx, ssl_early_data on/off -------------------------------------------------------


def _request(path: str, *, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{connection}\r\n".encode()


@dataclass
class NginxFleet:
    """One nginx site, restartable on the same port with the same certificate and ticket key."""

    ca: trustme.CA
    version: str
    directory: Path

    def __post_init__(self) -> None:
        self.ticket_key = self.directory / "ticket.key"
        self.ticket_key.write_bytes(os.urandom(80))
        # nginx's session id context hashes the certificate: keep one across restarts.
        self.certificate = self.ca.issue_cert("localhost", "127.0.0.1")
        self.port = 0

    @contextmanager
    def run(self, *, early_data: bool) -> Iterator[NginxServer]:
        site = NginxSite(
            protocols=("TLSv1.3",) if self.version == "1.3" else ("TLSv1.2",),
            ticket_key_file=self.ticket_key,
            certificate=self.certificate,
            port=self.port,
            extra=f"ssl_early_data {'on' if early_data else 'off'};",
        )
        server = NginxServer(self.ca, [site], directory=Path(tempfile.mkdtemp(dir=self.directory)))
        with server:
            self.port = server.port(0)
            yield server

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        pinned = ssl.TLSVersion.TLSv1_3 if self.version == "1.3" else ssl.TLSVersion.TLSv1_2
        context.minimum_version = context.maximum_version = pinned
        return context


@pytest.fixture
def nginx_fleet(tls_version: str, tmp_path: Path) -> NginxFleet:
    require("nginx")
    return NginxFleet(trustme.CA(), tls_version, tmp_path)


async def nginx_round(
    kind: str, fleet: NginxFleet, context: ssl.SSLContext, cache: SessionCache, i: int,
    via: int | None = None,
) -> Exchange:
    """GET /early-i as early data, then GET /end (close) after it; read both answers."""
    return await exchange(
        kind, fleet.port, context, cache, _request(f"/early-{i}"),
        then=_request("/end", close=True), via=via,
    )


def logged(server: NginxServer, requests: int) -> list[dict[str, Any]]:
    """nginx's access log once it holds *requests* lines (bounded wait).

    nginx writes a request's line after its response went out, so a client
    that read the response (even to the close) can be ahead of the log.
    """
    deadline = time.monotonic() + _OUTPUT_WAIT
    while len(log := server.access_log()) < requests and time.monotonic() < deadline:
        time.sleep(0.01)
    return log


class LogGate:
    """A loopback TCP relay to nginx that holds the client's second flight until nginx
    has logged the request it expects.

    nginx's ``$ssl_early_data`` is "1" while the handshake is not complete, and
    nginx evaluates it when it logs, after the response. On loopback the
    client's Finished (and the next request) can reach nginx before it logs the
    early request, and the variable then reads "". So the relay forwards the
    client's first flight (ClientHello and early data) and everything nginx
    sends, but holds whatever the client sends after nginx first spoke until
    *expect* is in nginx's log (or a bound passed: a request that did not go
    early is never logged before the handshake, and the test then fails on
    nginx's record).
    """

    def __init__(self, server: NginxServer, upstream: int) -> None:
        self.server = server
        self.upstream = upstream
        self.port = 0
        #: The request line to wait for before letting the client's next bytes through.
        self.expect = ""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def _wait_logged(self, expect: str) -> None:
        deadline = time.monotonic() + _OUTPUT_WAIT
        while time.monotonic() < deadline:
            if any(e["request"] == expect for e in self.server.access_log()):
                return
            time.sleep(0.005)

    async def _relay(self, client: trio.SocketStream) -> None:
        expect = self.expect
        spoke, released = trio.Event(), trio.Event()
        upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream)

        async def client_to_server() -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while chunk := await client.receive_some(65536):
                    if spoke.is_set():
                        await released.wait()
                    await upstream.send_all(chunk)
                await upstream.send_eof()

        async def server_to_client() -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while chunk := await upstream.receive_some(65536):
                    spoke.set()
                    await client.send_all(chunk)
            nursery.cancel_scope.cancel()

        async def gate() -> None:
            await spoke.wait()
            await trio.to_thread.run_sync(self._wait_logged, expect)
            released.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client_to_server)
                nursery.start_soon(server_to_client)
                nursery.start_soon(gate)
        finally:
            await trio.aclose_forcefully(upstream)
            await trio.aclose_forcefully(client)


def by_connection(log: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """nginx's access log grouped by connection, in order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        groups.setdefault(entry["connection"], []).append(entry)
    return list(groups.values())


class TestNginx:
    """Against nginx 1.22 with ``ssl_early_data``."""

    async def test_request_goes_early_once(self, nginx_fleet: NginxFleet, client_kind: str) -> None:
        """nginx logs the resumed connections' first request as early data, each request once."""
        fleet, cache = nginx_fleet, SessionCache()
        context = fleet.client_context()
        with fleet.run(early_data=True) as server:
            results = [await nginx_round(client_kind, fleet, context, cache, 0)]
            async with trio.open_nursery() as nursery:
                gate = LogGate(server, fleet.port)
                await nursery.start(gate.run)
                # TLS 1.2 sends nothing early: no request is logged before the handshake.
                via = gate.port if fleet.version == "1.3" else None
                for i in (1, 2):
                    gate.expect = f"GET /early-{i} HTTP/1.1"
                    results.append(
                        await nginx_round(client_kind, fleet, context, cache, i, via=via)
                    )
                nursery.cancel_scope.cancel()
            log = by_connection(await trio.to_thread.run_sync(logged, server, 6))
        for r in results:
            assert r.received.count(b"HTTP/1.1 200 OK") == 2, r.received
        assert [r.reused for r in results] == [False, True, True]
        assert [[e["request"] for e in c] for c in log] == [
            [f"GET /early-{i} HTTP/1.1", "GET /end HTTP/1.1"] for i in range(3)
        ]
        assert [c[0]["reused"] for c in log] == [".", "r", "r"]
        if fleet.version == "1.3":
            assert [r.accepted for r in results] == [None, True, True]
            assert [[e["early_data"] for e in c] for c in log] == [["", ""], ["1", ""], ["1", ""]]
        else:
            assert [r.accepted for r in results] == [None, None, None]
            assert all(e["early_data"] == "" for c in log for e in c)

    async def test_restarted_without_early_data_rejects_and_answers_once(
        self, nginx_fleet: NginxFleet, client_kind: str
    ) -> None:
        """nginx restarted with ``ssl_early_data off``, same ticket key: rejected, answered once."""
        fleet, cache = nginx_fleet, SessionCache()
        context = fleet.client_context()
        with fleet.run(early_data=True):
            for i in range(2):
                await nginx_round(client_kind, fleet, context, cache, i)
        with fleet.run(early_data=False) as server:
            results = [
                await nginx_round(client_kind, fleet, context, cache, i) for i in range(2, 4)
            ]
            log = by_connection(await trio.to_thread.run_sync(logged, server, 4))
        for r in results:
            assert r.reused is True
            assert r.received.count(b"HTTP/1.1 200 OK") == 2, r.received
        assert [r.accepted for r in results] == (
            [False, False] if fleet.version == "1.3" else [None, None]
        )
        assert [[e["request"] for e in c] for c in log] == [
            [f"GET /early-{i} HTTP/1.1", "GET /end HTTP/1.1"] for i in range(2, 4)
        ]
        assert all(e["early_data"] == "" and e["reused"] == "r" for c in log for e in c)

    async def test_used_ticket_is_never_cached_again(
        self, nginx_fleet: NginxFleet, client_kind: str
    ) -> None:
        """After 0-RTT connections the cache holds only fresh tickets; each next one resumes."""
        fleet = nginx_fleet
        cache = SessionCache(per_key=1)  # one ticket: every connection needs its predecessor's
        context = fleet.client_context()
        with fleet.run(early_data=True):
            results = [await nginx_round(client_kind, fleet, context, cache, i) for i in range(4)]
        assert [r.reused for r in results] == [False, True, True, True]
        used = [r.resumed_id for r in results[1:]]
        held = cached_ids(cache)
        assert len(held) == 1
        if fleet.version == "1.3":
            assert [r.accepted for r in results] == [None, True, True, True]
            assert len(set(used)) == 3  # a different, fresh ticket each time
            assert not set(used) & set(held)
        else:
            assert [r.accepted for r in results] == [None, None, None, None]

    async def test_failed_check_sends_nothing(
        self, nginx_fleet: NginxFleet, client_kind: str
    ) -> None:
        """A post_handshake check that fails on a full handshake: the data never leaves."""
        fleet, cache = nginx_fleet, SessionCache()
        context = fleet.client_context()

        class Refused(Exception):
            pass

        def refuse(stream: object) -> None:
            raise Refused

        with fleet.run(early_data=True) as server:
            with pytest.raises(Refused):
                await exchange(
                    client_kind, fleet.port, context, cache, _request("/secret", close=True),
                    post_handshake=refuse,
                )
            await nginx_round(client_kind, fleet, context, cache, 0)
            log = await trio.to_thread.run_sync(logged, server, 2)
        assert [e["request"] for e in log] == ["GET /early-0 HTTP/1.1", "GET /end HTTP/1.1"]


# -- resume's own servers --------------------------------------------------------------


class TestResumeServer:
    """Against ``resume.trio.serve_tls(max_early_data=...)``: the handler sees the bytes early."""

    async def test_serve_tls_reads_the_early_bytes_once(
        self, pki: PKI, tls_version: str, client_kind: str
    ) -> None:
        """The handler gets each line once, flagged early on resumed TLS 1.3 connections."""
        seen: list[tuple[bool, bytes]] = []

        async def handler(stream: resume.trio.TLSServerStream) -> None:
            got = b""
            while not got.endswith(b"\n"):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                got += chunk
            seen.append((stream.early_data, got))
            await stream.send_all(b"ok " + got)

        cache, context = SessionCache(), pki.client_context(tls_version)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    resume.trio.serve_tls, handler, 0, ssl_context=pki.server_context(tls_version),
                    host="127.0.0.1", max_early_data=1024,
                )
            )
            results = [
                await exchange(client_kind, server.port, context, cache, b"line-%d\n" % i)
                for i in range(3)
            ]
            nursery.cancel_scope.cancel()
        assert [r.received for r in results] == [b"ok line-%d\n" % i for i in range(3)]
        assert [line for _, line in seen] == [b"line-%d\n" % i for i in range(3)]
        assert [r.reused for r in results] == [False, True, True]
        if tls_version == "1.3":
            assert [r.accepted for r in results] == [None, True, True]
            assert [early for early, _ in seen] == [False, True, True]
        else:
            assert [r.accepted for r in results] == [None, None, None]
            assert [early for early, _ in seen] == [False, False, False]

    async def test_client_that_leaves_after_early_data(self, pki: PKI, client_kind: str) -> None:
        """Cut after the first flight: the handshake error surfaces, the next connection works."""
        seen: list[bytes] = []

        async def handler(stream: resume.trio.TLSServerStream) -> None:
            got = await stream.receive_some(4096)
            seen.append(got)
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(b"ok " + got)

        async def cut(port: int, client: trio.SocketStream) -> None:
            # The client's first flight goes through; at the server's answer, both are dropped.
            upstream = await trio.open_tcp_stream("127.0.0.1", port)
            with contextlib.suppress(trio.BrokenResourceError):
                await upstream.send_all(await client.receive_some(65536))
                await upstream.receive_some(65536)
            await trio.aclose_forcefully(upstream)
            await trio.aclose_forcefully(client)

        cache, context = SessionCache(), pki.client_context("1.3")
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    resume.trio.serve_tls, handler, 0, ssl_context=pki.server_context("1.3"),
                    host="127.0.0.1", max_early_data=1024,
                )
            )
            (cutter,) = await nursery.start(
                partial(trio.serve_tcp, partial(cut, server.port), 0, host="127.0.0.1")
            )
            first = await exchange(client_kind, server.port, context, cache, b"one\n")
            tickets = len(cached_ids_peek(cache))
            errors = (trio.BrokenResourceError, OSError, ssl.SSLError)
            with pytest.raises(errors):
                await exchange(
                    client_kind, server.port, context, cache, b"left\n",
                    via=cutter.socket.getsockname()[1],
                )
            after_cut = len(cached_ids_peek(cache))
            last = await exchange(client_kind, server.port, context, cache, b"three\n")
            nursery.cancel_scope.cancel()
        assert first.accepted is None and last.accepted is True
        assert last.received == b"ok three\n"
        assert (tickets, after_cut) == (2, 1)  # the cut connection spent one, added none
        assert seen[0] == b"one\n" and seen[-1] == b"three\n"
