#!/usr/bin/env python3
"""Check a built documentation site in headless Chromium; exit non-zero on a problem.

Usage::

    python docs/browser_check.py docs/_build/html

It fails on a missing asset, a broken internal link, a console error, a clipped
code line or a proof that could have run but shows "not run":

1. Every internal link (``href``/``src``, with its ``#fragment``) of every built HTML
   page is checked against the files on disk and the ids in the target page.
2. The site is served on 127.0.0.1 (a free port, ``http.server`` in a thread) and the
   index, the generated ``SSL_SESSION_free`` man page and the conformance matrix are
   opened in Debian's ``chromium``, driven over the DevTools protocol. Every page they
   link to is fetched (status 200, fragment present) and opened too. Any JavaScript
   exception, ``console.error`` or error log entry fails the check, and so does any
   request the server answers with a 4xx or 5xx status (a missing asset).
3. The offline search is run once (``search.html?q=...``) and must find something.
4. On every page opened, no code block (``<pre>``) may be wider than its box at the
   default window width (1280 px): a line that does not fit is cut at the edge of
   the box, and a reader sees no sign of the rest. A block meant to scroll says so
   with the class ``resume-scroll`` on an ancestor.
5. In a conformance matrix (``table.conformance-matrix``), a proof that shows
   "not run" fails unless its reason names a program that is missing here
   ("needs redis-server"), and so does a proof "skipped" for a program that is
   installed here: the check runs where the site was built, so such a proof could
   have run.
6. A screenshot of the ``SSL_SESSION_free`` page is kept as
   ``screenshots/SSL_SESSION_free.png`` beside the HTML folder (the CI artifact).

Only the standard library is used: the DevTools protocol runs over a WebSocket,
and the few client-side parts of RFC 6455 it needs (handshake, masked text frames,
fragmented and control frames) are implemented in :class:`WebSocket`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit

DEFAULT_PAGES = (
    "index.html",
    "manpages/SSL_SESSION_free.html",
    "reference/conformance.html",
)
DEFAULT_SCREENSHOTS = ("manpages/SSL_SESSION_free.html",)
DEFAULT_SEARCH = "SSL_SESSION_free"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,1600",
    "--remote-debugging-port=0",
)
#: Seconds allowed for one DevTools step (start-up, a navigation, a search).
STEP_TIMEOUT = 30.0
#: After the load event, how long a page may still run scripts before it is judged.
SETTLE_MS = 400


# -- static link check ------------------------------------------------------------------


class _PageParser(HTMLParser):
    """Collects the ids (anchor targets) and the links of one HTML page."""

    _LINK_ATTRS: ClassVar[dict[str, str]] = {
        "a": "href", "area": "href", "link": "href",
        "script": "src", "img": "src", "iframe": "src", "source": "src",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        attr = self._LINK_ATTRS.get(tag)
        if attr is not None and attr in values:
            self.links.append(values[attr])


@functools.cache
def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _is_internal(link: str) -> bool:
    parts = urlsplit(link)
    return not parts.scheme and not parts.netloc and bool(parts.path or parts.fragment)


def _target_file(root: Path, page: Path, path: str) -> Path:
    # The file a relative link of *page* points to ("" is the page itself).
    if not path:
        return page
    target = (root / path.lstrip("/")) if path.startswith("/") else (page.parent / unquote(path))
    target = Path(os.path.normpath(target))
    if target.is_dir() or path.endswith("/"):
        target = target / "index.html"
    return target


def check_links(root: Path) -> tuple[int, int, list[str]]:
    """Check every internal link of every HTML page under *root*.

    Returns ``(pages, links checked, problems)``.
    """
    pages = sorted(root.rglob("*.html"))
    checked = 0
    problems: list[str] = []
    for page in pages:
        for link in _parse(page).links:
            if not _is_internal(link):
                continue
            checked += 1
            parts = urlsplit(link)
            target = _target_file(root, page, parts.path)
            where = f"{page.relative_to(root)}: link {link!r}"
            if root.resolve() not in target.resolve().parents:
                problems.append(f"{where} leaves the site")
            elif not target.is_file():
                problems.append(f"{where} -> missing file {target.relative_to(root)}")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in _parse(target).ids
            ):
                problems.append(
                    f"{where} -> no id {parts.fragment!r} in {target.relative_to(root)}"
                )
    return len(pages), checked, problems


# -- the loopback server -----------------------------------------------------------------


@dataclass
class RequestLog:
    """Every request the server answered: ``(path, status)``, thread-safe."""

    entries: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, status: int) -> None:
        with self.lock:
            self.entries.append((path, status))

    def failures(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(p, s) for p, s in self.entries if s >= 400]


def _handler(root: Path, log: RequestLog) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # code is an HTTPStatus from send_error(): its str() is "HTTPStatus.NOT_FOUND"
            # on Python 3.10 and "404" from 3.11 on, so test the type, not the text.
            log.add(self.path, int(code) if isinstance(code, int) or str(code).isdigit() else 0)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the RequestLog keeps what matters

    return Handler


@contextlib.contextmanager
def serve(root: Path, log: RequestLog) -> Iterator[str]:
    """Serve *root* on a free loopback port in a thread; yield the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="docs-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- a minimal WebSocket client (RFC 6455, client side) ---------------------------------


