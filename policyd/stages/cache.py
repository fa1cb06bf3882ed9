"""Cache: the first matching rule sets TTL, key and namespace; no match means no caching.

The key is a SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of
the chosen request fields, so it is identical across processes and Python
versions. ``model`` in a key means the model the decision chose. The namespace
carries the scope (``global``, ``tenant:<id>``, ``user:<id>``) so entries are
never shared across tenants or users unless the rule says ``global``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from policyd import cel, document, fields
from policyd.decision import CacheDirective
from policyd.stages.base import CompileEnv, DecisionState, matches

STAGE = "cache"
_SCOPE_PATHS = {"tenant": ("tenant", "id"), "user": ("user", "id")}


@dataclass(frozen=True, slots=True)
class CompiledCacheRule:
    name: str
    when: cel.Expression
    ttl_s: float
    fields: tuple[str, ...]
    scope: str


class CacheStage:
    name = STAGE
    writes = frozenset({"cache"})

    def __init__(self, env: CompileEnv, cache: document.Cache) -> None:
        self.policy_name = env.policy_name
        self.rules = tuple(
            CompiledCacheRule(
                rule.name,
                env.expr("cache", "rules", i, "when"),
                fields.parse_duration(rule.ttl),
                tuple(rule.key),
                rule.scope,
            )
            for i, rule in enumerate(cache.rules)
        )

    def run(self, state: DecisionState) -> None:
        for rule in self.rules:
            hit, error = matches(rule.when, state)
            if error is not None:
                state.note(STAGE, rule.name, "error", f"condition failed, no match: {error}")
            if not hit:
                continue
            if rule.ttl_s <= 0:
                state.cache = CacheDirective(0.0, None, None, rule.name)
                state.note(STAGE, rule.name, "no-store", "ttl 0: do not cache")
                return
            namespace = self._namespace(state, rule)
            if namespace is None:
                state.note(STAGE, rule.name, "skip", f"no {rule.scope} id in the request for scope")
                return
            key = cache_key(state, rule.fields, namespace)
            state.cache = CacheDirective(rule.ttl_s, key, namespace, rule.name)
            state.note(STAGE, rule.name, "cache", f"ttl {rule.ttl_s:g}s, scope {rule.scope}")
            return
        state.note(STAGE, None, "none", "no cache rule matched")

    def _namespace(self, state: DecisionState, rule: CompiledCacheRule) -> str | None:
        if rule.scope == "global":
            return f"policyd:{self.policy_name}:global"
        outer, inner = _SCOPE_PATHS[rule.scope]
        holder = state.request.get(outer)
        value = holder.get(inner) if isinstance(holder, dict) else None
        if value is None or value == "":
            return None
        return f"policyd:{self.policy_name}:{rule.scope}:{value}"


def cache_key(state: DecisionState, fields: tuple[str, ...], namespace: str) -> str:
    request = state.request
    payload = {name: (state.model if name == "model" else request.get(name)) for name in fields}
    payload["__namespace__"] = namespace
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
