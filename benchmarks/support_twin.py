"""The shipped ``support-bot`` policy's decisions written by hand: its yardstick for #17, target 1.

``decide(request, now)`` is what an application engineer would write inline for
``policies/support-bot.yaml``, making the checks and scans the engine makes:

* the request checks of ``benchmarks/handwritten.py`` (shared with it: JSON values only,
  64-bit integers, no lone surrogates, bounded nesting, the chat shape of ``messages``,
  the built-in attributes' types), then the policy's declared ``context`` types;
* the guardrails in order: ``max-input`` on the token estimate (or the request's own
  ``input_tokens``); ``pii``, every message's string content and text parts scanned
  for the seven kinds and each finding replaced by its placeholder (the detectors of
  ``policyd.guardrails``, as the policy names them, built once at import);
  ``injection`` on the redacted ``user`` and ``tool`` texts (built-in ruleset v1 plus
  the policy's two deny patterns, one RE2 set); ``free-tier-no-code`` with CEL's error
  semantics (a missing attribute fails closed, a false operand of ``&&`` wins);
* routing by the two rules, the economy tier's sticky 80/20 pick (SHA-256 of
  ``economy:<user id>``, the request id or a random draw without one), the premium
  tier's ordered targets with economy as its fallback, models too small for the input
  skipped (``context_window: skip_small``);
* the ``faq`` cache key (SHA-256 of canonical JSON of model, redacted messages and
  ``max_tokens`` in the tenant's namespace) and ``personal``'s no-store;
* the ``support-system-v4`` rollout (SHA-256 bucket of ``<rollout>:<user id>``, the
  table of ``now``'s schedule step) and the v4 template rendered with ``tenant.id``.

It returns the observable fields as a plain dict (see :func:`observable`, which gives
the same dict for a ``Decision``: what the scans found is read from the trace texts), and
raises ``handwritten.BadRequest`` where ``decide()`` raises ``RequestError``.
``tests/test_support_twin_agrees.py`` checks both agree. Not modelled: cooldowns (no
outcome is ever reported to the twin), retry and timeout (constants), budgets (none).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handwritten import ERROR, check_record, check_string, checked_copy, string_list, with_tokens

from policyd import guardrails as lib

POLICY = "support-bot"
ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- request checks

_TENANT = (("id", check_string), ("tier", check_string))
_USER = (("id", check_string), ("country", check_string))


def prepare(request: Any) -> dict[str, Any]:
    """The checked copy of the request, with ``input_tokens`` and ``input_chars``."""
    r, chars, tokens = checked_copy(request)
    get = r.get
    if (v := get("tenant")) is not None:
        check_record(v, "tenant", _TENANT)
    if (v := get("user")) is not None:
        check_record(v, "user", _USER)
    if (v := get("feature")) is not None:
        check_string(v, "feature")
    if (v := get("tags")) is not None:
        string_list(v, "tags")
    return with_tokens(r, chars, tokens)


# --------------------------------------------------------------------------- guardrails

PII = lib.pii_check(["email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret"])
INJECTION = lib.combine_checks(
    [
        lib.injection_check(),
        lib.pattern_check(
            [r"(?i)reveal (the )?system prompt", r"(?i)\bact as (the )?(admin|developer)\b"]
        ),
    ]
)
_INJECTION_ROLES = frozenset(("user", "tool"))


def _texts(messages: list[Any], roles: frozenset[str] | None) -> list[tuple[int, int, str]]:
    """(message, part or -1, text) of every string content and ``type: text`` part."""
    out = []
    for i, m in enumerate(messages):
        if roles is not None and m.get("role") not in roles:
            continue
        content = m.get("content")
        if content.__class__ is str:
            out.append((i, -1, content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") == "text":
                    text = part.get("text")
                    if isinstance(text, str):
                        out.append((i, j, text))
    return out


def _located(found: list[tuple[int, Any]]) -> str:
    """What was found and where, as the trace says it: ``EMAIL x2 in messages 1, 2``."""
    counts = Counter((f.label, f.rule) for _, f in found)
    parts = [
        label + (f" ({rule})" if rule else "") + (f" x{n}" if n > 1 else "")
        for (label, rule), n in counts.items()
    ]
    if len(parts) > 6:
        parts = [*parts[:6], f"{len(parts) - 6} more"]
    where = sorted({i for i, _ in found})
    noun = "message" if len(where) == 1 else "messages"
    return f"{', '.join(parts)} in {noun} {', '.join(map(str, where))}"


def _redact(r: dict[str, Any]) -> str | None:
    """Replace every PII finding in the messages; what was found, or None."""
    messages = r["messages"]
    found: list[tuple[int, Any]] = []
    changed: list[Any] | None = None
    for i, j, text in _texts(messages, None):
        hits = [f for f in PII.scan(text) if f.start >= 0]
        if not hits:
            continue
        found.extend((i, f) for f in hits)
        if changed is None:
            changed = list(messages)
        message = dict(changed[i])
        if j < 0:
            message["content"] = lib.redact(text, hits)
        else:
            parts = list(message["content"])
            parts[j] = {**parts[j], "text": lib.redact(text, hits)}
            message["content"] = parts
        changed[i] = message
    if changed is None:
        return None
    r["messages"] = changed
    return "redacted " + _located(found)


def _injection(r: dict[str, Any]) -> str | None:
    found = [
        (i, f)
        for i, _, text in _texts(r["messages"], _INJECTION_ROLES)
        for f in INJECTION.scan(text)
    ]
    return "found " + _located(found) if found else None


def _free_tier_code(r: dict[str, Any]) -> Any:
    """``request.tenant.tier == "free" && "code" in request.tags``: True, False or ERROR."""
    tenant = r.get("tenant")
    tier = tenant.get("tier", ERROR) if tenant is not None else ERROR
    tags = r.get("tags", ERROR)
    left = ERROR if tier is ERROR else tier == "free"
    right = ERROR if tags is ERROR or tags is None else "code" in tags
    if left is False or right is False:
        return False
    return ERROR if left is ERROR or right is ERROR else True


# --------------------------------------------------------------------------- routing

LITELLM = {
    "gpt-4o-mini": "openai/gpt-4o-mini",
    "claude-haiku": "anthropic/claude-haiku-4-5",
    "claude-sonnet": "anthropic/claude-sonnet-4-5",
    "gpt-4o": "openai/gpt-4o",
}
WINDOW = {"gpt-4o-mini": 128000, "gpt-4o": 128000, "claude-haiku": 200000, "claude-sonnet": 200000}
_SMALLEST = 128000  # of every target and fallback of both tiers


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _economy_pick(r: dict[str, Any], usable: list[str]) -> str:
    if len(usable) == 1:
        return usable[0]
    user = r.get("user")
    value = user.get("id") if user is not None else None
    if value is not None:
        point = _unit(f"economy:{value}")
    elif isinstance(r.get("id"), str) and r["id"]:
        point = _unit(f"economy:{r['id']}")
    else:
        point = random.random()
    return "gpt-4o-mini" if point * 100 < 80 else "claude-haiku"


def _chain(chosen: str, rest: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for m in rest:
        if m != chosen and m not in out:
            out.append(m)
    return tuple(out)


def _route(r: dict[str, Any], tier: str) -> tuple[str, tuple[str, ...]] | None:
    """(model, fallbacks), or None when the request fits no model (blocked)."""
    max_tokens = r.get("max_tokens")
    extra = max_tokens if max_tokens.__class__ is int and max_tokens > 0 else 0
    needed = r["input_tokens"] + extra
    targets = ["claude-sonnet", "gpt-4o"] if tier == "premium" else ["gpt-4o-mini", "claude-haiku"]
    chain = ["gpt-4o-mini", "claude-haiku"] if tier == "premium" else ["claude-haiku"]
    if needed > _SMALLEST:
        targets = [m for m in targets if needed <= WINDOW[m]]
        chain = [m for m in chain if needed <= WINDOW[m]]
        if not targets:
            return (chain[0], _chain(chain[0], chain[1:])) if chain else None
    chosen = targets[0] if tier == "premium" else _economy_pick(r, targets)
    return chosen, _chain(chosen, [*targets, *chain])


# --------------------------------------------------------------------------- cache, prompts


def _cache(r: dict[str, Any], model: str) -> dict[str, Any] | None:
    feature = r.get("feature")
    if feature == "faq" and r.get("temperature", ERROR) == 0.0:
        tenant = r.get("tenant")
        value = tenant.get("id") if tenant is not None else None
        if value is None or value == "":
            return None
        namespace = f"policyd:{POLICY}:tenant:{value}"
        payload = {
            "model": model,
            "messages": r["messages"],
            "max_tokens": r.get("max_tokens"),
            "__namespace__": namespace,
        }
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return {"ttl_s": 86400.0, "key": key, "namespace": namespace, "rule": "faq"}
    if feature == "account":
        return {"ttl_s": 0.0, "key": None, "namespace": None, "rule": "personal"}
    return None


_V3 = (ROOT / "policies" / "prompts" / "support-system" / "v3.md").read_text(encoding="utf-8")
_DEC1 = datetime(2026, 12, 1, tzinfo=UTC)
_DEC8 = datetime(2026, 12, 8, tzinfo=UTC)


def _prompt(r: dict[str, Any], now: datetime, warnings: list[str]) -> tuple[str, str]:
    """(version, text) of support-system."""
    tenant = r.get("tenant")
    tier = tenant.get("tier", ERROR) if tenant is not None else ERROR
    user = r.get("user")
    sticky = user.get("id") if user is not None else None
    version = "v3"
    if tier is not ERROR and tier != "enterprise" and sticky is not None and sticky != "":
        point = (
            int.from_bytes(hashlib.sha256(f"support-system-v4:{sticky}".encode()).digest(), "big")
            % 10_000
        )
        upper = 0 if now >= _DEC8 else 5000 if now >= _DEC1 else 9000
        version = "v3" if point < upper else "v4"
    if version == "v3":
        return version, _V3
    tenant_id = tenant.get("id") if tenant is not None else None
    if tenant_id is None:
        warnings.append("support-system: placeholder {{ tenant.id }} has no value in the request")
        tenant_id = "{{ tenant.id }}"
    return version, (
        f"You are the support assistant for {tenant_id}. Answer briefly and cite the help center."
    )


# --------------------------------------------------------------------------- the decision


def decide(request: Any, now: datetime) -> dict[str, Any]:
    """The support-bot policy's decision on ``request`` at ``now`` (observable fields)."""
    r = prepare(request)
    if r["input_tokens"] > 100_000:
        return _blocked("max-input", "The conversation is too long; start a new one", None)
    redacted = _redact(r)
    found = _injection(r)
    if found is not None:
        return _blocked("injection", "Request rejected by content policy", redacted, found)
    if _free_tier_code(r) is not False:
        return _blocked("free-tier-no-code", "Code assistance needs a paid plan", redacted)
    tenant = r.get("tenant")
    tags = r.get("tags")
    enterprise_code = (
        tenant is not None
        and tenant.get("tier") == "enterprise"
        and tags is not None
        and "code" in tags
    )
    tier = "premium" if enterprise_code or r["input_tokens"] > 60000 else "economy"
    routed = _route(r, tier)
    if routed is None:
        return _blocked(
            "context_window",
            "The request is too large for every model this policy allows",
            redacted,
        )
    model, fallbacks = routed
    warnings: list[str] = []
    prompt = _prompt(r, now, warnings)
    return {
        "allowed": True,
        "blocked_by": None,
        "message": None,
        "tier": tier,
        "model": model,
        "litellm_model": LITELLM[model],
        "fallbacks": fallbacks,
        "cache": _cache(r, model),
        "prompts": {"support-system": prompt},
        "warnings": tuple(warnings),
        "redacted": redacted,
        "messages": r["messages"] if redacted else None,
        "found": None,
    }


