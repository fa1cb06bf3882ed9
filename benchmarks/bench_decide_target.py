"""decide() against hand-written Python making the same decisions: target 1 of #17 (<= 1.5x).

Run: python benchmarks/bench_decide_target.py [--rounds 40] [--batch 400]
     python benchmarks/bench_decide_target.py --only decide --calls 20000   # for a profiler

Two policies: ``routing-heavy`` (benchmarks/policies/routing-heavy, no text scans; its
twin is benchmarks/handwritten.py, checked on 2,600 requests by
tests/test_handwritten_agrees.py) and the shipped ``support-bot`` (text scans included;
its twin is benchmarks/support_twin.py, which makes the same request checks and scans,
checked on 2,600 varied and hostile requests by tests/test_support_twin_agrees.py). Both
twins are also checked on the timed requests before timing. ``--scan-only-twin`` adds a
row against the older support-bot twin, ``bench_decide.handwritten``, which runs the
scans but none of the request checks; it is not the target row.
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
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_decide  # noqa: E402
import handwritten  # noqa: E402
import support_twin  # noqa: E402
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
    """The target row: decide() against the faithful twin (support_twin.py)."""
    engine = Engine.from_path(bench_decide.ROOT / "policies", clock=lambda: NOW)
    requests = bench_decide.request_mix()[:batch]
    for request in requests:
        decision = engine.decide(request, policy="support-bot")
        if support_twin.observable(decision) != support_twin.decide(request, NOW):
            raise SystemExit("the support-bot twin disagrees with decide(); fix it first")

    def decide(request: dict[str, Any]) -> Any:
        return engine.decide(request, policy="support-bot")

    def baseline(request: dict[str, Any]) -> Any:
        return support_twin.decide(request, NOW)

    return interleaved("support-bot", decide, baseline, requests, rounds)


def support_bot_scan_only(rounds: int, batch: int) -> Result:
    """Not a target row: against bench_decide.handwritten, which makes no request checks."""
    engine = Engine.from_path(bench_decide.ROOT / "policies", clock=lambda: bench_decide.NOW)
    requests = bench_decide.request_mix()[:batch]
    for request in requests:
        decision = engine.decide(request, policy="support-bot")
        if bench_decide.engine_view(decision) != bench_decide.handwritten(
            request, bench_decide.NOW
        ):
            raise SystemExit("the scan-only support-bot twin disagrees with decide()")

    def decide(request: dict[str, Any]) -> Any:
        return engine.decide(request, policy="support-bot")

    def baseline(request: dict[str, Any]) -> Any:
        return bench_decide.handwritten(request, bench_decide.NOW)

    return interleaved("(scan-only)", decide, baseline, requests, rounds)


# decide() cut short after each phase, for per-phase instruction counts: the count of
# one prefix minus the count of the one before it is that phase's cost.
PHASES = ("prepare", "state", "guardrails", "routing", "cache", "prompts", "finish")


def _prefix(engine: Engine, upto: int, policy: str) -> Callable[[dict[str, Any]], Any]:
    from policyd.decision_id import new_decision_id
    from policyd.stages.base import DecisionState, finish

    compiled = engine.compiled.policy(None if policy == "routing-heavy" else policy)
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


def run_only(which: str, calls: int, policy: str = "routing-heavy") -> None:
    """``calls`` calls of one contender, untimed (for cProfile, callgrind): ``decide``,
    ``baseline``, ``baseline-checks`` (the twin's request checks alone), or a phase of
    PHASES (decide() up to and including it); on routing-heavy or support-bot."""
    if policy == "support-bot":
        engine = Engine.from_path(bench_decide.ROOT / "policies", clock=lambda: NOW)
        decide: Callable[[dict[str, Any]], Any] = partial(engine.decide, policy="support-bot")
        requests = bench_decide.request_mix()[:400]
        twin, checks = support_twin.decide, support_twin.prepare
    else:
        engine = Engine.from_path(ROUTING_BUNDLE, clock=lambda: NOW)
        decide = engine.decide
        requests = varied_requests(400, seed=2026, clean=True)
        twin, checks = handwritten.decide, handwritten.prepare
    for request in requests[:50]:  # warm both, whichever is counted
        decide(request)
        twin(request, NOW)
    fn: Callable[[dict[str, Any]], Any]
    if which == "decide":
        fn = decide
    elif which == "baseline":
        fn = lambda request: twin(request, NOW)  # noqa: E731
    elif which == "baseline-checks":
        fn = checks
    else:
        fn = _prefix(engine, PHASES.index(which), policy)
    size = len(requests)
    for i in range(calls):
        fn(requests[i % size])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=400, help="requests per round")
    parser.add_argument("--only", choices=("decide", "baseline", "baseline-checks", *PHASES))
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--policy", choices=("routing-heavy", "support-bot"))
    parser.add_argument(
        "--scan-only-twin",
        action="store_true",
        help="also time support-bot against the older twin that makes no request checks",
    )
    args = parser.parse_args()
    if args.only:
        run_only(args.only, args.calls, args.policy or "routing-heavy")
        return
    print(f"{'policy':<14} {'decide() µs':>12} {'hand-written µs':>16} {'ratio':>7}  target")
    measures = [routing_heavy, support_bot]
    if args.policy is not None:
        measures = [routing_heavy if args.policy == "routing-heavy" else support_bot]
    for measure in measures:
        r = measure(args.rounds, args.batch)
        print(
            f"{r.policy:<14} {r.engine_us:>12.2f} {r.baseline_us:>16.2f} {r.ratio:>6.2f}x  "
            f"<= {TARGET}x {'met' if r.met else 'NOT MET'}"
        )
    if args.scan_only_twin:
        r = support_bot_scan_only(args.rounds, args.batch)
        print(
            f"{r.policy:<14} {r.engine_us:>12.2f} {r.baseline_us:>16.2f} {r.ratio:>6.2f}x  "
            "(support-bot against the twin without request checks; not a target row)"
        )


if __name__ == "__main__":
    main()
