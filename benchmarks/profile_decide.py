"""Where decide()'s time goes on the routing-heavy policy, phase by phase (#17, target 1).

Run: python benchmarks/profile_decide.py [--rounds 30]

Runs the engine's own pieces over the benchmark's request batch, one phase at a time
(request preparation, starting the state, each stage, building the Decision, to_dict),
each phase timed over the whole batch and reported as the median per request over
rounds; the end-to-end decide() and the hand-written twin (its request checks alone,
and whole) are timed in the same rounds, so the table reads as shares of one run.
The trace's share is estimated from the number of entries per decision times the cost
of one ``state.note``. Per-function detail: ``python -m cProfile -s tottime
benchmarks/bench_decide_target.py --only decide``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import handwritten  # noqa: E402
from bench_decide_target import NOW, ROUTING_BUNDLE  # noqa: E402
from routing_mix import varied_requests  # noqa: E402

from policyd import Engine  # noqa: E402
from policyd.decision_id import new_decision_id  # noqa: E402
from policyd.stages.base import DecisionState, finish  # noqa: E402


def phases(engine: Engine, requests: list[dict[str, Any]]) -> dict[str, float]:
    """Nanoseconds per phase over the batch (stages run on the state the previous left)."""
    compiled = engine.compiled.policy(None)
    runtime = engine._runtime
    counter = engine._counter.name
    clock = time.thread_time_ns
    out: dict[str, float] = defaultdict(float)
    start = clock()
    prepared = [compiled.shape.prepare(r) for r in requests]
    out["request preparation (checks, copy, token count)"] += clock() - start
    start = clock()
    states = [DecisionState(p, runtime.clock(), new_decision_id(), counter) for p in prepared]
    out["state: clock, decision id, DecisionState"] += clock() - start
    for step in compiled.steps:
        live = [s for s in states if s.blocked_by is None]
        run = step.run
        start = clock()
        for state in live:
            run(state)
        out[f"stage {step.name}"] += clock() - start
    start = clock()
    decisions = [finish(s, compiled.ref, compiled) for s in states]
    out["finish: building the frozen Decision"] += clock() - start
    start = clock()
    for d in decisions:
        d.to_dict()
    out["to_dict() (not part of decide)"] += clock() - start
    out["_trace_entries"] += sum(len(s.trace) for s in states)
    return out


def note_cost(n: int = 20_000) -> float:
    """Nanoseconds of one ``state.note`` (a TraceEntry built and appended)."""
    state = DecisionState({}, NOW, "", "")
    clock = time.thread_time_ns
    start = clock()
    for _ in range(n):
        state.note("routing", "rule", "match", "tier premium")
    return (clock() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=400)
    args = parser.parse_args()
    engine = Engine.from_path(ROUTING_BUNDLE, clock=lambda: NOW)
    requests = varied_requests(args.batch, seed=2026, clean=True)
    n = len(requests)
    samples: dict[str, list[float]] = defaultdict(list)
    clock = time.thread_time_ns
    for _ in range(3):  # warm-up
        phases(engine, requests)
    for _ in range(args.rounds):
        for name, ns in phases(engine, requests).items():
            samples[name].append(ns / n)
        start = clock()
        for r in requests:
            engine.decide(r)
        samples["decide() end to end"].append((clock() - start) / n)
        start = clock()
        for r in requests:
            handwritten.prepare(r)
        samples["hand-written: request checks only"].append((clock() - start) / n)
        start = clock()
        for r in requests:
            handwritten.decide(r, NOW)
        samples["hand-written: whole decision"].append((clock() - start) / n)
        samples["_note"].append(note_cost(2000))
    med = {name: statistics.median(values) for name, values in samples.items()}
    total = med["decide() end to end"]
    entries, note = med.pop("_trace_entries"), med.pop("_note")
    print(f"routing-heavy, {n} requests, median of {args.rounds} rounds, per request")
    print(f"{'phase':<52} {'µs':>7} {'share':>7}")
    for name, ns in med.items():
        print(f"{name:<52} {ns / 1000:>7.2f} {ns / total:>6.0%}")
    trace = entries * note
    print(
        f"{'  of which trace entries (est.)':<52} {trace / 1000:>7.2f} {trace / total:>6.0%}"
        f"   ({entries:.1f} entries x {note:.0f} ns)"
    )


if __name__ == "__main__":
    main()
