"""TLS 1.3 early data (0-RTT) on the servers: serve_tls, start_server and ``resume serve``.

Real peers on loopback: ``openssl s_client -early_data`` and a client built here on
the OpenSSL binding (memory BIOs over a TCP socket: ``SSL_write_early_data()``
before the handshake, the first flight recorded as sent, the early data sent
again after the handshake when the server rejected it). TLS 1.2 and 1.3: on
TLS 1.2 no early data exists and every server serves as usual.

Replays: a recorded first flight (ClientHello and early data) is sent again on
new TCP connections, 10 times; none of them reaches the application, each gets
the server's 1-RTT flight. The control test shows the same replays reach the
handler when the replay gate is taken away.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from programs import require
from serverhelpers import HTTP_RESPONSE, ServerPKI

from resume._adapters.server_settings import configure_early_data
from resume._adapters.trio_server import TLSServer, TLSServerStream, serve_tls
from resume._openssl.binding import (
    EARLY_DATA_ACCEPTED,
    EARLY_DATA_NOT_SENT,
    EARLY_DATA_REJECTED,
    Binding,
    binding,
)
from resume.asyncio import start_server
from resume.replay import MemoryReplayGuard
from resume.ticketkeys import TicketKeyRing, install_from_spec, install_ticket_keys

VERSIONS = ["1.2", "1.3"]
VERSION_FLAGS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
REPLAYS = 10


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@pytest.fixture(scope="module", autouse=True)
def needs_early_data() -> None:
    try:
        error = binding().early_data_error
    except Exception as exc:  # pragma: no cover - a Python without the binding
        pytest.skip(f"no OpenSSL binding: {exc}")
    if error is not None:  # pragma: no cover
        pytest.skip(error)


# -- a client on the binding -----------------------------------------------------------


@dataclass
class EarlyResult:
    status: int  # SSL_get_early_data_status(): NOT_SENT 0, REJECTED 1, ACCEPTED 2
    reused: bool
    reply: bytes
    session: ssl.SSLSession | None
    flight: bytes  # what was sent before the first byte was read: ClientHello (+ early data)


def early_client(
    port: int,
    context: ssl.SSLContext,
    *,
    session: ssl.SSLSession | None = None,
    data: bytes = REQUEST,
    reply_size: int = len(HTTP_RESPONSE),
) -> EarlyResult:
    """Send *data* as early data when *session* allows it, else after the handshake.

    A rejected early write is sent again after the handshake (the application
    sees one byte stream). Reads *reply_size* bytes, then closes with close_notify.
    """
    b = binding()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost", session=session)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        early = session is not None and 0 < len(data) <= b.offered_max_early_data(tls)
        if early:
            assert b.write_early_data(tls, data) == len(data)
        flight = outgoing.read()
        sock.sendall(flight)
        first = True

        def pump_in() -> None:
            nonlocal flight, first
            out = outgoing.read()
            if first:  # without early data the ClientHello comes from do_handshake()
                flight, first = flight + out, False
            sock.sendall(out)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed during the handshake")
            incoming.write(chunk)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_in()
        sock.sendall(outgoing.read())
        status = b.early_data_status(tls)
        if status != EARLY_DATA_ACCEPTED:
            tls.write(data)  # not sent, or rejected: send it now
            sock.sendall(outgoing.read())
        reply = b""
        while len(reply) < reply_size:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                pump_in()
                continue
            if not chunk:
                break
            reply += chunk
        result = EarlyResult(status, bool(tls.session_reused), reply, tls.session, flight)
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: no wait for theirs
            tls.unwrap()
        sock.sendall(outgoing.read())
    return result


def replay(port: int, flight: bytes) -> bytes:
    """Send a recorded first flight on a new connection; return what the server answers.

    Half-closes after the server's first flight has come and reads until the
    server closes, so the server is done with the connection on return.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(flight)
        answer = sock.recv(65536)
        sock.shutdown(socket.SHUT_WR)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def answers_one_rtt(answer: bytes) -> bool:
    """The server's answer is a handshake flight: a ServerHello record first."""
    return len(answer) > 5 and answer[0] == 0x16 and answer[5] == 0x02


# -- servers ---------------------------------------------------------------------------


