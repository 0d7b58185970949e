"""The README's cheat sheet, run: every statement of it, against real peers on loopback.

The test reads the ```python block under "## Cheat sheet" in README.md and
checks that its statements are exactly the keys of COVERAGE, in order, so the
README cannot drift from what runs here. Each statement is mapped to the
scenarios that run it; a scenario is a Python script that holds the statement
as the README writes it (an expression statement may be used inside a larger
one: ``httpx.Client(...)`` in ``with httpx.Client(...) as client:``), and the
test checks that too, by comparing syntax trees.

The scripts run as separate processes against a local nginx
(tests/nginx_server.py) or resume's own servers, with the substitutions the
README leaves to its reader: ``"example.org", 443`` becomes the local nginx,
``8443`` a free port; ``ca.pem`` and ``sessions.db`` are files in the process's
working directory, and ``SSL_CERT_FILE`` (``REQUESTS_CA_BUNDLE`` for requests)
names the test CA, so that the lines that use the system's trust run unchanged.
The early data ``b"GET / HTTP/1.1\\r\\n..."`` stands for a whole request: it
becomes ``b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"``.
The store lines run three times, as three processes, and must resume on the
second and third runs, on TLS 1.2 and TLS 1.3.

The 0-RTT lines run against the README's own server line, serve_tls with
max_early_data=16384 (its port, 8443, a free one), whose handler speaks just
enough HTTP/1.1 and records, per connection, whether its first bytes came as
early data and every request path as it arrives; the clients reach it through
a relay (the port that stands for 443) that records what each client sent, so
that a connection's bytes can be replayed to the server at the end.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from nginx_server import NginxServer, NginxSite, free_port

README = Path(__file__).resolve().parents[2] / "README.md"

#: Every statement of the cheat sheet, as README.md writes it, in order, and the
#: scenarios (keys of SCENARIOS) that run it.
COVERAGE: dict[str, tuple[str, ...]] = {
    "import resume, resume.trio, resume.asyncio": ("clients", "servers", "store"),
    "cache = resume.SessionCache()": ("clients", "store"),
    'ctx = resume.create_client_context(cafile="ca.pem")': ("clients",),
    'stream = await resume.trio.open_tls_stream("example.org", 443, cache=cache)': (
        "clients", "store",
    ),
    "stream.session_reused": ("clients", "store"),
    "await stream.aclose()": ("clients", "store"),
    'reader, writer = await resume.asyncio.open_connection(\n'
    '    "example.org", 443, ssl=ctx, cache=cache\n'
    ')': ("clients",),
    "await resume.trio.serve_tls(handler, 8443, ssl_context=server_ctx)": ("servers",),
    'server = await resume.asyncio.start_server(\n'
    '    handler, "127.0.0.1", 8443, ssl=server_ctx\n'
    ')': ("servers",),
    "import resume.httpx, resume.aiohttp, resume.requests": ("clients",),
    "httpx.AsyncClient(transport=resume.httpx.AsyncHTTPTransport(cache=cache))": ("clients",),
    "httpx.Client(transport=resume.httpx.HTTPTransport(cache=cache))": ("clients",),
    "aiohttp.ClientSession(connector=resume.aiohttp.TCPConnector(cache=cache))": ("clients",),
    'session.mount("https://", resume.requests.HTTPAdapter(cache=cache))': ("clients",),
    "cache.statistics().decisions": ("clients", "store"),
    'stream = await resume.trio.open_tls_stream(\n'
    '    "example.org", 443, cache=cache, early_data=b"GET / HTTP/1.1\\r\\n..."\n'
    ')': ("early",),
    "stream.early_data_accepted": ("early",),
    "resume.httpx.AsyncHTTPTransport(cache=cache, early_data=True)": ("early",),
    "await resume.trio.serve_tls(handler, 8443, ssl_context=server_ctx,\n"
    "                            max_early_data=16384)": ("early",),
    "from resume.stores import SQLiteStore, RedisStore, attach_store": ("store",),
    'link = attach_store(cache, SQLiteStore("sessions.db"))': ("store",),
    'result = await resume.probe("example.org", 443)': ("clients",),
    "from resume.testing import ThrowawayPKI, loopback_handshake, FakeClock": ("servers",),
}

# -- the scenarios ------------------------------------------------------------------------
#
# Glue around the README's statements: what the cheat sheet leaves out (a request
# to send, a handler, a server context, a requests session) and what the test
# reports back (one JSON line on stdout).

_READ = '''
REQUEST = b"GET /%s/%d HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"


async def exchange(send, receive, family, number):
    # One request; read until the whole body has come (TLS 1.3 tickets with it).
    await send(REQUEST % (family.encode(), number))
    data = b""
    while not data.endswith(b"hello\\n"):
        chunk = await receive()
        assert chunk, data
        data += chunk
'''

CLIENTS = '''
import asyncio
import json

import aiohttp
import httpx
import requests
import trio

import resume, resume.trio, resume.asyncio

cache = resume.SessionCache()
ctx = resume.create_client_context(cafile="ca.pem")
reused = {}
''' + _READ + '''

async def trio_client():
    for number in range(3):
        stream = await resume.trio.open_tls_stream("example.org", 443, cache=cache)
        await exchange(stream.send_all, stream.receive_some, "trio", number)
        reused.setdefault("trio", []).append(stream.session_reused)
        await stream.aclose()


async def asyncio_client():
    for number in range(3):
        reader, writer = await resume.asyncio.open_connection(
            "example.org", 443, ssl=ctx, cache=cache
        )

        async def send(data):
            writer.write(data)
            await writer.drain()

        await exchange(send, lambda: reader.read(4096), "asyncio", number)
        reused.setdefault("asyncio", []).append(writer.session_reused)
        writer.close()
        await writer.wait_closed()


trio.run(trio_client)
asyncio.run(asyncio_client())

import resume.httpx, resume.aiohttp, resume.requests


async def httpx_async():
    for number in range(3):
        async with (
            httpx.AsyncClient(transport=resume.httpx.AsyncHTTPTransport(cache=cache)) as client
        ):
            response = await client.get(f"https://example.org/httpx-async/{number}")
            assert response.text == "hello\\n"


async def aiohttp_client():
    for number in range(3):
        async with (
            aiohttp.ClientSession(connector=resume.aiohttp.TCPConnector(cache=cache)) as client
        ):
            async with client.get(f"https://example.org/aiohttp/{number}") as response:
                assert await response.text() == "hello\\n"


trio.run(httpx_async)  # the async transport under trio
asyncio.run(aiohttp_client())
for number in range(3):
    with httpx.Client(transport=resume.httpx.HTTPTransport(cache=cache)) as client:
        assert client.get(f"https://example.org/httpx/{number}").text == "hello\\n"
for number in range(3):
    with requests.Session() as session:
        session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
        assert session.get(f"https://example.org/requests/{number}").text == "hello\\n"
decisions = cache.statistics().decisions


async def probe():
    result = await resume.probe("example.org", 443)
    return result.verdict


verdict = trio.run(probe)
print(json.dumps({"reused": reused, "decisions": decisions, "verdict": verdict}))
'''

SERVERS = '''
import asyncio
import json
import sys

import trio

import resume, resume.trio, resume.asyncio
from resume.testing import ThrowawayPKI, loopback_handshake, FakeClock

version = sys.argv[1]
pki = ThrowawayPKI("localhost")
server_ctx = pki.server_context(version)
client_ctx = pki.client_context(version)
results = {}


async def connect_trio(cache):
    # The server may still be starting: a bounded number of tries.
    for _ in range(100):
        try:
            return await resume.trio.open_tls_stream(
                "localhost", 8443, ssl_context=client_ctx, cache=cache
            )
        except OSError:
            await trio.sleep(0.05)
    raise AssertionError("the trio server never listened")


async def trio_server():
    async def handler(stream):
        await stream.send_all((await stream.receive_some()).upper())

    async def serve():
        await resume.trio.serve_tls(handler, 8443, ssl_context=server_ctx)

    cache = resume.SessionCache()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for _ in range(2):
            stream = await connect_trio(cache)
            await stream.send_all(b"ping\\n")
            assert await stream.receive_some() == b"PING\\n"
            results.setdefault("trio", []).append(stream.session_reused)
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def asyncio_server():
    async def handler(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    server = await resume.asyncio.start_server(
        handler, "127.0.0.1", 8443, ssl=server_ctx
    )
    cache = resume.SessionCache()
    for _ in range(2):
        reader, writer = await resume.asyncio.open_connection(
            "localhost", 8443, ssl=client_ctx, cache=cache
        )
        writer.write(b"ping\\n")
        assert await reader.readline() == b"PING\\n"
        results.setdefault("asyncio", []).append(writer.session_reused)
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()


trio.run(trio_server)
asyncio.run(asyncio_server())
session, first = loopback_handshake(pki.client_context(version), pki.server_context(version))
clock = FakeClock()
clock.advance(1)
results["loopback"] = [first, clock() > 0]
print(json.dumps(results))
'''

STORE = '''
import json

import trio

import resume, resume.trio, resume.asyncio

cache = resume.SessionCache()
from resume.stores import SQLiteStore, RedisStore, attach_store
link = attach_store(cache, SQLiteStore("sessions.db"))
''' + _READ + '''

async def main():
    stream = await resume.trio.open_tls_stream("example.org", 443, cache=cache)
    await exchange(stream.send_all, stream.receive_some, "store", 0)
    reused = stream.session_reused
    await stream.aclose()
    return reused


# No link.close(): the link is closed at exit, as the README promises.
reused = trio.run(main)
print(json.dumps({"reused": reused, "decisions": cache.statistics().decisions}))
'''

EARLY = '''
import json
import sys

import httpx
import trio

import resume, resume.trio, resume.asyncio
import resume.httpx
from resume.testing import ThrowawayPKI

version, relay_port, server_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pki = ThrowawayPKI("localhost")
pki.write(".")  # ca.pem, which SSL_CERT_FILE names: the clients' default trust
server_ctx = pki.server_context(version)
HELLO = b"HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nhello\\n"
CLOSE = b"GET /close HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"

# What the server saw: per connection, whether its first bytes came early and
# every request path, recorded as the request arrives (before it is answered).
seen = []
flights = []  # per connection through the relay: every byte the client sent
handlers = {"running": 0}


async def handler(stream):
    # Minimal HTTP/1.1: answers requests until the client asks to close or goes.
    connection = {"early": stream.early_data, "paths": []}
    seen.append(connection)
    handlers["running"] += 1
    try:
        data = b""
        while True:
            while b"\\r\\n\\r\\n" not in data:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                data += chunk
            head, data = data.split(b"\\r\\n\\r\\n", 1)
            connection["paths"].append(head.split()[1].decode())
            await stream.send_all(HELLO)
            if b"connection: close" in head.lower():
                return
    except trio.BrokenResourceError:
        return
    finally:
        handlers["running"] -= 1


async def serve():
    await resume.trio.serve_tls(handler, 8443, ssl_context=server_ctx,
                                max_early_data=16384)


async def pump(source, sink, record):
    try:
        while data := await source.receive_some(65536):
            record += data
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def relay(client):
    # A TCP relay in front of the server that records what each client sends,
    # for the replay at the end.
    flight = bytearray()
    flights.append(flight)
    async with client, await trio.open_tcp_stream("127.0.0.1", server_port) as server:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, server, flight)
            nursery.start_soon(pump, server, client, bytearray())


async def read_until(stream, end):
    data = b""
    while not data.endswith(end):
        chunk = await stream.receive_some()
        assert chunk, data
        data += chunk
    return data


async def until_listening():
    for _ in range(200):
        try:
            probe = await trio.open_tcp_stream("127.0.0.1", server_port)
        except OSError:
            await trio.sleep(0.05)
        else:
            await probe.aclose()
            return
    raise AssertionError("the server never listened")


async def until_handlers_done():
    with trio.fail_after(20):
        while handlers["running"]:
            await trio.sleep(0.01)


async def replay(flight):
    # The recorded bytes sent again, straight to the server, then EOF; read to its close.
    # (The server may have given up on it and closed before the EOF.)
    async with await trio.open_tcp_stream("127.0.0.1", server_port) as attacker:
        try:
            await attacker.send_all(bytes(flight))
            await attacker.send_eof()
            while await attacker.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass


async def main():
    results = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await until_listening()
        await nursery.start(trio.serve_tcp, relay, relay_port)

        cache = resume.SessionCache()
        accepted, reused = [], []
        for number in range(3):
            stream = await resume.trio.open_tls_stream(
                "example.org", 443, cache=cache, early_data=b"GET / HTTP/1.1\\r\\n..."
            )
            accepted.append(stream.early_data_accepted)
            reused.append(stream.session_reused)
            assert await read_until(stream, b"hello\\n") == HELLO
            # One more request, answered after the handshake, and then to the
            # server's close: the fresh ticket comes with them.
            await stream.send_all(CLOSE)
            assert await read_until(stream, b"hello\\n") == HELLO
            assert await stream.receive_some() == b""
            await stream.aclose()
        await until_handlers_done()
        results["trio"] = {"accepted": accepted, "reused": reused, "seen": seen[:]}

        # A replay of the first early connection's bytes: refused, or the server
        # would see its request again.
        before = len(seen)
        await replay(flights[1])
        await until_handlers_done()
        results["replay"] = seen[before:]

        cache = resume.SessionCache()  # the httpx line starts from no session
        went_early = []
        before = len(seen)
        for number in range(3):
            async with httpx.AsyncClient(
                transport=resume.httpx.AsyncHTTPTransport(cache=cache, early_data=True)
            ) as client:
                response = await client.get(f"https://example.org/httpx/{number}")
                assert response.text == "hello\\n"
                went_early.append(response.extensions["early_data"])
        await until_handlers_done()
        results["httpx"] = {"early": went_early, "seen": seen[before:]}
        nursery.cancel_scope.cancel()
    return results


print(json.dumps(trio.run(main)))
'''

SCENARIOS: dict[str, str] = {
    "clients": CLIENTS, "servers": SERVERS, "store": STORE, "early": EARLY,
}


# -- reading the README -------------------------------------------------------------------


def cheat_sheet() -> str:
    """The ```python block under "## Cheat sheet" in README.md."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Cheat sheet\n", 1)[1]
    block = section.split("```python\n", 1)[1]
    return block.split("\n```", 1)[0] + "\n"


