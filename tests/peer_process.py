"""What the real peers started by the tests (nginx, Node.js, stunnel) share.

Each runs as one child process of the test process, in a directory of its own;
these two functions wait until it listens (or say why it never will) and stop it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence

__all__ = ["stop_process", "wait_listening"]

#: How long a peer gets to start listening.
START_TIMEOUT = 15.0


def wait_listening(
    proc: subprocess.Popen[bytes],
    addresses: Sequence[tuple[str, int]],
    name: str,
    log: Callable[[], str],
    timeout: float = START_TIMEOUT,
) -> None:
    """Wait until *proc* accepts TCP on every address; raise RuntimeError with its log if not."""
    deadline = time.monotonic() + timeout
    pending = list(addresses)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log()[-2000:]}")
        try:
            with socket.create_connection(pending[0], timeout=1):
                pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} does not listen on {pending[0]}") from None
            time.sleep(0.02)


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Send *sig* to *proc* (then SIGKILL after 10 s) and wait for it; None does nothing."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
