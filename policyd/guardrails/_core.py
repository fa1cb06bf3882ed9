"""The shared vocabulary of the guardrails library: findings, config errors, the Check protocol.

A :class:`Finding` says *what* was found and *where*, never the matched text itself, so
findings can go into decisions, traces and logs without leaking the value they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from policyd.errors import PolicydError


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found in a text. Never holds the matched text.

    ``start``/``end`` are character offsets into the scanned ``str`` (``-1``/``-1`` for
    findings about the whole text, such as ``json_schema`` or ``max_chars``). ``label`` is
    the placeholder used by :func:`~policyd.guardrails.redact` (``EMAIL`` -> ``[EMAIL]``).
    ``rule`` is the id of the pattern, term or injection rule that matched. ``detail`` is a
    short, value-free explanation for whole-text findings (which schema rule failed, ...).
    """

    kind: str
    start: int
    end: int
    label: str
    rule: str | None = None
    detail: str | None = None

    @property
    def positional(self) -> bool:
        """True when the finding covers a span of the text (and can be redacted)."""
        return self.start >= 0


class GuardrailConfigError(PolicydError, ValueError):
    """A guardrail option that cannot be compiled: a bad pattern, an unknown PII kind, ...

    ``index`` is the position of the offending item in the list the caller passed (the
    n-th pattern or term), or ``None`` when the error is about the option as a whole.
    ``hint`` says how to fix it, when we know.
    """

    def __init__(self, message: str, *, index: int | None = None, hint: str | None = None):
        self.message = message
        self.index = index
        self.hint = hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)


@runtime_checkable
class Check(Protocol):
    """Anything that can scan a text and report findings."""

    def scan(self, text: str) -> list[Finding]: ...


@runtime_checkable
class IncrementalCheck(Check, Protocol):
    """A check that can skip what a stream has already settled (a speed-up, not a must)."""

    def scan_after(self, text: str, min_end: int) -> list[Finding]:
        """Like ``scan``, but only findings ending after character ``min_end``."""
        ...


@runtime_checkable
class CheckStream(Protocol):
    """Per-stream state of a check that cannot be judged on a sliding window of the text."""

    def feed(self, chunk: str, offset: int) -> list[Finding]:
        """Take the next chunk (``offset`` = its absolute start); return findings now known."""
        ...

    def finish(self) -> list[Finding]:
        """The stream ended: return whatever is only known now."""
        ...


@runtime_checkable
class StreamableCheck(Check, Protocol):
    """A check with its own streaming logic (whole-text checks: JSON, max_chars, allow)."""

    def open_stream(self, overlap: int) -> CheckStream:
        """Fresh per-stream state; ``overlap`` is the scanner's look-back in characters."""
        ...


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Findings in text order; whole-text findings (offset -1) first."""
    findings.sort(key=lambda f: (f.start, f.end, f.kind, f.rule or ""))
    return findings
