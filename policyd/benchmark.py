"""``policyd bench``: decide() latency and throughput on a bundle's own test requests.

``--stages`` adds the time each stage takes (:meth:`CompiledPolicy.timed`): the bundle
is compiled again on its own in-memory runtime with timed steps, so the figures of
the first table are of the untimed engine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from policyd.bundle import Bundle
from policyd.compile import compile_bundle
from policyd.deciding import decide
from policyd.errors import RequestError
from policyd.pipeline import StageTimings
from policyd.request import TokenCounter
from policyd.stages.base import Runtime


def _requests(bundle: Bundle, policy: str) -> list[dict[str, Any]]:
    return [
        dict(case.request)
        for test, _ in bundle.tests
        if test.policy == policy
        for case in test.cases
    ] or [{}]


def run_bench(engine: Any, bundle: Bundle, *, policy: str | None, calls: int) -> Iterator[str]:
    """Yield the lines of a table: one row per policy."""
    names = [policy] if policy else list(engine.policies)
    yield f"{'policy':<24} {'requests':>8} {'median µs':>10} {'p99 µs':>10} {'decisions/s':>12}"
    for name in names:
        requests = _requests(bundle, name)
        try:
            for request in requests:  # warm-up, and a clear error for a bad request
                engine.decide(request, policy=name)
        except RequestError as exc:
            yield f"{name:<24} skipped: {exc}"
            continue
        samples = []
        clock = time.perf_counter_ns
        size = len(requests)
        for i in range(calls):
            request = requests[i % size]
            start = clock()
            engine.decide(request, policy=name)
            samples.append((clock() - start) / 1000.0)
        samples.sort()
        median = statistics.median(samples)
        p99 = samples[max(0, int(len(samples) * 0.99) - 1)]
        per_second = 1e6 / statistics.fmean(samples)
        yield f"{name:<24} {size:>8} {median:>10.2f} {p99:>10.2f} {per_second:>12,.0f}"


def run_stage_bench(bundle: Bundle, *, policy: str | None, calls: int) -> Iterator[str]:
    """Yield the lines of a table: per policy, each stage's runs, mean time and share of
    decide(); ``other`` is the rest (request checks, finishing the decision, timers)."""
    from policyd.stores import open_store

    runtime = Runtime(lambda: datetime.now(UTC), open_store(None))
    counter = TokenCounter()
    compiled = compile_bundle(bundle, runtime, token_counter=counter)
    names = [policy] if policy else list(compiled.policies)
    yield f"{'policy':<24} {'stage':<12} {'runs':>8} {'mean µs':>10} {'share':>7}"
    for name in names:
        timings = StageTimings()
        timed = compiled.policy(name).timed(timings)
        requests = _requests(bundle, name)
        try:
            for request in requests:  # warm-up, and a clear error for a bad request
                decide(timed, runtime, counter, request)
        except RequestError as exc:
            yield f"{name:<24} skipped: {exc}"
            continue
        timings.ns.clear()
        timings.calls.clear()
        clock = time.perf_counter_ns
        size = len(requests)
        start = clock()
        for i in range(calls):
            decide(timed, runtime, counter, requests[i % size])
        total = clock() - start
        rows = [(stage, timings.calls[stage], timings.ns[stage]) for stage in timings.ns]
        rows.append(("other", calls, total - sum(ns for _, _, ns in rows)))
        for stage, runs, ns in rows:
            mean = ns / runs / 1000.0 if runs else 0.0
            share = ns / total if total else 0.0
            yield f"{name:<24} {stage:<12} {runs:>8} {mean:>10.2f} {share:>7.1%}"
    runtime.store.close()
