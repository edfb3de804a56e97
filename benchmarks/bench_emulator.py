"""Figures for the emulator as a server you leave running, printed in one run (no assertions).

Run: ``uv run python benchmarks/bench_emulator.py``

The emulator runs in this process, so this process's threads and memory are the server's;
the load comes from two child processes:

* 1,000 slow connections, held open throughout: each is answered once (``GET /health``, so
  the server has accepted it), then half stay idle and half send half a request header;
* 200 concurrent boto3 clients, each with its own keep-alive connection, calling
  GetPaymentSession in a loop; then again with every call delayed 50 ms by fault injection,
  so that each waiting answer needs a worker thread and the pool's bound shows.

Printed: the server's threads (its selector loop and workers) and the process's, RSS, and
GetPaymentSession latency p50/p99 from one keep-alive boto3 client here, idle and with the
1,000 slow connections held, then the 200 clients' own latency and throughput.
"""

from __future__ import annotations

import multiprocessing
import resource
import socket
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import boto3
from botocore.config import Config

from spendguard.emulator import PaymentsEmulator

SLOW = 1_000
CLIENTS = 200
CALLS_PER_CLIENT = 50
DELAYED_CALLS = 5
DELAY = 0.05
SAMPLES = 2_000
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
HALF_HEAD = b"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\nContent-Ty"


def raise_fd_limit(wanted: int = 8192) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward ``wanted``, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mib() -> float:
    """Resident set size now, from /proc/self/status (Linux); else the peak from rusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("spendguard-emulator"))


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def timed(call: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def hold_slow_connections(address: tuple[str, int], pipe: Connection) -> None:
    """Child: open SLOW connections, make each idle or half-sent, hold them until told."""
    raise_fd_limit()
    held = []
    for index in range(SLOW):
        sock = socket.create_connection(address, timeout=30)
        sock.sendall(HEALTH)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            reply += sock.recv(4096)
        if index % 2:
            sock.sendall(HALF_HEAD)
        held.append(sock)
    pipe.send(len(held))
    pipe.recv()  # until the parent is done
    for sock in held:
        sock.close()


def run_clients(endpoint: str, call_args: dict[str, str], calls: int, pipe: Connection) -> None:
    """Child: CLIENTS threads, each a boto3 client, each ``calls`` GetPaymentSession."""
    raise_fd_limit()
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    )
    config = Config(max_pool_connections=1, read_timeout=60, retries={"total_max_attempts": 1})
    clients = [
        session.client("bedrock-agentcore", endpoint_url=endpoint, config=config)
        for _ in range(CLIENTS)
    ]
    barrier = threading.Barrier(CLIENTS)
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(client: Any) -> None:
        client.get_payment_session(**call_args)  # connect before the clock starts
        barrier.wait()
        start = time.perf_counter()
        try:
            mine = timed(lambda: client.get_payment_session(**call_args), calls)
        except Exception as exc:  # a benchmark reports failures, it does not stop on them
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            latencies.extend(mine)
            spans.append((start, time.perf_counter()))

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # From the first client's start to the last one's end (each clock read in its own thread).
    elapsed = max(e for _, e in spans) - min(s for s, _ in spans) if spans else float("nan")
    pipe.send((latencies, errors, elapsed))


def crowd(spawn: Any, endpoint: str, args: dict[str, str], calls: int, what: str) -> None:
    """CLIENTS concurrent clients in a child process; print their figures and the peaks here."""
    here, there = spawn.Pipe()
    load = spawn.Process(target=run_clients, args=(endpoint, args, calls, there))
    with Sampler() as peak:
        load.start()
        latencies, errors, elapsed = here.recv()
        load.join()
    p50, p99 = percentiles(latencies)
    print(f"{CLIENTS} concurrent boto3 clients x {calls} calls{what}, slow connections held:")
    print(
        f"  {'their GetPaymentSession':<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   "
        f"{len(latencies) / elapsed:,.0f} calls/s, {len(errors)} errors"
    )
    print(
        f"  {'peak while they ran':<44} threads {peak.threads:3d} server / "
        f"{peak.process:3d} process (sampler included)   RSS {peak.rss:6.1f} MiB"
    )
    for error in sorted(set(errors))[:3]:
        print(f"    error: {error}")


def report(label: str, samples: list[float]) -> None:
    p50, p99 = percentiles(samples)
    print(
        f"  {label:<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   "
        f"threads {server_threads():3d} server / {threading.active_count():3d} process   "
        f"RSS {rss_mib():6.1f} MiB"
    )


class Sampler:
    """Samples thread counts and RSS every 20 ms in a thread of its own (counted too)."""

    def __init__(self) -> None:
        self.threads = self.process = 0
        self.rss = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler")

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(0.02):
            self.threads = max(self.threads, server_threads())
            self.process = max(self.process, threading.active_count())
            self.rss = max(self.rss, rss_mib())


def main() -> None:
    limit = raise_fd_limit()
    spawn = multiprocessing.get_context("spawn")
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="100", user_id="bench")
        args = {
            "paymentManagerArn": session.payment_manager_arn,
            "paymentSessionId": session.payment_session_id,
            "userId": "bench",
        }
        client = emulator.client()
        fetch = lambda: client.get_payment_session(**args)  # noqa: E731
        timed(fetch, 200)  # warm up
        print(f"emulator on {emulator.endpoint_url}; RLIMIT_NOFILE soft limit {limit}")
        print(f"GetPaymentSession, one keep-alive boto3 client, {SAMPLES} calls:")
        report("idle server", timed(fetch, SAMPLES))

        host, port = emulator.endpoint_url.removeprefix("http://").rsplit(":", 1)
        slow_end, slow_child_end = spawn.Pipe()
        slow = spawn.Process(target=hold_slow_connections, args=((host, int(port)), slow_child_end))
        slow.start()
        held = slow_end.recv()
        report(f"{held} slow connections held", timed(fetch, SAMPLES))

        crowd(spawn, emulator.endpoint_url, args, CALLS_PER_CLIENT, "")
        emulator.faults.delay("GetPaymentSession", DELAY, times=CLIENTS * (DELAYED_CALLS + 1))
        crowd(
            spawn,
            emulator.endpoint_url,
            args,
            DELAYED_CALLS,
            f", each delayed {DELAY * 1000:.0f} ms",
        )
        emulator.faults.clear()
        report("after them, slow connections still held", timed(fetch, SAMPLES))
        slow_end.send("done")
        slow.join()
        alive = client.get_payment_session(**args)["paymentSession"]["paymentSessionId"]
        print(f"still serving afterwards: {alive == session.payment_session_id}")


if __name__ == "__main__":
    main()