@dataclass
class Seen:
    early: list[bool]
    first: list[bytes]


def http_recorder(seen: Seen) -> Any:
    async def handler(stream: TLSServerStream) -> None:
        seen.early.append(stream.early_data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some()
            if not data:
                return
            if not buf:
                seen.first.append(data)
            buf += data
        await stream.send_all(HTTP_RESPONSE)

    return handler


@asynccontextmanager
async def running(handler: Any, ctx: ssl.SSLContext, **kwargs: Any) -> AsyncIterator[TLSServer]:
    async with trio.open_nursery() as nursery:
        server: TLSServer = await nursery.start(
            partial(serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1", **kwargs)
        )
        yield server
        server.close()


async def settle(server: TLSServer, closed: int) -> None:
    # Wait until the server has closed *closed* connections (not a timed wait:
    # a connection ends when its client has gone, which happened before).
    while server.statistics().closed < closed:  # noqa: ASYNC110 - no event to wait on
        await trio.sleep(0.01)


async def asettle(server: Any, closed: int) -> None:
    # settle() for resume.asyncio's server.
    while server.statistics().closed < closed:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.01)


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


# -- openssl s_client -early_data ------------------------------------------------------


def s_client(port: int, pki: ServerPKI, version: str, *args: str, stdin: bytes) -> str:
    done = subprocess.run(
        [
            require("openssl"), "s_client", "-connect", f"127.0.0.1:{port}",
            "-servername", "localhost", "-CAfile", str(pki.ca_file),
            "-verify_return_error", VERSION_FLAGS[version], "-ign_eof", *args,
        ],
        input=stdin, capture_output=True, timeout=60, check=False,
    )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    return out


def s_client_pair(port: int, pki: ServerPKI, version: str, tmp: Path) -> tuple[str, str]:
    """A first s_client that saves its session, a second that sends REQUEST as early data."""
    session, request = tmp / "session.pem", tmp / "request.txt"
    request.write_bytes(REQUEST)
    first = s_client(port, pki, version, "-sess_out", str(session), stdin=REQUEST)
    # On TLS 1.2 the session allows no early data: s_client sends nothing early,
    # so the request comes on stdin after the handshake.
    second = s_client(
        port, pki, version, "-sess_in", str(session), "-early_data", str(request),
        stdin=b"" if version == "1.3" else REQUEST,
    )
    return first, second


@pytest.mark.requires("openssl")
@pytest.mark.parametrize("version", VERSIONS)
async def test_serve_tls_s_client_early_data(pki: ServerPKI, tmp_path: Path, version: str) -> None:
    """s_client's early data reaches the handler first, flagged early; answered once."""
    seen = Seen([], [])
    ctx = pki.server_context(version)
    async with running(http_recorder(seen), ctx, max_early_data=16384) as srv:
        first, second = await in_thread(s_client_pair, srv.port, pki, version, tmp_path)
        await settle(srv, 2)
        stats = srv.statistics()
    assert first.count("HTTP/1.0 200 OK") == 1 and second.count("HTTP/1.0 200 OK") == 1
    if version == "1.3":
        assert "Early data was accepted" in second
        assert seen.early == [False, True]
        assert seen.first[1] == REQUEST
        assert (stats.early_data_accepted, stats.resumed, stats.failed) == (1, 1, 0)
    else:
        assert "Early data was accepted" not in second
        assert seen.early == [False, False]
        assert (stats.early_data_accepted, stats.resumed, stats.failed) == (0, 1, 0)


@pytest.mark.requires("openssl")
@pytest.mark.parametrize("version", VERSIONS)
def test_start_server_s_client_early_data(pki: ServerPKI, tmp_path: Path, version: str) -> None:
    """asyncio: the reader returns the early bytes first, get_extra_info("early_data") is True."""
    seen: list[tuple[Any, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append((writer.get_extra_info("early_data"), head))
        writer.write(HTTP_RESPONSE)
        await writer.drain()

    async def main() -> tuple[str, str, Any]:
        ctx = pki.server_context(version)
        async with await start_server(
            handler, "127.0.0.1", 0, ssl=ctx, max_early_data=16384
        ) as srv:
            first, second = await asyncio.to_thread(
                s_client_pair, srv.port, pki, version, tmp_path
            )
            await asettle(srv, 2)
            return first, second, srv.statistics()

    first, second, stats = asyncio.run(asyncio.wait_for(main(), 60))
    assert first.count("HTTP/1.0 200 OK") == 1 and second.count("HTTP/1.0 200 OK") == 1
    early = version == "1.3"
    assert seen == [(False, REQUEST), (early, REQUEST)]
    assert ("Early data was accepted" in second) is early
    assert (stats.early_data_accepted, stats.resumed, stats.failed) == (int(early), 1, 0)


# -- the binding client: acceptance, rejection -----------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_serve_tls_binding_client_and_rejection(pki: ServerPKI, version: str) -> None:
    """Accepted with max_early_data; rejected (and answered once) by a server without it.

    Both servers share one context, so the ticket from the first resumes on the
    second, which does not read early data: OpenSSL rejects it, the client sends
    the request again after the handshake, and the handler sees it once.
    """
    ctx = pki.server_context(version)
    client = pki.client_context(version)
    seen_early, seen_plain = Seen([], []), Seen([], [])
    async with running(http_recorder(seen_early), ctx, max_early_data=4096) as srv:
        fresh = await in_thread(early_client, srv.port, client)
        accepted = await in_thread(early_client, srv.port, client, session=fresh.session)
        await settle(srv, 2)
    async with running(http_recorder(seen_plain), ctx) as plain:
        rejected = await in_thread(early_client, plain.port, client, session=accepted.session)
        await settle(plain, 1)
        plain_stats = plain.statistics()
    assert fresh.reply == accepted.reply == rejected.reply == HTTP_RESPONSE
    assert fresh.status == EARLY_DATA_NOT_SENT
    if version == "1.3":
        assert (accepted.status, accepted.reused) == (EARLY_DATA_ACCEPTED, True)
        assert seen_early.early == [False, True]
        assert (rejected.status, rejected.reused) == (EARLY_DATA_REJECTED, True)
    else:
        assert accepted.status == rejected.status == EARLY_DATA_NOT_SENT
        assert seen_early.early == [False, False]
    assert seen_plain.early == [False] and seen_plain.first == [REQUEST]
    assert plain_stats.failed == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_start_server_rejection_answers_once(pki: ServerPKI, version: str) -> None:
    """asyncio without max_early_data: early data is rejected, sent again, answered once.

    The two servers have contexts of their own that share ticket keys (the
    early-data setting belongs to a context, and on asyncio so does the SSL
    object that reads early data).
    """
    ring = TicketKeyRing()
    ctx, other = pki.server_context(version), pki.server_context(version)
    install_ticket_keys(ctx, ring)
    install_ticket_keys(other, ring)
    client = pki.client_context(version)
    heads: list[tuple[Any, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((writer.get_extra_info("early_data"), await reader.readuntil(b"\r\n\r\n")))
        writer.write(HTTP_RESPONSE)
        await writer.drain()

    async def main() -> list[EarlyResult]:
        async with await start_server(handler, "127.0.0.1", 0, ssl=ctx, max_early_data=4096) as a:
            fresh = await asyncio.to_thread(early_client, a.port, client)
        async with await start_server(handler, "127.0.0.1", 0, ssl=other) as b:
            again = await asyncio.to_thread(early_client, b.port, client, session=fresh.session)
        return [fresh, again]

    fresh, again = asyncio.run(asyncio.wait_for(main(), 60))
    assert fresh.reply == again.reply == HTTP_RESPONSE
    assert again.status == (EARLY_DATA_REJECTED if version == "1.3" else EARLY_DATA_NOT_SENT)
    assert heads == [(False, REQUEST), (False, REQUEST)]


# -- Replay, one server ----------------------------------------------------------------


async def record_and_replay(
    pki: ServerPKI, version: str, guard: MemoryReplayGuard
) -> tuple[Seen, list[bytes], EarlyResult, Any]:
    ctx = pki.server_context(version)
    client = pki.client_context(version)
    seen = Seen([], [])
    async with running(http_recorder(seen), ctx, max_early_data=4096, replay_guard=guard) as srv:
        fresh = await in_thread(early_client, srv.port, client)
        original = await in_thread(early_client, srv.port, client, session=fresh.session)
        answers = [await in_thread(replay, srv.port, original.flight) for _ in range(REPLAYS)]
        await settle(srv, 2 + REPLAYS)
        stats = srv.statistics()
    return seen, answers, original, stats


@pytest.mark.parametrize("version", VERSIONS)
async def test_replayed_first_flight_reaches_serve_tls_once(pki: ServerPKI, version: str) -> None:
    """A first flight sent 11 times (original + 10 replays) is handled once; replays get 1-RTT."""
    guard = MemoryReplayGuard()
    seen, answers, original, stats = await record_and_replay(pki, version, guard)
    assert original.reply == HTTP_RESPONSE
    assert all(answers_one_rtt(answer) for answer in answers)
    # The original and the connection before it; no replay ever reached the handler.
    assert len(seen.early) == 2
    assert stats.failed == REPLAYS  # the replayer cannot finish a handshake
    if version == "1.3":
        assert original.status == EARLY_DATA_ACCEPTED
        assert seen.early == [False, True]
        assert (guard.accepted, guard.replays) == (1, REPLAYS)
        assert stats.early_data_accepted == 1
    else:
        assert original.status == EARLY_DATA_NOT_SENT and guard.accepted == 0


async def test_replay_control_without_the_gate(
    pki: ServerPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the gate taken away, every replay reaches the handler (11 runs).

    This is what the test above would see if the servers did not install the
    gate (the binding call is made a no-op; SSL_OP_NO_ANTI_REPLAY stays).
    """
    monkeypatch.setattr(Binding, "set_early_data_gate", lambda self, ctx, gate: None)
    guard = MemoryReplayGuard()
    seen, _, original, _ = await record_and_replay(pki, "1.3", guard)
    assert original.status == EARLY_DATA_ACCEPTED
    assert seen.early == [False] + [True] * (1 + REPLAYS)
    assert guard.accepted == 0  # never asked


@pytest.mark.parametrize("version", VERSIONS)
def test_replayed_first_flight_reaches_start_server_once(pki: ServerPKI, version: str) -> None:
    """asyncio: the same 10 replays never reach the callback, and the gate refused them.

    (On asyncio the callback runs after the handshake, which a replayer cannot
    finish, so the callback count alone would hold even without the gate; the
    guard's count is what shows the early data was refused.)
    """
    guard = MemoryReplayGuard()
    ctx = pki.server_context(version)
    client = pki.client_context(version)
    runs: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runs.append(writer.get_extra_info("early_data"))
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HTTP_RESPONSE)
        await writer.drain()

    async def main() -> tuple[EarlyResult, list[bytes], Any]:
        async with await start_server(
            handler, "127.0.0.1", 0, ssl=ctx, max_early_data=4096, replay_guard=guard
        ) as s:
            fresh = await asyncio.to_thread(early_client, s.port, client)
            original = await asyncio.to_thread(early_client, s.port, client, session=fresh.session)
            answers = [await asyncio.to_thread(replay, s.port, original.flight)
                       for _ in range(REPLAYS)]
            await asettle(s, 2 + REPLAYS)
            return original, answers, s.statistics()

    original, answers, stats = asyncio.run(asyncio.wait_for(main(), 60))
    assert original.reply == HTTP_RESPONSE
    assert all(answers_one_rtt(answer) for answer in answers)
    assert runs == [False, version == "1.3"]
    assert stats.failed == REPLAYS
    tls13 = version == "1.3"
    assert (guard.accepted, guard.replays) == (int(tls13), REPLAYS * tls13)


# -- resume serve --early-data (a subprocess) ------------------------------------------


@contextmanager
def resume_serve(pki: ServerPKI, *extra: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "resume", "serve", "--port", "0", "--cert", str(pki.cert_file),
         "--key", str(pki.key_file), *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=dict(os.environ),
    )
    try:
        assert proc.stderr is not None
        found = None
        while line := proc.stderr.readline():
            found = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
            if found:
                break
        assert found, "resume serve did not start"
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, rest
    return rest


@pytest.mark.parametrize("version", VERSIONS)
def test_resume_serve_replays_reach_the_echo_once(pki: ServerPKI, version: str) -> None:
    """``resume serve --early-data``: 11 sends of one first flight, one early-data=accepted line."""
    client = pki.client_context(version)
    with resume_serve(pki, "--tls", version, "--early-data") as (proc, port):
        fresh = early_client(port, client, data=b"hello", reply_size=5)
        original = early_client(port, client, session=fresh.session, data=b"again", reply_size=5)
        answers = [replay(port, original.flight) for _ in range(REPLAYS)]
        log = stop(proc)
    assert (fresh.reply, original.reply) == (b"hello", b"again")
    assert all(answers_one_rtt(answer) for answer in answers)
    lines = [line for line in log.splitlines() if line.startswith("127.0.0.1:")]
    assert len(lines) == 2  # the replays never reached the echo
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ TLSv{version} full handshake early-data=none",
                        lines[0])
    outcome = "accepted" if version == "1.3" else "none"
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ TLSv{version} resumed early-data={outcome}", lines[1])
    assert log.count("early-data=accepted") == (1 if version == "1.3" else 0)
    accepted = 1 if version == "1.3" else 0
    assert f"{REPLAYS} failed; early data {accepted} accepted, 0 rejected" in log


async def test_resume_serve_logs_rejected(pki: ServerPKI, tmp_path: Path) -> None:
    """Without --early-data: early-data=rejected on the line, and the echo comes once.

    The ticket comes from an in-process serve_tls with early data on the same
    --ticket-keys file, so it allows early data; ``resume serve`` skips it.
    """
    keys = f"file:{tmp_path / 'keys'}"
    client = pki.client_context("1.3")
    with resume_serve(pki, "--tls", "1.3", "--ticket-keys", keys) as (proc, port):
        ctx = pki.server_context("1.3")
        close = install_from_spec(ctx, keys)
        try:
            async with running(http_recorder(Seen([], [])), ctx, max_early_data=4096) as srv:
                fresh = await in_thread(early_client, srv.port, client)
        finally:
            close()
        again = await in_thread(
            early_client, port, client, session=fresh.session, data=b"again", reply_size=5
        )
        log = await in_thread(stop, proc)
    assert again.reply == b"again"
    assert (again.status, again.reused) == (EARLY_DATA_REJECTED, True)
    lines = [line for line in log.splitlines() if line.startswith("127.0.0.1:")]
    assert len(lines) == 1
    assert re.fullmatch(r"127\.0\.0\.1:\d+ TLSv1\.3 resumed early-data=rejected", lines[0])


# -- configuration rules ---------------------------------------------------------------


class TestConfiguration:
    def test_a_second_guard_on_a_shared_context_is_refused(self, pki: ServerPKI) -> None:
        """A context serving early data keeps its record: another guard is refused, none reuses."""
        ctx = pki.server_context("1.3")
        first = MemoryReplayGuard()
        assert configure_early_data(ctx, 1024, first) is first
        assert configure_early_data(ctx, 1024) is first
        with pytest.raises(ValueError, match="another replay guard"):
            configure_early_data(ctx, 1024, MemoryReplayGuard())
        with pytest.raises(ValueError, match="max_early_data=1024"):
            configure_early_data(ctx, 2048)
        assert binding().max_early_data(ctx) == (1024, 16384)
        assert ctx.options & 0x01000000  # SSL_OP_NO_ANTI_REPLAY

    @pytest.mark.parametrize("size", [-1, 2**32, 1.5, True, "16384"])
    async def test_bad_sizes(self, pki: ServerPKI, size: object) -> None:
        """max_early_data is an int from 0 to 2**32-1; nothing changes on refusal."""
        ctx = pki.server_context("1.3")
        with pytest.raises((TypeError, ValueError)):
            await serve_tls(http_recorder(Seen([], [])), 0, ssl_context=ctx, max_early_data=size)  # type: ignore[arg-type]
        assert binding().max_early_data(ctx)[0] == 0

    async def test_guard_without_early_data_is_refused(self, pki: ServerPKI) -> None:
        """A replay_guard with max_early_data 0 is a mistake, said so."""
        with pytest.raises(ValueError, match="only used with max_early_data"):
            await serve_tls(
                http_recorder(Seen([], [])), 0, ssl_context=pki.server_context("1.3"),
                replay_guard=MemoryReplayGuard(),
            )

    def test_not_a_guard(self, pki: ServerPKI) -> None:
        """replay_guard must have first_use()."""
        with pytest.raises(TypeError, match="first_use"):
            configure_early_data(pki.server_context("1.3"), 1024, object())  # type: ignore[arg-type]

    def test_resume_serve_refuses_file_keys_without_a_record(
        self, pki: ServerPKI, tmp_path: Path
    ) -> None:
        """--early-data with file ticket keys needs --replay-record (exit 2, one clear line)."""
        done = subprocess.run(
            [sys.executable, "-m", "resume", "serve", "--port", "0", "--cert",
             str(pki.cert_file), "--key", str(pki.key_file), "--early-data",
             "--ticket-keys", f"file:{tmp_path / 'keys'}"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 2
        assert "--replay-record" in done.stderr


    @pytest.mark.parametrize(
        ("option", "value"),
        [
            *(("--replay-timeout", v) for v in ("0", "-1", "11", "soon", "nan")),
            *(("--max-early-data", v) for v in ("0", "-5", "4294967296", "1e3")),
        ],
    )
    def test_resume_serve_refuses_a_bad_early_data_option(
        self, pki: ServerPKI, option: str, value: str
    ) -> None:
        """--replay-timeout outside (0, 10] s, --max-early-data outside 1 to 2**32-1: exit 2."""
        done = subprocess.run(
            [sys.executable, "-m", "resume", "serve", "--port", "0", "--cert",
             str(pki.cert_file), "--key", str(pki.key_file), "--early-data",
             option, value],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 2
        assert option in done.stderr


# -- serve_tls: 0.5-RTT, and a client that leaves --------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_serve_tls_answers_before_the_handshake_ends(pki: ServerPKI, version: str) -> None:
    """The handler gets the early bytes and answers (0.5-RTT) before the handshake completes."""
    states: list[tuple[bool, bool, bytes]] = []

    async def handler(stream: TLSServerStream) -> None:
        data = await stream.receive_some()
        states.append((stream.early_data, math.isnan(stream.handshake_seconds), data))
        await stream.send_all(data.upper())
        while more := await stream.receive_some():  # the rest completes the handshake
            await stream.send_all(more.upper())
        states.append((stream.early_data, math.isnan(stream.handshake_seconds), b""))

    ctx, client = pki.server_context(version), pki.client_context(version)
    async with running(handler, ctx, max_early_data=4096) as srv:
        fresh = await in_thread(early_client, srv.port, client, data=b"a", reply_size=1)
        early = await in_thread(
            early_client, srv.port, client, session=fresh.session, data=b"bcd", reply_size=3
        )
        await settle(srv, 2)
        stats = srv.statistics()
    assert (fresh.reply, early.reply) == (b"A", b"BCD")
    tls13 = version == "1.3"
    # Before the first answer: the handshake is done only without early data.
    assert states == [
        (False, False, b"a"), (False, False, b""),
        (tls13, tls13, b"bcd"), (tls13, False, b""),
    ]
    assert (stats.resumed, stats.full, stats.failed) == (1, 1, 0)


async def test_serve_tls_client_leaves_after_early_data(pki: ServerPKI) -> None:
    """A client that sends early data and leaves: the handler saw the bytes, then the stream
    breaks; the connection counts as failed (its handshake never completed)."""
    events: list[object] = []

    async def handler(stream: TLSServerStream) -> None:
        events.append(data := await stream.receive_some())
        await stream.send_all(data)
        try:
            await stream.receive_some()
        except trio.BrokenResourceError:
            events.append("broken")
            raise

    ctx, client = pki.server_context("1.3"), pki.client_context("1.3")
    async with running(handler, ctx, max_early_data=4096) as srv:
        fresh = await in_thread(early_client, srv.port, client, data=b"x", reply_size=1)
        b = binding()
        tls = client.wrap_bio(
            ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost",
            session=fresh.session,
        )
        b.write_early_data(tls, b"left early")
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(outgoing.read())
            await in_thread(sock.recv, 65536)  # the server's flight: early data was read
        await settle(srv, 2)
        stats = srv.statistics()
    assert events == [b"x", b"left early", "broken"]
    assert (stats.accepted, stats.failed, stats.closed, stats.in_progress) == (2, 1, 2, 0)
