"""One table of client resumption scenarios, run through BOTH adapters, under TLS 1.2 and 1.3.

Each scenario is an async function ``scenario(env, drive)``; ``drive.connect(...)``
makes one real connection to a loopback trio.SSLStream echo server with either
``resume.trio.open_tls_stream`` or ``resume.asyncio.open_connection`` (the asyncio
client runs in a worker thread with its own event loop). So trio and asyncio
cannot drift apart: every rule below is checked on both.

The security rows follow curl's catalogue of too-eager reuse (CVE-2016-5419,
CVE-2021-22890, CVE-2021-22924, CVE-2022-27782, CVE-2024-0853): each changed
setting must cost a full handshake, and the server is always able to resume (it
keeps one session cache and one ticket key), so a wrong offer would show as a
resumption.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from clienthelpers import PKI, TrioEchoServer, cert_fingerprint, start_echo_server

import resume
import resume.asyncio
import resume.trio
from resume import SessionCache, SessionHandle
from resume.testing import TLS_VERSION_NAMES


class AppError(Exception):
    """An application error raised inside ``async with``."""


class CheckFailed(Exception):
    """A post-handshake check (pin, OCSP, ...) failed."""


def failing_check(_conn: object) -> None:
    raise CheckFailed("pinned key does not match")


@dataclass
class Result:
    reused: bool | None = None
    stored: bool = False
    version: str | None = None
    handle: SessionHandle | None = None
    session_id: bytes = b""
    refcount_during: int = 0
    key: resume.SessionKey | None = None
    error: BaseException | None = None
    timed_out: bool = False
    echo: bytes = b""


@dataclass
class Env:
    pki: PKI
    version: str
    server: TrioEchoServer
    nursery: trio.Nursery
    cache: SessionCache = field(default_factory=SessionCache)
    ctx: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self.ctx = self.pki.client_context(self.version)

    @property
    def records(self) -> list[bool]:
        return self.server.reused


_UNSET: Any = object()


class Driver:
    name = ""

    async def connect(
        self,
        env: Env,
        *,
        port: int | None = None,
        ctx: ssl.SSLContext | None = None,
        cache: Any = _UNSET,
        server_hostname: str | None = None,
        post_handshake: Callable[[Any], object] | None = None,
        mode: str = "echo",
        handshake_wait: float | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        raise NotImplementedError


class TrioDriver(Driver):
    name = "trio"

    async def connect(
        self,
        env: Env,
        *,
        port: int | None = None,
        ctx: ssl.SSLContext | None = None,
        cache: Any = _UNSET,
        server_hostname: str | None = None,
        post_handshake: Callable[[Any], object] | None = None,
        mode: str = "echo",
        handshake_wait: float | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        res = Result()
        stream: resume.trio.ResumingSSLStream | None = None
        with trio.move_on_after(
            handshake_wait if handshake_wait is not None else float("inf")
        ) as scope:
            try:
                stream = await resume.trio.open_tls_stream(
                    "127.0.0.1",
                    port or env.server.port,
                    ssl_context=ctx or env.ctx,
                    cache=env.cache if cache is _UNSET else cache,
                    server_hostname=server_hostname,
                    post_handshake=post_handshake,
                )
            except (trio.BrokenResourceError, CheckFailed) as exc:
                res.error = exc
        res.timed_out = scope.cancelled_caught
        if stream is None:
            return res
        res.reused = stream.session_reused
        res.version = stream.version()
        res.key = stream.cache_key
        res.handle = stream.session_handle
        if res.handle is not None:
            res.session_id = res.handle.id
            res.refcount_during = res.handle.refcount
        if hold is not None:
            await hold()
        if mode == "raise":
            try:
                async with stream:
                    await stream.send_all(b"ping")
                    res.echo = bytes(await stream.receive_some())
                    raise AppError
            except AppError:
                pass
        elif mode == "cut":
            await stream.send_all(b"ping")
            res.echo = bytes(await stream.receive_some())
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some()
            await stream.aclose()
        else:
            await stream.send_all(b"ping")
            res.echo = bytes(await stream.receive_some())
            await stream.aclose()
        assert stream.session_handle is None
        res.stored = stream.session_stored
        return res


class AsyncioDriver(Driver):
    name = "asyncio"

    async def connect(
        self,
        env: Env,
        *,
        port: int | None = None,
        ctx: ssl.SSLContext | None = None,
        cache: Any = _UNSET,
        server_hostname: str | None = None,
        post_handshake: Callable[[Any], object] | None = None,
        mode: str = "echo",
        handshake_wait: float | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        res = Result()
        extra: dict[str, Any] = {}
        if handshake_wait is not None:
            extra["ssl_handshake_timeout"] = handshake_wait

        async def run() -> None:
            try:
                reader, writer = await resume.asyncio.open_connection(
                    "127.0.0.1",
                    port or env.server.port,
                    ssl=ctx or env.ctx,
                    cache=env.cache if cache is _UNSET else cache,
                    server_hostname=server_hostname,
                    post_handshake=post_handshake,
                    **extra,
                )
            except (ssl.SSLError, CheckFailed) as exc:
                res.error = exc
                return
            except (TimeoutError, ConnectionAbortedError):
                res.timed_out = True
                return
            info = resume.asyncio.session_info(writer)
            assert info.session_reused == writer.get_extra_info("ssl_object").session_reused
            res.reused = info.session_reused
            res.version = writer.get_extra_info("ssl_object").version()
            res.key = info.cache_key
            res.handle = info.session_handle
            if res.handle is not None:
                res.session_id = res.handle.id
                res.refcount_during = res.handle.refcount
            if hold is not None:
                trio.from_thread.run(hold)  # this worker thread came from trio.to_thread
            if mode == "raise":
                try:
                    async with writer:
                        writer.write(b"ping")
                        res.echo = await reader.read(100)
                        raise AppError
                except AppError:
                    pass
            elif mode == "cut":
                writer.write(b"ping")
                res.echo = await reader.read(100)
                assert await reader.read(100) == b""  # asyncio shows a cut as an EOF
                writer.close()
                await writer.wait_closed()
            else:
                writer.write(b"ping")
                res.echo = await reader.read(100)
                writer.close()
                await writer.wait_closed()
            assert writer.session_handle is None
            res.stored = writer.session_stored

        await trio.to_thread.run_sync(asyncio.run, run())
        return res


DRIVERS = {"trio": TrioDriver(), "asyncio": AsyncioDriver()}

Scenario = Callable[[Env, Driver], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__.removeprefix("s_")] = fn
    return fn


# -- the basics -----------------------------------------------------------------------


@scenario
async def s_second_connection_resumes(env: Env, drive: Driver) -> None:
    first = await drive.connect(env)
    second = await drive.connect(env)
    assert (first.reused, second.reused) == (False, True)
    assert first.echo == second.echo == b"ping"
    assert first.version == second.version == TLS_VERSION_NAMES[env.version]
    assert env.records == [False, True]
    assert first.stored


@scenario
async def s_tls13_tickets_single_use_tls12_sessions_reusable(env: Env, drive: Driver) -> None:
    results = [await drive.connect(env) for _ in range(4)]
    assert [r.reused for r in results] == [False, True, True, True]
    stats = env.cache.statistics()
    offered_ids = [r.session_id for r in results[1:]]
    if env.version == "1.3":
        # Each ticket is taken when offered; every ticket is kept as it arrives:
        # two after the full handshake, one after each resumed one.
        assert len(set(offered_ids)) == 3
        assert stats.taken == 3
        assert all(r.stored for r in results)
        assert stats.number == 2
    else:
        # One session, lent three times, still cached.
        assert len(set(offered_ids)) == 1
        assert offered_ids[0] == results[0].session_id
        assert stats.taken == 0
        assert stats.hits == 3
        assert [r.stored for r in results] == [True, False, False, False]
        assert stats.number == 1


@scenario
async def s_expired_session_is_not_offered(env: Env, drive: Driver) -> None:
    now = [time.time()]
    env.cache = SessionCache(clock=lambda: now[0], timeout=60)
    first = await drive.connect(env)
    second = await drive.connect(env)
    now[0] += 61  # past the cache's lifetime for the entry
    third = await drive.connect(env)
    assert (first.reused, second.reused, third.reused) == (False, True, False)
    # TLS 1.3: the full handshake's second ticket and the resumed one's ticket.
    assert env.cache.statistics().timeouts == (1 if env.version == "1.2" else 2)


@scenario
async def s_concurrent_connections_share_sessions_by_the_rules(env: Env, drive: Driver) -> None:
    # TLS 1.2: one session serves many connections at once. TLS 1.3: one ticket
    # each (the full handshake brought two); the cache pools the fresh tickets as
    # they arrive, so the next wave all resume.
    await drive.connect(env)

    async def wave() -> list[bool | None]:
        # All three handshake before any of them closes (and stores a ticket).
        results: list[Result] = []
        arrived = 0
        all_in = trio.Event()

        async def hold() -> None:
            nonlocal arrived
            arrived += 1
            if arrived == 3:
                all_in.set()
            await all_in.wait()

        async def one() -> None:
            results.append(await drive.connect(env, hold=hold))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        return [r.reused for r in results]

    first_wave = await wave()
    second_wave = await wave()
    if env.version == "1.2":
        assert first_wave == second_wave == [True, True, True]
        assert len(env.cache) == 1
    else:
        assert sorted(first_wave, key=bool) == [False, True, True]  # two tickets to share
        assert second_wave == [True, True, True]  # four fresh tickets were pooled
        assert env.cache.statistics().taken == 5


@scenario
async def s_stream_holds_one_reference_and_frees_it(env: Env, drive: Driver) -> None:
    first = await drive.connect(env)
    second = await drive.connect(env)
    assert first.handle is not None and second.handle is not None
    if env.version == "1.2":
        # Captured as it arrived: the session in use is the cached handle, with
        # the cache's reference and the stream's.
        assert first.refcount_during == 2
        assert second.refcount_during == 2
        assert second.handle.refcount == 1 and second.handle.owner is env.cache
        assert first.handle is second.handle
    else:
        # A new session: the stream's reference only. A taken ticket: the
        # same, freed at close.
        assert first.refcount_during == 1
        assert second.refcount_during == 1
        assert second.handle.freed
        assert first.handle.freed  # the pre-ticket session of the full handshake


@scenario
async def s_cache_false_never_resumes(env: Env, drive: Driver) -> None:
    results = [await drive.connect(env, cache=False) for _ in range(3)]
    assert [r.reused for r in results] == [False, False, False]
    assert env.records == [False, False, False]
    assert not any(r.stored for r in results)


@scenario
async def s_default_cache_is_used_without_cache_argument(env: Env, drive: Driver) -> None:
    default = resume.default_cache()
    default.clear()
    try:
        first = await drive.connect(env, cache=None)
        second = await drive.connect(env, cache=None)
        assert (first.reused, second.reused) == (False, True)
        assert first.key is not None and first.key in default
        assert len(env.cache) == 0
    finally:
        default.clear()


# -- what may be resumed where (security) ----------------------------------------------


@scenario
async def s_session_made_without_verification_is_not_offered_with_it(
    env: Env, drive: Driver
) -> None:
    env.ctx.check_hostname = False
    env.ctx.verify_mode = ssl.CERT_NONE
    unverified = await drive.connect(env)
    assert unverified.stored
    env.ctx.verify_mode = ssl.CERT_REQUIRED
    env.ctx.check_hostname = True
    verified = await drive.connect(env)
    again = await drive.connect(env)
    assert (unverified.reused, verified.reused, again.reused) == (False, False, True)
    assert unverified.key != verified.key
    assert env.records == [False, False, True]


@scenario
async def s_changed_client_certificate_gets_full_handshake(env: Env, drive: Driver) -> None:
    # CVE-2016-5419: the same context, load_cert_chain() called again.
    env.server.context = env.pki.server_context(env.version, request_client_cert=True)
    env.pki.client_a.configure_cert(env.ctx)
    a1 = await drive.connect(env)
    a2 = await drive.connect(env)
    env.pki.client_b.configure_cert(env.ctx)
    b1 = await drive.connect(env)
    assert (a1.reused, a2.reused, b1.reused) == (False, True, False)
    seen = [r.client_cert for r in env.server.records]
    fp_a, fp_b = (
        cert_fingerprint(ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode()))
        for c in (env.pki.client_a, env.pki.client_b)
    )
    assert seen == [fp_a, fp_a, fp_b]


@scenario
async def s_changed_ca_bundle_gets_full_handshake(env: Env, drive: Driver) -> None:
    first = await drive.connect(env)
    env.ctx.load_verify_locations(cadata=env.pki.other_ca.cert_pem.bytes().decode())
    second = await drive.connect(env)
    assert (first.reused, second.reused) == (False, False)
    assert env.records == [False, False]


@scenario
async def s_changed_port_gets_full_handshake(env: Env, drive: Driver) -> None:
    # A second server with the very same server context (same session cache and
    # ticket keys): it would resume the first port's session if it were offered.
    other = await start_echo_server(env.nursery, env.server.context)
    first = await drive.connect(env)
    elsewhere = await drive.connect(env, port=other.port)
    again = await drive.connect(env, port=other.port)
    assert (first.reused, elsewhere.reused, again.reused) == (False, False, True)
    assert other.reused == [False, True]
    other.cancel_scope.cancel()


@scenario
async def s_changed_server_name_gets_full_handshake(env: Env, drive: Driver) -> None:
    # The same address and port, another name in the certificate.
    first = await drive.connect(env, server_hostname="localhost")
    other = await drive.connect(env, server_hostname="alias.test")
    again = await drive.connect(env, server_hostname="ALIAS.test")
    assert (first.reused, other.reused, again.reused) == (False, False, True)
    assert env.records == [False, False, True]


@scenario
async def s_changed_alpn_list_gets_full_handshake(env: Env, drive: Driver) -> None:
    env.ctx.set_alpn_protocols(["a"])
    a1 = await drive.connect(env)
    a2 = await drive.connect(env)
    env.ctx.set_alpn_protocols(["b"])
    b1 = await drive.connect(env)
    assert (a1.reused, a2.reused, b1.reused) == (False, True, False)
    assert [r.alpn for r in env.server.records] == ["a", "a", "b"]


@scenario
async def s_failed_post_handshake_check_keeps_nothing(env: Env, drive: Driver) -> None:
    # CVE-2024-0853: a session from a connection whose check failed is not kept.
    failed = await drive.connect(env, post_handshake=failing_check)
    assert isinstance(failed.error, CheckFailed)
    assert len(env.cache) == 0
    after = await drive.connect(env)
    assert after.reused is False


@scenario
async def s_failed_post_handshake_check_drops_the_offered_session(
    env: Env, drive: Driver
) -> None:
    first = await drive.connect(env)
    assert first.stored and len(env.cache) == (1 if env.version == "1.2" else 2)
    failed = await drive.connect(env, post_handshake=failing_check)
    assert isinstance(failed.error, CheckFailed)
    if env.version == "1.2":
        assert len(env.cache) == 0
        after = await drive.connect(env)
        assert after.reused is False
    else:
        # The ticket it used is gone; the full handshake's other ticket is not.
        assert len(env.cache) == 1
        after = await drive.connect(env)
        assert after.reused is True


@scenario
async def s_hostname_mismatch_keeps_nothing(env: Env, drive: Driver) -> None:
    bad = await drive.connect(env, server_hostname="wrong.test")
    assert bad.error is not None
    assert len(env.cache) == 0
    assert env.cache.statistics().added == 0


@scenario
async def s_declined_session_is_dropped(env: Env, drive: Driver) -> None:
    first = await drive.connect(env)
    # The server forgets everything (new session cache and ticket keys).
    env.server.context = env.pki.server_context(env.version)
    declined = await drive.connect(env)
    assert declined.reused is False
    assert first.handle is not None and first.handle.freed  # offered, declined, dropped
    resumed = await drive.connect(env)
    assert resumed.reused is True
    assert env.records == [False, False, True]
    if env.version == "1.2":
        assert env.cache.statistics().removed == 1
        assert resumed.session_id == declined.session_id


@scenario
async def s_cut_connection_keeps_its_verified_sessions(env: Env, drive: Driver) -> None:
    # RFC 5246 7.2.1: since TLS 1.1 a connection closed without close_notify does
    # not make its session unresumable. Its sessions were captured as they
    # arrived, after a verified handshake, and stay.
    env.server.cut = True
    cut = await drive.connect(env, mode="cut")
    assert cut.echo == b"ping"
    assert cut.stored
    assert len(env.cache) == (1 if env.version == "1.2" else 2)
    env.server.cut = False
    after = await drive.connect(env)
    assert after.reused is True


@scenario
async def s_error_inside_async_with_keeps_the_sessions(env: Env, drive: Driver) -> None:
    # An application error is not a TLS error: the verified sessions stay.
    failed = await drive.connect(env, mode="raise")
    assert failed.echo == b"ping"
    assert failed.stored
    fine = await drive.connect(env)
    assert fine.reused is True


@scenario
async def s_abandoned_handshake_frees_and_keeps_nothing(env: Env, drive: Driver) -> None:
    first = await drive.connect(env)
    assert first.stored
    env.server.stall = True  # accept TCP, never answer the ClientHello
    stalled = await drive.connect(env, handshake_wait=0.3)
    assert stalled.timed_out
    assert env.cache.statistics().added == (1 if env.version == "1.2" else 2)
    for key in list(env.cache.keys()):
        handle = env.cache.get0(key)
        assert handle is not None and handle.refcount == 1  # no reference leaked


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("adapter", list(DRIVERS))
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario(name: str, adapter: str, tls_version: str) -> None:
    pki = PKI()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        env = Env(pki, tls_version, server, nursery)
        await SCENARIOS[name](env, DRIVERS[adapter])
        nursery.cancel_scope.cancel()
