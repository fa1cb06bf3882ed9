"""Replay recorded requests under two revisions and count what changes (``policyd diff``).

Each request is decided under BASE and HEAD with the same clock (the logged decision time)
and the same decision id (which also seeds weighted routing), by each side's own compiled
stages. Budgets run on a fresh in-memory store per side, settled with the logged outcome's
tokens, so a new or changed budget shows its effect on recorded traffic and no real store
is touched. :func:`compare` is shared with shadow revisions.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policyd.bundle import Bundle, load_bundle
from policyd.compile import CompiledBundle, CompiledPolicy, compile_bundle
from policyd.deciding import decision_flow, record
from policyd.decision import Decision
from policyd.diff_input import Replay, read_share, replays
from policyd.errors import RequestError
from policyd.request import TokenCounter
from policyd.stages.base import DecisionState, Outcome, Runtime, evaluate
from policyd.stages.flow import drive

FIELDS = ("allowed", "blocked_by", "tier", "model", "fallbacks", "cache_ttl")


def view(decision: Decision) -> dict[str, str]:
    """The fields a diff compares, as short display strings."""
    cache = decision.cache
    out = {
        "allowed": "allowed" if decision.allowed else "blocked",
        "blocked_by": decision.blocked_by or "-",
        "tier": decision.tier or "-",
        "model": decision.model or "-",
        "fallbacks": ", ".join(decision.fallbacks) or "-",
        "cache_ttl": f"{cache.ttl_s:g}s" if cache is not None else "-",
    }
    for name, choice in decision.prompts.items():
        out[f"prompt {name}"] = choice.version
    for budget in decision.budgets:
        out[f"budget {budget.name}"] = budget.state
    return out


def compare(base: Decision, head: Decision) -> dict[str, tuple[str, str]]:
    """field -> (base, head) for every compared field that differs."""
    a, b = view(base), view(head)
    return {k: (a.get(k, "-"), b.get(k, "-")) for k in {**a, **b} if a.get(k, "-") != b.get(k, "-")}


def responsible(base: Decision, head: Decision) -> list[str]:
    """Trace steps on one side only (which rules made the difference), e.g.
    ``+ routing enterprise-code match`` (HEAD only) or ``- guardrails pii redact``."""
    a = {(t.stage, t.rule, t.outcome) for t in base.trace if t.outcome != "model"}
    b = {(t.stage, t.rule, t.outcome) for t in head.trace if t.outcome != "model"}
    out = {f"+ {s} {r or '-'} {o}" for s, r, o in b - a}
    out |= {f"- {s} {r or '-'} {o}" for s, r, o in a - b}
    return sorted(out)  # head-only steps first, in a stable order


# --------------------------------------------------------------------------- one revision


class _Draws:
    """Stands in for the ``random`` module in routing during a replay: the same numbers
    for the same decision id on both sides (reseeding ``random`` costs more than a decision
    stage)."""

    def __init__(self) -> None:
        self._state = 1

    def reset(self, decision_id: str) -> None:
        self._state = zlib.crc32(decision_id.encode()) | 1

    def random(self) -> float:
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self._state >> 11) / float(1 << 53)


_DRAWS = _Draws()


class Side:
    """One revision, compiled on its own runtime with an in-memory budget store."""

    def __init__(
        self, path: str, label: str, clock: datetime, *, bundle: Bundle | None = None
    ) -> None:
        """``bundle``: the bundle at ``path`` already loaded (else it is loaded here)."""
        from policyd.stores import MemoryStore

        self.label = label
        self.path = path
        self.runtime = Runtime(lambda: clock, MemoryStore())
        self.counter = TokenCounter()
        self.bundle: CompiledBundle = compile_bundle(
            bundle if bundle is not None else load_bundle(path),
            self.runtime,
            token_counter=self.counter,
        )

    @property
    def digest(self) -> str:
        return self.bundle.digest

    @property
    def has_budgets(self) -> bool:
        return any(p.budgets for p in self.bundle.policies.values())

    def decide(
        self, policy: CompiledPolicy, item: Replay, now: datetime
    ) -> tuple[Decision, DecisionState]:
        _DRAWS.reset(item.id)  # weighted routing without a sticky key: same draw both sides
        state = DecisionState(policy.shape.prepare(item.request), now, item.id, self.counter.name)
        decision = drive(decision_flow(policy, state))
        if decision.reservation is not None and item.output_tokens is not None:
            outcome = Outcome(
                decision.model, None, None, item.input_tokens, item.output_tokens, None, now
            )
            record(policy, decision, outcome)
        return decision, state


# --------------------------------------------------------------------------- the report


@dataclass
class DiffReport:
    """What changed between two revisions on a set of recorded requests."""

    base: str
    head: str
    base_digest: str
    head_digest: str
    requests: int = 0
    decided: int = 0
    changed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    newly_blocked: int = 0
    newly_allowed: int = 0
    base_micros: int = 0
    head_micros: int = 0
    priced: int = 0
    unpriced: int = 0
    rollouts: dict[str, Counter[str]] = field(default_factory=dict)
    rollout_keys: dict[str, set[str]] = field(default_factory=dict)
    examples: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def add(
        self, base: Decision, head: Decision, ignore: frozenset[str] = frozenset()
    ) -> dict[str, tuple[str, str]]:
        """Count one compared pair (leaving out fields in ``ignore``); returns its changes."""
        self.decided += 1
        changes = compare(base, head)
        for name in ignore:
            changes.pop(name, None)
        if not changes:
            return changes
        self.changed += 1
        for name, (a, b) in changes.items():
            self.by_field[name] += 1
            key = (name, a, b)
            self.transitions[key] += 1
            ids = self.examples.setdefault(key, [])
            if len(ids) < 3:
                ids.append(base.id)
        if base.allowed and not head.allowed:
            self.newly_blocked += 1
        elif head.allowed and not base.allowed:
            self.newly_allowed += 1
        for step in responsible(base, head):
            self.rules[step] += 1
        return changes

    def merge(self, other: DiffReport) -> None:
        """Add the counts of a report on other requests (a parallel worker's)."""
        for name in ("requests", "decided", "changed", "newly_blocked", "newly_allowed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("base_micros", "head_micros", "priced", "unpriced"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.by_field.update(other.by_field)
        self.transitions.update(other.transitions)
        self.rules.update(other.rules)
        for rollout, moves in other.rollouts.items():
            self.rollouts.setdefault(rollout, Counter()).update(moves)
        for rollout, keys in other.rollout_keys.items():
            self.rollout_keys.setdefault(rollout, set()).update(keys)
        for key, ids in other.examples.items():
            mine = self.examples.setdefault(key, [])
            mine.extend(ids[: max(0, 3 - len(mine))])

    @property
    def cost_delta_pct(self) -> float | None:
        if not self.base_micros:
            return None
        return (self.head_micros - self.base_micros) * 100.0 / self.base_micros

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        return {
            "base": {"ref": self.base, "revision": self.base_digest},
            "head": {"ref": self.head, "revision": self.head_digest},
            "requests": self.requests,
            "decided": self.decided,
            "changed": self.changed,
            "errors": dict(self.errors),
            "newly_blocked": self.newly_blocked,
            "newly_allowed": self.newly_allowed,
            "by_field": dict(self.by_field.most_common()),
            "transitions": [
                {"field": f, "base": a, "head": b, "requests": n, "example_ids": self.examples[key]}
                for key, n in self.transitions.most_common(top)
                for f, a, b in (key,)
            ],
            "rules": [{"step": s, "requests": n} for s, n in self.rules.most_common(top)],
            "cost": {
                "base_usd": self.base_micros / 1e6,
                "head_usd": self.head_micros / 1e6,
                "delta_usd": (self.head_micros - self.base_micros) / 1e6,
                "delta_pct": self.cost_delta_pct,
                "priced_requests": self.priced,
                "unpriced_requests": self.unpriced,
            },
            "rollouts": {
                name: {
                    "requests": sum(moves.values()),
                    "sticky_keys": len(self.rollout_keys.get(name, ())),
                    "moves": {f"{a} -> {b}": n for (a, b), n in _pairs(moves)},
                }
                for name, moves in sorted(self.rollouts.items())
            },
        }


def _pairs(moves: Counter[str]) -> Iterator[tuple[tuple[str, str], int]]:
    for key, n in moves.most_common():
        a, _, b = key.partition("\0")
        yield (a, b), n


def _cost(decision: Decision, item: Replay, prepared: Mapping[str, Any]) -> int | None:
    if not decision.allowed:
        return 0
    info = getattr(decision.revision, "models", {}).get(decision.model or "")
    if info is None or not info.priced:
        return None
    tokens_in = item.input_tokens if item.input_tokens is not None else prepared["input_tokens"]
    return int(info.cost_micros(int(tokens_in or 0), int(item.output_tokens or 0)))


def _rollout_shift(
    report: DiffReport,
    changes: Mapping[str, tuple[str, str]],
    sides: tuple[tuple[Decision, DecisionState], ...],
) -> None:
    """Count variant moves per rollout, and the distinct sticky keys that moved (read from
    HEAD's rollouts, or BASE's when HEAD has none)."""
    for decision, state in sides:
        stage = getattr(decision.revision, "stage_by_name", {}).get("prompts")
        if stage is None:
            continue
        for rollout in stage.rollouts:
            change = changes.get(f"prompt {rollout.prompt}")
            if change is None:
                continue
            moves = report.rollouts.setdefault(rollout.name, Counter())
            moves[f"{change[0]}\0{change[1]}"] += 1
            value, error = evaluate(rollout.sticky, state)
            if error is None and value is not None:
                report.rollout_keys.setdefault(rollout.name, set()).add(repr(value))
        return


def run_diff(
    base: Side, head: Side, items: Iterable[Replay], *, policy: str | None, now: datetime
) -> DiffReport:
    """Decide every item under both sides and count the differences."""
    from policyd.stages import routing

    saved = routing.random
    routing.random = _DRAWS  # type: ignore[assignment]
    try:
        return _run(base, head, items, policy, now)
    finally:
        routing.random = saved


def diff_file(
    base: Side, head: Side, path: str, *, policy: str | None, now: datetime, jobs: int = 1
) -> DiffReport:
    """``run_diff`` on a requests file. ``jobs > 1`` forks that many processes, each
    reading and replaying every jobs-th request of the file (so none inherits a large
    heap), unless a side has budgets: their spend depends on the order of all requests."""
    import os

    from policyd.decision_log import read_lines

    small = os.path.getsize(path) < _PARALLEL_BYTES
    if jobs <= 1 or small or base.has_budgets or head.has_budgets:
        return run_diff(
            base, head, replays(read_lines(path, summaries=False)), policy=policy, now=now
        )
    import multiprocessing

    global _WORK
    _WORK = (base, head, path, policy, now, jobs)  # inherited by the forked workers
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = pool.map(_share, range(jobs))
    finally:
        _WORK = None
    report = DiffReport(base.label, head.label, base.digest, head.digest)
    for part in parts:
        report.merge(part)
    return report


_PARALLEL_BYTES = 4 << 20  # smaller files are replayed in one process: forking costs more
_WORK: tuple[Side, Side, str, str | None, datetime, int] | None = None


def _share(worker: int) -> DiffReport:
    assert _WORK is not None
    base, head, path, policy, now, jobs = _WORK
    return run_diff(base, head, read_share(path, worker, jobs), policy=policy, now=now)


def _run(
    base: Side, head: Side, items: Iterable[Replay], policy: str | None, now: datetime
) -> DiffReport:
    report = DiffReport(base.label, head.label, base.digest, head.digest)
    # a policy with the same content digest on both sides decides the same: once is enough
    # (without budgets, whose counters other policies of a side may share)
    same_ok = not (base.has_budgets or head.has_budgets)
    for item in items:
        report.requests += 1
        name = policy or item.policy
        when = item.now or now
        try:
            base_policy = base.bundle.policy(name)
        except RequestError:
            if name is None:  # a plain request line on a bundle of several policies
                report.errors["no policy logged and the bundle has several: pass --policy"] += 1
            else:
                report.errors[f"policy {name} not in base"] += 1
            continue
        try:
            head_policy = head.bundle.policy(name)
        except RequestError:
            report.errors[f"policy {name or '?'} not in head"] += 1
            continue
        try:
            a = base.decide(base_policy, item, when)
            if same_ok and base_policy.ref.digest == head_policy.ref.digest:
                b = a
            else:
                b = head.decide(head_policy, item, when)
        except RequestError as exc:
            report.errors[f"request rejected ({exc.field or 'request'})"] += 1
            continue
        changes = report.add(a[0], b[0])
        cost_a = _cost(a[0], item, a[1].request)
        cost_b = _cost(b[0], item, b[1].request)
        if cost_a is None or cost_b is None:
            report.unpriced += 1
        else:
            report.priced += 1
            report.base_micros += cost_a
            report.head_micros += cost_b
        if any(k.startswith("prompt ") for k in changes):
            _rollout_shift(report, changes, (b, a))
    return report