def _blocked(
    name: str, message: str, redacted: str | None, found: str | None = None
) -> dict[str, Any]:
    return {
        "allowed": False,
        "blocked_by": name,
        "message": message,
        "tier": None,
        "model": None,
        "litellm_model": None,
        "fallbacks": (),
        "cache": None,
        "prompts": {},
        "warnings": (),
        "redacted": redacted,
        "found": found,
    }


def observable(decision: Any) -> dict[str, Any]:
    """The fields :func:`decide` returns, read from an engine ``Decision``: what the PII
    and injection scans found comes from their trace entries (the texts users see in
    ``--explain``), the redacted messages from ``Decision.messages``."""
    redacted = found = None
    for entry in decision.trace:
        if entry.stage == "guardrails" and entry.rule == "pii" and entry.outcome == "redact":
            redacted = entry.detail
        if entry.stage == "guardrails" and entry.rule == "injection" and entry.outcome == "block":
            found = entry.detail
    cache = decision.cache
    out = {
        "allowed": decision.allowed,
        "blocked_by": decision.blocked_by,
        "message": decision.message,
        "tier": decision.tier,
        "model": decision.model,
        "litellm_model": decision.litellm_model,
        "fallbacks": decision.fallbacks,
        "cache": None if cache is None else cache.to_dict(),
        "prompts": {name: (c.version, c.text) for name, c in decision.prompts.items()},
        "warnings": decision.warnings,
        "redacted": redacted,
        "found": found,
    }
    if decision.allowed:
        out["messages"] = list(decision.messages) if decision.redacted else None
    return out
