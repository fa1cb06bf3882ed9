"""Prompts and rollouts: which version of each prompt a request gets, and its text.

Bucketing is ``sha256("<rollout>:<sticky value>")`` as an integer modulo
10,000; variants take cumulative ranges in declared order, so growing the last
variant's share only moves users into it. The active share table is the last
``schedule`` entry whose ``at`` is not after the engine clock's ``now``.
Templates substitute ``{{ attr.path }}`` from the request (``check`` has verified every
path against the declared context, PD214). A value missing from the request (absent or
null) is never rendered as empty text: the placeholder stays as written and the
decision gets a warning ``<prompt>: placeholder {{ path }} has no value in the request``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policyd import cel, document, fields
from policyd.checks.templates import PLACEHOLDER as _PLACEHOLDER
from policyd.decision import PromptChoice
from policyd.stages.base import CompileEnv, DecisionState, evaluate, matches

STAGE = "prompts"
BUCKETS = 10_000


def bucket(rollout: str, sticky_value: str) -> int:
    digest = hashlib.sha256(f"{rollout}:{sticky_value}".encode()).digest()
    return int.from_bytes(digest, "big") % BUCKETS  # == int(hexdigest, 16) % BUCKETS


def ranges(variants: dict[str, float]) -> tuple[tuple[str, int], ...]:
    """(variant, exclusive upper bucket) in declared order."""
    out = []
    upper = 0.0
    for name, share in variants.items():
        upper += share * BUCKETS / 100
        out.append((name, round(upper)))
    return tuple(out)


def assign(table: tuple[tuple[str, int], ...], point: int) -> str:
    for name, upper in table:
        if point < upper:
            return name
    return table[-1][0]


class Template:
    """Prompt text with ``{{ path }}`` placeholders, split once at compile time."""

    def __init__(self, text: str) -> None:
        self.parts: list[str | tuple[tuple[str, ...], str]] = []
        last = 0
        for match in _PLACEHOLDER.finditer(text):
            self.parts.append(text[last : match.start()])
            self.parts.append((tuple(match.group(1).split(".")), match.group(0)))
            last = match.end()
        self.parts.append(text[last:])
        self.static = len(self.parts) == 1

    def render(self, request: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The text, and the dotted paths of placeholders the request has no value for
        (those are left as written)."""
        if self.static:
            return self.parts[0], ()  # type: ignore[return-value]
        out = []
        missing: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            names, written = part
            value: Any = request
            for name in names:
                value = value.get(name) if isinstance(value, dict) else None
            if value is None:
                missing.append(".".join(names))
                out.append(written)
            else:
                out.append(str(value))
        return "".join(out), tuple(missing)


@dataclass(frozen=True, slots=True)
class CompiledRollout:
    name: str
    prompt: str
    sticky: cel.Expression
    when: cel.Expression | None
    default: str
    table: tuple[tuple[str, int], ...]
    schedule: tuple[tuple[datetime, tuple[tuple[str, int], ...]], ...]

    def active_table(self, now: datetime) -> tuple[tuple[str, int], ...]:
        table = self.table
        for at, entry in self.schedule:
            if at <= now:
                table = entry
        return table


class PromptsStage:
    name = STAGE
    writes = frozenset({"prompts"})

    def __init__(self, env: CompileEnv, policy: document.Policy) -> None:
        self.templates = {key: Template(text) for key, text in env.ctx.prompt_texts.items()}
        self._static: dict[tuple[str, str, str | None], PromptChoice] = {}
        self.rollouts = tuple(
            CompiledRollout(
                r.name,
                r.prompt,
                env.expr("rollouts", i, "sticky_by"),
                env.optional_expr("rollouts", i, "when"),
                r.default,
                ranges(r.variants),
                tuple((fields.parse_timestamp(e.at), ranges(e.variants)) for e in r.schedule),
            )
            for i, r in enumerate(policy.rollouts)
        )
        rolled = {r.prompt for r in self.rollouts}
        # Prompts with one version and no rollout are always in the decision.
        self.fixed = tuple(
            (name, next(iter(p.versions)))
            for name, p in policy.prompts.items()
            if name not in rolled and len(p.versions) == 1
        )

    def run(self, state: DecisionState) -> None:
        for name, version in self.fixed:
            state.prompts[name] = self._choice(name, version, None, state)
        for rollout in self.rollouts:
            version = self._version(state, rollout)
            state.prompts[rollout.prompt] = self._choice(
                rollout.prompt, version, rollout.name, state
            )

    def _choice(
        self, prompt: str, version: str, rollout: str | None, state: DecisionState
    ) -> PromptChoice:
        template = self.templates[(prompt, version)]
        if not template.static:
            text, missing = template.render(state.request)
            for path in missing:
                state.warn(
                    STAGE, prompt, f"placeholder {{{{ {path} }}}} has no value in the request"
                )
            return PromptChoice(version, rollout, text)
        key = (prompt, version, rollout)
        choice = self._static.get(key)
        if choice is None:  # immutable: one shared object per static text
            choice = self._static[key] = PromptChoice(version, rollout, template.parts[0])  # type: ignore[arg-type]
        return choice

    def _version(self, state: DecisionState, rollout: CompiledRollout) -> str:
        if rollout.when is not None:
            eligible, error = matches(rollout.when, state)
            if not eligible:
                why = f"condition failed: {error}" if error else "not eligible"
                state.note(STAGE, rollout.name, "default", f"{rollout.default} ({why})")
                return rollout.default
        value, error = evaluate(rollout.sticky, state)
        if error is not None or value is None or value == "":
            why = error or "no sticky value"
            state.note(STAGE, rollout.name, "default", f"{rollout.default} ({why})")
            return rollout.default
        point = bucket(rollout.name, value if isinstance(value, str) else repr(value))
        version = assign(rollout.active_table(state.now), point)
        state.note(STAGE, rollout.name, "variant", f"{version} (bucket {point})")
        return version
