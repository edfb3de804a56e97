"""Figures for the guard's hot path, printed in one run (no assertions; machines are noisy).

Run: ``uv run python benchmarks/bench_guard.py``

* medians of a warm ``check`` and of ``reserve -> commit`` (external, and ``"session"``, the
  default), next to the floor: a lock plus one Decimal comparison, the least any correct
  check-and-hold can do;
* decorator overhead on a no-op function;
* GetPaymentSession calls for 10,000 checks inside one freshness window (target 1), and for 64
  threads missing a cold cache together (target 1), against the local emulator over HTTP;
* the cost of decision records on ``reserve -> commit``, measured in the same run, rounds
  interleaved: no sinks (``sinks=[]``, what the guard did before records existed), the default
  logging sink with its logger at WARNING (target: within 10 % of no sinks), the OpenTelemetry
  sink with no SDK configured, the JSONL audit sink (two chained lines per cycle, flushed), and
  the OpenTelemetry sink with the SDK's in-memory exporter and reader.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from spendguard import Money, SpendGuard
from spendguard.audit import JsonlSink
from spendguard.emulator import PaymentsEmulator
from spendguard.events import DecisionSink

ROUNDS = 7
LOOPS = 20_000


def median_ns(fn: Callable[[], object], loops: int = LOOPS) -> float:
    """Median over ROUNDS of the mean time per call, in nanoseconds."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter_ns() - start) / loops)
    return statistics.median(samples)


class CountingClient:
    """Forwards to a real boto3 client and counts GetPaymentSession calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0
        self._lock = threading.Lock()

    def get_payment_session(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        return self._client.get_payment_session(**kwargs)


def floor() -> Callable[[], object]:
    lock = threading.Lock()
    available = Decimal("1000000")
    amount = Decimal("0.005")

    def step() -> bool:
        with lock:
            return amount <= available

    return step


def hot_path(emulator: PaymentsEmulator) -> None:
    session = emulator.create_session(budget="1000000", user_id="bench")
    guard = SpendGuard(
        session.payment_manager_arn,
        session.payment_session_id,
        user_id="bench",
        client=emulator.client(),
        settlement="external",
    )
    guard.check("0.005")  # warm the cache
    default = SpendGuard(  # settlement="session", the default since 0.2
        session.payment_manager_arn,
        session.payment_session_id,
        user_id="bench",
        client=emulator.client(),
    )
    default.check("0.005")

    price = Money.of("0.005")

    def reserve_commit() -> None:
        guard.reserve("0.005").commit()

    def reserve_commit_parsed() -> None:
        guard.reserve(price).commit()

    def reserve_commit_session() -> None:
        default.reserve(price).commit()

    @guard.charges("0.000001")
    def guarded() -> None:
        return None

    def plain() -> None:
        return None

    base = median_ns(floor())
    check = median_ns(lambda: guard.check("0.005"))
    cycle = median_ns(reserve_commit)
    parsed = median_ns(reserve_commit_parsed)
    session_cycle = median_ns(reserve_commit_session)
    deco = median_ns(guarded)
    bare = median_ns(plain)
    print(f"floor (lock + Decimal compare)   {base:9.0f} ns")
    print(f"warm check                       {check:9.0f} ns   {check / base:5.1f}x floor")
    print(f"reserve -> commit                {cycle:9.0f} ns   {cycle / base:5.1f}x floor")
    print(f"reserve -> commit (Money given)  {parsed:9.0f} ns   {parsed / base:5.1f}x floor")
    ratio = session_cycle / base
    print(f"  same, settlement='session'     {session_cycle:9.0f} ns   {ratio:5.1f}x floor")
    extra = deco - bare
    print(f"decorated no-op call             {deco:9.0f} ns   (+{extra:.0f} ns over a bare call)")


def interleaved_ns(fns: dict[str, Callable[[], object]], loops: int = LOOPS) -> dict[str, float]:
    """Median per-call time of each function, rounds interleaved so that machine noise hits
    every variant alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            start = time.perf_counter_ns()
            for _ in range(loops):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / loops)
    return {name: statistics.median(values) for name, values in samples.items()}


