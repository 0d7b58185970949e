"""``resume probe`` beside sslyze's resumption check, on the same servers, with timings.

Starts each server configuration of the probe's tests (nginx with cache and tickets,
cache only, tickets only, neither, TLS 1.3 only; a two-backend nginx fleet with and
without a shared ``ssl_session_ticket_key``; ``openssl s_server -no_ticket`` and
``-num_tickets 0``), runs ``resume probe --json`` and ``sslyze --resum --json_out=-``
against each (both as subprocesses, as an operator runs them, both with the same
number of attempts), and prints what each found and how long each took.

sslyze is not a dependency of resume: install it in your own virtualenv
(``pip install sslyze``). Run: ``python -m benchmarks.compare_sslyze [--attempts=N]``.

sslyze has no notion of a fleet: it is pointed at one backend (``HOST:PORT{IP}``),
so its fleet rows are per-backend results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nginx_server import NginxServer, NginxSite, free_port


@dataclass
class Target:
    name: str
    host: str
    port: int
    ca_file: Path
    resolve: str | None = None  # NAME:ADDR,ADDR for the probe
    sslyze_ip: str | None = None


@contextmanager
def nginx(ca: trustme.CA, name: str, **options: Any) -> Iterator[Target]:
    with NginxServer(ca, [NginxSite(**options)]) as server:
        yield Target(name, "localhost", server.port(), server.ca_file)


@contextmanager
def fleet(ca: trustme.CA, name: str, shared: bool) -> Iterator[Target]:
    directory = Path(tempfile.mkdtemp(prefix="resume-compare-"))
    key = directory / "ticket.key"
    key.write_bytes(os.urandom(80))
    leaf = ca.issue_cert("fleet.test")
    port = free_port(["127.0.0.2", "127.0.0.3"])
    with ExitStack() as stack:
        for address in ("127.0.0.2", "127.0.0.3"):
            server = stack.enter_context(NginxServer(ca, [NginxSite(
                server_names=("fleet.test",), addresses=(address,), port=port,
                certificate=leaf, ticket_key_file=key if shared else None,
            )]))
        yield Target(name, "fleet.test", port, server.ca_file,
                     resolve="fleet.test:127.0.0.2,127.0.0.3", sslyze_ip="127.0.0.2")
    shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def s_server(ca: trustme.CA, name: str, *flags: str) -> Iterator[Target]:
    directory = Path(tempfile.mkdtemp(prefix="resume-compare-"))
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    port = free_port(["127.0.0.1"])
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
         str(directory / "cert.pem"), "-key", str(directory / "key.pem"), "-www", "-quiet",
         *flags],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield Target(name, "localhost", port, directory / "ca.pem")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def run_probe(target: Target, attempts: int) -> tuple[float, dict[str, Any]]:
    argv = [sys.executable, "-m", "resume", "probe", f"{target.host}:{target.port}",
            "--cafile", str(target.ca_file), "--attempts", str(attempts), "--json"]
    if target.resolve:
        argv += ["--resolve", target.resolve, "--all-addresses"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, json.loads(proc.stdout)


def run_sslyze(target: Target, attempts: int) -> tuple[float, dict[str, Any]]:
    sslyze = shutil.which("sslyze", path=str(Path(sys.executable).parent)) or "sslyze"
    where = f"{target.host}:{target.port}" + (f"{{{target.sslyze_ip}}}" if target.sslyze_ip else "")
    argv = [sslyze, "--resum", "--resum_attempts", str(attempts), where, "--json_out=-"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    doc = json.loads(proc.stdout)
    scan = doc["server_scan_results"][0]
    if scan["scan_status"] != "COMPLETED":
        return elapsed, {"error": scan.get("connectivity_error_trace") or scan["scan_status"]}
    return elapsed, scan["scan_result"]["session_resumption"]["result"]


def _tally(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["attempts"] == 0:
        return "no " + ("ticket" if "ticket" in (entry["note"] or "") else "ID")
    return f"{entry['resumed']}/{entry['attempts']}"


def probe_cells(doc: dict[str, Any]) -> list[str]:
    versions = {v["version"]: v for v in doc["versions"]}
    v12, v13 = versions["1.2"], versions["1.3"]
    fleet = ""
    if doc["fleet_verdicts"]:
        fleet = " fleet:" + ",".join(f"{k}={v}" for k, v in doc["fleet_verdicts"].items())
    return [
        _tally(v12["session_id"]) if v12["supported"] else "n/a",
        _tally(v12["ticket"]) if v12["supported"] else "n/a",
        _tally(v13["ticket"]) if v13["supported"] else "n/a",
        "/".join(
            "-" if v["tickets_per_handshake"] is None else str(v["tickets_per_handshake"])
            for v in (v12, v13)
        ),
        f"{doc['verdict']} ({doc['exit_status']}){fleet}",
    ]


def sslyze_cells(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return ["error", "error"]
    ids = result["session_id_resumption_result"]
    tickets = result["tls_ticket_resumption_result"]
    return [
        f"{result['session_id_successful_resumptions_count']}/"
        f"{result['session_id_attempted_resumptions_count']} {ids}",
        f"{result['tls_ticket_successful_resumptions_count']}/"
        f"{result['tls_ticket_attempted_resumptions_count']} {tickets}",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_sslyze")
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and target (median)")
    args = parser.parse_args(argv)
    ca = trustme.CA()
    configs = [
        ("nginx cache+tickets", lambda: nginx(ca, "")),
        ("nginx cache only", lambda: nginx(ca, "", session_tickets=False)),
        ("nginx tickets only", lambda: nginx(ca, "", session_cache="none")),
        ("nginx neither", lambda: nginx(ca, "", session_cache="off", session_tickets=False)),
        ("nginx TLS 1.3 only", lambda: nginx(ca, "", protocols=("TLSv1.3",))),
        ("fleet, shared key", lambda: fleet(ca, "", True)),
        ("fleet, own keys", lambda: fleet(ca, "", False)),
        ("s_server -no_ticket", lambda: s_server(ca, "", "-no_ticket")),
        ("s_server -num_tickets 0", lambda: s_server(ca, "", "-num_tickets", "0")),
    ]
    header = ["target", "probe 1.2 IDs", "probe 1.2 tickets", "probe 1.3 PSK",
              "tickets/hs 1.2/1.3", "probe verdict (exit)", "sslyze IDs", "sslyze tickets",
              "probe s", "sslyze s"]
    rows = [header]
    for name, make in configs:
        with make() as target:
            probe_times, sslyze_times = [], []
            for _ in range(args.runs):
                t, doc = run_probe(target, args.attempts)
                probe_times.append(t)
                t, result = run_sslyze(target, args.attempts)
                sslyze_times.append(t)
            rows.append([
                name, *probe_cells(doc), *sslyze_cells(result),
                f"{sorted(probe_times)[len(probe_times) // 2]:.2f}",
                f"{sorted(sslyze_times)[len(sslyze_times) // 2]:.2f}",
            ])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"(attempts={args.attempts}, median wall time of {args.runs} runs per tool and target, "
          "each tool a subprocess)")


if __name__ == "__main__":
    main(sys.argv[1:])
