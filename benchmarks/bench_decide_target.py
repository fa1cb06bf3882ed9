"""decide() against hand-written Python making the same decisions: target 1 of #17 (<= 1.5x).

Run: python benchmarks/bench_decide_target.py [--rounds 40] [--batch 400]
     python benchmarks/bench_decide_target.py --only decide --calls 20000   # for a profiler

Two policies: ``routing-heavy`` (benchmarks/policies/routing-heavy, no text scans; its
twin is benchmarks/handwritten.py, checked on 2,600 requests by
tests/test_handwritten_agrees.py) and the shipped ``support-bot`` (text scans included;
its twin is ``bench_decide.handwritten``, checked on its 500-request mix before timing).
Both contenders run interleaved in the same process: each round times one batch of
requests through each (the order alternating), and the figure is the median over rounds
of the per-call time and of the per-round ratio, so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_decide  # noqa: E402
import handwritten  # noqa: E402
from routing_mix import varied_requests  # noqa: E402

from policyd import Engine  # noqa: E402

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
ROUTING_BUNDLE = HERE / "policies" / "routing-heavy"
TARGET = 1.5


@dataclass(frozen=True)
class Result:
    policy: str
    engine_us: float  # median per-call time of decide()
    baseline_us: float  # median per-call time of the hand-written function
    ratio: float  # median of per-round ratios
    rounds: int
    batch: int

    @property
    def met(self) -> bool:
        return self.ratio <= TARGET


Fn = Callable[[dict[str, Any]], Any]


def _batch_ns(fn: Fn, requests: list[dict[str, Any]]) -> int:
    clock = time.thread_time_ns
    start = clock()
    for request in requests:
        fn(request)
    return clock() - start


def interleaved(
    policy: str, engine_fn: Fn, baseline_fn: Fn, requests: list[dict[str, Any]], rounds: int
) -> Result:
    """Time both over the same requests, alternating which goes first each round."""
    for fn in (engine_fn, baseline_fn):  # warm caches and lazily built state
        _batch_ns(fn, requests)
    gc.collect()
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    n = len(requests)
    for i in range(rounds):
        if i % 2:
            b = _batch_ns(baseline_fn, requests)
            e = _batch_ns(engine_fn, requests)
        else:
            e = _batch_ns(engine_fn, requests)
            b = _batch_ns(baseline_fn, requests)
        ours.append(e / n / 1000)
        theirs.append(b / n / 1000)
        ratios.append(e / b)
    return Result(
        policy,
        statistics.median(ours),
        statistics.median(theirs),
        statistics.median(ratios),
        rounds,
        n,
    )


def routing_heavy(rounds: int, batch: int) -> Result:
    engine = Engine.from_path(ROUTING_BUNDLE, clock=lambda: NOW)
    requests = varied_requests(batch, seed=2026, clean=True)
    for request in requests:  # the same decisions, or the ratio means nothing
        if handwritten.observable(engine.decide(request)) != handwritten.decide(request, NOW):
            raise SystemExit("the hand-written twin disagrees with decide(); fix it first")

    def baseline(request: dict[str, Any]) -> Any:
        return handwritten.decide(request, NOW)

    return interleaved("routing-heavy", engine.decide, baseline, requests, rounds)


def support_bot(rounds: int, batch: int) -> Result:
    engine = Engine.from_path(bench_decide.ROOT / "policies", clock=lambda: bench_decide.NOW)
    requests = bench_decide.request_mix()[:batch]
    for request in requests:
        decision = engine.decide(request, policy="support-bot")
        if bench_decide.engine_view(decision) != bench_decide.handwritten(
            request, bench_decide.NOW
        ):
            raise SystemExit("the support-bot twin disagrees with decide(); fix it first")

    def decide(request: dict[str, Any]) -> Any:
        return engine.decide(request, policy="support-bot")

    def baseline(request: dict[str, Any]) -> Any:
        return bench_decide.handwritten(request, bench_decide.NOW)

    return interleaved("support-bot", decide, baseline, requests, rounds)


# decide() cut short after each phase, for per-phase instruction counts: the count of
# one prefix minus the count of the one before it is that phase's cost.
PHASES = ("prepare", "state", "guardrails", "routing", "cache", "prompts", "finish")


def _prefix(engine: Engine, upto: int) -> Callable[[dict[str, Any]], Any]:
    from policyd.decision_id import new_decision_id
    from policyd.stages.base import DecisionState, finish

    compiled = engine.compiled.policy(None)
    clock, counter = engine._runtime.clock, engine._counter.name
    steps = compiled.steps[: max(0, upto - 1)]

    def run(request: dict[str, Any]) -> Any:
        prepared = compiled.shape.prepare(request)
        if upto < 1:
            return prepared
        state = DecisionState(prepared, clock(), new_decision_id(), counter)
        for step in steps:
            step.run(state)
            if state.blocked_by is not None:
                break
        return finish(state, compiled.ref, compiled) if upto == len(PHASES) - 1 else state

    return run


def run_only(which: str, calls: int) -> None:
    """``calls`` calls of one contender on routing-heavy, untimed (for cProfile, callgrind):
    ``decide``, ``baseline``, ``baseline-checks`` (the twin's request checks alone), or a
    phase of PHASES (decide() up to and including it)."""
    engine = Engine.from_path(ROUTING_BUNDLE, clock=lambda: NOW)
    requests = varied_requests(400, seed=2026, clean=True)
    for request in requests[:50]:  # warm both, whichever is counted
        engine.decide(request)
        handwritten.decide(request, NOW)
    fn: Callable[[dict[str, Any]], Any]
    if which == "decide":
        fn = engine.decide
    elif which == "baseline":
        fn = lambda request: handwritten.decide(request, NOW)  # noqa: E731
    elif which == "baseline-checks":
        fn = handwritten.prepare
    else:
        fn = _prefix(engine, PHASES.index(which))
    size = len(requests)
    for i in range(calls):
        fn(requests[i % size])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=400, help="requests per round")
    parser.add_argument("--only", choices=("decide", "baseline", "baseline-checks", *PHASES))
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    if args.only:
        run_only(args.only, args.calls)
        return
    print(f"{'policy':<14} {'decide() µs':>12} {'hand-written µs':>16} {'ratio':>7}  target")
    for measure in (routing_heavy, support_bot):
        r = measure(args.rounds, args.batch)
        print(
            f"{r.policy:<14} {r.engine_us:>12.2f} {r.baseline_us:>16.2f} {r.ratio:>6.2f}x  "
            f"<= {TARGET}x {'met' if r.met else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
