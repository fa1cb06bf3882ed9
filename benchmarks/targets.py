"""The speed targets of #17 in one table: figure, ratio, target, met / not met.

Run: python benchmarks/targets.py [--only 4,5] [--runs 10] [--policies 1000]
     [--decisions 2000] [--client-seconds 2] [--memory-decisions 1000000]
     [--memory-rate 1000]

Each row is measured in this run (the machine is shared, so ratios are taken against a
contender timed in the same run). Rows whose benchmark is not written yet say so. To add
one, write a function returning :class:`Row` and list it in ``ROWS``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_check
import bench_decide_target
import bench_ledger
import bench_memory_store
import bench_reload
import bench_stores


@dataclass(frozen=True)
class Row:
    target: str  # e.g. "2. check per policy"
    figure: str
    ratio: str
    goal: str
    met: bool | None  # None: not measured, or a reference row
    reference: bool = False  # a figure to read the others by, with no target of its own


@dataclass(frozen=True)
class Options:
    runs: int
    policies: int
    decisions: int = 2000  # per Redis server-time row
    memory_decisions: int = 1_000_000
    memory_rate: float = 1000.0
    client_seconds: float = 2.0  # per run of the client-side Redis row (3 runs per store)


def check_rows(options: Options) -> list[Row]:
    """Target 2: `policyd check` per policy, on 1,000 policies, diagnostics, start-up."""
    n = options.policies
    row = bench_check.measure_check(n)
    same = row.same_diagnostics and bench_check.broken_examples_same()
    rows = [
        Row(
            "2. check, per policy",
            f"{row.ms_per_policy:.2f} ms ({n:,} policies, in process, CPU)",
            f"{row.speedup:.1f}x faster than PyYAML's pure parser "
            f"({row.pure_seconds / n * 1000:.2f} ms)",
            "<= 2 ms",
            row.ms_per_policy <= 2.0,
        ),
        Row(
            "2. check, same diagnostics",
            "identical" if same else "DIFFERENT",
            f"libyaml vs pure parser, {n:,} policies + examples/broken/",
            "identical",
            same,
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        bench_check.make_bundle(Path(tmp), n)
        whole = bench_check.time_process(bench_check.check_command(tmp), 3)  # one is noisy
    rows.append(
        Row(
            f"2. check, {n:,} policies",
            f"{whole.cpu:.2f} s CPU ({whole.wall:.2f} s wall), whole `policyd check`, median of 3",
            f"{whole.cpu / row.pure_seconds:.2f}x the pure parser's in-process time",
            "< 2 s",
            whole.cpu < 2.0,
        )
    )
    check, bare = bench_check.measure_startup(options.runs)
    rows.append(
        Row(
            "2. check start-up",
            f"{check.cpu:.3f} s CPU ({check.wall:.3f} s wall), `policyd check policies/`, "
            f"median of {options.runs}",
            f"{check.cpu / bare.cpu:.0f}x `python -c pass` ({bare.cpu * 1000:.0f} ms)",
            "<= 0.25 s",
            check.cpu <= 0.25,
        )
    )
    return rows


def decide_rows(options: Options) -> list[Row]:
    """Target 1: decide() vs a hand-written function making the same decisions."""
    rows = []
    for measure in (bench_decide_target.routing_heavy, bench_decide_target.support_bot):
        r = measure(max(options.runs * 4, 20), 400)
        rows.append(
            Row(
                f"1. decide(), {r.policy}",
                f"{r.engine_us:.1f} us vs {r.baseline_us:.1f} us hand-written "
                f"(median of {r.rounds} interleaved rounds of {r.batch})",
                f"{r.ratio:.2f}x the hand-written function",
                f"<= {bench_decide_target.TARGET}x",
                r.met,
            )
        )
    return rows


def reload_rows(options: Options) -> list[Row]:
    """Target 3: file write -> new revision serving, default watcher settings."""
    times = bench_reload.reload_latencies(max(options.runs * 2, 20), fallback=True)
    build = statistics.median(times["build"]) * 1000
    fallback = times["in place, no open tracking"]
    rows = []
    for how, note in (
        ("rename", f"the build alone (load..swap) {build:.0f} ms p50"),
        (
            "in place",
            "writer closed the file: 50 ms after the close (Linux); where opens are not "
            f"tracked, debounce + content stable for 500 ms (#11): "
            f"{statistics.median(fallback) * 1000:.0f} ms p50 / "
            f"{bench_reload.percentile(fallback, 0.95) * 1000:.0f} ms p95 same run",
        ),
    ):
        p50 = statistics.median(times[how]) * 1000
        p95 = bench_reload.percentile(times[how], 0.95) * 1000
        rows.append(
            Row(
                f"3. reload, {'atomic rename' if how == 'rename' else how}",
                f"{p50:.0f} ms p50 / {p95:.0f} ms p95 ({len(times[how])} writes -> serving)",
                note,
                "< 100 ms / < 250 ms",
                p50 < 100 and p95 < 250,
            )
        )
    return rows


def redis_rows(options: Options) -> list[Row]:
    """Target 4: Redis server time per ledger call, against the 0.1.0 script, same run."""
    cases = ((3, False, False), (3, False, True))
    rows = []
    for row in bench_ledger.measure(options.decisions, 3, cases):
        old, new = row.figures["0.1.0"], row.figures["now"]
        clock = "steady clock" if row.steady else "one instant"
        rows.append(
            Row(
                f"4. Redis server time, 3 budgets, {clock}",
                f"reserve {new[0]:.1f} us, settle {new[1]:.1f} us "
                f"(0.1.0: {old[0]:.1f} / {old[1]:.1f} us)",
                f"{(old[0] + old[1]) / (new[0] + new[1]):.1f}x less than 0.1.0",
                f"<= {bench_ledger.TARGET_US:g} us",
                max(new) <= bench_ledger.TARGET_US,
            )
        )
    return rows


def client_rows(options: Options) -> list[Row]:
    """Target 4, client side: what Redis adds per decision over the memory store, by
    default and with reply polling, and what this host's Redis and loopback cost at least
    for those two calls (the server's time plus two bare round trips), same run."""
    cost = bench_stores.added_cost(options.client_seconds, 3)
    target = bench_stores.CLIENT_TARGET_US
    poll = bench_stores.POLL_US
    least = cost.server_us + cost.polled_round_trips_us
    return [
        Row(
            "4. Redis cost per decision, client side",
            f"+{cost.added:.0f} us p50 (reserve + settle, 3 budgets, 1 client: "
            f"{cost.redis['d50']:.0f} us vs memory {cost.memory['d50']:.0f} us)",
            f"{cost.redis['d50'] / cost.memory['d50']:.1f}x the memory store",
            f"<= {target:g} us over memory",
            cost.added <= target,
        ),
        Row(
            f"4. same, reply_poll_us={poll} (opt-in)",
            f"+{cost.added_polled:.0f} us p50 ({cost.polled['d50']:.0f} us)",
            f"{cost.added / cost.added_polled:.2f}x less than without",
            f"<= {target:g} us over memory",
            cost.added_polled <= target,
        ),
        Row(
            "4. least this host allows for the 2 calls",
            f"{least:.0f} us: ledger server time {cost.server_us:.0f} us + 2 bare round "
            f"trips {cost.polled_round_trips_us:.0f} us polled "
            f"({cost.round_trips_us:.0f} us blocking)",
            f"{least / target:.1f}x the target",
            "reference (no client code)",
            None,
            reference=True,
        ),
    ]


def memory_rows(options: Options) -> list[Row]:
    """Target 5: what the memory store holds after many decisions at a steady rate."""
    r = bench_memory_store.measure(options.memory_decisions, options.memory_rate)
    bound = options.memory_rate * 600 * 1.25  # grace, plus one generation
    return [
        Row(
            f"5. memory store, {r.decisions:,} decisions at {r.rate:g}/s",
            f"{r.new_bytes / 2**20:.0f} MB RSS growth, {r.per_decision:.0f} B per settled "
            f"id held ({r.held:,} held; 0.1.0: {r.legacy_bytes / 2**20:.0f} MB)",
            f"{r.legacy_bytes / max(1, r.new_bytes):.1f}x less than 0.1.0",
            "<= 1/2 of 0.1.0, ids held <= rate x grace x 1.25",
            r.new_bytes * 2 <= r.legacy_bytes and r.held <= bound,
        )
    ]


def not_written(target: str, goal: str) -> Callable[[Options], list[Row]]:
    def rows(options: Options) -> list[Row]:
        return [Row(target, "-", "-", goal, None)]

    return rows


#: each target's rows, by target number (``--only``)
ROWS: list[tuple[int, Callable[[Options], list[Row]]]] = [
    (1, decide_rows),
    (2, check_rows),
    (3, reload_rows),
    (4, redis_rows),
    (4, client_rows),
    (5, memory_rows),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--only", default="", help="targets to measure, e.g. 4,5 (all)")
    parser.add_argument("--runs", type=int, default=10, help="process runs (median)")
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=2000, help="per Redis row")
    parser.add_argument("--memory-decisions", type=int, default=1_000_000)
    parser.add_argument("--memory-rate", type=float, default=1000.0, help="decisions/s")
    parser.add_argument("--client-seconds", type=float, default=2.0, help="per client run")
    args = parser.parse_args()
    options = Options(
        args.runs,
        args.policies,
        args.decisions,
        args.memory_decisions,
        args.memory_rate,
        args.client_seconds,
    )
    only = {int(n) for n in args.only.split(",") if n.strip()}
    chosen = [measure for target, measure in ROWS if not only or target in only]
    if not chosen:
        parser.error(f"--only {args.only}: no such target (1-5)")
    rows = [row for measure in chosen for row in measure(options)]
    widths = [max(len(r.target) for r in rows), max(len(r.figure) for r in rows)]
    for row in rows:
        status = "met" if row.met else "NOT MET"
        if row.met is None:
            status = "reference" if row.reference else "not measured"
        print(
            f"{row.target:<{widths[0]}}  {row.figure:<{widths[1]}}  {row.ratio}  "
            f"[target {row.goal}]  {status}"
        )


if __name__ == "__main__":
    main()
