"""``resume probe`` and :func:`resume.probe` against real servers, TLS 1.2 and 1.3.

Servers: nginx in each resumption configuration (tests/nginx_server.py), a fleet of
two nginx backends on 127.0.0.2 and 127.0.0.3 (one name, resolved by --resolve),
``openssl s_server`` with -no_ticket and -num_tickets 0, and ``resume serve``.
Every verdict must match the configuration. The verdict rules themselves are
also checked without I/O, on hand-made results.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from nginx_server import NginxServer, NginxSite, free_port, nginx_binary
from programs import require

import resume
from resume._cli import main
from resume._cli.probe import parse_host_port
from resume._probe.model import (
    FleetMatrix,
    ResumptionTally,
    VersionProbe,
    fleet_plan,
    judge_fleet,
)
from resume._probe.run import parse_resolve

ATTEMPTS = "2"


def probe_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """Run ``resume probe ARGV --json`` in-process; return (status, document, stderr)."""
    status = main(["probe", *argv, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, json.loads(out), err


def by_version(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["version"]: v for v in doc["versions"]}


def tally(entry: dict[str, Any] | None) -> tuple[int, int] | None:
    return None if entry is None else (entry["resumed"], entry["attempts"])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


# ---------------------------------------------------------------- nginx configurations

#: name -> (site options, expected per version, expected exit status).
#: Expected: (TLS 1.2 session IDs, TLS 1.2 tickets, TLS 1.3 PSK, TLS 1.2 verdict,
#: TLS 1.3 verdict); None where the series could not start (nothing to offer).
CONFIGS: dict[str, tuple[dict[str, Any], tuple[Any, ...], int]] = {
    "cache-and-tickets": ({}, ((2, 2), (2, 2), (2, 2), "works", "works"), 0),
    "cache-only": (
        {"session_tickets": False}, ((2, 2), (0, 0), (2, 2), "works", "works"), 0,
    ),
    "tickets-only": (
        {"session_cache": "none"}, ((0, 2), (2, 2), (2, 2), "works", "works"), 0,
    ),
    # nginx still sends TLS 1.3 tickets here, but accepts none of them.
    "neither": (
        {"session_cache": "off", "session_tickets": False},
        ((0, 0), (0, 0), (0, 2), "none", "none"),
        1,
    ),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def nginx_config(
    request: pytest.FixtureRequest, ca: trustme.CA
) -> Iterator[tuple[str, NginxServer]]:
    nginx_binary()
    options = CONFIGS[request.param][0]
    with NginxServer(ca, [NginxSite(session_timeout=240, **options)]) as server:
        yield request.param, server


def test_nginx_verdicts_match_configuration(
    capsys: pytest.CaptureFixture[str], nginx_config: tuple[str, NginxServer]
) -> None:
    """Each nginx resumption configuration gets the counts and verdicts it deserves."""
    name, server = nginx_config
    _, expected, status_expected = CONFIGS[name]
    ids, tickets, psk, verdict12, verdict13 = expected
    status, doc, _ = probe_cli(
        capsys, f"localhost:{server.port()}", "--cafile", str(server.ca_file),
        "--attempts", ATTEMPTS,
    )
    assert doc["schema"] == "resume-probe/1"
    versions = by_version(doc)
    v12, v13 = versions["1.2"], versions["1.3"]
    assert (v12["protocol"], v13["protocol"]) == ("TLSv1.2", "TLSv1.3")
    assert v12["certificate"] == {"verified": True, "reason": "verified for localhost"}
    assert tally(v12["session_id"]) == ids
    assert tally(v12["ticket"]) == tickets
    assert tally(v13["ticket"]) == psk
    assert (v12["verdict"], v13["verdict"]) == (verdict12, verdict13)
    assert v13["session_id"] is None
    # nginx sends one TLS 1.2 ticket when tickets are on, and two TLS 1.3 tickets always.
    assert v12["tickets_per_handshake"] == (1 if tickets[1] else 0)
    assert v13["tickets_per_handshake"] == 2
    assert v13["ticket_lifetime_hint"] == 240  # ssl_session_timeout
    assert v12["ticket_lifetime_hint"] == (240 if tickets[1] else None)
    assert v13["ticket_reuse_accepted"] is (None if psk[0] == 0 else True)
    assert status == doc["exit_status"] == status_expected
    assert doc["verdict"] == ("works" if status_expected == 0 else "none")
    for v in (v12, v13):
        assert v["handshake_ms"]["full"] > 0
        assert (v["handshake_ms"]["resumed"] is None) == (v["verdict"] == "none")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_option_probes_one_version(
    capsys: pytest.CaptureFixture[str], ca: trustme.CA, version: str
) -> None:
    """--tls probes only the version asked for, and the human table says so."""
    with NginxServer(ca, [NginxSite()]) as server:
        status = main([
            "probe", f"localhost:{server.port()}", "--cafile", str(server.ca_file),
            "--tls", version, "--attempts", ATTEMPTS,
        ])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert re.search(rf"^TLS {version}: resumes \(", out, re.M)
    other = "1.3" if version == "1.2" else "1.2"
    assert f"TLS {other}" not in out
    assert out.rstrip().endswith("verdict: works")


def test_tls13_only_server(capsys: pytest.CaptureFixture[str], ca: trustme.CA) -> None:
    """A TLS 1.3-only server: 1.2 is "not spoken", and that does not fail the verdict."""
    with NginxServer(ca, [NginxSite(protocols=("TLSv1.3",))]) as server:
        status, doc, _ = probe_cli(
            capsys, f"localhost:{server.port()}", "--cafile", str(server.ca_file),
            "--attempts", ATTEMPTS,
        )
    v12, v13 = by_version(doc)["1.2"], by_version(doc)["1.3"]
    assert v12["supported"] is False and v12["verdict"] == "unsupported" and v12["error"]
    assert v13["verdict"] == "works"
    assert status == 0


def test_tls12_only_server_without_resumption(
    capsys: pytest.CaptureFixture[str], ca: trustme.CA
) -> None:
    """A TLS 1.2-only server with neither cache nor tickets: "none", exit 1."""
    with NginxServer(
        ca, [NginxSite(protocols=("TLSv1.2",), session_cache="off", session_tickets=False)]
    ) as server:
        status, doc, _ = probe_cli(
            capsys, f"localhost:{server.port()}", "--cafile", str(server.ca_file),
            "--attempts", ATTEMPTS,
        )
    assert by_version(doc)["1.2"]["verdict"] == "none"
    assert by_version(doc)["1.3"]["supported"] is False
    assert (status, doc["verdict"]) == (1, "none")


# ---------------------------------------------------------------- a fleet of two backends


@pytest.fixture(scope="module", params=["shared-key", "own-keys"])
def fleet(
    request: pytest.FixtureRequest, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[bool, int, NginxServer]]:
    """Two nginx backends on 127.0.0.2 and 127.0.0.3, one port, one certificate.

    A session cache cannot be shared between nginx instances (it is one nginx's
    shared memory); a fleet shares ``ssl_session_ticket_key`` instead.
    """
    nginx_binary()
    shared = request.param == "shared-key"
    key_file = tmp_path_factory.mktemp("fleet") / "ticket.key"
    key_file.write_bytes(os.urandom(80))
    key_file.chmod(0o600)
    leaf = ca.issue_cert("fleet.test")
    port = free_port(["127.0.0.2", "127.0.0.3"])
    backends = [
        NginxServer(ca, [NginxSite(
            server_names=("fleet.test",), addresses=(address,), port=port,
            certificate=leaf, ticket_key_file=key_file if shared else None,
        )])
        for address in ("127.0.0.2", "127.0.0.3")
    ]
    with backends[0], backends[1]:
        yield shared, port, backends[0]


def test_fleet_matrix(
    capsys: pytest.CaptureFixture[str], fleet: tuple[bool, int, NginxServer]
) -> None:
    """The shared-key fleet resumes across backends (TLS 1.2 tickets, TLS 1.3), the other not."""
    shared, port, backend = fleet
    status, doc, _ = probe_cli(
        capsys, f"fleet.test:{port}", "--cafile", str(backend.ca_file),
        "--resolve", "fleet.test:127.0.0.2,127.0.0.3", "--all-addresses", "--attempts", ATTEMPTS,
    )
    assert doc["target"]["addresses"] == ["127.0.0.2", "127.0.0.3"]
    matrices = {(m["version"], m["mechanism"]): m for m in doc["fleet"]}
    assert set(matrices) == {("1.2", "ticket"), ("1.2", "session-id"), ("1.3", "psk")}

    def grid(key: tuple[str, str]) -> list[list[tuple[int, int] | None]]:
        return [[tally(c) for c in row] for row in matrices[key]["cells"]]

    across = (2, 2) if shared else (0, 2)
    for key in (("1.2", "ticket"), ("1.3", "psk")):
        assert grid(key) == [[(2, 2), across], [across, (2, 2)]], key
    # Session IDs live in each backend's own cache: never across.
    assert grid(("1.2", "session-id")) == [[(2, 2), (0, 2)], [(0, 2), (2, 2)]]
    # Each backend on its own resumes fine either way.
    assert {v["verdict"] for v in doc["versions"]} == {"works"}
    expected = "works" if shared else "partial"
    assert doc["fleet_verdicts"] == {"1.2": expected, "1.3": expected}
    assert (status, doc["verdict"]) == ((0, "works") if shared else (1, "partial"))


def test_fleet_human_output(
    capsys: pytest.CaptureFixture[str], fleet: tuple[bool, int, NginxServer]
) -> None:
    """The human report prints one matrix per mechanism, rows "made on", columns "resumed on"."""
    shared, port, backend = fleet
    main([
        "probe", f"fleet.test:{port}", "--cafile", str(backend.ca_file), "--tls", "1.3",
        "--resolve", "fleet.test:127.0.0.2,127.0.0.3", "--all-addresses", "--attempts", "1",
    ])
    out = capsys.readouterr().out
    cell = "1/1" if shared else "0/1"
    assert re.search(rf"^  127\.0\.0\.2\s+1/1\s+{cell}$", out, re.M), out
    assert re.search(rf"^  127\.0\.0\.3\s+{cell}\s+1/1$", out, re.M), out
    assert f"fleet, TLS 1.3: {'works' if shared else 'partial'}" in out


# ---------------------------------------------------------------- many addresses: the plan's size

#: The addresses of the wide fleet: one nginx listening on all of them.
WIDE = tuple(f"127.0.0.{i}" for i in range(2, 10))


def nginx_accepts(server: NginxServer, site: int) -> int:
    """nginx's count of accepted connections (stub_status on *site*), this request included."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection(("127.0.0.1", server.port(site)), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="fleet.test") as tls:
        tls.sendall(b"GET /status HTTP/1.0\r\nHost: fleet.test\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    match = re.search(rb"server accepts handled requests\s+(\d+) ", reply)
    assert match, reply
    return int(match.group(1))


@pytest.fixture(scope="module")
def wide_fleet(ca: trustme.CA) -> Iterator[tuple[int, NginxServer]]:
    """One nginx on the 8 addresses of WIDE (one cache, one ticket key: every cell resumes),
    and a site on 127.0.0.1 whose stub_status counts the connections nginx accepted."""
    nginx_binary()
    leaf = ca.issue_cert("fleet.test", "127.0.0.1")
    port = free_port(list(WIDE))
    status = "location = /status { stub_status; }"
    sites = [
        NginxSite(server_names=("fleet.test",), addresses=WIDE, port=port, certificate=leaf),
        NginxSite(server_names=("fleet.test",), certificate=leaf, extra=status),
    ]
    with NginxServer(ca, sites) as server:
        yield port, server


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_fleet_connections_grow_linearly(
    capsys: pytest.CaptureFixture[str], wide_fleet: tuple[int, NginxServer], version: str
) -> None:
    """--all-addresses on N addresses, --attempts 1, makes at most 6 connections per address
    and mechanism (a star of 3N - 2 cells, two connections a try), counted by the server;
    every pair was 18 * N**2 connections (15 addresses: 4,081 connections, 80 s)."""
    port, server = wide_fleet
    n = len(WIDE)
    before = nginx_accepts(server, 1)
    status, doc, _ = probe_cli(
        capsys, f"fleet.test:{port}", "--cafile", str(server.ca_file), "--tls", version,
        "--resolve", "fleet.test:" + ",".join(WIDE), "--all-addresses", "--attempts", "1",
    )
    connections = nginx_accepts(server, 1) - before - 1
    mechanisms = 2 if version == "1.2" else 1
    # 2 for the preflight and at most 5 for the per-version series (attempts 1).
    assert connections <= 2 + 5 + mechanisms * 6 * n, connections
    assert (status, doc["verdict"]) == (0, "works")
    assert len(doc["fleet"]) == mechanisms
    for matrix in doc["fleet"]:
        assert matrix["reference"] == WIDE[0]
        probed = {
            (i, j) for i, row in enumerate(matrix["cells"]) for j, cell in enumerate(row)
            if cell["note"] != "not probed"
        }
        assert probed == set(fleet_plan(n))
        assert len(probed) == 3 * n - 2
        for i, j in probed:
            assert tally(matrix["cells"][i][j]) == (1, 1), (i, j)


def test_more_addresses_than_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    """17 addresses with --all-addresses: exit 2 before any connection; --max-addresses 17
    lets the probe start (here it then finds nobody listening)."""
    port = free_port(["127.0.0.1"])
    addresses = ",".join(f"127.0.0.{i}" for i in range(2, 19))
    argv = [f"fleet.test:{port}", "--resolve", f"fleet.test:{addresses}", "--all-addresses"]
    err = one_line_error(capsys, argv)
    assert err == (
        "resume probe: fleet.test has 17 addresses, more than max_addresses (16) allows with "
        "all_addresses: raise it (--max-addresses N) or name fewer (--resolve NAME:ADDR,...)\n"
    )
    err = one_line_error(capsys, [*argv, "--max-addresses", "17"])
    assert f"cannot connect to fleet.test:{port} (127.0.0.2): connection refused" in err
    # Without --all-addresses only the first address is probed: no cap applies.
    err = one_line_error(capsys, argv[:-1])
    assert "cannot connect" in err


@pytest.fixture(scope="module")
def odd_fleet(
    ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path]]:
    """Three nginx backends on 127.0.0.2-4: the first two share a ticket key, the third not."""
    nginx_binary()
    key_file = tmp_path_factory.mktemp("odd-fleet") / "ticket.key"
    key_file.write_bytes(os.urandom(80))
    key_file.chmod(0o600)
    leaf = ca.issue_cert("fleet.test")
    addresses = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    port = free_port(list(addresses))
    backends = [
        NginxServer(ca, [NginxSite(
            server_names=("fleet.test",), addresses=(address,), port=port, certificate=leaf,
            ticket_key_file=key_file if address != "127.0.0.4" else None,
        )])
        for address in addresses
    ]
    with backends[0], backends[1], backends[2]:
        yield port, backends[0].ca_file


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_star_names_the_backend_that_does_not_share(
    capsys: pytest.CaptureFixture[str], odd_fleet: tuple[int, Path], version: str
) -> None:
    """Three backends, the third with its own ticket key: the star around the first shows
    the first two resuming each other and the third resuming only its own sessions."""
    port, ca_file = odd_fleet
    status, doc, _ = probe_cli(
        capsys, f"fleet.test:{port}", "--cafile", str(ca_file), "--tls", version,
        "--resolve", "fleet.test:127.0.0.2,127.0.0.3,127.0.0.4", "--all-addresses",
        "--attempts", "1",
    )
    mechanism = "ticket" if version == "1.2" else "psk"
    (matrix,) = [m for m in doc["fleet"] if m["mechanism"] == mechanism]
    cells = [[tally(c) for c in row] for row in matrix["cells"]]
    assert cells == [
        [(1, 1), (1, 1), (0, 1)],
        [(1, 1), (1, 1), (0, 0)],
        [(0, 1), (0, 0), (1, 1)],
    ]
    assert matrix["cells"][1][2]["note"] == matrix["cells"][2][1]["note"] == "not probed"
    assert doc["fleet_verdicts"] == {version: "partial"}
    assert status == 1
    main([
        "probe", f"fleet.test:{port}", "--cafile", str(ca_file), "--tls", version,
        "--resolve", "fleet.test:127.0.0.2,127.0.0.3,127.0.0.4", "--all-addresses",
        "--attempts", "1",
    ])
    out = capsys.readouterr().out
    assert re.search(r"^  127\.0\.0\.3\s+1/1\s+1/1\s+-$", out, re.M), out
    assert re.search(r"^  127\.0\.0\.4\s+0/1\s+-\s+1/1$", out, re.M), out
    assert "(-: not probed; each address was tried with 127.0.0.2, both ways" in out