def _otel_sdk_sink() -> DecisionSink | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
            InMemorySpanExporter,
        )

        from spendguard.otel import OTelSink  # noqa: PLC0415
    except ImportError:
        return None
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OTelSink(tracer_provider=tracer_provider, meter_provider=meter_provider)


def record_cost(emulator: PaymentsEmulator) -> None:
    session = emulator.create_session(budget="100000000", user_id="bench")
    logging.getLogger("spendguard.decisions").setLevel(logging.WARNING)

    def make(sinks: list[DecisionSink] | None) -> SpendGuard:
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id="bench",
            client=emulator.client(),
            settlement="external",
            sinks=sinks,
        )
        guard.check("0.005")
        return guard

    price = Money.of("0.005")
    with tempfile.TemporaryDirectory() as folder:
        jsonl = JsonlSink(f"{folder}/audit.jsonl")
        guards = {"no sinks": make([]), "default (logging at WARNING)": make(None)}
        try:
            from spendguard.otel import OTelSink  # noqa: PLC0415

            guards["OTel sink, no SDK"] = make([OTelSink()])
        except ImportError:
            pass
        guards["JSONL audit sink"] = make([jsonl])
        sdk = _otel_sdk_sink()
        if sdk is not None:
            guards["OTel sink, SDK in memory"] = make([sdk])
        cycles = {
            name: (lambda guard=guard: guard.reserve(price).commit())
            for name, guard in guards.items()
        }
        figures = interleaved_ns(cycles, loops=5_000)
        jsonl.close()
    base = figures["no sinks"]
    print("reserve -> commit with decision records (same run, interleaved rounds):")
    for name, value in figures.items():
        print(f"  {name:<30} {value:9.0f} ns   {(value / base - 1) * 100:+6.1f} %")


def window_calls(emulator: PaymentsEmulator) -> None:
    session = emulator.create_session(budget="100", user_id="bench")
    counter = CountingClient(emulator.client())
    guard = SpendGuard(
        session.payment_manager_arn, session.payment_session_id, user_id="bench", client=counter
    )
    start = time.perf_counter()
    for _ in range(10_000):
        guard.check("0.01")
    elapsed = time.perf_counter() - start
    print(
        f"10,000 checks in one window      {counter.calls:9d} GetPaymentSession call(s)"
        f"   ({elapsed * 1000:.0f} ms total)"
    )


def stampede(emulator: PaymentsEmulator) -> None:
    session = emulator.create_session(budget="100", user_id="bench")
    counter = CountingClient(emulator.client())
    guard = SpendGuard(
        session.payment_manager_arn, session.payment_session_id, user_id="bench", client=counter
    )
    barrier = threading.Barrier(64)

    def work() -> None:
        barrier.wait()
        guard.check("0.01")

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"64 threads, cold cache           {counter.calls:9d} GetPaymentSession call(s)")


def fetch_latency(emulator: PaymentsEmulator) -> None:
    session = emulator.create_session(budget="100", user_id="bench")
    client = emulator.client()
    args = {
        "paymentManagerArn": session.payment_manager_arn,
        "paymentSessionId": session.payment_session_id,
        "userId": "bench",
    }
    client.get_payment_session(**args)
    per_call = median_ns(lambda: client.get_payment_session(**args), loops=200)
    print(f"GetPaymentSession via emulator   {per_call / 1e6:9.2f} ms (keep-alive, boto3)")


def main() -> None:
    with PaymentsEmulator() as emulator:
        hot_path(emulator)
        window_calls(emulator)
        stampede(emulator)
        fetch_latency(emulator)
        record_cost(emulator)


if __name__ == "__main__":
    main()