def statements(source: str) -> list[str]:
    """The top-level statements of *source*, each as written (comments left out)."""
    segments = []
    for node in ast.parse(source).body:
        segment = ast.get_source_segment(source, node)
        assert segment is not None
        segments.append(segment)
    return segments


def _forms(source: str) -> set[str]:
    # Every statement and every expression of *source*, normalized by ast.unparse.
    forms = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.stmt, ast.expr)):
            forms.add(ast.unparse(node))
    return forms


def runs(statement: str, script: str) -> bool:
    """True if *script* holds *statement* (an expression statement: its expression)."""
    node = ast.parse(statement).body[0]
    wanted = node.value if isinstance(node, ast.Expr) else node
    return ast.unparse(wanted) in _forms(script)


#: The early data the README leaves to its reader, and the whole request it stands for.
EARLY_PLACEHOLDER = 'b"GET / HTTP/1.1\\r\\n..."'
EARLY_REQUEST = 'b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"'


def localize(script: str, port: int) -> str:
    """Point *script* at the local server on *port* (see the top)."""
    script = script.replace('"example.org", 443', f'"localhost", {port}')
    script = script.replace("https://example.org/", f"https://localhost:{port}/")
    script = script.replace(EARLY_PLACEHOLDER, EARLY_REQUEST)
    assert "example.org" not in script
    return script


