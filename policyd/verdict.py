"""The answer to ``engine.check_output`` and to each step of ``engine.output_checker``.

Frozen results, like :mod:`policyd.decision`: what the output guardrails found in a
model's answer (type, rule id, offsets — never the matched text) and what to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policyd.decision import TraceEntry


@dataclass(frozen=True, slots=True)
class OutputFinding:
    """Something a guardrail found in the answer; offsets are into the text that guardrail
    checked (after the redactions of the guardrails before it), -1 for whole-text ones."""

    guardrail: str
    kind: str
    label: str
    rule: str | None = None
    start: int = -1
    end: int = -1
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "guardrail": self.guardrail,
            "kind": self.kind,
            "label": self.label,
            "rule": self.rule,
            "start": self.start,
            "end": self.end,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class OutputVerdict:
    """The result of checking a model's answer.

    ``text`` is the answer to show, redacted where a guardrail redacted. When not
    ``allowed``, show ``message`` instead: ``text`` is then what the blocking guardrail saw.
    ``to_dict()`` leaves ``text`` out, so a verdict can be logged.
    """

    allowed: bool
    text: str
    blocked_by: str | None = None
    message: str | None = None
    findings: tuple[OutputFinding, ...] = ()
    warnings: tuple[str, ...] = ()
    redacted: bool = False
    trace: tuple[TraceEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "blocked_by": self.blocked_by,
            "message": self.message,
            "redacted": self.redacted,
            "findings": [f.to_dict() for f in self.findings],
            "warnings": list(self.warnings),
            "trace": [t.to_dict() for t in self.trace],
        }


@dataclass(frozen=True, slots=True)
class OutputStep:
    """What one ``OutputChecker.feed()``/``finish()`` gives: the text safe to show now
    (redacted), the findings that became visible, and whether the answer is still allowed.
    Once blocked, every later step is blocked with no text."""

    allowed: bool
    text: str
    findings: tuple[OutputFinding, ...] = ()
    blocked_by: str | None = None
    message: str | None = None
