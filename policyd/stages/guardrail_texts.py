"""The texts an input guardrail checks, scanned and redacted: one implementation for both
ways a decision runs (the guardrails stage and the generated decide function of
:mod:`policyd.fused`), so both find, redact and word the same.

Pure functions of the messages: they return what was found and the redacted copy of the
messages; writing it into a decision (the trace, ``Decision.messages``) is the caller's.
Traces name what was found (type, rule id, message index), never the matched text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyd.guardrails import Check, Finding

Where = tuple[int, int | None]  # (message index, content part index or None)
Located = list[tuple[int, "Finding"]]  # (message index, finding)
Redact = Callable[[str, Sequence["Finding"]], str]  # policyd.guardrails.redact


def message_texts(
    messages: Sequence[Any], roles: frozenset[str] | None
) -> list[tuple[int, int | None, str]]:
    """(message, part or None, text) of every text a guardrail with ``roles`` checks (as
    the library's ``iter_message_texts``: string contents and ``type: text`` parts)."""
    out: list[tuple[int, int | None, str]] = []
    for i, message in enumerate(messages):
        if roles is not None and message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append((i, None, content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if (
                    isinstance(part, Mapping)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                ):
                    out.append((i, j, part["text"]))
    return out


def scan_texts(messages: Sequence[Any], check: Check, roles: frozenset[str] | None) -> Located:
    """Every finding of ``check`` in the texts, in message order."""
    scan = check.scan
    return [(i, f) for i, _, text in message_texts(messages, roles) for f in scan(text)]


def redaction(
    messages: Sequence[Any], check: Check, roles: frozenset[str] | None, redact: Redact
) -> tuple[list[Any], str] | None:
    """The messages with every positional finding replaced, and the trace's detail
    (``redacted EMAIL x2 in message 1``); None when nothing was found to replace."""
    scan = check.scan
    changes: dict[Where, str] = {}
    found: Located = []
    for i, j, text in message_texts(messages, roles):
        hits = [f for f in scan(text) if f.positional]
        if hits:
            changes[(i, j)] = redact(text, hits)
            found.extend((i, f) for f in hits)
    if not changes:
        return None
    return replaced(messages, changes), "redacted " + located(found)


def replaced(messages: Sequence[Any], changes: Mapping[Where, str]) -> list[Any]:
    """Copies of the messages with some texts replaced; roles, names and parts kept.

    Each changed message and its parts list is copied once, however many of its parts
    change: linear in the size of the messages (a copy per change would be quadratic in
    the number of parts of one message).
    """
    out: list[Any] = list(messages)
    copied: dict[int, dict[str, Any]] = {}
    parts_of: dict[int, list[Any]] = {}
    for (i, j), text in changes.items():
        message = copied.get(i)
        if message is None:
            message = copied[i] = dict(out[i])
            out[i] = message
        if j is None:
            message["content"] = text
            continue
        parts = parts_of.get(i)
        if parts is None:
            parts = parts_of[i] = list(message["content"])
            message["content"] = parts
        parts[j] = {**parts[j], "text": text}
    return out


def summarize(findings: Iterable[Finding], limit: int = 6) -> str:
    """What was found, without the text: ``EMAIL x2, INJECTION (v1:ignore-previous)``."""
    counts: Counter[tuple[str, str | None, str | None]] = Counter(
        (f.label, f.rule, f.detail) for f in findings
    )
    parts = []
    for (label, rule, detail), n in counts.items():
        part = label + (f" ({rule})" if rule else "") + (f": {detail}" if detail else "")
        parts.append(part + (f" x{n}" if n > 1 else ""))
    if len(parts) > limit:
        parts = [*parts[:limit], f"{len(parts) - limit} more"]
    return ", ".join(parts)


def located(found: Sequence[tuple[int, Finding]]) -> str:
    """``EMAIL x2, PATTERN (pattern:0) in messages 0, 3``."""
    where = sorted({i for i, _ in found})
    noun = "message" if len(where) == 1 else "messages"
    return f"{summarize(f for _, f in found)} in {noun} {', '.join(map(str, where))}"
