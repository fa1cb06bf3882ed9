"""How ``policyd eval`` prints a decision for people: the summary, redacted messages and
the ``--explain`` table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click


def print_decision(
    d: dict[str, Any], redacted_messages: Sequence[Mapping[str, Any]] | None = None
) -> None:
    policy = d["policy"]
    click.echo(f"policy    {policy['name']} {policy['version'] or ''} ({policy['digest']})")
    if d["allowed"]:
        click.echo(
            click.style("allowed", fg="green") + f"   tier {d['tier']} -> model "
            f"{d['model']} ({d['litellm_model']})"
        )
        click.echo(f"fallbacks {', '.join(d['fallbacks']) or '-'}")
        retry = d["retry"]
        if retry:
            click.echo(
                f"retry     {retry['attempts']} attempts, {retry['backoff']} from "
                f"{retry['base_s']:g}s to {retry['max_s']:g}s, jitter {retry['jitter']}, "
                f"on {', '.join(retry['on'])}"
            )
        if d["timeout_s"] is not None:
            click.echo(f"timeout   {d['timeout_s']:g}s")
        cache = d["cache"]
        click.echo(
            "cache     "
            + (
                f"{cache['rule']}: ttl {cache['ttl_s']:g}s, namespace {cache['namespace']}"
                if cache
                else "-"
            )
        )
        for name, choice in d["prompts"].items():
            via = f" via rollout {choice['rollout']}" if choice["rollout"] else ""
            click.echo(f"prompt    {name} = {choice['version']}{via}")
    else:
        click.echo(click.style("blocked", fg="red") + f"   by {d['blocked_by']}: {d['message']}")
    for budget in d["budgets"]:
        click.echo(f"budget    {budget['name']}[{budget['key']}] {budget['state']}")
    for warning in d["warnings"]:
        click.echo(f"warning   {warning}")
    if redacted_messages is not None:
        _print_messages(redacted_messages, d["trace"])


def _print_messages(messages: Sequence[Mapping[str, Any]], trace: list[dict[str, Any]]) -> None:
    """The messages after redaction, one per line block, with the guardrails that redacted."""
    by = [t["rule"] for t in trace if t["stage"] == "guardrails" and t["outcome"] == "redact"]
    click.echo(f"messages  redacted by {', '.join(dict.fromkeys(by)) or 'a guardrail'}")
    for i, message in enumerate(messages):
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        head = f"  [{i}] {message.get('role', '?')}: "
        lines = text.split("\n")
        click.echo(head + lines[0])
        for more in lines[1:]:
            click.echo(" " * len(head) + more)


def print_trace(trace: list[tuple[str, str, str, str]]) -> None:
    rows = [("stage", "rule", "outcome", "detail"), *trace]
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    click.echo("")
    for i, row in enumerate(rows):
        click.echo(
            "  ".join(str(c).ljust(w) for c, w in zip(row[:3], widths, strict=True))
            + "  "
            + str(row[3])
        )
        if i == 0:
            click.echo("  ".join("-" * w for w in widths) + "  " + "-" * 6)
