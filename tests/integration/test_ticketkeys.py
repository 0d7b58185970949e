"""Shared ticket keys: the [previous, current, next] ring, the OpenSSL callback, file and Redis."""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import ssl
import stat
from pathlib import Path

import pytest
import redis
from corehelpers import VERSIONS, FakeClock, Pki, handshake, make_pki
from redis_server import RedisServer, redis_server

from resume import StoreError
from resume._openssl import binding as _openssl
from resume._ticketkeys.ring import (
    DEFAULT_ROTATION_INTERVAL,
    SECRET_ENV,
    KeyFile,
    KeyRefresher,
    RedisKeySource,
    TicketKey,
    TicketKeyRing,
    install_from_spec,
    install_ticket_keys,
    source_from_spec,
)

__all__ = ["redis_server"]  # the fixture, imported for pytest

HOUR = 3600.0


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def pki(request: pytest.FixtureRequest) -> Pki:
    return make_pki(request.param)


def other_server(pki: Pki) -> Pki:
    """A second server of the same fleet: same certificate, its own SSLContext."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca.issue_cert("localhost").configure_cert(ctx)
    ctx.minimum_version = pki.server.minimum_version
    ctx.maximum_version = pki.server.maximum_version
    return Pki(pki.ca, ctx, pki.client)


#: The Redis ticket-key secret of these tests.
SECRET = bytes(range(32))


def secrets_of(ring: TicketKeyRing) -> list[str]:
    """Every textual form of every key byte string, to search logs for."""
    out = []
    for key in ring.keys:
        for part in (key.aes_key, key.hmac_key, key.to_bytes()):
            out += [part.hex(), base64.b64encode(part).decode()]
    return out


class TestTicketKey:
    """An 80-byte key: 16-byte name, AES-256 key, HMAC-SHA256 key (HAProxy's layout)."""

    def test_layout(self) -> None:
        """from_bytes/to_bytes split name, AES and HMAC keys at 16 and 48."""
        raw = bytes(range(80))
        key = TicketKey.from_bytes(raw)
        assert (key.name, key.aes_key, key.hmac_key) == (raw[:16], raw[16:48], raw[48:])
        assert key.to_bytes() == raw

    def test_wrong_sizes(self) -> None:
        """Anything but 80 bytes (or 16/32/32) is a ValueError."""
        with pytest.raises(ValueError, match="80 bytes"):
            TicketKey.from_bytes(b"x" * 79)
        with pytest.raises(ValueError, match="16-byte name"):
            TicketKey(name=b"n", aes_key=b"a" * 32, hmac_key=b"h" * 32)

    def test_generate_and_repr(self) -> None:
        """Fresh keys differ; repr shows a name prefix and no key bytes."""
        a, b = TicketKey.generate(), TicketKey.generate()
        assert a != b and a == TicketKey.from_bytes(a.to_bytes())
        text = repr(a)
        assert a.aes_key.hex() not in text and a.hmac_key.hex() not in text
        assert a.name[:4].hex() in text


class TestRing:
    """[previous, current, next]: current encrypts, all decrypt, rotation shifts left."""

    def test_encrypts_with_current_and_decrypts_with_all(self) -> None:
        """The previous key asks for a renewed ticket; an unknown name is None."""
        ring = TicketKeyRing()
        prev, cur, nxt = ring.keys
        assert ring.current is cur
        assert ring.encryption_key() == (cur.name, cur.aes_key, cur.hmac_key)
        assert ring.decryption_key(cur.name) == (cur.aes_key, cur.hmac_key, False)
        assert ring.decryption_key(nxt.name) == (nxt.aes_key, nxt.hmac_key, False)
        assert ring.decryption_key(prev.name) == (prev.aes_key, prev.hmac_key, True)
        assert ring.decryption_key(b"\x00" * 16) is None

    def test_rotation_shifts(self) -> None:
        """rotate(): [p, c, n] -> [c, n, new]; the time and version move."""
        clock = FakeClock()
        ring = TicketKeyRing(clock=clock)
        prev, cur, nxt = ring.keys
        clock.advance(5)
        ring.rotate()
        assert ring.keys[:2] == (cur, nxt)
        assert ring.keys[2] not in (prev, cur, nxt)
        assert ring.rotated_at == clock.now
        assert ring.version == 1

    def test_schedule(self) -> None:
        """Due after the interval (default 12 h, well inside a week); auto-rotation on issue."""
        assert DEFAULT_ROTATION_INTERVAL == 12 * HOUR
        clock = FakeClock()
        ring = TicketKeyRing(clock=clock)
        old = ring.current
        clock.advance(12 * HOUR - 1)
        assert not ring.due()
        ring.encryption_key()
        assert ring.current is old
        clock.advance(1)
        assert ring.due()
        name, _, _ = ring.encryption_key() or (b"", b"", b"")
        assert ring.current is not old and name == ring.current.name
        assert not ring.due()

    def test_no_auto_rotation_for_shared_rings(self) -> None:
        """A ring fed by a source never rotates by itself (the fleet must move together)."""
        clock = FakeClock()
        ring = TicketKeyRing(clock=clock, auto_rotate=False, interval=HOUR)
        old = ring.current
        clock.advance(10 * HOUR)
        ring.encryption_key()
        assert ring.current is old

    def test_replace(self) -> None:
        """replace() reports whether anything changed."""
        ring = TicketKeyRing()
        keys = ring.keys
        assert not ring.replace(keys, ring.rotated_at)
        new = (TicketKey.generate(), TicketKey.generate(), TicketKey.generate())
        assert ring.replace(new, 42.0)
        assert ring.keys == new and ring.rotated_at == 42.0 and ring.version == 1

    def test_bad_arguments(self) -> None:
        """Two keys, duplicate names or a non-positive interval are refused."""
        key = TicketKey.generate()
        with pytest.raises(ValueError, match="three keys"):
            TicketKeyRing([key, TicketKey.generate()])
        with pytest.raises(ValueError, match="distinct"):
            TicketKeyRing([key, key, TicketKey.generate()])
        with pytest.raises(ValueError, match="positive"):
            TicketKeyRing(interval=0)


class TestInstall:
    """The ring on real server contexts, through SSL_CTX_set_tlsext_ticket_key_evp_cb."""

    def test_servers_sharing_a_ring_resume_each_other(self, pki: Pki) -> None:
        """A ticket from server A resumes on server B and back."""
        ring = TicketKeyRing()
        a, b = other_server(pki), other_server(pki)
        install_ticket_keys(a.server, ring)
        install_ticket_keys(b.server, ring)
        session, reused = handshake(a)
        assert not reused and session.has_ticket
        session, reused = handshake(b, session)
        assert reused
        _, reused = handshake(a, session)
        assert reused

    def test_without_shared_keys_no_resumption(self, pki: Pki) -> None:
        """Servers with their own keys never resume each other's tickets (the baseline)."""
        a, b = other_server(pki), other_server(pki)
        install_ticket_keys(a.server, TicketKeyRing())
        install_ticket_keys(b.server, TicketKeyRing())
        session, _ = handshake(a)
        _, reused = handshake(b, session)
        assert not reused

    def test_rotation_has_no_cliff(self, pki: Pki) -> None:
        """A ticket survives one rotation (its key is then previous), not two."""
        ring = TicketKeyRing()
        a = other_server(pki)
        install_ticket_keys(a.server, ring)
        session, _ = handshake(a)
        ring.rotate()
        _, reused = handshake(a, session)
        assert reused
        ring.rotate()
        _, reused = handshake(a, session)
        assert not reused

    def test_fleet_half_rotated(self, pki: Pki) -> None:
        """While A has rotated and B has not, each resumes the other's new tickets."""
        ring_a = TicketKeyRing()
        ring_b = TicketKeyRing(ring_a.keys, rotated_at=ring_a.rotated_at)
        a, b = other_server(pki), other_server(pki)
        install_ticket_keys(a.server, ring_a)
        install_ticket_keys(b.server, ring_b)
        ring_a.rotate()  # A encrypts with B's "next" key now
        from_a, _ = handshake(a)
        _, reused = handshake(b, from_a)
        assert reused
        from_b, _ = handshake(b)  # B still encrypts with A's "previous" key
        _, reused = handshake(a, from_b)
        assert reused

    def test_legacy_callback_shares_tickets_with_evp(self, pki: Pki) -> None:
        """The OpenSSL 1.1.1 HMAC_CTX callback and the 3.0 EVP one read each other's tickets."""
        b = _openssl.binding()
        assert b.ticket_modes == ("evp", "legacy")
        ring = TicketKeyRing()
        evp, legacy = other_server(pki), other_server(pki)
        b.install_ticket_callback(evp.server, ring, mode="evp")
        install_ticket_keys(legacy.server, TicketKeyRing())  # an EVP callback, replaced:
        b.install_ticket_callback(legacy.server, ring, mode="legacy")
        session, reused = handshake(legacy)
        assert not reused and session.has_ticket
        session, reused = handshake(legacy, session)
        assert reused
        session, reused = handshake(evp, session)
        assert reused
        _, reused = handshake(legacy, session)
        assert reused
        with pytest.raises(ValueError, match="mode"):
            b.install_ticket_callback(evp.server, ring, mode="rc4")

    def test_install_again_replaces(self, pki: Pki) -> None:
        """Installing another ring replaces the first one on that context."""
        a = other_server(pki)
        install_ticket_keys(a.server, TicketKeyRing())
        session, _ = handshake(a)
        install_ticket_keys(a.server, TicketKeyRing())
        _, reused = handshake(a, session)
        assert not reused

    def test_bad_arguments(self, pki: Pki) -> None:
        """A non-ring or a non-context is a TypeError."""
        with pytest.raises(TypeError, match="TicketKeyRing"):
            install_ticket_keys(pki.server, object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="SSLContext"):
            install_ticket_keys(object(), TicketKeyRing())  # type: ignore[arg-type]

    def test_context_without_tickets_is_refused(self, pki: Pki) -> None:
        """A context with OP_NO_TICKET would never use the keys: ValueError, unchanged."""
        a = other_server(pki)
        a.server.options |= ssl.OP_NO_TICKET
        with pytest.raises(ValueError, match="OP_NO_TICKET"):
            install_ticket_keys(a.server, TicketKeyRing())

    def test_encrypt_failure_stays_out_of_c(
        self, pki: Pki, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception while issuing a ticket: logged (no key bytes), no ticket, handshake fine."""
        ring = TicketKeyRing()
        a = other_server(pki)
        install_ticket_keys(a.server, ring)

        def boom(self: TicketKeyRing) -> None:
            raise RuntimeError("key store exploded")

        monkeypatch.setattr(TicketKeyRing, "encryption_key", boom)
        with caplog.at_level(logging.ERROR, logger="resume.openssl"):
            session, _ = handshake(a)
        assert not session.has_ticket
        assert "ticket-key callback failed (encrypt)" in caplog.text
        assert "key store exploded" in caplog.text
        for secret in secrets_of(ring):
            assert secret not in caplog.text

    def test_decrypt_failure_means_full_handshake(
        self, pki: Pki, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception while reading a ticket: logged, full handshake, connection fine."""
        a = other_server(pki)
        install_ticket_keys(a.server, TicketKeyRing())
        session, _ = handshake(a)

        def boom(self: TicketKeyRing, name: bytes) -> None:
            raise RuntimeError("lookup exploded")

        monkeypatch.setattr(TicketKeyRing, "decryption_key", boom)
        with caplog.at_level(logging.ERROR, logger="resume.openssl"):
            _, reused = handshake(a, session)
        assert not reused
        assert "ticket-key callback failed (decrypt)" in caplog.text


def is_tls13(pki: Pki) -> bool:
    return pki.server.maximum_version == ssl.TLSVersion.TLSv1_3


def single_use_run(servers: list[Pki], count: int) -> list[bool]:
    """*count* connections, alternating over *servers*, by a client that never reuses a ticket.

    On TLS 1.3 the client offers each ticket once (RFC 8446, C.4): a connection
    that brought no new ticket leaves it nothing to offer next time. On TLS 1.2
    sessions are reusable, so it keeps the one it has. Returns whether each resumed.
    """
    offered: ssl.SSLSession | None = None
    results = []
    for i in range(count):
        server = servers[i % len(servers)]
        got, reused = handshake(server, offered)
        results.append(reused)
        fresh = offered is None or got.id != offered.id
        offered = got if fresh or not is_tls13(server) else None
    return results


class TestRenewal:
    """A resumed TLS 1.3 connection gets a fresh ticket (the callback returns 2)."""

    @pytest.mark.parametrize("mode", ["evp", "legacy"])
    def test_single_use_client_resumes_every_connection(self, pki: Pki, mode: str) -> None:
        """Through two servers sharing a ring, every connection after the first resumes."""
        ring = TicketKeyRing()
        a, b = other_server(pki), other_server(pki)
        for server in (a, b):
            _openssl.binding().install_ticket_callback(server.server, ring, mode=mode)
        results = single_use_run([a, b], 12)
        assert results == [False] + [True] * 11

    def test_a_resumed_tls13_connection_brings_a_new_ticket(self, pki: Pki) -> None:
        """TLS 1.3: the resumed session is a new ticket; TLS 1.2: the same session, reused."""
        a = other_server(pki)
        install_ticket_keys(a.server, TicketKeyRing())
        first, _ = handshake(a)
        second, reused = handshake(a, first)
        assert reused
        assert (second.id != first.id) == is_tls13(pki)
        assert second.has_ticket

    def test_a_previous_key_ticket_is_renewed_under_the_current_key(self, pki: Pki) -> None:
        """A ticket of the previous key resumes and comes back under the current one."""
        ring = TicketKeyRing()
        a = other_server(pki)
        install_ticket_keys(a.server, ring)
        old, _ = handshake(a)
        ring.rotate()  # old's key is now "previous"
        renewed, reused = handshake(a, old)
        assert reused
        ring.rotate()  # old's key is gone; renewed's key is "previous"
        _, reused = handshake(a, old)
        assert not reused
        _, reused = handshake(a, renewed)
        assert reused


class TestKeyFile:
    """HAProxy's key file: three base64 80-byte keys; rotated under an exclusive lock."""

    def test_created_0600_in_haproxy_format(self, tmp_path: Path) -> None:
        """A missing file is created mode 0600 with [previous, current, next]."""
        path = tmp_path / "keys"
        ring = KeyFile(path).load()
        assert path.stat().st_mode & 0o777 == 0o600
        lines = path.read_text().splitlines()
        assert [base64.b64decode(x) for x in lines] == [k.to_bytes() for k in ring.keys]

    def test_two_servers_load_the_same_keys(self, tmp_path: Path) -> None:
        """A second reader of the file gets the same ring (and the mtime as rotation time)."""
        path = tmp_path / "keys"
        a = KeyFile(path).load()
        b = KeyFile(path).load()
        assert a.keys == b.keys
        assert b.rotated_at == path.stat().st_mtime

    def test_rotation_when_due(self, tmp_path: Path) -> None:
        """refresh() rotates the file once the interval passed; others pick it up."""
        clock = FakeClock(1_700_000_000.0)
        path = tmp_path / "keys"
        one, two = KeyFile(path, clock=clock), KeyFile(path, clock=clock)
        ring1, ring2 = one.load(), two.load()
        old = ring1.keys
        assert not one.refresh(ring1)
        clock.advance(DEFAULT_ROTATION_INTERVAL)
        assert one.refresh(ring1)
        assert ring1.keys[:2] == old[1:]
        assert path.stat().st_mtime == clock.now
        assert path.stat().st_mode & 0o777 == 0o600
        assert two.refresh(ring2)
        assert ring2.keys == ring1.keys
        assert not two.refresh(ring2)

    def test_lock_holder_rotates(self, tmp_path: Path) -> None:
        """While another process holds the lock, a due refresh does not rotate."""
        clock = FakeClock(1_700_000_000.0)
        path = tmp_path / "keys"
        source = KeyFile(path, clock=clock)
        ring = source.load()
        old = ring.keys
        clock.advance(DEFAULT_ROTATION_INTERVAL + 1)
        with open(f"{path}.lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            assert not source.refresh(ring)
            assert ring.keys == old
        assert source.refresh(ring)
        assert ring.keys[0] == old[1]

    def test_damaged_file(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A damaged file: load() is a ValueError; refresh() keeps the keys and warns."""
        path = tmp_path / "keys"
        source = KeyFile(path)
        ring = source.load()
        old = ring.keys
        path.write_text("not base64!\nAAAA\n")
        with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
            assert not source.refresh(ring)
        assert ring.keys == old
        assert "cannot refresh ticket keys" in caplog.text
        with pytest.raises(ValueError, match="expected 3 keys"):
            KeyFile(path).load()
        path.write_text("!!!!\n" * 3)
        with pytest.raises(ValueError, match="not base64"):
            KeyFile(path).load()
        path.write_text((base64.b64encode(b"x" * 48).decode() + "\n") * 3)
        with pytest.raises(ValueError, match="48 bytes"):
            KeyFile(path).load()

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
    def test_file_others_may_read_or_write_is_refused(self, tmp_path: Path, mode: int) -> None:
        """A key file group or others can read is refused at load(), like a store key file."""
        path = tmp_path / "keys"
        ring = KeyFile(path).load()
        os.chmod(path, mode)
        with pytest.raises(StoreError, match=f"keys' .*mode {mode:04o}"):
            KeyFile(path).load()
        os.chmod(path, 0o600)
        assert KeyFile(path).load().keys == ring.keys  # nothing was changed or lost

    def test_refresh_keeps_the_keys_of_a_file_made_readable(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A file loosened while running is not read again: the ring keeps its keys."""
        clock = FakeClock()
        source = KeyFile(tmp_path / "keys", clock=clock)
        ring = source.load()
        os.chmod(tmp_path / "keys", 0o644)
        os.utime(tmp_path / "keys", (clock() + 5, clock() + 5))
        with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
            assert source.refresh(ring) is False
        assert "may be read by other users" in caplog.text

    @pytest.mark.parametrize("which", ["keys", "keys.lock"])
    def test_symlink_is_refused_and_its_target_untouched(
        self, tmp_path: Path, which: str
    ) -> None:
        """The key file or its lock as a link: refused; the target keeps its mode and bytes."""
        KeyFile(tmp_path / "keys").load()
        important = tmp_path / "important.conf"
        important.write_text("do not touch\n")
        important.chmod(0o644)
        (tmp_path / which).unlink()
        (tmp_path / which).symlink_to(important)
        with pytest.raises(StoreError, match=r"symbolic link|not a regular file"):
            KeyFile(tmp_path / "keys").load()
        assert important.read_text() == "do not touch\n"
        assert stat.S_IMODE(important.stat().st_mode) == 0o644

    def test_file_of_another_user_is_refused(self, tmp_path: Path) -> None:
        """A key file owned by another uid (nobody) is refused."""
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        KeyFile(tmp_path / "keys").load()
        os.chown(tmp_path / "keys", 65534, 65534)
        with pytest.raises(StoreError, match="owned by uid 65534"):
            KeyFile(tmp_path / "keys").load()

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A path in a missing directory is an OSError at load()."""
        with pytest.raises(FileNotFoundError):
            KeyFile(tmp_path / "nope" / "keys").load()


class TestRedisKeySource:
    """Keys shared in Redis: created once, rotated by the lock holder, kept when Redis is down."""

    def test_shared_and_created_once(self, redis_server: RedisServer) -> None:
        """Two servers load the same ring; the value is versioned JSON (under the opt-out)."""
        one = RedisKeySource(redis_server.url, insecure_unauthenticated=True)
        two = RedisKeySource(redis_server.url, insecure_unauthenticated=True)
        try:
            a, b = one.load(), two.load()
            assert a.keys == b.keys
            client = redis.Redis.from_url(redis_server.url)
            doc = json.loads(client.get("resume:ticket-keys") or b"")
            client.close()
            assert doc["format"] == 1 and len(doc["keys"]) == 3
        finally:
            one.close()
            two.close()

    def test_one_rotation_per_interval(self, redis_server: RedisServer) -> None:
        """When due, each server refreshes; the ring rotates exactly once."""
        clock = FakeClock(1_700_000_000.0)
        sources = [RedisKeySource(redis_server.url, secret=SECRET, clock=clock) for _ in range(3)]
        try:
            rings = [s.load() for s in sources]
            old = rings[0].keys
            clock.advance(DEFAULT_ROTATION_INTERVAL)
            for source, ring in zip(sources, rings, strict=True):
                assert source.refresh(ring)
            for ring in rings:
                assert ring.keys[:2] == old[1:]
                assert ring.rotated_at == clock.now
        finally:
            for s in sources:
                s.close()

    def test_lock_held_elsewhere(self, redis_server: RedisServer) -> None:
        """rotate_now() does nothing while another server holds the Redis lock."""
        source = RedisKeySource(redis_server.url, secret=SECRET)
        client = redis.Redis.from_url(redis_server.url)
        try:
            ring = source.load()
            client.set("resume:ticket-keys:lock", "someone", px=10_000)
            assert not source.rotate_now()
            client.delete("resume:ticket-keys:lock")
            assert source.rotate_now()
            assert source.refresh(ring)
        finally:
            client.close()
            source.close()

    def test_redis_down_and_back(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Down: keys kept, one warning; back (empty): the ring is put back and shared again."""
        source = RedisKeySource(redis_server.url, secret=SECRET, socket_timeout=1.0)
        try:
            ring = source.load()
            old = ring.keys
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert not source.refresh(ring)
                assert not source.refresh(ring)
            assert ring.keys == old
            assert caplog.text.count("is unavailable") == 1
            with pytest.raises(StoreError, match="cannot read ticket keys"):
                RedisKeySource(redis_server.url, secret=SECRET).load()
            redis_server.start()
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert not source.refresh(ring)
            assert "is back" in caplog.text
            other = RedisKeySource(redis_server.url, secret=SECRET)
            assert other.load().keys == old
            other.close()
        finally:
            source.close()

    def test_foreign_value(self, redis_server: RedisServer) -> None:
        """A value that is not a ring is a ValueError at load(), kept out by refresh()."""
        client = redis.Redis.from_url(redis_server.url)
        source = RedisKeySource(redis_server.url, key="k", insecure_unauthenticated=True)
        try:
            client.set("k", "hello")
            with pytest.raises(ValueError, match="not a resume ticket-key ring"):
                source.load()
            client.set("k", json.dumps({"format": 1, "rotated_at": 0, "keys": ["AA=="] * 3}))
            with pytest.raises(ValueError, match="key 1"):
                source.load()
        finally:
            client.close()
            source.close()


class TestSealedRing:
    """With a secret, the ring is sealed in Redis (AES-256-GCM) and only that secret reads it."""

    def test_sealed_at_rest(self, redis_server: RedisServer) -> None:
        """No key byte reaches Redis in the clear; servers with the secret share the ring."""
        secret = os.urandom(32)
        one = RedisKeySource(redis_server.url, secret=secret)
        two = RedisKeySource(redis_server.url, secret=secret)
        client = redis.Redis.from_url(redis_server.url)
        try:
            ring = one.load()
            assert two.load().keys == ring.keys
            stored = client.get("resume:ticket-keys")
            assert isinstance(stored, bytes)
            assert stored.startswith(b"resume-sealed-1:")
            for text in secrets_of(ring):
                assert text.encode() not in stored
            assert one.rotate_now()
            assert two.refresh(ring)
        finally:
            client.close()
            one.close()
            two.close()

    def test_wrong_or_missing_secret(self, redis_server: RedisServer) -> None:
        """Another secret, no secret, or an unsealed value (a downgrade) is refused."""
        sealed = RedisKeySource(redis_server.url, secret=os.urandom(32))
        other = RedisKeySource(redis_server.url, secret=os.urandom(32))
        plain = RedisKeySource(redis_server.url, insecure_unauthenticated=True)
        plain_elsewhere = RedisKeySource(redis_server.url, key="plain",
                                         insecure_unauthenticated=True)
        sealed_elsewhere = RedisKeySource(redis_server.url, key="plain", secret=os.urandom(32))
        try:
            sealed.load()
            with pytest.raises(ValueError, match="another secret"):
                other.load()
            with pytest.raises(ValueError, match="give this server the fleet's secret"):
                plain.load()
            plain_elsewhere.load()
            with pytest.raises(ValueError, match="not sealed"):
                sealed_elsewhere.load()
        finally:
            for source in (sealed, other, plain, plain_elsewhere, sealed_elsewhere):
                source.close()

    def test_a_secret_is_required(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a secret (and without the opt-out) a Redis source is refused."""
        monkeypatch.delenv(SECRET_ENV, raising=False)
        with pytest.raises(ValueError, match=f"need a 32-byte secret.*{SECRET_ENV}"):
            RedisKeySource("redis://127.0.0.1:1/0")
        with pytest.raises(ValueError, match="insecure-unauthenticated-store"):
            source_from_spec("redis://127.0.0.1:1/0")
        with pytest.raises(ValueError, match="not both"):
            RedisKeySource("redis://127.0.0.1:1/0", secret=SECRET, insecure_unauthenticated=True)

    def test_opt_out_warns_at_every_start(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """insecure_unauthenticated=True keeps the ring in the clear and says so at each load."""
        with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
            for _ in range(2):
                source = source_from_spec(redis_server.url, insecure_unauthenticated=True)
                source.load()
                source.close()
        assert caplog.text.count("without a secret (insecure_unauthenticated)") == 2

    @pytest.mark.parametrize(
        "url",
        ["redis://user:hunter2@127.0.0.1:{port}/0", "redis://:hunter2@127.0.0.1:{port}/0",
         "redis://127.0.0.1:{port}/0?password=hunter2"],
    )
    def test_password_never_in_repr_errors_or_logs(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture, url: str
    ) -> None:
        """The Redis password of a ticket-key URL is redacted from repr, errors and logs."""
        url = url.format(port=redis_server.port)
        source = RedisKeySource(url, secret=SECRET, socket_timeout=0.5)
        shown = [repr(source)]
        try:
            redis_server.stop()
            with pytest.raises(StoreError) as info:
                source.load()
            shown.append(str(info.value))
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                source.refresh(TicketKeyRing())
            shown.append(caplog.text)
        finally:
            source.close()
        assert "redis" in caplog.text.lower()
        assert all("hunter2" not in text for text in shown), shown
        assert "***" in shown[0]
        with pytest.raises(ValueError, match="unknown ticket-key source") as bad:
            source_from_spec("mysql://user:hunter2@db/", insecure_unauthenticated=True)
        assert "hunter2" not in str(bad.value)

    def test_secret_size(self) -> None:
        """A secret must be 32 bytes."""
        with pytest.raises(ValueError, match="32 bytes"):
            RedisKeySource("redis://127.0.0.1:1/0", secret=b"short")

    def test_secret_from_environment(
        self, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """install_from_spec / source_from_spec read RESUME_TICKET_KEYS_SECRET (base64)."""
        secret = os.urandom(32)
        monkeypatch.setenv(SECRET_ENV, base64.b64encode(secret).decode())
        source = source_from_spec(redis_server.url)
        try:
            ring = source.load()
        finally:
            source.close()
        direct = RedisKeySource(redis_server.url, secret=secret)
        assert direct.load().keys == ring.keys
        direct.close()
        monkeypatch.setenv(SECRET_ENV, "not base64!")
        with pytest.raises(ValueError, match="not base64"):
            source_from_spec(redis_server.url)


RING_KEY = "resume:ticket-keys"


class TestRingsOnlyMoveForward:
    """A ring older than the one a server holds is refused, logged and overwritten."""

    def test_an_older_sealed_ring_written_back_is_refused(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A sealed ring copied three rotations ago and written back: the servers keep theirs."""
        clock = FakeClock(1_700_000_000.0)
        a = RedisKeySource(redis_server.url, secret=SECRET, clock=clock)
        b = RedisKeySource(redis_server.url, secret=SECRET, clock=clock)
        client = redis.Redis.from_url(redis_server.url)
        try:
            ring_a, ring_b = a.load(), b.load()
            stale = client.get(RING_KEY)
            assert isinstance(stale, bytes)
            for _ in range(3):
                clock.advance(DEFAULT_ROTATION_INTERVAL)
                assert a.refresh(ring_a)
                assert b.refresh(ring_b)
            current = ring_a.keys
            client.set(RING_KEY, stale)  # needs no secret: the seal still opens
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert not b.refresh(ring_b)
            assert ring_b.keys == current
            assert "holds an older ring (generation 1; this server holds generation 4)" in (
                caplog.text
            )
            assert client.get(RING_KEY) != stale  # b put the newer ring back
            assert not a.refresh(ring_a)
            assert ring_a.keys == current
            late = RedisKeySource(redis_server.url, secret=SECRET, clock=clock)
            assert late.load().keys == current
            late.close()
        finally:
            client.close()
            a.close()
            b.close()

    def test_a_due_rotation_starts_from_the_newer_ring(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With an old ring in Redis when the rotation is due, the held ring is rotated."""
        clock = FakeClock(1_700_000_000.0)
        source = RedisKeySource(redis_server.url, secret=SECRET, clock=clock)
        client = redis.Redis.from_url(redis_server.url)
        try:
            ring = source.load()
            stale = client.get(RING_KEY)
            assert isinstance(stale, bytes)
            clock.advance(DEFAULT_ROTATION_INTERVAL)
            assert source.refresh(ring)
            current = ring.keys
            client.set(RING_KEY, stale)
            clock.advance(DEFAULT_ROTATION_INTERVAL)
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert source.refresh(ring)
            assert ring.keys[:2] == current[1:]
            assert "older ring" in caplog.text
            assert source.rotate_now()
            assert source.refresh(ring)
        finally:
            client.close()
            source.close()

    def test_a_ring_without_generation_is_the_oldest(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A ring written before generations existed loads, and never replaces a newer one."""
        old = TicketKeyRing()
        legacy = json.dumps(
            {"format": 1, "rotated_at": old.rotated_at,
             "keys": [base64.b64encode(k.to_bytes()).decode() for k in old.keys]}
        )
        client = redis.Redis.from_url(redis_server.url)
        source = RedisKeySource(redis_server.url, insecure_unauthenticated=True)
        try:
            client.set(RING_KEY, legacy)
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                ring = source.load()
                assert ring.keys == old.keys
                assert source.rotate_now()
                assert source.refresh(ring)
                client.set(RING_KEY, legacy)
                assert not source.refresh(ring)
            assert ring.keys[:2] == old.keys[1:]
            assert "generation 0; this server holds generation 1" in caplog.text
        finally:
            client.close()
            source.close()

    def test_an_older_key_file_put_back_is_refused(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A key file restored with its old mtime: refused, logged, rewritten with the keys."""
        clock = FakeClock(1_700_000_000.0)
        path = tmp_path / "keys"
        source = KeyFile(path, clock=clock)
        ring = source.load()
        stale_text, stale_mtime = path.read_text(), path.stat().st_mtime
        clock.advance(DEFAULT_ROTATION_INTERVAL)
        assert source.refresh(ring)
        current = ring.keys
        path.write_text(stale_text)
        os.utime(path, (stale_mtime, stale_mtime))
        with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
            assert not source.refresh(ring)
        assert ring.keys == current
        assert "holds an older ring" in caplog.text
        lines = path.read_text().splitlines()
        assert [base64.b64decode(x) for x in lines] == [k.to_bytes() for k in current]
        assert KeyFile(path, clock=clock).load().keys == current
        assert not source.refresh(ring)


class TestRefusedRing:
    """A ring that does not open is reported as refused, every time, not as Redis down."""

    def test_a_tampered_ring_is_reported_at_every_refresh(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """One flipped byte: three refreshes, three 'refused' errors, keys kept, value kept."""
        source = RedisKeySource(redis_server.url, secret=SECRET)
        client = redis.Redis.from_url(redis_server.url)
        try:
            ring = source.load()
            keys = ring.keys
            raw = client.get(RING_KEY)
            assert isinstance(raw, bytes)
            tampered = raw[:-1] + bytes([raw[-1] ^ 1])
            client.set(RING_KEY, tampered)
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                for _ in range(3):
                    assert not source.refresh(ring)
            assert caplog.text.count("refused the ring in Redis") == 3
            assert "sealed with another secret (or was altered)" in caplog.text
            assert "unavailable" not in caplog.text
            assert all(r.levelno == logging.ERROR for r in caplog.records)
            assert ring.keys == keys
            assert client.get(RING_KEY) == tampered  # not overwritten
            caplog.clear()
            client.delete(RING_KEY)
            client.hset(RING_KEY, "a", "b")  # another type altogether
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert not source.refresh(ring)
            assert "refused the ring" in caplog.text and "not a string" in caplog.text
            client.delete(RING_KEY)  # the way out: the server puts its ring back
            assert not source.refresh(ring)
            other = RedisKeySource(redis_server.url, secret=SECRET)
            assert other.load().keys == keys
            other.close()
        finally:
            client.close()
            source.close()

    def test_unavailable_then_tampered_are_told_apart(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Down: 'unavailable' once; back with a foreign value: 'back', then 'refused'."""
        source = RedisKeySource(redis_server.url, secret=SECRET, socket_timeout=1.0)
        try:
            ring = source.load()
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                assert not source.refresh(ring)
                redis_server.start()
                client = redis.Redis.from_url(redis_server.url)
                client.set(RING_KEY, b"resume-sealed-1:" + os.urandom(80))
                client.close()
                assert not source.refresh(ring)
            messages = [r.getMessage() for r in caplog.records]
            assert len(messages) == 3, messages
            assert "is unavailable" in messages[0]
            assert "is back" in messages[1]
            assert "refused the ring" in messages[2] and "unavailable" not in messages[2]
        finally:
            source.close()


class TestInstallFromSpec:
    """The entry point of ``resume serve --ticket-keys``."""

    def test_unknown_spec(self) -> None:
        """Only file:PATH and redis:// URLs are understood."""
        for spec in ("ftp://x", "file:", "keys.txt"):
            with pytest.raises(ValueError, match="file:"):
                source_from_spec(spec)

    def test_file_spec_shares_keys(self, pki: Pki, tmp_path: Path) -> None:
        """Two contexts given the same file: resume each other's tickets."""
        a, b = other_server(pki), other_server(pki)
        spec = f"file:{tmp_path / 'keys'}"
        close_a = install_from_spec(a.server, spec)
        close_b = install_from_spec(b.server, spec)
        try:
            assert isinstance(close_a, KeyRefresher)
            session, _ = handshake(a)
            _, reused = handshake(b, session)
            assert reused
        finally:
            close_a()
            close_b()
        close_a()  # idempotent

    def test_redis_spec_shares_keys(
        self, pki: Pki, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two contexts on the same Redis resume each other's tickets, also after a rotation."""
        monkeypatch.setenv(SECRET_ENV, base64.b64encode(SECRET).decode())
        a, b = other_server(pki), other_server(pki)
        close_a = install_from_spec(a.server, redis_server.url)
        close_b = install_from_spec(b.server, redis_server.url)
        try:
            session, _ = handshake(a)
            assert isinstance(close_a.source, RedisKeySource)
            assert close_a.source.rotate_now()
            assert close_a.refresh_now()  # A encrypts with the new key, B does not know yet
            session, reused = handshake(a, session)
            assert reused
            _, reused = handshake(b, session)
            assert reused
        finally:
            close_a()
            close_b()

    def test_redis_down_at_start(
        self, pki: Pki, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With Redis unreachable at start, install_from_spec raises StoreError."""
        monkeypatch.setenv(SECRET_ENV, base64.b64encode(SECRET).decode())
        url = redis_server.url
        redis_server.stop()
        with pytest.raises(StoreError):
            install_from_spec(other_server(pki).server, url)

    def test_refresh_period_must_be_positive(self, tmp_path: Path) -> None:
        """A refresher with period 0 is a ValueError."""
        source = KeyFile(tmp_path / "keys")
        with pytest.raises(ValueError, match="positive"):
            KeyRefresher(source, source.load(), period=0)


class TestPublicSurface:
    """resume.ticketkeys re-exports the implementation under its public name."""

    def test_exports(self) -> None:
        """Every name in __all__ exists; classes and functions report resume.ticketkeys."""
        import resume.ticketkeys as public

        for name in public.__all__:
            obj = getattr(public, name)
            if callable(obj):
                assert obj.__module__ == "resume.ticketkeys", name
        assert {"TicketKeyRing", "install_ticket_keys", "install_from_spec"} <= set(public.__all__)