# ---------------------------------------------------------------- openssl s_server, resume serve


class OpenSSLServer:
    def __init__(self, directory: Path, ca: trustme.CA, *extra: str) -> None:
        cert = ca.issue_cert("localhost", "127.0.0.1")
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"
        self.ca_file = directory / "ca.pem"
        cert.cert_chain_pems[0].write_to_path(str(self.cert))
        cert.private_key_pem.write_to_path(str(self.key))
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.port = free_port(["127.0.0.1"])
        self.proc = subprocess.Popen(
            [require("openssl"), "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert",
             str(self.cert), "-key", str(self.key), "-www", "-quiet", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("openssl s_server exited") from None
                threading.Event().wait(0.02)
        raise RuntimeError("openssl s_server does not listen")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        # -no_ticket: TLS 1.2 resumes by session ID only; TLS 1.3 uses stateful
        # tickets (kept in s_server's cache), which still resume.
        ("-no_ticket", {"1.2": ((2, 2), (0, 0), 0), "1.3": ((2, 2), 2)}),
        # -num_tickets 0: no TLS 1.3 ticket, so nothing to resume with; TLS 1.2 is untouched.
        ("-num_tickets 0", {"1.2": ((2, 2), (2, 2), 1), "1.3": ((0, 0), 0)}),
    ],
)
def test_openssl_s_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ca: trustme.CA, flag: str,
    expected: dict[str, Any],
) -> None:
    """openssl s_server -no_ticket and -num_tickets 0 get the verdicts they deserve."""
    server = OpenSSLServer(tmp_path, ca, *flag.split())
    try:
        status, doc, _ = probe_cli(
            capsys, f"localhost:{server.port}", "--cafile", str(server.ca_file),
            "--attempts", ATTEMPTS,
        )
    finally:
        server.close()
    v12, v13 = by_version(doc)["1.2"], by_version(doc)["1.3"]
    ids, tickets, sent12 = expected["1.2"]
    psk, sent13 = expected["1.3"]
    assert (tally(v12["session_id"]), tally(v12["ticket"])) == (ids, tickets)
    assert v12["tickets_per_handshake"] == sent12
    assert (tally(v13["ticket"]), v13["tickets_per_handshake"]) == (psk, sent13)
    assert v12["verdict"] == "works"
    assert v13["verdict"] == ("works" if psk[0] else "none")
    assert status == (0 if psk[0] else 1)
    if not psk[0]:
        assert v13["ticket"]["note"] == "server sent no ticket"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resume_serve(capsys: pytest.CaptureFixture[str], ca: trustme.CA, tmp_path: Path,
                      version: str) -> None:
    """``resume serve`` resumes on TLS 1.2 (tickets and IDs) and TLS 1.3 (PSK)."""
    server = OpenSSLServer(tmp_path, ca)  # only for its files
    server.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resume", "serve", "--port", "0", "--cert", str(server.cert),
         "--key", str(server.key), "--tls", version],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stderr is not None
        found = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", proc.stderr.readline())
        assert found
        status, doc, _ = probe_cli(
            capsys, f"127.0.0.1:{found.group(1)}", "--server-name", "localhost",
            "--cafile", str(server.ca_file), "--tls", version, "--attempts", ATTEMPTS,
        )
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    v = by_version(doc)[version]
    assert v["verdict"] == "works"
    assert tally(v["ticket"]) == (2, 2)
    if version == "1.2":
        assert tally(v["session_id"]) == (2, 2)
    else:
        assert v["tickets_per_handshake"] == 2
    assert status == 0