def run_script(script: str, cwd: Path, *args: str) -> dict[str, Any]:
    """Run *script* as its own process in *cwd*; return the JSON it printed last."""
    ca = str(cwd / "ca.pem")
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


# -- the tests ----------------------------------------------------------------------------


class TestTheCheatSheetIsCovered:
    def test_every_statement_is_in_the_table(self) -> None:
        """The README's statements are exactly COVERAGE's keys, in order."""
        assert statements(cheat_sheet()) == list(COVERAGE)

    def test_every_statement_runs_in_its_scenarios(self) -> None:
        """Each statement is in the script of every scenario the table names."""
        for statement, names in COVERAGE.items():
            assert names, statement
            for name in names:
                assert runs(statement, SCENARIOS[name]), (statement, name)

    def test_the_check_would_see_a_missing_statement(self) -> None:
        """runs() tells a statement that is there from one that is not."""
        assert runs("cache.statistics().decisions", "x = cache.statistics().decisions")
        assert not runs("cache.statistics().decisions", "x = cache.statistics()")
        assert not runs("httpx.Client(transport=resume.httpx.HTTPTransport(cache=cache))",
                        "httpx.Client(transport=resume.httpx.HTTPTransport())")


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def nginx(version: str, tmp_path: Path) -> Iterator[NginxServer]:
    ca = trustme.CA()
    site = NginxSite(protocols=(f"TLSv{version}",))
    with NginxServer(ca, [site], directory=tmp_path / "nginx") as server:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        yield server


