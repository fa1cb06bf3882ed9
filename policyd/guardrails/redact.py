"""Redaction: replace findings with typed placeholders, in a text or in chat messages.

Messages are OpenAI chat shaped: ``content`` is a string or a list of parts
(``{"type": "text", "text": ...}``). Roles, other keys and non-text parts are kept as they
are; the input is never mutated, and counts are reported per label, never the values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyd.guardrails._core import Check, Finding

ScanFn = Callable[[str], Sequence[Finding]]


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with every positional finding replaced by ``[LABEL]``.

    Overlapping findings merge into one placeholder, labelled by the longest of them
    (a card number inside a JWT becomes one ``[SECRET]``). Touching findings stay separate.
    """
    spans = sorted((f.start, f.end, f.label) for f in findings if f.positional and f.end > f.start)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    cur_start, cur_end, label = spans[0]
    best = cur_end - cur_start
    for start, end, lab in spans[1:]:
        if start < cur_end:  # overlaps the current group
            if end - start > best:
                label, best = lab, end - start
            cur_end = max(cur_end, end)
            continue
        out.append(text[pos:cur_start])
        out.append(f"[{label}]")
        pos = cur_end
        cur_start, cur_end, label, best = start, end, lab, end - start
    out.append(text[pos:cur_start])
    out.append(f"[{label}]")
    out.append(text[cur_end:])
    return "".join(out)


def _scan_fn(check: Check | ScanFn) -> ScanFn:
    return check.scan if isinstance(check, Check) else check


@dataclass(frozen=True, slots=True)
class MessageFinding:
    """A finding in ``messages[message]`` (``part`` = index in a content list, or None)."""

    message: int
    part: int | None
    finding: Finding


def iter_message_texts(messages: Sequence[Any]) -> Iterator[tuple[int, int | None, str]]:
    """``(message index, part index or None, text)`` for every text in chat messages."""
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            yield i, None, content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if _is_text_part(part):
                    yield i, j, part["text"]


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def scan_messages(messages: Sequence[Any], check: Check | ScanFn) -> list[MessageFinding]:
    """Every finding in every text of ``messages`` (for ``block``/``warn`` guardrails)."""
    scan = _scan_fn(check)
    return [
        MessageFinding(i, j, finding)
        for i, j, text in iter_message_texts(messages)
        for finding in scan(text)
    ]


def redact_messages(
    messages: Sequence[Any], check: Check | ScanFn
) -> tuple[list[Any], dict[str, int]]:
    """Redacted copies of ``messages`` and how many findings were redacted per label.

    Each message mapping is copied (a content list too, when a part changed); anything that
    is not a chat message is passed through as is.
    """
    scan = _scan_fn(check)
    counts: Counter[str] = Counter()

    def clean(text: str) -> str:
        found = [f for f in scan(text) if f.positional]
        if not found:
            return text
        counts.update(f.label for f in found)
        return redact(text, found)

    out: list[Any] = []
    for msg in messages:
        if not isinstance(msg, Mapping):
            out.append(msg)
            continue
        new = dict(msg)
        content = msg.get("content")
        if isinstance(content, str):
            new["content"] = clean(content)
        elif isinstance(content, list):
            parts = []
            for part in content:
                if _is_text_part(part):
                    text = clean(part["text"])
                    part = part if text is part["text"] else {**part, "text": text}
                parts.append(part)
            new["content"] = parts
        out.append(new)
    return out, dict(sorted(counts.items()))
