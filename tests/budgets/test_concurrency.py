"""Contention: 8 clients × 500 reservations against a budget that admits exactly N.

Exactly N are allowed, and the settled spend is the sum of the recorded costs to
the micro-dollar: threads on the memory store, processes on Redis.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from budget_helpers import NOW, actual_cost, contended_lines, redis_worker
from redis_helpers import PATIENT

from policyd.budgets import Amount, Window
from policyd.stores import MemoryStore

WORKERS, ROUNDS, ADMITS = 8, 500, 1_234


def test_memory_store_under_threads() -> None:
    store = MemoryStore()
    totals: list[tuple[int, int]] = []
    start = threading.Barrier(WORKERS)

    def work(worker: int) -> None:
        allowed = micros = 0
        start.wait()
        for i in range(ROUNDS):
            result = store.reserve(f"w{worker}-{i}", contended_lines(ADMITS), NOW, ttl_s=300)
            if result.ok:
                allowed += 1
                cost = actual_cost(worker, i)
                assert store.settle(result, Amount(cost, 10, 1), NOW)
                micros += cost
        totals.append((allowed, micros))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a for a, _ in totals) == ADMITS
    expected = sum(m for _, m in totals)
    assert store.usage("shared", "all", Window("calendar_day"), NOW) == Amount(
        expected, 10 * ADMITS, ADMITS
    )
    assert store.usage("watch", "all", Window("calendar_month"), NOW).usd_micros == expected


@pytest.mark.slow
def test_redis_store_under_processes(redis_url: str, redis_prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(
            redis_worker,
            [(redis_url, redis_prefix, w, ROUNDS, ADMITS) for w in range(WORKERS)],
        )
    allowed = sum(r[0] for r in results)
    settled = sum(r[1] for r in results)
    assert allowed == ADMITS
    assert sum(r[2] for r in results) == ADMITS
    from policyd.stores import open_store

    store = open_store(redis_url, key_prefix=redis_prefix, **PATIENT)
    assert store.usage("shared", "all", Window("calendar_day"), NOW) == Amount(
        settled, 10 * ADMITS, ADMITS
    )
    assert store.usage("watch", "all", Window("calendar_month"), NOW).usd_micros == settled
    store.close()
