# A TLS server with only a session-ID cache, recording how each client ended.
#
# SessionIdServer is an OpenSSL server (Python's ``ssl``, blocking, one thread per
# connection) with session tickets off (``OP_NO_TICKET``): TLS 1.2 resumes from
# its session-ID cache, TLS 1.3 from stateful tickets (ids into the same cache).
# It answers HTTP/1.1 requests with keep-alive and never closes first, so the
# client ends every connection. It behaves as stunnel with ``options =
# NO_TICKET`` does: when the client's close_notify arrives it answers with its
# own (``unwrap()``: SSL_shutdown, so OpenSSL keeps the session); on a bare EOF
# it closes without one, and OpenSSL then removes the session from its cache
# (ssl_clear_bad_session() when the SSL is freed without SSL_SENT_SHUTDOWN).
#
# For each connection it records whether the handshake resumed (the server's
# own ``session_reused``) and whether the client sent close_notify.
from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"


@dataclass(frozen=True)
class Ended:
    """How one connection went, as the server saw it."""

    reused: bool
    close_notify: bool


class SessionIdServer:
    """See the top. ``with SessionIdServer(context) as server:`` serves on ``server.port``."""

    def __init__(
        self, context: ssl.SSLContext, *, idle_timeout: float = 10.0, response: bytes = RESPONSE
    ) -> None:
        context.options |= ssl.OP_NO_TICKET
        self.context = context
        self.response = response
        self.idle_timeout = idle_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._ended: list[Ended] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SessionIdServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=self.idle_timeout + 5)
        self._listener.close()

    def ended(self, count: int, *, wait: float = 10.0) -> list[Ended]:
        """The first *count* connections that ended, waiting at most *wait* seconds for them."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._ended) >= count, timeout=wait)
            return list(self._ended)

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            raw, _ = self._listener.accept()
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(self.idle_timeout)
        try:
            tls = self.context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        except OSError:
            raw.close()
            return
        reused = bool(tls.session_reused)
        notify = False
        try:
            buf = b""
            while True:
                data = tls.recv(65536)
                if not data:  # close_notify (a bare EOF raises SSLEOFError)
                    notify = True
                    break
                buf += data
                while b"\r\n\r\n" in buf:
                    _, _, buf = buf.partition(b"\r\n\r\n")
                    tls.sendall(self.response)
        except OSError:  # SSLEOFError (no close_notify), a reset, the idle timeout
            pass
        finally:
            if notify:
                with contextlib.suppress(OSError, ValueError):
                    tls.unwrap()  # our close_notify: the session stays in the cache
            tls.close()
            with self._cond:
                self._ended.append(Ended(reused, notify))
                self._cond.notify_all()
