"""Observability costs: decide() with a decision log or OpenTelemetry on vs off, and
``policyd diff`` on 100,000 logged requests.

Run: python benchmarks/bench_observe.py [--n 20000] [--diff-requests 100000]

1. decide() overhead: three engines on the shipped bundle (nothing attached; a decision log
   to a temp file; OpenTelemetry with the SDK: a BatchSpanProcessor whose exporter drops
   spans, and an in-memory metric reader) decide the same request mix, interleaved in
   rounds in one process, so the ratio of medians is the figure to read.
2. diff throughput: a decision log of ``--diff-requests`` decisions (and their outcomes)
   is written by a real engine, then ``policyd diff`` (in process: read, replay under two
   revisions, report) is timed on it, in one process and in two (``--jobs 2``).
   Target: 100,000 requests in under 10 s. The machine's load average is printed: on a
   shared machine the wall time scales with it.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyd import Engine

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def request_mix(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tier = rng.choice(["free", "pro", "pro", "pro", "enterprise"])
        req: dict[str, Any] = {
            "tenant": {"id": f"t{rng.randrange(200)}", "tier": tier},
            "user": {"id": f"u{rng.randrange(5000)}", "country": "DE"},
            "feature": rng.choice(["faq", "chat", "account"]),
            "temperature": 0.0,
            "tags": ["code"] if rng.random() < 0.3 else [],
            "messages": [
                {"role": "system", "content": "You are the support assistant."},
                {"role": "user", "content": "How do I reset my password? " * rng.randrange(1, 8)},
            ],
        }
        if rng.random() < 0.05:
            req["input_tokens"] = 70_000
        out.append(req)
    return out


def per_call_us(engine: Engine, requests: list[dict[str, Any]]) -> list[float]:
    times = []
    for req in requests:
        t0 = time.perf_counter_ns()
        engine.decide(req, policy="support-bot")
        times.append((time.perf_counter_ns() - t0) / 1000)
    return times


def overhead(n: int) -> list[tuple[str, str, str, str]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from policyd.telemetry import Telemetry

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65536))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    scratch = Path(tempfile.mkdtemp(prefix="policyd-bench-"))
    engines = {
        "off": Engine.from_path(ROOT / "policies", clock=lambda: NOW, otel=False),
        "decision log": Engine.from_path(
            ROOT / "policies", clock=lambda: NOW, otel=False, decision_log=scratch / "d.jsonl"
        ),
        "otel": Engine.from_path(
            ROOT / "policies",
            clock=lambda: NOW,
            otel=Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider),
        ),
    }
    mix = request_mix(500)
    times: dict[str, list[float]] = {k: [] for k in engines}
    rounds = max(1, n // len(mix))
    for engine in engines.values():  # warm up
        per_call_us(engine, mix)
    for _ in range(rounds):
        for name, engine in engines.items():
            times[name] += per_call_us(engine, mix)
    for engine in engines.values():
        engine.close()
    tracer_provider.shutdown()
    shutil.rmtree(scratch)
    base = statistics.median(times["off"])
    rows = []
    for name, values in times.items():
        med = statistics.median(values)
        p99 = sorted(values)[int(0.99 * (len(values) - 1))]
        rows.append((f"decide() {name}", f"{med:.1f} µs", f"{p99:.1f} µs", f"x{med / base:.2f}"))
    return rows


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the --jobs workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def diff_throughput(n: int, jobs_list: list[int]) -> list[tuple[int, float, float, int, int]]:
    from policyd.decision_log import DecisionLog
    from policyd.diff import Side, diff_file

    scratch = Path(tempfile.mkdtemp(prefix="policyd-bench-"))
    log = scratch / "decisions.jsonl"
    head = scratch / "head"
    shutil.copytree(ROOT / "policies", head)
    policy = head / "support-bot.yaml"
    policy.write_text(
        policy.read_text()
        .replace("request.input_tokens > 60000", "request.input_tokens > 200")
        .replace("{v3: 90, v4: 10}", "{v3: 50, v4: 50}")
    )
    rng = random.Random(3)
    writer = DecisionLog(log, capacity=10**7, max_bytes=10**11)  # keep every line, one file
    with Engine.from_path(
        ROOT / "policies", clock=lambda: NOW, otel=False, decision_log=writer
    ) as engine:
        mix = request_mix(5000)
        for i in range(n):
            decision = engine.decide(mix[i % len(mix)], policy="support-bot")
            if decision.allowed:
                engine.record(decision, input_tokens=300, output_tokens=rng.randrange(20, 800))
        assert engine._observer.log.flush(timeout=3600)
    results = []
    base = Side(str(ROOT / "policies"), "base", NOW)
    changed = Side(str(head), "head", NOW)
    for jobs in jobs_list:
        t0 = time.perf_counter()
        cpu0 = _cpu()
        report = diff_file(base, changed, str(log), policy=None, now=NOW, jobs=jobs)
        took = time.perf_counter() - t0
        results.append((jobs, took, _cpu() - cpu0, report.requests, report.changed))
    shutil.rmtree(scratch)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="decide() calls per engine")
    parser.add_argument("--diff-requests", type=int, default=100_000)
    args = parser.parse_args()
    rows = overhead(args.n)
    print("| figure | median | p99 | vs off |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"load average before the diff: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| figure | wall | CPU | target (wall) | met |")
    print("|---|---:|---:|---:|---|")
    for jobs, took, cpu, requests, changed in diff_throughput(args.diff_requests, [1, 2]):
        target = 10.0 * requests / 100_000
        print(
            f"| policyd diff --jobs {jobs}, {requests:,} logged requests ({changed:,} changed) "
            f"| {took:.2f} s | {cpu:.2f} s | < {target:.0f} s "
            f"| {'met' if took < target else 'NOT met'} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
