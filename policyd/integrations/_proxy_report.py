"""What the proxy hook tells LiteLLM's logging: a decision summary and guardrail records.

The summary goes into the request's logging metadata (``metadata["policyd"]``, which
every LiteLLM callback receives); a ``StandardLoggingGuardrailInformation`` record per
hook goes where LiteLLM's own guardrails put theirs, so policyd shows up in LiteLLM's
guardrail metrics, OTel guardrail spans and ``standard_logging_object
["guardrail_information"]``. Neither ever holds a matched value or request text:
redactions are counted by type.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from policyd.decision import Decision
from policyd.verdict import OutputVerdict

SUMMARY_KEY = "policyd"
_REDACTED = re.compile(r"redacted (.*?) in message")
_LABEL = re.compile(r"^([A-Z][A-Z0-9_]*)(?: \([^)]*\))?(?:: .*?)?(?: x(\d+))?$")


def redaction_counts(decision: Decision) -> dict[str, int]:
    """Input redactions by type (``{"EMAIL": 2}``), from the decision's trace."""
    counts: Counter[str] = Counter()
    for entry in decision.trace:
        if entry.stage != "guardrails" or entry.outcome != "redact":
            continue
        found = _REDACTED.search(entry.detail)
        for part in (found.group(1) if found else "").split(", "):
            match = _LABEL.match(part.strip())
            if match:
                counts[match.group(1)] += int(match.group(2) or 1)
    return dict(counts)


def output_counts(verdicts: Iterable[OutputVerdict]) -> dict[str, int]:
    """Output redactions by type, from the verdicts' findings."""
    counts: Counter[str] = Counter()
    for verdict in verdicts:
        if verdict.redacted:
            counts.update(f.label for f in verdict.findings if f.start >= 0)
    return dict(counts)


def routing_rule(decision: Decision) -> str | None:
    for entry in decision.trace:
        if entry.stage == "routing" and entry.outcome == "match":
            return entry.rule
    return None


def summary(decision: Decision, route: str, kind: str | None = None) -> dict[str, Any]:
    """The decision in a few fields, safe to log (no request text, no matched values)."""
    ref = decision.policy
    return {
        "decision_id": decision.id,
        "policy": ref.name,
        "version": ref.version,
        "digest": ref.digest,
        "route": route,
        "allowed": decision.allowed,
        "tier": decision.tier,
        "model": decision.model,
        "rule": routing_rule(decision),
        "blocked_by": decision.blocked_by,
        "kind": kind,
        "redactions": redaction_counts(decision),
        "budgets": {b.name: b.state for b in decision.budgets},
    }


def add_output(summary_: dict[str, Any], verdicts: Iterable[OutputVerdict]) -> dict[str, Any]:
    verdicts = tuple(verdicts)
    blocking = next((v for v in verdicts if not v.allowed), None)
    summary_["output"] = {
        "checked": len(verdicts),
        "blocked_by": blocking.blocked_by if blocking is not None else None,
        "redactions": output_counts(verdicts),
    }
    return summary_


def record_guardrail(
    guardrail: Any,
    data: dict[str, Any],
    *,
    event: str,
    report: dict[str, Any],
    intervened: bool,
    masked: dict[str, int],
    started: float,
    ended: float,
) -> None:
    """A StandardLoggingGuardrailInformation record, added the way LiteLLM's guardrails
    add theirs (``CustomGuardrail.add_standard_logging_guardrail_information_to_request_data``)."""
    from litellm.types.guardrails import GuardrailEventHooks

    guardrail.add_standard_logging_guardrail_information_to_request_data(
        guardrail_json_response=report,
        request_data=data,
        guardrail_status="guardrail_intervened" if intervened else "success",
        start_time=started,
        end_time=ended,
        duration=ended - started,
        masked_entity_count=masked or None,
        guardrail_provider="policyd",
        event_type=GuardrailEventHooks(event),
        tracing_detail={
            "guardrail_id": f"{report['policy']}@{str(report['digest'])[:12]}",
            "policy_template": report["policy"],
            "detection_method": "policyd",
        },
    )
