"""PolicyTest runner: decide every case, compare expectations, measure rule coverage.

``expect`` keys are dotted paths into ``Decision.to_dict()``; a name that
itself contains dots (``prompts.support-system.version``) is resolved by
trying the longest key that exists at each level. A case with an ``output``
(the model's answer) also runs ``engine.check_output`` on it, and ``output.*``
paths go into that verdict's ``to_dict()`` plus ``text`` (the answer as shown,
redacted). Cases of one file share an engine and clock holder, so a file can
test a sequence (e.g. budget use).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policyd import fields, model
from policyd.bundle import Bundle
from policyd.compile import compile_bundle
from policyd.engine import Engine
from policyd.errors import RequestError
from policyd.loader import Document
from policyd.request import TokenCounter
from policyd.stages.base import Runtime

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


def defined_rules(policy: model.Policy) -> set[tuple[str, str]]:
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
    bundle: Bundle, test: model.PolicyTest, doc: Document, coverage: Coverage
) -> list[CaseResult]:
    clock = _Clock()
    runtime = Runtime(clock, _memory_store())
    counter = TokenCounter()
    engine = Engine(
        compile_bundle(bundle, runtime, token_counter=counter), runtime, bundle.path, counter
    )
    results = []
    for i, case in enumerate(test.cases):
        line = doc.source_map.value(("cases", i)).line
        stamp = case.now or test.now
        clock.now = fields.parse_timestamp(stamp) if stamp else datetime.now(UTC)
        try:
            actual = _run_case(engine, test.policy, case)
        except _CaseError as exc:
            results.append(
                CaseResult(
                    test.metadata.name,
                    case.name,
                    test.policy,
                    doc.file,
                    line,
                    False,
                    error=str(exc),
                )
            )
            continue
        reached = coverage.reached.setdefault(test.policy, set())
        reached.update(reached_rules(actual["trace"]))
        if "output" in actual:
            reached.update(reached_rules(actual["output"]["trace"]))
        mismatches = compare(case.expect, actual)
        results.append(
            CaseResult(
                test.metadata.name,
                case.name,
                test.policy,
                doc.file,
                line,
                not mismatches,
                tuple(mismatches),
            )
        )
    engine.close()
    return results


class _CaseError(Exception):
    """A case that cannot be run (a bad request, an answer to a blocked request)."""


def _run_case(engine: Engine, policy: str, case: model.TestCase) -> dict[str, Any]:
    """The decision's ``to_dict()``, with ``output`` (verdict plus ``text``) if the case
    has an answer to check."""
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
    return actual


def _memory_store() -> Any:
    try:
        from policyd.stores import open_store
    except ImportError:
        return None
    return open_store(None)
