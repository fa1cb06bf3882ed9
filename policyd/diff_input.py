"""What ``policyd diff`` replays: requests read from a decision log or a JSON Lines file.

A decision-log line becomes a :class:`Replay` (its request, with placeholder messages of the
logged lengths, clock, id and policy), joined with its outcome line for token counts; any
other line is a request, or ``{"request": ..., "policy": ..., "time": ..., ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policyd.decision_log import parse_line


@dataclass
class Replay:
    """One recorded request: what to decide and with which clock, id and token counts."""

    line: int
    request: dict[str, Any]
    policy: str | None
    now: datetime | None
    id: str
    input_tokens: int | None = None
    output_tokens: int | None = None


def rebuild_request(logged: Mapping[str, Any]) -> dict[str, Any]:
    """A decidable request from a logged one: the message summary becomes placeholder
    messages of the logged roles and lengths (text guardrails see no real text)."""
    request = dict(logged)
    summary = request.get("messages")
    if isinstance(summary, Mapping):
        count = int(summary.get("count", 0))
        roles = list(summary.get("roles") or ["user"] * count)
        chars = list(summary.get("chars") or [0] * count)
        request["messages"] = [
            {"role": role, "content": "x" * int(n)} for role, n in zip(roles, chars, strict=False)
        ]
    return request


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replays(lines: Iterable[tuple[int, dict[str, Any]]]) -> list[Replay]:
    """Decision-log lines (joined with their outcome lines) or plain request lines."""
    items: list[Replay] = []
    outcomes: dict[str, tuple[Any, Any]] = {}
    for number, line in lines:
        kind = line.get("kind")
        if kind == "outcome":
            outcome = line.get("outcome") or {}
            outcomes[str(line.get("id"))] = (
                outcome.get("input_tokens"),
                outcome.get("output_tokens"),
            )
        elif kind == "decision":
            policy = line.get("policy")
            items.append(
                Replay(
                    number,
                    rebuild_request(line.get("request") or {}),
                    policy.get("name") if isinstance(policy, Mapping) else None,
                    parse_time(line.get("time")),
                    str(line.get("id") or f"line-{number}"),
                )
            )
        elif kind is None:
            wrapped = isinstance(line.get("request"), Mapping)
            request = dict(line["request"]) if wrapped else line
            items.append(
                Replay(
                    number,
                    rebuild_request(request),
                    line.get("policy") if wrapped and isinstance(line.get("policy"), str) else None,
                    parse_time(line.get("time")) if wrapped else None,
                    str(line.get("id") if wrapped and line.get("id") else f"line-{number}"),
                    line.get("input_tokens") if wrapped else None,
                    line.get("output_tokens") if wrapped else None,
                )
            )
    for item in items:
        tokens = outcomes.get(item.id)
        if tokens is not None:
            item.input_tokens, item.output_tokens = tokens
    return items


_OUTCOME = '{"v": 1, "kind": "outcome", "id": "'


def read_share(path: str, worker: int, jobs: int) -> list[Replay]:
    """The replays of every ``jobs``-th request line of a file (from the ``worker``-th),
    with the outcome lines that belong to them; lines of other shares are not parsed."""
    kept: set[str] = set()
    lines: list[tuple[int, dict[str, Any]]] = []
    index = 0
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            if text.startswith(_OUTCOME):
                start = len(_OUTCOME)
                if text[start : text.find('"', start)] in kept:
                    lines.append((number, parse_line(text, path, number)))
                continue
            if '"kind": "outcome"' in text:  # an outcome line in another layout
                line = parse_line(text, path, number)
                if str(line.get("id")) in kept:
                    lines.append((number, line))
                continue
            if index % jobs == worker:
                line = parse_line(text, path, number, summaries=False)
                lines.append((number, line))
                kept.add(str(line.get("id")))
            index += 1
    return replays(lines)