def _resumed_by_path(nginx: NginxServer) -> dict[str, bool]:
    return {
        entry["request"].split()[1]: entry["reused"] == "r" for entry in nginx.access_log()
    }


def test_clients(nginx: NginxServer, tmp_path: Path) -> None:
    """The client lines: every family resumes from its second connection on; statistics count it."""
    result = run_script(localize(CLIENTS, nginx.port()), tmp_path)
    assert result["reused"]["trio"] == [False, True, True]
    assert result["reused"]["asyncio"][1:] == [True, True]
    by_path = _resumed_by_path(nginx)
    families = ("trio", "asyncio", "httpx-async", "aiohttp", "httpx", "requests")
    for family in families:
        assert [by_path[f"/{family}/{n}"] for n in (1, 2)] == [True, True], family
    resumed = sum(by_path[f"/{family}/{n}"] for family in families for n in range(3))
    decisions = result["decisions"]
    assert decisions["accepted"] == decisions["offered"] == resumed
    assert decisions.get("declined", 0) == 0
    assert sum(decisions.values()) - decisions["accepted"] == 3 * len(families)
    assert result["verdict"] == "works"  # every version nginx speaks here resumes


def test_servers(version: str, tmp_path: Path) -> None:
    """The server lines: resume's trio and asyncio servers resume the second connection."""
    script = SERVERS.replace("8443", str(free_port(["127.0.0.1"])))
    result = run_script(script, tmp_path, version)
    assert result == {"trio": [False, True], "asyncio": [False, True], "loopback": [False, True]}


