"""What ``policyd eval --explain`` shows: the decision's trace completed with every routing
rule and input guardrail of the policy, including those that did not fire.

The engine's trace records what happened (a match, a block, a redaction) and stays lean
for speed; this fills in, from the policy, the rules that were evaluated and did not
match, those never reached, and the guardrails that found nothing.
"""

from __future__ import annotations

from typing import Any

from policyd import document

Row = tuple[str, str, str, str]


def explain_rows(policy: document.Policy, trace: list[dict[str, Any]]) -> list[Row]:
    """(stage, rule, outcome, detail) rows, in pipeline order."""
    rows: list[Row] = []
    stages = list(dict.fromkeys(t["stage"] for t in trace))
    if policy.guardrails.input and "guardrails" not in stages:
        stages.insert(0, "guardrails")
    for stage in stages:
        entries = [t for t in trace if t["stage"] == stage]
        if stage == "guardrails":
            rows += _guardrails(policy, entries)
        elif stage == "routing":
            rows += _routing(policy, entries)
        else:
            rows += [_row(t) for t in entries]
    return rows


def _row(t: dict[str, Any]) -> Row:
    return (t["stage"], t["rule"] or "-", t["outcome"], t["detail"])


def _guardrails(policy: document.Policy, entries: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    by_rule: dict[str | None, list[dict[str, Any]]] = {}
    for t in entries:
        by_rule.setdefault(t["rule"], []).append(t)
    blocked = False
    for guard in policy.guardrails.input:
        own = by_rule.pop(guard.name, [])
        if own:
            rows += [_row(t) for t in own]
            blocked = blocked or any(t["outcome"] == "block" for t in own)
        elif blocked:
            rows.append(("guardrails", guard.name, "not run", "an earlier guardrail blocked"))
        else:
            rows.append(("guardrails", guard.name, "pass", _pass_detail(guard)))
    for rest in by_rule.values():
        rows += [_row(t) for t in rest]
    return rows


def _pass_detail(guard: document.Guardrail) -> str:
    checks = ", ".join(guard.checks())
    if guard.when is not None and checks:
        return f"nothing found ({checks}) or condition false"
    if guard.when is not None:
        return "condition false"
    return f"nothing found ({checks})"


def _routing(policy: document.Policy, entries: list[dict[str, Any]]) -> list[Row]:
    rules = policy.routing.rules if policy.routing else []
    names = {r.name for r in rules}
    noted = {t["rule"]: t for t in entries if t["rule"] in names}
    rows: list[Row] = []
    matched = False
    for rule in rules:
        entry = noted.get(rule.name)
        if entry is not None:
            rows.append(_row(entry))
            matched = matched or entry["outcome"] == "match"
        elif matched:
            rows.append(("routing", rule.name, "not reached", "an earlier rule matched"))
        else:
            rows.append(("routing", rule.name, "no match", "condition false"))
    rows += [_row(t) for t in entries if t["rule"] not in names]
    return rows
