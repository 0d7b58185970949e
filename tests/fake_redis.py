# A hostile "Redis" for the tests: a TCP server on 127.0.0.1 that answers every
# command wrongly, in one of a few ways (MODES), to check that resume's Redis
# client (resume._stores.redisclient) returns or raises StoreError within its
# deadline and with bounded memory, whatever a server does.
#
# Normal-path tests use a real redis-server (redis_server.py); this one is only
# for what a real server never does. Each connection gets a daemon thread that
# reads whatever the client sends and answers per MODES; stop() (or leaving the
# ``with`` block) closes the listener and every connection.
#
# Run as a script it measures, for each mode, how long RedisStore.get() and
# RedisKeySource.load() take against it and how much the process grew:
#   .venv/bin/python tests/fake_redis.py
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Final

__all__ = ["MODES", "FakeRedis"]

#: What the server does after each chunk the client sends.
MODES: Final = {
    "trickle": "a well-formed 4 KiB string, one byte every 10 ms (about 40 s)",
    "silent": "nothing at all, the connection left open",
    "endless_array": "'*4294967295' and then ':1' elements for ever, as fast as it can",
    "nested": "'*1' lines for ever: arrays nested without end",
    "huge_string": "'$2000000000' and then bytes for ever",
    "endless_line": "'+' and then bytes for ever, never a line end",
    "many_small": "a 64-element array of 64 KiB strings (4 MiB in all)",
    "wrong_type": "the integer 42, whatever was asked",
    "garbage": "a line that is not RESP",
}

_FLOOD: Final = 64 * 1024


class FakeRedis:
    """A server on 127.0.0.1 playing a hostile Redis (see MODES); a context manager."""

    def __init__(
        self, mode: str, *, byte_delay: float = 0.01, flood_limit: int = 32 * 1024 * 1024
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        self.mode = mode
        self.byte_delay = byte_delay
        #: A flood stops (and the connection closes) after this many bytes, so
        #: that a client without limits fails a test instead of filling memory.
        self.flood_limit = flood_limit
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        #: How many connections were accepted.
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, name="fake redis", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """A ``redis://`` URL to this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
            threading.Thread(
                target=self._serve, args=(conn,), name="fake redis conn", daemon=True
            ).start()

    def _answers(self) -> Iterator[bytes]:
        # The bytes of one answer, in the pieces they are sent in.
        mode = self.mode
        if mode == "trickle":
            body = b"$4096\r\n" + b"x" * 4096 + b"\r\n"
            for i in range(len(body)):
                yield body[i : i + 1]
        elif mode == "endless_array":
            yield b"*4294967295\r\n"
            while True:
                yield b":1\r\n" * 4096
        elif mode == "nested":
            while True:
                yield b"*1\r\n" * 4096
        elif mode == "huge_string":
            yield b"$2000000000\r\n"
            while True:
                yield b"x" * _FLOOD
        elif mode == "endless_line":
            yield b"+"
            while True:
                yield b"x" * _FLOOD
        elif mode == "many_small":
            yield b"*64\r\n"
            for _ in range(64):
                yield b"$65536\r\n" + b"y" * 65536 + b"\r\n"
        elif mode == "wrong_type":
            yield b":42\r\n"
        elif mode == "garbage":
            yield b"hello there\r\n"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while not self._stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except OSError:
                    return
                if self.mode == "silent":
                    continue
                sent = 0
                try:
                    for piece in self._answers():
                        if self._stop.is_set() or sent > self.flood_limit:
                            return
                        conn.sendall(piece)
                        sent += len(piece)
                        if self.mode == "trickle":
                            self._stop.wait(self.byte_delay)
                except OSError:
                    return  # the client gave up and closed

    def stop(self) -> None:
        """Close the listener and every connection (idempotent)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(5)

    def __enter__(self) -> FakeRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _measure() -> None:  # pragma: no cover - a measuring script, not a test
    import resource

    from resume import StoreError
    from resume._ticketkeys.ring import RedisKeySource
    from resume.stores import RedisStore

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"start: peak RSS {peak_mib():.1f} MiB")
    for mode in MODES:
        for what in ("RedisStore.get, timeout=1.0", "RedisKeySource.load, socket_timeout=1.0"):
            with FakeRedis(mode) as fake:
                start = time.monotonic()
                try:
                    if what.startswith("RedisStore"):
                        with RedisStore(fake.url, key=bytes(32), timeout=1.0) as store:
                            store.get(("example.test", 443))
                    else:
                        source = RedisKeySource(fake.url, secret=bytes(32), socket_timeout=1.0)
                        try:
                            source.load()
                        finally:
                            source.close()
                    outcome = "returned"
                except StoreError as exc:
                    outcome = f"StoreError: {exc}"
                except ValueError as exc:
                    outcome = f"ValueError: {exc}"
                elapsed = time.monotonic() - start
            print(f"{mode:13} {what:40} {elapsed:6.3f} s  peak RSS {peak_mib():6.1f} MiB  "
                  f"{outcome[:110]}")


if __name__ == "__main__":  # pragma: no cover
    _measure()
