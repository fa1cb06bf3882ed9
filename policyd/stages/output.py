"""Output guardrails: checks on the model's answer, run by ``engine.check_output``.

Each guardrail under ``guardrails.output`` runs in order on the text; ``redact``
passes the redacted text to the next check, the first ``block`` stops. The
``when`` condition sees the same request as the decision did. Streaming goes
through :class:`OutputStream`, which re-checks a bounded tail as chunks arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policyd import cel, model
from policyd.decision import Decision

STAGE = "output"

# A text check returns (reason, redacted_text or None) when it fires, else None.
TextCheck = Callable[[str], "tuple[str, str | None] | None"]


@dataclass(frozen=True, slots=True)
class OutputVerdict:
    """The result of checking a model's output."""

    allowed: bool
    text: str  # the text to show: redacted where a guardrail redacted
    blocked_by: str | None = None
    message: str | None = None
    findings: tuple[str, ...] = ()  # "guardrail: what was found" (never the values)
    warnings: tuple[str, ...] = ()

    @property
    def redacted(self) -> bool:
        return any(": redacted" in f for f in self.findings)


def _max_chars(limit: int) -> TextCheck:
    def check(text: str) -> tuple[str, str | None] | None:
        return (
            (f"output is {len(text)} characters, limit {limit}", None)
            if len(text) > limit
            else None
        )

    return check


def _json_schema(schema: dict[str, Any]) -> TextCheck:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(text: str) -> tuple[str, str | None] | None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            return f"output is not JSON: {exc.msg} at position {exc.pos}", None
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return f"output does not match the JSON Schema at {where}: {error.message}", None
        return None

    return check


def simple_output_checks(guard: model.Guardrail) -> list[TextCheck]:
    checks = []
    if guard.max_chars is not None:
        checks.append(_max_chars(guard.max_chars))
    if guard.json_schema is not None:
        checks.append(_json_schema(guard.json_schema))
    return checks


@dataclass(frozen=True, slots=True)
class CompiledOutputGuardrail:
    name: str
    when: cel.Expression | None
    action: str
    message: str
    on_error: str
    checks: tuple[TextCheck, ...]


class OutputGuardrails:
    """The compiled ``guardrails.output`` list of one policy."""

    def __init__(
        self,
        guards: list[model.Guardrail],
        expressions: dict[tuple[str | int, ...], cel.Expression],
        extra_checks: Callable[[model.Guardrail], list[TextCheck]] | None = None,
    ) -> None:
        compiled = []
        for i, g in enumerate(guards):
            checks = simple_output_checks(g)
            if extra_checks is not None:
                checks.extend(extra_checks(g))
            compiled.append(
                CompiledOutputGuardrail(
                    g.name,
                    expressions.get(("guardrails", "output", i, "when")),
                    g.action,
                    g.message or f"Response blocked by guardrail {g.name}",
                    g.on_error,
                    tuple(checks),
                )
            )
        self.guards = tuple(compiled)

    def check(self, decision: Decision, text: str, now: datetime | None = None) -> OutputVerdict:
        activation = {"request": decision.request, "now": now or datetime.now(UTC)}
        findings: list[str] = []
        warnings: list[str] = []
        for guard in self.guards:
            if guard.when is not None:
                try:
                    hit = guard.when.evaluate(activation)
                except cel.EvaluationError as exc:
                    if guard.on_error == "allow":
                        warnings.append(f"{guard.name}: condition failed, allowed: {exc}")
                        continue
                    return OutputVerdict(
                        False,
                        text,
                        guard.name,
                        guard.message,
                        (*findings, f"{guard.name}: condition failed: {exc}"),
                        tuple(warnings),
                    )
                if hit is not True:
                    continue
                if not guard.checks:
                    fired: tuple[str, str | None] | None = ("condition matched", None)
                    text, stop = self._act(guard, fired, text, findings, warnings)
                    if stop:
                        return OutputVerdict(
                            False, text, guard.name, guard.message, tuple(findings), tuple(warnings)
                        )
                    continue
            for check in guard.checks:
                fired = check(text)
                if fired is None:
                    continue
                text, stop = self._act(guard, fired, text, findings, warnings)
                if stop:
                    return OutputVerdict(
                        False, text, guard.name, guard.message, tuple(findings), tuple(warnings)
                    )
        return OutputVerdict(True, text, None, None, tuple(findings), tuple(warnings))

    @staticmethod
    def _act(
        guard: CompiledOutputGuardrail,
        fired: tuple[str, str | None],
        text: str,
        findings: list[str],
        warnings: list[str],
    ) -> tuple[str, bool]:
        reason, redacted = fired
        if guard.action == "block":
            findings.append(f"{guard.name}: {reason}")
            return text, True
        if guard.action == "redact" and redacted is not None:
            findings.append(f"{guard.name}: redacted ({reason})")
            return redacted, False
        warnings.append(f"{guard.name}: {reason}")
        return text, False
