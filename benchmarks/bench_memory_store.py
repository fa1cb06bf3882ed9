"""Memory held by the memory store at a steady rate: this build against the 0.1.0 design.

Run: ``python benchmarks/bench_memory_store.py [--decisions 1000000] [--rate 1000]``.

Each contender runs in its own process: ``--decisions`` budgeted decisions (reserve
then settle, three budgets: the lines of ``bench_stores.py``) at ``--rate`` decisions a
second of a simulated clock, with the default ``settle_grace_s`` (600 s), so the store
ends up holding every decision settled in the last ten minutes (600,000 at 1,000/s).
The figure is the growth of the process's resident set size (RSS, ``/proc/self/statm``)
over the run, after a full garbage collection. The 0.1.0 design keeps every settled
decision as an entry object plus a heap item in each counter it touched
(``legacy/counter_0_1_0.py``); this build keeps decision id -> forget time in
generation dicts (``policyd/budgets/counter.py``).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policyd.budgets import Amount
from policyd.budgets.windows import epoch_ms
from policyd.stores import MemoryStore

START = datetime(2026, 11, 24, 12, tzinfo=UTC)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _legacy_store() -> MemoryStore:
    from legacy.counter_0_1_0 import Counter as LegacyCounter

    class Counter(LegacyCounter):  # the calls this build's MemoryStore makes
        def knows(self, did: str, now_ms: int, key: object = None) -> bool:
            return did in self.entries

        def settle(self, did, actual, now_ms, grace_ms, bucket, key=None, forget=None):  # type: ignore[no-untyped-def]
            return super().settle(did, actual, now_ms, grace_ms, bucket)

    class LegacyStore(MemoryStore):
        def _counter(self, budget, key, window, window_id):  # type: ignore[no-untyped-def]
            from policyd.budgets.ledger import counter_suffix

            ident = (budget, key, counter_suffix(window, window_id))
            counter = self._counters.get(ident)
            if counter is None:
                counter = self._counters[ident] = Counter(window)
            return counter

    return LegacyStore()


def run(design: str, decisions: int, rate: float) -> tuple[int, int]:
    """(RSS growth in bytes, settled decision ids held) after the run."""
    import bench_stores

    store = _legacy_store() if design == "0.1.0" else MemoryStore()
    lines = [bench_stores.lines_for(0, i) for i in range(50)]
    actual = Amount(usd_micros=1_234, tokens=800, requests=1)
    step = timedelta(seconds=1 / rate)
    gc.collect()
    before = rss_bytes()
    now = START
    for i in range(decisions):
        result = store.reserve(os.urandom(16).hex(), lines[i % 50], now, 60)
        store.settle(result, actual, now)
        now += step
    gc.collect()
    grown = rss_bytes() - before
    # settled decisions not yet forgotten (the same for both designs)
    end_ms = epoch_ms(now)
    counters = store._counters.values()
    if design == "0.1.0":
        held = {
            d
            for c in counters
            for d, e in c.entries.items()
            if e.state == "S" and e.deadline > end_ms
        }
    else:
        held = {
            d for c in counters for ids in c.done.values() for d, f in ids.items() if f > end_ms
        }
    return grown, len(held)


@dataclass(frozen=True)
class Result:
    decisions: int
    rate: float
    legacy_bytes: int
    new_bytes: int
    held: int  # settled decisions remembered at the end (the same for both)

    @property
    def per_decision(self) -> float:
        return self.new_bytes / max(1, self.held)

    @property
    def legacy_per_decision(self) -> float:
        return self.legacy_bytes / max(1, self.held)


def measure(decisions: int = 1_000_000, rate: float = 1000.0) -> Result:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        legacy_bytes, held = pool.apply(run, ("0.1.0", decisions, rate))
    with context.Pool(1, maxtasksperchild=1) as pool:
        new_bytes, held_now = pool.apply(run, ("now", decisions, rate))
    if held != held_now:
        raise SystemExit(f"the designs remember different decisions: {held} vs {held_now}")
    return Result(decisions, rate, legacy_bytes, new_bytes, held)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="decisions per second")
    options = parser.parse_args()
    r = measure(options.decisions, options.rate)
    print(
        f"memory store after {r.decisions:,} budgeted decisions (3 budgets) at "
        f"{r.rate:g}/s, settle_grace_s 600: {r.held:,} settled decisions remembered"
    )
    print(f"{'design':<8}{'RSS growth':>14}{'per decision held':>20}")
    print(f"{'0.1.0':<8}{r.legacy_bytes / 2**20:>11.1f} MB{r.legacy_per_decision:>18.0f} B")
    print(f"{'now':<8}{r.new_bytes / 2**20:>11.1f} MB{r.per_decision:>18.0f} B")
    print(f"ratio: {r.legacy_bytes / max(1, r.new_bytes):.2f}x less")


if __name__ == "__main__":
    main()
