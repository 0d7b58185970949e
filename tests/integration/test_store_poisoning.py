"""Store poisoning (issue 8, finding 2): a planted session never skips verification.

The scene, on TLS 1.2 and TLS 1.3, with SQLite and with a real redis-server:

1. a trusted server listens on 127.0.0.1:PORT; the victim connects once with
   ``--cafile ca.pem`` and a store, which now holds the victim's entry for
   ``localhost:PORT`` (the attacker sees the entry in the store, not its key);
2. the trusted server goes away and an attacker's server, with a certificate
   the victim does not trust, takes the same port; the attacker connects to it
   with ``CERT_NONE`` and exports the session;
3. the attacker, who can write the store (the SQLite file, or a Redis without a
   password) but cannot read the victim's key file, overwrites the victim's
   entry with that session, sealed with everything the store itself holds (the
   salt, in the old unauthenticated format) or with a key of its own;
4. the victim connects again, through the public API and through ``resume
   connect``: the handshake must fail certificate verification, never resume.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sqlite3
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trio
import trustme
from redis_server import RedisServer, redis_server
from test_cli_connect import SServer, resume_connect

from resume import CacheMode, SessionCache, SessionHandle
from resume.stores import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SQLiteStore,
    StoreWarning,
    attach_store,
)
from resume.testing import TLS_VERSIONS

__all__ = ["redis_server"]

_LABEL = "poisoning test"


def _attacker_session(port: int) -> bytes:
    """The attacker's own session with its server, made with CERT_NONE, as DER."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname="localhost"
    ) as tls:
        tls.sendall(b"hello\n")
        answer = b""
        while b"\n" not in answer:
            data = tls.recv(4096)
            if not data:
                break
            answer += data
        session = tls.session  # read after the answer: TLS 1.3 tickets are in
        assert session is not None
    handle = SessionHandle.from_ssl(session)
    try:
        return handle.to_der()
    finally:
        handle.free()


def _forge_legacy(salt: bytes, name: bytes, der: bytes) -> bytes:
    """An entry in the old format 1, tagged with the salt that sits in the store."""
    ms = int((time.time() + 3600) * 1000)
    header = struct.pack(">2sBBQ", b"RS", 1, 0, ms)
    tag = hmac.digest(salt, header + name + der, "sha256")[:16]
    return header + tag + der


def _forge_foreign(name: bytes, der: bytes, directory: Path) -> bytes:
    """An entry in the current format, sealed with a key that is not the victim's."""
    with SQLiteStore(directory / "attacker.db", key=os.urandom(32)) as attacker:
        return attacker._seal(name, der, time.time() + 3600)


def _forge_salt_only(salt: bytes, name: bytes, der: bytes) -> bytes:
    """An entry in the current format, sealed as the keyless opt-out does: from the salt."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        forger = MemoryStore(insecure_unauthenticated=True)
    forger._salt = salt  # everything the store holds is the attacker's
    return forger._seal(name, der, time.time() + 3600)


FORGERIES = ["legacy-salt-tag", "salt-only", "foreign-key"]


def _forge(how: str, salt: bytes, name: bytes, der: bytes, directory: Path) -> bytes:
    if how == "legacy-salt-tag":
        return _forge_legacy(salt, name, der)
    if how == "salt-only":
        return _forge_salt_only(salt, name, der)
    return _forge_foreign(name, der, directory)


def _plant_sqlite(path: Path, how: str, der: bytes, directory: Path) -> int:
    with sqlite3.connect(path) as db:
        (salt,) = db.execute("SELECT value FROM resume_meta WHERE name = 'salt'").fetchone()
        rows = db.execute("SELECT rowid, name FROM resume_sessions").fetchall()
        for rowid, name in rows:
            blob = _forge(how, bytes(salt), bytes(name), der, directory)
            db.execute("UPDATE resume_sessions SET blob = ?, expires = ? WHERE rowid = ?",
                       (blob, time.time() + 3600, rowid))
    return len(rows)


def _plant_redis(url: str, how: str, der: bytes, directory: Path) -> int:
    client = redis.Redis.from_url(url)
    try:
        salt = client.get("resume:salt")
        assert isinstance(salt, bytes)
        planted = 0
        for key in client.scan_iter(match="resume:{*}:e"):
            name = bytes.fromhex(key.decode().split("{")[1].split("}")[0])
            for entry in client.hkeys(key):
                client.hset(key, entry, _forge(how, salt, name, der, directory))
                planted += 1
        return planted
    finally:
        client.close()


class Scene:
    """The trusted server, then the attacker's server on the same port."""

    def __init__(self, directory: Path, version: str) -> None:
        self.directory = directory
        self.version = version
        self.trusted = SServer(directory, version)
        self.port = self.trusted.port
        self.cafile = self.trusted.cafile
        self.evil: SServer | None = None

    def swap(self) -> int:
        """Replace the trusted server with the attacker's; return the attacker's session."""
        self.trusted.close()
        self.evil = SServer(self.directory, self.version, trustme.CA(), port=self.port)
        return self.evil.port

    def close(self) -> None:
        self.trusted.close()
        if self.evil is not None:
            self.evil.close()


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    made = Scene(tmp_path, request.param)
    yield made
    made.close()