# ---------------------------------------------------------------- the library call


@pytest.mark.requires("nginx")
async def test_probe_from_trio(ca: trustme.CA) -> None:
    """resume.probe runs under trio and returns the result objects."""
    with NginxServer(ca, [NginxSite()]) as server:
        result = await resume.probe(
            "localhost", server.port(), cafile=server.ca_file, attempts=1, versions=["1.3"]
        )
    assert isinstance(result, resume.ProbeResult)
    (v13,) = result.versions
    assert isinstance(v13, resume.VersionProbe)
    assert v13.ticket == resume.ResumptionTally(1, 1)
    assert (result.verdict, result.exit_status) == ("works", 0)


def test_probe_from_asyncio(ca: trustme.CA) -> None:
    """resume.probe runs under asyncio too, and raises ProbeError when it cannot run."""
    with NginxServer(ca, [NginxSite()]) as server:
        result = asyncio.run(resume.probe(
            "localhost", server.port(), cafile=server.ca_file, attempts=1, versions=["1.2"]
        ))
        assert result.versions[0].verdict == "works"
        with pytest.raises(resume.ProbeError, match="does not verify"):
            asyncio.run(resume.probe("localhost", server.port(), attempts=1))


async def test_probe_cancelled_stops_the_worker() -> None:
    """A cancelled probe returns at once; its worker stops before its next connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts TCP, never answers TLS: each connection waits the timeout
    try:
        with trio.move_on_after(0.2) as scope:
            await resume.probe("127.0.0.1", listener.getsockname()[1], timeout=5)
        assert scope.cancelled_caught
    finally:
        listener.close()


# ---------------------------------------------------------------- probes that cannot run


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A plain TCP echo server (not TLS) on loopback."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join(timeout=5)
    listener.close()


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    status = main(["probe", *argv])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("resume probe: ")
    return err


def test_unknown_host(capsys: pytest.CaptureFixture[str]) -> None:
    """A name that does not resolve: exit 2, one line."""
    err = one_line_error(capsys, ["no-such-host.invalid:443"])
    assert "cannot resolve 'no-such-host.invalid'" in err


def test_refused_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A port nobody listens on: exit 2, one line."""
    port = free_port(["127.0.0.1"])
    err = one_line_error(capsys, [f"127.0.0.1:{port}"])
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in err