def test_store_lines_resume_across_processes(nginx: NginxServer, tmp_path: Path) -> None:
    """The store lines, run three times as a script: runs 2 and 3 resume from the store."""
    script = localize(STORE, nginx.port())
    runs_ = [run_script(script, tmp_path) for _ in range(3)]
    assert [r["reused"] for r in runs_] == [False, True, True]
    assert runs_[0]["decisions"] == {"no session": 1}
    assert runs_[1]["decisions"] == runs_[2]["decisions"] == {"offered": 1, "accepted": 1}
    assert [e["reused"] for e in nginx.access_log()] == [".", "r", "r"]
    assert (tmp_path / "sessions.db").exists() and (tmp_path / "sessions.db.key").exists()


def test_the_scripts_are_python() -> None:
    """Each scenario parses once localized (so a bad substitution fails here, not later)."""
    for script in SCENARIOS.values():
        ast.parse(textwrap.dedent(localize(script, 4433)))


def test_early_data(version: str, tmp_path: Path) -> None:
    """The 0-RTT lines: resumed requests arrive early, once; a replay is refused.

    The trio line connects three times through a recording relay to the README's
    serve_tls(max_early_data=16384): on TLS 1.3 the second and third requests go
    as early data and the server's handler sees them early, each once. The bytes
    the second connection sent, replayed to the server, never reach the handler.
    The httpx transport line: the same for its second and third GETs. On TLS 1.2
    nothing goes early and every request arrives once, after the handshake.
    """
    server_port = free_port(["127.0.0.1"])
    relay_port = free_port(["127.0.0.1"])
    while relay_port == server_port:
        relay_port = free_port(["127.0.0.1"])
    script = localize(EARLY.replace("8443", str(server_port)), relay_port)
    result = run_script(script, tmp_path, version, str(relay_port), str(server_port))
    tls13 = version == "1.3"
    trio_, httpx_ = result["trio"], result["httpx"]
    assert trio_["reused"] == [False, True, True]
    # None: not sent early (no session yet, or TLS 1.2), so sent after the handshake.
    assert trio_["accepted"] == ([None, True, True] if tls13 else [None, None, None])
    assert trio_["seen"] == [
        {"early": early, "paths": ["/", "/close"]} for early in (False, tls13, tls13)
    ]
    assert result["replay"] == []
    assert httpx_["early"] == [False, tls13, tls13]
    assert httpx_["seen"] == [
        {"early": early, "paths": [f"/httpx/{n}"]} for n, early in enumerate((False, tls13, tls13))
    ]
