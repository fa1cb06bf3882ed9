"""``policyd bench``: decide() latency and throughput on a bundle's own test requests."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

from policyd.bundle import Bundle
from policyd.errors import RequestError


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
