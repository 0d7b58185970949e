# A real redis-server for the tests, started from the binary on a free loopback
# port in a temporary directory, without persistence.
#
# Use the ``redis_server`` fixture (import it into a test module or conftest:
# ``from tests.redis_server import redis_server``) or the RedisServer class
# directly. ``server.stop()`` and ``server.start()`` in the middle of a test
# simulate a store that goes down and comes back (empty: nothing is saved).
# A missing redis-server binary fails the test loudly: .ci/run installs it.
from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from programs import require

__all__ = ["RedisServer", "redis_server"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1, no persistence, in *directory*."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = require("redis-server")
        self.directory = directory
        self.port = port if port is not None else _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.process is not None:
            raise RuntimeError("redis-server is already running")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.directory),
                    "--daemonize", "no",
                    "--protected-mode", "yes",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
            )
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(
                    f"redis-server exited with {code}: {self.log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.01)  # polling a process that is starting: no event to await

    def stop(self) -> None:
        """Stop the server and wait for it to exit (SIGTERM; SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        """Whether the server process is running."""
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running redis-server for one test; stop() and start() it as needed."""
    directory = tmp_path_factory.mktemp("redis")
    os.chmod(directory, 0o700)
    with RedisServer(directory) as server:
        yield server