def _store_spec(kind: str, tmp_path: Path, redis_url: str) -> tuple[list[str], Callable[[], Any]]:
    """(resume connect arguments, public-API store factory) with the default settings."""
    if kind == "sqlite":
        path = tmp_path / "sessions.db"
        return ["--sessions", f"sqlite:{path}"], lambda: SQLiteStore(path)
    key_file = tmp_path / "redis-store.key"
    key_file.write_bytes(os.urandom(32).hex().encode())
    key_file.chmod(0o600)
    return (["--sessions", redis_url, "--store-key-file", str(key_file)],
            lambda: RedisStore(redis_url, key_file=key_file))


def _plant(kind: str, tmp_path: Path, redis_url: str, how: str, der: bytes) -> int:
    if kind == "sqlite":
        return _plant_sqlite(tmp_path / "sessions.db", how, der, tmp_path)
    return _plant_redis(redis_url, how, der, tmp_path)


@pytest.mark.parametrize("how", FORGERIES)
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
class TestPlantedSession:
    def test_resume_connect_fails_verification(
        self, scene: Scene, kind: str, how: str, tmp_path: Path, redis_server: RedisServer
    ) -> None:
        """`resume connect --cafile ca.pem --sessions ...` refuses the attacker's server."""
        args, _ = _store_spec(kind, tmp_path, redis_server.url)
        target = f"localhost:{scene.port}"
        first = resume_connect(target, "--cafile", str(scene.cafile), "--json", *args)
        assert json.loads(first.stdout)["stored"] is True
        der = _attacker_session(scene.swap())
        assert _plant(kind, tmp_path, redis_server.url, how, der) >= 1
        proc = resume_connect(target, "--cafile", str(scene.cafile), "--json", *args,
                              check=False)
        assert '"resumed": true' not in proc.stdout
        assert proc.returncode == 1, proc.stdout
        assert "certificate verification failed" in proc.stderr
        assert "dropped" in proc.stderr  # the planted entry was reported, without its bytes

    def test_public_api_fails_verification(
        self, scene: Scene, kind: str, how: str, tmp_path: Path, redis_server: RedisServer
    ) -> None:
        """open_tls_stream through a cache on the store refuses the attacker's server."""
        from resume.trio import open_tls_stream

        _, make_store = _store_spec(kind, tmp_path, redis_server.url)
        tls = TLS_VERSIONS[scene.version]

        def victim() -> bool:
            ctx = ssl.create_default_context(cafile=str(scene.cafile))
            ctx.minimum_version = ctx.maximum_version = tls
            store: SessionStore = make_store()
            cache = SessionCache(mode=CacheMode.CLIENT, timeout=3600)
            link = attach_store(cache, store)
            link.register_context(ctx, label=_LABEL)

            async def connect() -> bool:
                stream = await open_tls_stream("127.0.0.1", scene.port, ssl_context=ctx,
                                               cache=cache, server_hostname="localhost")
                async with stream:
                    await stream.send_all(b"hello\n")
                    while b"\n" not in await stream.receive_some():
                        pass
                    return bool(stream.session_reused)

            try:
                return trio.run(connect)
            finally:
                link.close()
                store.close()
                cache.clear()

        assert victim() is False
        der = _attacker_session(scene.swap())
        assert _plant(kind, tmp_path, redis_server.url, how, der) >= 1
        with pytest.warns(StoreWarning, match="dropped"), pytest.raises(
            (ssl.SSLCertVerificationError, trio.BrokenResourceError)
        ) as info:
            victim()
        failure = info.value if isinstance(info.value, ssl.SSLError) else info.value.__cause__
        assert isinstance(failure, ssl.SSLCertVerificationError)
