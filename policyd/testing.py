"""PolicyTest runner: decide every case, compare expectations, measure rule coverage.

``expect`` keys are dotted paths into ``Decision.to_dict()``; a name that
itself contains dots (``prompts.support-system.version``) is resolved by
trying the longest key that exists at each level. A case with an ``output``
(the model's answer) also runs ``engine.check_output`` on it, and ``output.*``
paths go into that verdict's ``to_dict()`` plus ``text`` (the answer as shown,
redacted). Cases of one file share a compiled revision, an in-memory store and a
clock, so a file can test a sequence (e.g. budget use): a case's ``record`` reports an
outcome of its call (as ``Engine.record``) for the cases after it, and ``repeat`` runs a
case several times. Cases are decided by :mod:`policyd.deciding`, as the engine decides.
A failed case carries ``why``: the lines of the decision's trace that explain it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from policyd import document, fields
from policyd.bundle import Bundle
from policyd.compile import CompiledBundle, compile_bundle
from policyd.deciding import decide, outcome_of, record
from policyd.decision import Decision
from policyd.errors import RequestError
from policyd.loader import Document
from policyd.request import TokenCounter
from policyd.stages.base import Runtime
from policyd.stages.output import OutputVerdict

_MISSING = object()


@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: Any
    actual: Any

    def to_dict(self) -> dict[str, Any]:
        actual = None if self.actual is _MISSING else self.actual
        return {
            "path": self.path,
            "expected": self.expected,
            "actual": actual,
            "missing": self.actual is _MISSING,
        }


@dataclass(frozen=True)
class CaseResult:
    test: str
    case: str
    policy: str
    file: str
    line: int
    passed: bool
    mismatches: tuple[Mismatch, ...] = ()
    error: str | None = None
    why: tuple[str, ...] = ()  # for a failed case: what decided, from the decision's trace
    run: int = 1  # which run of a repeated case this result is about (the first failing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "case": self.case,
            "policy": self.policy,
            "file": self.file,
            "line": self.line,
            "passed": self.passed,
            "mismatches": [m.to_dict() for m in self.mismatches],
            "error": self.error,
            "why": list(self.why),
            "run": self.run,
        }


@dataclass
class Coverage:
    """Rules each policy defines, and the ones some case reached."""

    defined: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    reached: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def missed(self) -> dict[str, list[tuple[str, str]]]:
        out = {}
        for policy, items in self.defined.items():
            missing = sorted(items - self.reached.get(policy, set()))
            if missing:
                out[policy] = missing
        return out


def lookup(data: Any, dotted: str) -> Any:
    """Value at a dotted path of nested dicts/lists, or _MISSING."""
    parts = dotted.split(".")
    node = data
    i = 0
    while i < len(parts):
        if isinstance(node, dict):
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in node:
                    node = node[key]
                    i = j
                    break
            else:
                return _MISSING
        elif isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            node = node[int(parts[i])]
            i += 1
        else:
            return _MISSING
    return node


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_equal, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and _equal(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def compare(expect: dict[str, Any], decision: dict[str, Any]) -> list[Mismatch]:
    out = []
    for path, expected in expect.items():
        actual = lookup(decision, str(path))
        if actual is _MISSING or not _equal(expected, actual):
            out.append(Mismatch(str(path), expected, actual))
    return out


def defined_rules(policy: document.Policy) -> set[tuple[str, str]]:
    items: set[tuple[str, str]] = set()
    if policy.routing:
        items |= {("routing rule", r.name) for r in policy.routing.rules}
    items |= {("guardrail", g.name) for g in policy.guardrails.input}
    items |= {("output guardrail", g.name) for g in policy.guardrails.output}
    items |= {("cache rule", r.name) for r in policy.cache.rules}
    for rollout in policy.rollouts:
        variants = set(rollout.variants) | {v for e in rollout.schedule for v in e.variants}
        items |= {("rollout variant", f"{rollout.name}/{v}") for v in variants}
    return items


def reached_rules(trace: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    items = set()
    for entry in trace:
        stage, rule, outcome = entry["stage"], entry["rule"], entry["outcome"]
        if rule is None:
            continue
        if stage == "routing" and outcome == "match":
            items.add(("routing rule", rule))
        elif stage == "guardrails" and outcome in ("block", "warn", "redact"):
            items.add(("guardrail", rule))
        elif stage == "output" and outcome in ("block", "warn", "redact"):
            items.add(("output guardrail", rule))
        elif stage == "cache" and outcome in ("cache", "no-store", "skip"):
            items.add(("cache rule", rule))
        elif stage == "prompts" and outcome in ("variant", "default"):
            version = entry["detail"].split(" ", 1)[0]
            items.add(("rollout variant", f"{rule}/{version}"))
    return items


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def run_tests(bundle: Bundle) -> tuple[list[CaseResult], Coverage]:
    """Run every PolicyTest of a valid bundle."""
    coverage = Coverage()
    for name, ctx in bundle.policies.items():
        coverage.defined[name] = defined_rules(ctx.policy)
    results: list[CaseResult] = []
    for test, doc in bundle.tests:
        results.extend(_run_file(bundle, test, doc, coverage))
    return results, coverage


def _run_file(
    bundle: Bundle, test: document.PolicyTest, doc: Document, coverage: Coverage
) -> list[CaseResult]:
    clock = _Clock()
    session = _Session(bundle, clock)
    results = []
    for i, case in enumerate(test.cases):
        line = doc.source_map.value(("cases", i)).line
        stamp = case.now or test.now
        clock.now = fields.parse_timestamp(stamp) if stamp else datetime.now(UTC)
        result = CaseResult(test.metadata.name, case.name, test.policy, doc.file, line, True)
        for run in range(1, case.repeat + 1):
            try:
                decision, actual = _run_case(session, test.policy, case)
            except _CaseError as exc:
                result = replace(result, passed=False, error=str(exc), run=run)
                break
            reached = coverage.reached.setdefault(test.policy, set())
            reached.update(reached_rules(actual["trace"]))
            if "output" in actual:
                reached.update(reached_rules(actual["output"]["trace"]))
            mismatches = compare(case.expect, actual)
            if case.record is not None:
                session.record(decision, case.record)
            if mismatches:
                why = explain(actual, mismatches)
                result = replace(
                    result, passed=False, mismatches=tuple(mismatches), why=why, run=run
                )
                break
        results.append(result)
    session.runtime.store.close()
    return results


# Which stage's trace explains a wrong value at each top-level expect path.
_STAGE_OF = {
    "tier": "routing",
    "model": "routing",
    "litellm_model": "routing",
    "fallbacks": "routing",
    "retry": "routing",
    "timeout_s": "routing",
    "cache": "cache",
    "prompts": "prompts",
    "budgets": "budgets",
    "output": "output",
}


def explain(actual: dict[str, Any], mismatches: Iterable[Mismatch]) -> tuple[str, ...]:
    """Lines saying why the decision came out as it did: blocked_by and message, then the
    trace lines of each stage a wrong value comes from (the stage that blocked, for
    ``allowed``/``blocked_by``/``message``; routing, with the rule that matched, for a
    wrong tier). Trace details never hold request values."""
    lines = []
    if not actual.get("allowed", True):
        lines.append(f"blocked_by: {actual.get('blocked_by')}; message: {actual.get('message')}")
    stages: list[str] = []
    for m in mismatches:
        head = m.path.split(".", 1)[0]
        stage = _STAGE_OF.get(head)
        if stage is None:  # allowed, blocked_by, message, warnings, ...: the deciding stage
            stage = _deciding_stage(actual["trace"])
        if stage is not None and stage not in stages:
            stages.append(stage)
    for stage in stages:
        trace = actual["output"]["trace"] if stage == "output" else actual["trace"]
        entries = [e for e in trace if e["stage"] == stage] if stage != "output" else trace
        if stage == "routing" and "tier" in actual:
            rule = next((e["rule"] for e in entries if e["outcome"] == "match"), None)
            lines.append(
                f"tier {actual['tier']} chosen by rule {rule}"
                if rule
                else f"tier {actual['tier']}: no rule matched (routing.default)"
            )
        if not entries:
            lines.append(f"{stage}: no trace entries")
        for e in entries:
            detail = f": {e['detail']}" if e["detail"] else ""
            lines.append(f"{e['stage']} {e['rule'] or '-'} {e['outcome']}{detail}")
    return tuple(lines)


def _deciding_stage(trace: list[dict[str, Any]]) -> str | None:
    """The stage of the entry that blocked, else of the last warning, else routing."""
    for outcome in ("block", "warn"):
        for entry in trace:
            if entry["outcome"] == outcome:
                return str(entry["stage"])
    return "routing" if any(e["stage"] == "routing" for e in trace) else None


class _Session:
    """One test file's revision, compiled on its own runtime (in-memory store, the file's
    clock): decides, checks answers and records outcomes as the engine does."""

    def __init__(self, bundle: Bundle, clock: _Clock) -> None:
        from policyd.stores import open_store

        self.runtime = Runtime(clock, open_store(None))
        self.counter = TokenCounter()
        self.compiled: CompiledBundle = compile_bundle(
            bundle, self.runtime, token_counter=self.counter
        )

    def decide(self, request: dict[str, Any], policy: str) -> Decision:
        compiled = self.compiled.policy(policy)
        return decide(compiled, self.runtime, self.counter, request)

    def check_output(self, decision: Decision, text: str) -> OutputVerdict:
        guards = self.compiled.policy(decision.policy.name).output_guardrails
        if guards is None:
            return OutputVerdict(True, text)
        return guards.check(decision, text, self.runtime.clock())

    def record(self, decision: Decision, outcome: document.RecordedOutcome) -> None:
        reported, problem = outcome_of(
            decision,
            self.runtime,
            outcome.input_tokens,
            outcome.output_tokens,
            outcome.cost_usd,
            outcome.error,
            None,
            outcome.model,
        )
        record(self.compiled.policy(decision.policy.name), decision, reported)
        if problem is not None:
            raise problem


class _CaseError(Exception):
    """A case that cannot be run (a bad request, an answer to a blocked request)."""


def _run_case(
    engine: _Session, policy: str, case: document.TestCase
) -> tuple[Decision, dict[str, Any]]:
    """The decision and its ``to_dict()``, with ``output`` (verdict plus ``text``) if the
    case has an answer to check."""
    try:
        decision = engine.decide(case.request, policy=policy)
    except RequestError as exc:
        raise _CaseError(str(exc)) from None
    actual = decision.to_dict()
    if case.output is not None:
        if not decision.allowed:
            raise _CaseError(
                f"the request was blocked by {decision.blocked_by}, so there is no answer "
                "to check: remove output, or change the request so it is allowed"
            )
        verdict = engine.check_output(decision, case.output)
        actual["output"] = {**verdict.to_dict(), "text": verdict.text}
    return decision, actual
