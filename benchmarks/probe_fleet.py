"""How long ``resume probe --all-addresses`` takes, and how many connections it makes,
against one nginx listening on N loopback addresses (127.0.0.2 and up).

One nginx, one certificate, one session cache and ticket key: every cell of the
fleet matrix resumes. A second site on 127.0.0.1 serves nginx's ``stub_status``,
whose "accepts" counter, read before and after, gives the connections the probe
made (the read itself is one of them, and is subtracted).

Run: ``python -m benchmarks.probe_fleet [N ...]`` (default 15), extra arguments
after ``--`` go to ``resume probe``. The probe runs as a subprocess, as an
operator runs it; its wall time includes the interpreter's start.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nginx_server import NginxServer, NginxSite, free_port


def _accepts(server: NginxServer) -> int:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection(("127.0.0.1", server.port(1)), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="fleet.test") as tls:
        tls.sendall(b"GET /status HTTP/1.0\r\nHost: fleet.test\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    match = re.search(rb"server accepts handled requests\s+(\d+) ", reply)
    if match is None:
        raise RuntimeError(f"no stub_status in {reply[:200]!r}")
    return int(match.group(1))


def run(count: int, extra: list[str]) -> None:
    addresses = tuple(f"127.0.0.{i}" for i in range(2, count + 2))
    ca = trustme.CA()
    leaf = ca.issue_cert("fleet.test", "127.0.0.1")
    port = free_port(list(addresses))
    sites = [
        NginxSite(server_names=("fleet.test",), addresses=addresses, port=port, certificate=leaf),
        NginxSite(server_names=("fleet.test",), certificate=leaf,
                  extra="location = /status { stub_status; }"),
    ]
    with NginxServer(ca, sites) as server:
        before = _accepts(server)
        command = [
            sys.executable, "-m", "resume", "probe", f"fleet.test:{port}",
            "--cafile", str(server.ca_file), "--resolve", "fleet.test:" + ",".join(addresses),
            "--all-addresses", "--json", *extra,
        ]
        if count > 16:  # the default limit
            command[-2:-2] = ["--max-addresses", str(count)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        connections = _accepts(server) - before - 1
    verdict = json.loads(done.stdout)["verdict"] if done.returncode in (0, 1) else done.stderr
    print(f"{count:3} addresses: {seconds:6.1f} s, {connections:5} connections, "
          f"exit {done.returncode}, verdict {verdict}", flush=True)


def main(argv: list[str]) -> None:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    counts = [int(a) for a in (argv[: argv.index("--")] if "--" in argv else argv)] or [15]
    for count in counts:
        run(count, extra)


if __name__ == "__main__":
    main(sys.argv[1:])