class WebSocket:
    """Just enough of a WebSocket client for the DevTools protocol.

    Text frames out (masked, as RFC 6455 section 5.3 requires of a client),
    text frames in (reassembled from fragments), pings answered, close honoured.
    """

    _GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
            raise ValueError(f"not a ws:// URL with a port: {url}")
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\n"
            f"Host: {parts.hostname}:{parts.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self._sock.sendall(request.encode())
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv_some()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ConnectionError(f"WebSocket handshake refused: {lines[0]}")
        fields = (line.partition(":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        expected = base64.b64encode(hashlib.sha1(key + self._GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("WebSocket handshake: wrong Sec-WebSocket-Accept")

    def _recv_some(self) -> bytes:
        data = self._sock.recv(1 << 16)
        if not data:
            raise ConnectionError("WebSocket connection closed by the browser")
        return data

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv_some()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        """Receive one text message (pings are answered on the way)."""
        message = b""
        while True:
            first, second = self._read(2)
            fin, opcode = first & 0x80, first & 0x0F
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise ConnectionError("WebSocket closed by the browser")
            message += payload
            if fin:
                return message.decode("utf-8")

    def settimeout(self, timeout: float) -> None:
        """Set the socket timeout for the next reads."""
        self._sock.settimeout(timeout)

    def close(self) -> None:
        """Send a close frame (best effort) and close the socket."""
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        self._sock.close()


# -- the DevTools protocol ---------------------------------------------------------------


class DevTools:
    """Calls and events of the DevTools protocol over one page target."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, deadline: float) -> dict[str, Any]:
        self._ws.settimeout(max(0.05, deadline - time.monotonic()))
        message: dict[str, Any] = json.loads(self._ws.recv())
        return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call *method*; return its result; events received meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        """Wait for the next *event* (kept events first)."""
        for i, message in enumerate(self.events):
            if message["method"] == event:
                return self.events.pop(i)
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("method") == event:
                return message
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JavaScript expression (awaiting a promise); return its value."""
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """The console errors among DevTools *events*, as readable lines."""
    errors: list[str] = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log error: {entry.get('text')} {entry.get('url', '')}".rstrip())
    return errors


@contextlib.contextmanager
def chromium(binary: str) -> Iterator[DevTools]:
    """Start headless Chromium with a fresh profile; yield DevTools on its first page."""
    with tempfile.TemporaryDirectory(prefix="docs-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        ws: WebSocket | None = None
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + STEP_TIMEOUT
            while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
                if process.poll() is not None:
                    raise RuntimeError(f"{binary} exited with status {process.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{binary} did not open its DevTools port")
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            ws = WebSocket(page["webSocketDebuggerUrl"], STEP_TIMEOUT)
            tools = DevTools(ws)
            for domain in ("Runtime", "Log", "Page"):
                tools.call(f"{domain}.enable")
            tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600,
                       deviceScaleFactor=1, mobile=False)
            yield tools
        finally:
            if ws is not None:
                ws.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- clipped code and proofs that could have run -------------------------------------------

#: The code blocks of the open page whose content is wider than their box:
#: [box width, content width, the longest line].
CLIPPED_CODE_JS = """
Array.from(document.querySelectorAll('pre'))
  .filter(p => p.offsetParent !== null && !p.closest('.resume-scroll')
               && p.scrollWidth > p.clientWidth + 1)
  .map(p => [p.clientWidth, p.scrollWidth,
             p.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '')])
"""

#: The text of the proof cells of every conformance matrix on the open page.
PROOF_CELLS_JS = """
Array.from(document.querySelectorAll('table.conformance-matrix tbody tr'),
           tr => tr.lastElementChild ? tr.lastElementChild.innerText : '')
"""

_NOT_RUN = re.compile(
    r"(?P<test>\S+)\s+\u2014\s+(?P<outcome>not run|skipped)(?:\s+\((?P<reason>.*)\))?\s*$"
)
_NEEDS = re.compile(r"\bneeds?\s+(?:the\s+)?(?P<program>[A-Za-z0-9][\w.+-]*)")


def clipped_code(blocks: list[list[Any]]) -> list[str]:
    """Problems for the code blocks :data:`CLIPPED_CODE_JS` found too wide."""
    return [
        f"code line clipped at the default width ({box} px box, {content} px of code): "
        f"{str(line).strip()[:80]!r}"
        for box, content, line in blocks
    ]


def unrun_proofs(cells: list[str], which: Any = shutil.which) -> list[str]:
    """Problems for proofs in matrix *cells* that show "not run" but could have run here.

    A proof "not run" passes only when its reason names a program missing here
    ("needs redis-server"); a proof "skipped" fails when its reason names a
    program that *is* installed here.
    """
    problems = []
    for cell in cells:
        for line in cell.splitlines():
            found = _NOT_RUN.search(line.strip())
            if found is None:
                continue
            reason = found["reason"] or ""
            needs = _NEEDS.search(reason)
            missing = needs is not None and which(needs["program"]) is None
            if found["outcome"] == "not run" and not missing:
                problems.append(
                    f"proof {found['test']} shows 'not run' ({reason or 'no reason'}) "
                    "but could have run where the site was built"
                )
            elif found["outcome"] == "skipped" and needs is not None and not missing:
                problems.append(
                    f"proof {found['test']} was skipped ({reason}) but {needs['program']} "
                    "is installed where the site was built"
                )
    return problems


# -- the check ---------------------------------------------------------------------------


@dataclass
class Report:
    """What the check saw; ``problems`` empty means it passed."""

    pages: int = 0
    static_links: int = 0
    opened: list[str] = field(default_factory=list)
    crawled_links: int = 0
    requests: int = 0
    console_errors: int = 0
    problems: list[str] = field(default_factory=list)


def _open(tools: DevTools, url: str) -> list[str]:
    # Navigate, wait for load and a short settling time; return the console errors.
    tools.events.clear()
    result = tools.call("Page.navigate", url=url)
    if result.get("errorText"):
        return [f"navigation failed: {result['errorText']}"]
    tools.wait_for("Page.loadEventFired")
    tools.evaluate(f"new Promise(r => setTimeout(r, {SETTLE_MS}))")
    return console_errors(tools.events)


def _page_problems(tools: DevTools) -> list[str]:
    # Clipped code and unrun proofs on the page that is open.
    return clipped_code(tools.evaluate(CLIPPED_CODE_JS) or []) + unrun_proofs(
        tools.evaluate(PROOF_CELLS_JS) or []
    )


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def run_check(root: Path, *, pages: list[str], screenshots: list[str], screenshot_dir: Path,
              search: str | None, binary: str) -> Report:
    """Run the whole check on the site in *root*."""
    report = Report()
    report.pages, report.static_links, problems = check_links(root)
    report.problems += problems
    log = RequestLog()
    with serve(root, log) as base, chromium(binary) as tools:
        to_open = [urljoin(base, page) for page in pages]
        primary = set(to_open)
        crawl: dict[str, None] = {}
        seen_fragments: set[str] = set()
        while to_open:
            url = to_open.pop(0)
            if url in report.opened:
                continue
            report.opened.append(url)
            name = url.removeprefix(base)
            for error in _open(tools, url):
                report.console_errors += 1
                report.problems.append(f"{name}: {error}")
            report.problems += [f"{name}: {p}" for p in _page_problems(tools)]
            if name in screenshots:
                shot = tools.call("Page.captureScreenshot", format="png")
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                target = screenshot_dir / f"{Path(name).stem}.png"
                target.write_bytes(base64.b64decode(shot["data"]))
            if url not in primary:
                continue
            hrefs: list[str] = tools.evaluate(
                "Array.from(document.querySelectorAll('a[href]'), a => a.href)"
            )
            for href in hrefs:
                if not href.startswith(base) or href in seen_fragments:
                    continue
                seen_fragments.add(href)
                report.crawled_links += 1
                page_url, _, fragment = href.partition("#")
                status, text = _fetch(page_url)
                if status != 200:
                    report.problems.append(f"{name}: link {href} -> HTTP {status}")
                    continue
                if fragment and page_url.endswith(".html"):
                    parser = _PageParser()
                    parser.feed(text)
                    if unquote(fragment) not in parser.ids:
                        report.problems.append(f"{name}: link {href} -> no such id")
                if page_url.endswith(".html") or page_url.endswith("/"):
                    crawl.setdefault(page_url, None)
        for url in crawl:
            if url not in report.opened:
                report.opened.append(url)
                for error in _open(tools, url):
                    report.console_errors += 1
                    report.problems.append(f"{url.removeprefix(base)}: {error}")
                report.problems += [
                    f"{url.removeprefix(base)}: {p}" for p in _page_problems(tools)
                ]
        if search and (root / "search.html").is_file():
            _open(tools, urljoin(base, f"search.html?q={search}"))
            deadline = time.monotonic() + STEP_TIMEOUT
            found = 0
            while time.monotonic() < deadline:
                found = tools.evaluate(
                    "document.querySelectorAll('#search-results ul.search li').length"
                )
                if found:
                    break
                time.sleep(0.1)
            if not found:
                report.problems.append(f"search.html: searching {search!r} found nothing")
            report.console_errors += len(console_errors(tools.events))
            report.problems += [f"search.html: {e}" for e in console_errors(tools.events)]
    report.requests = len(log.entries)
    for path, status in log.failures():
        report.problems.append(f"server answered {status} for {path} (a missing asset or page)")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the check from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, metavar="DIR", help="the built HTML site")
    parser.add_argument("--page", action="append", dest="pages", metavar="PAGE",
                        help=f"a page to open (repeatable; default: {', '.join(DEFAULT_PAGES)})")
    parser.add_argument("--screenshot", action="append", dest="screenshots", metavar="PAGE",
                        help="a page to screenshot (repeatable; default: the SSL_SESSION_free "
                             "man page)")
    parser.add_argument("--screenshot-dir", type=Path, metavar="DIR",
                        help="where screenshots go (default: DIR/../screenshots)")
    parser.add_argument("--search", default=DEFAULT_SEARCH, metavar="WORD",
                        help="a word the offline search must find ('' to skip)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        metavar="PATH", help="the Chromium binary (default: %(default)s)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if not (root / "index.html").is_file():
        parser.error(f"{root} holds no index.html: build the site first")
    pages = args.pages or list(DEFAULT_PAGES)
    pages += [page for page in args.screenshots or [] if page not in pages]
    for page in pages:
        if not (root / page).is_file():
            parser.error(f"page {page} is not in {root}")
    started = time.monotonic()
    report = run_check(
        root,
        pages=pages,
        screenshots=args.screenshots or [p for p in DEFAULT_SCREENSHOTS if p in pages],
        screenshot_dir=args.screenshot_dir or root.parent / "screenshots",
        search=args.search or None,
        binary=args.chromium,
    )
    for problem in report.problems:
        print(f"FAIL {problem}")
    print(
        f"browser check: {report.pages} HTML pages, {report.static_links} internal links "
        f"checked on disk, {len(report.opened)} pages opened in Chromium, "
        f"{report.crawled_links} links crawled, {report.requests} requests served, "
        f"{len(report.problems)} problems, {report.console_errors} console errors "
        f"({time.monotonic() - started:.1f} s)"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