def test_not_tls(capsys: pytest.CaptureFixture[str], echo_server: int) -> None:
    """A plain TCP echo server: exit 2, "no TLS handshake"."""
    err = one_line_error(capsys, [f"127.0.0.1:{echo_server}", "--timeout", "2"])
    assert "no TLS handshake with 127.0.0.1" in err


def test_verification_failure_and_insecure(
    capsys: pytest.CaptureFixture[str], ca: trustme.CA
) -> None:
    """An untrusted certificate stops the probe; with --insecure it goes on and says why."""
    with NginxServer(ca, [NginxSite()]) as server:
        target = f"localhost:{server.port()}"
        err = one_line_error(capsys, [target])
        assert "does not verify: " in err and "--insecure" in err
        wrong_name = one_line_error(
            capsys, [target, "--cafile", str(server.ca_file), "--server-name", "other.test"]
        )
        assert "does not verify: Hostname mismatch" in wrong_name
        status, doc, _ = probe_cli(capsys, target, "--insecure", "--attempts", "1")
    for v in doc["versions"]:
        assert v["certificate"]["verified"] is False
        assert "certificate" in v["certificate"]["reason"]
        assert v["verdict"] == "works"
    assert status == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["localhost:443", "--attempts", "0"], "attempts must be 1-100"),
        (["localhost:443", "--attempts", "101"], "attempts must be 1-100"),
        (["localhost:443", "--timeout", "0"], "timeout must be more than 0"),
        (["localhost:99999"], "the port must be a number from 1 to 65535, got '99999'"),
        (["localhost:\uff11\uff18\uff14\uff14\uff13"],
         "the port must be a number from 1 to 65535, got '\uff11\uff18\uff14\uff14\uff13'"),
        (["[::1]:\u0664\u0664\u0663"], "the port must be a number from 1 to 65535"),
        (["localhost:+443"], "the port must be a number from 1 to 65535"),
        (["localhost", "--all-addresses", "--max-addresses", "0"], "max_addresses must be 1-256"),
        (["localhost", "--all-addresses", "--max-addresses", "257"],
         "max_addresses must be 1-256"),
        ([":443"], "no host"),
        (["localhost", "--resolve", "localhost"], "--resolve takes NAME:ADDR"),
        (["localhost", "--resolve", "localhost:not-an-ip"], "is not an IP address"),
        (
            ["localhost", "--cafile", "/nonexistent/ca.pem"],
            "--cafile /nonexistent/ca.pem: no such file",
        ),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Bad arguments: exit 2 with one line, before any connection."""
    assert message in one_line_error(capsys, argv)


@pytest.mark.parametrize("option", ["--attempts", "--max-addresses"])
def test_numbers_in_ascii_digits_only(capsys: pytest.CaptureFixture[str], option: str) -> None:
    """--attempts and --max-addresses in full-width digits: a usage error (int() took them)."""
    with pytest.raises(SystemExit) as exc:
        main(["probe", "localhost", option, "\uff15"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"argument {option}: expected a whole number, got '\uff15'" in err


def test_bad_arguments_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With --json, a probe that cannot run also prints a JSON document with the reason."""
    status = main(["probe", "localhost", "--attempts", "0", "--json"])
    out, err = capsys.readouterr()
    assert status == 2 and err.startswith("resume probe: attempts")
    doc = json.loads(out)
    assert doc == {"schema": "resume-probe/1", "error": err[len("resume probe: "):-1],
                   "exit_status": 2}


