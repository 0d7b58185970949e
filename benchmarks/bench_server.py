"""serve_tls under ``openssl s_time``, beside ``openssl s_server -WWW``, in one run.

For TLS 1.2 and TLS 1.3 with an RSA-2048 certificate, each server answers
``s_time -www /ok.txt`` (a GET and a tiny HTTP/1.0 response, so TLS 1.3 tickets
are read and ``-reuse`` really resumes) with new sessions (``-new``) and resumed
ones (``-reuse``). The two servers take turns, ROUNDS times (alternating who
goes first); reported are the median rates in connections per second of
wall-clock time, the median of the per-turn ratios serve_tls / s_server, and
each server's CPU time per connection (from /proc: the figure least disturbed
by other load on the machine, which the header line shows). The target is a
ratio >= 0.85 on resumed handshakes.

Both servers run in their own process (serve_tls: ``python bench_server.py
--child``), so each has one core while s_time has the other.

Options (``python -m benchmarks bench_server [--seconds=S] [--rounds=N] [--profile]``):
  --seconds=S   s_time's -time for each measurement (default 2)
  --rounds=N    turns per server and mode (default 3)
  --profile     instead, profile serve_tls (cProfile) under s_time -reuse, TLS 1.3,
                and print the functions where the time goes.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESPONSE = b"HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\nok\n"
VERSION_FLAGS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}


# -- the serve_tls child process --------------------------------------------------------


def _child(version: str, cert: str, key: str, profile: str | None) -> None:
    # Serve s_time until SIGTERM; print the port first, the statistics last.
    import ssl
    from functools import partial

    import trio

    from resume._adapters.server_settings import pin_tls_version
    from resume.trio import TLSServerStream, serve_tls

    ctx = pin_tls_version(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), version)
    ctx.load_cert_chain(cert, key)

    async def handler(stream: TLSServerStream) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some()
            if not data:
                return
            buf += data
        await stream.send_all(RESPONSE)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1")
            )
            print(server.port, flush=True)
            with trio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            s = server.statistics()
            print(f"{s.accepted} {s.resumed} {s.full} {s.failed}", flush=True)
            server.close()

    if profile:
        import cProfile

        cProfile.runctx("trio.run(main)", globals(), {"trio": trio, "main": main}, profile)
    else:
        trio.run(main)


def _plain_child(kind: str, version: str, cert: str, key: str) -> None:
    # A plain trio.SSLStream server (trio.serve_ssl_over_tcp) or a plain
    # asyncio.start_server(ssl=...): what a program without resume runs.
    import ssl

    from resume._adapters.server_settings import pin_tls_version

    ctx = pin_tls_version(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), version)
    ctx.load_cert_chain(cert, key)
    if kind == "trio":
        from functools import partial

        import trio

        async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
            try:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some()
                    if not data:
                        return
                    buf += data
                await stream.send_all(RESPONSE)
                await stream.aclose()
            except trio.BrokenResourceError:
                pass

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(partial(
                    trio.serve_ssl_over_tcp, handler, 0, ctx, host="127.0.0.1"))
                print(listeners[0].transport_listener.socket.getsockname()[1], flush=True)
                with trio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        break
                print("0 0 0 0", flush=True)
                nursery.cancel_scope.cancel()

        trio.run(main)
        return
    import asyncio

    async def cb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass

    async def amain() -> None:
        server = await asyncio.start_server(cb, "127.0.0.1", 0, ssl=ctx)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print("0 0 0 0", flush=True)
        server.close()

    asyncio.run(amain())


# -- the parent -------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _s_time(port: int, version: str, mode: str, seconds: int, pid: int) -> tuple[float, float]:
    """Run s_time once; return (connections per wall second, server CPU ms per connection)."""
    cpu = _cpu_seconds(pid)
    started = time.perf_counter()
    done = subprocess.run(
        [
            "openssl",
            "s_time",
            "-connect",
            f"127.0.0.1:{port}",
            VERSION_FLAGS[version],
            "-www",
            "/ok.txt",
            f"-{mode}",
            "-time",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    cpu = _cpu_seconds(pid) - cpu
    found = re.search(r"(\d+) connections in [\d.]+s", done.stdout)
    if not found:
        raise RuntimeError(f"s_time failed: {done.stdout}{done.stderr}")
    count = int(found.group(1))
    return count / wall, 1e3 * cpu / max(count, 1)


def _start_s_server(
    cert: str, key: str, version: str, cwd: str
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            "0",
            "-cert",
            cert,
            "-key",
            key,
            "-WWW",
            VERSION_FLAGS[version],
            "-naccept",
            "100000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.match(r"ACCEPT .*:(\d+)", line)
        if found:
            return proc, int(found.group(1))
    raise RuntimeError("openssl s_server did not start")


def _start_child(
    cert: str, key: str, version: str, profile: str | None = None
) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, __file__, "--child", version, cert, key]
    if profile:
        args.append(profile)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _start_plain(
    kind: str, cert: str, key: str, version: str
) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, __file__, "--plain-child", kind, version, cert, key]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _stop_child(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out.strip()


def _make_cert(directory: str) -> tuple[str, str]:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)
    cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    Path(directory, "ok.txt").write_bytes(b"ok\n")
    return str(cert), str(key)


def _options(argv: list[str]) -> tuple[int, int, bool]:
    seconds, rounds, profile = 2, 3, False
    for arg in argv:
        if arg.startswith("--seconds="):
            seconds = int(arg.split("=", 1)[1])
        elif arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
        elif arg == "--profile":
            profile = True
        else:
            raise SystemExit(f"bench_server: unknown option {arg!r} (see the module docstring)")
    return seconds, rounds, profile


def _profile(cert: str, key: str, seconds: int, directory: str) -> None:
    import pstats

    out = str(Path(directory, "serve_tls.prof"))
    proc, port = _start_child(cert, key, "1.3", profile=out)
    rate, _ = _s_time(port, "1.3", "reuse", seconds, proc.pid)
    counts = _stop_child(proc)
    print(
        f"serve_tls under cProfile, TLS 1.3, s_time -reuse: {rate:.0f} conn/s "
        f"(accepted resumed full failed: {counts})"
    )
    stats = pstats.Stats(out)
    stats.sort_stats("tottime").print_stats(20)


def main(argv: list[str]) -> None:
    seconds, rounds, profile = _options(argv)
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    print(
        f"openssl: {openssl.stdout.strip()}; "
        f"s_time -time {seconds}, {rounds} rounds, RSA-2048, median of rounds; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="bench-server-") as directory:
        cert, key = _make_cert(directory)
        if profile:
            _profile(cert, key, seconds, directory)
            return
        print(
            f"{'TLS':<4} {'mode':<6} {'s_server conn/s':>15} {'serve_tls conn/s':>16} "
            f"{'ratio':>6} {'s_server cpu ms':>15} {'serve_tls cpu ms':>16}"
        )
        for version in ("1.2", "1.3"):
            ossl, ossl_port = _start_s_server(cert, key, version, directory)
            ours, our_port = _start_child(cert, key, version)
            plain = {kind: _start_plain(kind, cert, key, version) for kind in ("trio", "asyncio")}
            try:
                for mode in ("new", "reuse"):
                    rows: list[tuple[float, float, float, float]] = []
                    extra: list[dict[str, tuple[float, float]]] = []
                    for turn in range(rounds):
                        # Alternate who goes first, and pair the two runs of a
                        # turn: the ratio of a pair is less exposed to other load
                        # on the machine than two medians are.
                        order = [("ossl", ossl_port, ossl.pid), ("ours", our_port, ours.pid)]
                        if turn % 2:
                            order.reverse()
                        order += [(k, port, p.pid) for k, (p, port) in plain.items()]
                        got = {
                            name: _s_time(port, version, mode, seconds, pid)
                            for name, port, pid in order
                        }
                        rows.append((*got["ossl"], *got["ours"]))
                        extra.append(got)
                    o_rate = statistics.median(r[0] for r in rows)
                    u_rate = statistics.median(r[2] for r in rows)
                    ratio = statistics.median(r[2] / r[0] for r in rows)
                    o_cpu = statistics.median(r[1] for r in rows)
                    u_cpu = statistics.median(r[3] for r in rows)
                    print(
                        f"{version:<4} {mode:<6} {o_rate:>15.0f} {u_rate:>16.0f} "
                        f"{ratio:>6.2f} {o_cpu:>15.3f} {u_cpu:>16.3f}",
                        flush=True,
                    )
                    t_rate = statistics.median(g["trio"][0] for g in extra)
                    t_cpu = statistics.median(g["trio"][1] for g in extra)
                    a_rate = statistics.median(g["asyncio"][0] for g in extra)
                    a_cpu = statistics.median(g["asyncio"][1] for g in extra)
                    print(
                        f"{'':11} plain trio {t_rate:.0f}/s ({t_cpu:.3f} ms), plain asyncio "
                        f"{a_rate:.0f}/s ({a_cpu:.3f} ms); serve_tls cpu / s_server "
                        f"{u_cpu / o_cpu:.2f} (target <= 2.0), / plain trio "
                        f"{u_cpu / t_cpu:.2f} (target <= 0.6), / plain asyncio "
                        f"{u_cpu / a_cpu:.2f}",
                        flush=True,
                    )
            finally:
                ossl.kill()
                ossl.wait()
                for proc, _ in plain.values():
                    _stop_child(proc)
                counts = _stop_child(ours)
            accepted, resumed, full, failed = (int(x) for x in counts.split())
            print(
                f"     serve_tls TLS {version}: {accepted} connections, {resumed} resumed, "
                f"{full} full, {failed} failed"
            )


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "--plain-child":
        _plain_child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif len(sys.argv) >= 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        main(sys.argv[1:])