def test_cafile_and_insecure_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    """--cafile and --insecure together are a usage error (argparse, exit 2)."""
    with pytest.raises(SystemExit) as exc:
        main(["probe", "localhost", "--cafile", "ca.pem", "--insecure"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ---------------------------------------------------------------- I/O-free parts


class TestParsing:
    def test_host_port(self) -> None:
        """HOST, HOST:PORT, [V6]:PORT and a bare IPv6 address all parse; 443 is the default."""
        assert parse_host_port("example.org") == ("example.org", 443)
        assert parse_host_port("example.org:8443") == ("example.org", 8443)
        assert parse_host_port("[::1]:8443") == ("::1", 8443)
        assert parse_host_port("[::1]") == ("::1", 443)
        assert parse_host_port("::1") == ("::1", 443)
        with pytest.raises(ValueError, match="port"):
            parse_host_port("example.org:0")

    def test_resolve(self) -> None:
        """--resolve takes NAME:ADDR[,ADDR], IPv6 in brackets."""
        assert parse_resolve("a.test:127.0.0.2,[::1]") == ("a.test", ("127.0.0.2", "::1"))
        with pytest.raises(resume.ProbeError):
            parse_resolve("a.test:")


def _v(version: str, **kw: Any) -> VersionProbe:
    return VersionProbe(version=version, supported=True, **kw)


T = ResumptionTally


class TestVerdicts:
    def test_tls12_tickets_decide_when_sent(self) -> None:
        """TLS 1.2: sent tickets that do not resume fail it, whatever session IDs do."""
        assert _v("1.2", ticket=T(3, 3), session_id=T(0, 3)).verdict == "works"
        assert _v("1.2", ticket=T(0, 3), session_id=T(3, 3)).verdict == "partial"
        assert _v("1.2", ticket=T(0, 0, "no ticket"), session_id=T(3, 3)).verdict == "works"
        assert _v("1.2", ticket=T(0, 0), session_id=T(0, 0)).verdict == "none"

    def test_tls13_all_or_partial(self) -> None:
        """TLS 1.3: every PSK attempt must resume; some is partial; none or no ticket is none."""
        assert _v("1.3", ticket=T(3, 3)).verdict == "works"
        assert _v("1.3", ticket=T(1, 3)).verdict == "partial"
        assert _v("1.3", ticket=T(0, 0)).verdict == "none"

    def test_overall_verdict_ignores_unspoken_versions(self) -> None:
        """Exit 0 needs every spoken version to work; a version not spoken does not count."""
        unspoken = VersionProbe(version="1.2", supported=False, error="protocol version")
        result = resume.ProbeResult(
            "h", 1, "h", "127.0.0.1", ("127.0.0.1",), (unspoken, _v("1.3", ticket=T(2, 2)))
        )
        assert (result.verdict, result.exit_status) == ("works", 0)
        assert "TLS 1.2: not spoken by the server (protocol version)" in result.render()

    def test_fleet(self) -> None:
        """A fleet works only when every cell does; one resuming cell makes it partial."""
        good, bad = T(2, 2), T(0, 2)
        ok = FleetMatrix("1.3", "psk", ("a", "b"), ((good, good), (good, good)))
        split = FleetMatrix("1.3", "psk", ("a", "b"), ((good, bad), (bad, good)))
        assert judge_fleet([ok], "1.3") == "works"
        assert judge_fleet([split], "1.3") == "partial"
        result = resume.ProbeResult(
            "h", 1, "h", "a", ("a", "b"), (_v("1.3", ticket=good),), fleet=(split,)
        )
        assert (result.verdict, result.exit_status) == ("partial", 1)

    def test_star_plan(self) -> None:
        """The plan: the diagonal, then each other address from and to the first; 3N - 2 cells."""
        assert fleet_plan(1) == [(0, 0)]
        assert sorted(fleet_plan(2)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert fleet_plan(3) == [(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (0, 2), (2, 0)]
        for n in (1, 2, 5, 16, 256):
            plan = fleet_plan(n)
            assert len(plan) == len(set(plan)) == 3 * n - 2

    def test_cells_outside_the_plan_do_not_count(self) -> None:
        """A star matrix works when its probed cells do; the others are shown as '-'."""
        good, skip = T(1, 1), T(0, 0, "not probed")
        cells = ((good, good, good), (good, good, skip), (good, skip, good))
        star = FleetMatrix("1.3", "psk", ("a", "b", "c"), cells, reference="a")
        assert star.works and judge_fleet([star], "1.3") == "works"
        assert not star.probed(1, 2) and star.probed(2, 2) and star.probed(2, 0)
        assert star.as_json()["reference"] == "a"
        # Without a reference every cell was probed, so the same cells fail it.
        assert not FleetMatrix("1.3", "psk", ("a", "b", "c"), cells).works
        result = resume.ProbeResult(
            "h", 1, "h", "a", ("a", "b", "c"), (_v("1.3", ticket=good),), fleet=(star,)
        )
        assert "  b  1/1  1/1  -" in result.render()

    def test_json_document_keys(self) -> None:
        """The JSON document has the documented top-level and per-version keys."""
        result = resume.ProbeResult(
            "h", 1, "h", "a", ("a",), (_v("1.3", ticket=T(2, 2), full_handshake_ms=2.0,
                                          resumed_handshake_ms=0.5),),
        )
        doc = result.as_json()
        assert set(doc) == {"schema", "target", "versions", "fleet", "fleet_verdicts",
                            "verdict", "exit_status", "seconds", "error"}
        (v,) = doc["versions"]
        assert set(v) == {
            "version", "supported", "error", "protocol", "cipher", "certificate",
            "session_id", "ticket", "tickets_per_handshake", "ticket_reuse_accepted",
            "ticket_lifetime_hint", "client_session_timeout", "handshake_ms", "verdict",
            "summary", "advice", "tickets_after_resumption",
        }
        assert v["handshake_ms"] == {"full": 2.0, "resumed": 0.5, "saved": 1.5,
                                     "saved_percent": 75.0}
        json.dumps(doc)


# ---------------------------------------------------------------- the nginx fixture itself


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_nginx_fixture_logs_session_reuse(ca: trustme.CA, version: str) -> None:
    """The fixture's JSON access log carries $ssl_session_reused, SNI and the TLS version."""
    site = NginxSite(server_names=("a.test", "b.test"))
    with NginxServer(ca, [site, NginxSite(server_names=("c.test",))]) as server:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        context.minimum_version = context.maximum_version = (
            ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
        )
        session = None
        for name, port in (("a.test", server.port(0)), ("a.test", server.port(0)),
                           ("c.test", server.port(1))):
            with socket.create_connection(("127.0.0.1", port)) as sock, context.wrap_socket(
                sock, server_hostname=name, session=session if name == "a.test" else None
            ) as tls:
                tls.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
                reply = b""
                while chunk := tls.recv(4096):
                    reply += chunk
                session = tls.session
            assert reply.endswith(b"hello\n")
        log = server.access_log()
    assert [(e["sni"], e["reused"], e["status"]) for e in log] == [
        ("a.test", ".", "200"), ("a.test", "r", "200"), ("c.test", ".", "200"),
    ]
    assert {e["protocol"] for e in log} == {f"TLSv{version}"}
    assert server.port(0) != server.port(1)


def test_without_the_ticket_counter(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the private message-callback hook the probe still works; the counts are unknown."""
    from resume._probe import run as _probe_io

    monkeypatch.setattr(_probe_io, "_install_ticket_counter", lambda context: None)
    with NginxServer(ca, [NginxSite()]) as server:
        result = _probe_io.run_probe(_probe_io.ProbeOptions(
            "localhost", server.port(), cafile=server.ca_file, attempts=1, ticket_wait=0.2,
        ))
    for v in result.versions:
        assert v.tickets_per_handshake is None
        assert v.verdict == "works"
    assert "tickets per handshake  -" in result.render()


class TestPredictsOurClients:
    """Issue 15: the TLS 1.3 chain is what resume's clients get by default."""

    def test_node_is_partial_with_the_remedy(
        self, capsys: pytest.CaptureFixture[str], ca: trustme.CA
    ) -> None:
        """Node.js sends tickets only after full handshakes: partial, and reuse would help."""
        from node_server import NodeServer, node_binary

        node_binary()
        with NodeServer(ca) as server:
            status, doc, _ = probe_cli(
                capsys, f"localhost:{server.port}", "--cafile", str(server.ca_file),
                "--tls", "1.3", "--attempts", "6",
            )
        v13 = by_version(doc)["1.3"]
        assert v13["verdict"] == "partial", v13
        assert tally(v13["ticket"]) == (4, 6)  # r r F r r F: two tickets per full handshake
        assert v13["tickets_after_resumption"] == 0
        assert v13["ticket_reuse_accepted"] is True
        assert "tls13_ticket_reuse=True" in v13["advice"]
        assert status == 1

    def test_nginx_works(self, capsys: pytest.CaptureFixture[str], ca: trustme.CA) -> None:
        """nginx sends a ticket after every handshake: the whole chain resumes."""
        nginx_binary()
        with NginxServer(ca, [NginxSite()]) as server:
            status, doc, _ = probe_cli(
                capsys, f"localhost:{server.port()}", "--cafile", str(server.ca_file),
                "--tls", "1.3", "--attempts", "6",
            )
        v13 = by_version(doc)["1.3"]
        assert v13["verdict"] == "works" and tally(v13["ticket"]) == (6, 6)
        assert v13["advice"] is None
        assert status == 0

    def test_an_unspoken_version_is_a_verdict_not_an_error(
        self, capsys: pytest.CaptureFixture[str], ca: trustme.CA
    ) -> None:
        """--tls 1.3 against a TLS 1.2-only server: "not spoken", exit 1 (not 2)."""
        nginx_binary()
        with NginxServer(ca, [NginxSite(protocols=("TLSv1.2",))]) as server:
            status, doc, _ = probe_cli(
                capsys, f"localhost:{server.port()}", "--cafile", str(server.ca_file),
                "--tls", "1.3",
            )
        v13 = by_version(doc)["1.3"]
        assert v13["supported"] is False
        assert "not spoken" in v13["summary"]
        assert status == 1
