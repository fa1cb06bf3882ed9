"""The routing-heavy policy's decisions written by hand: the yardstick of #17, target 1.

``decide(request, now)`` is what an application engineer would write inline for
``benchmarks/policies/routing-heavy``: the same request checks the engine makes (JSON
values only, 64-bit integers, no lone surrogates, bounded nesting, the chat shape of
``messages`` and the declared attribute types), the same token estimate, the same CEL
semantics where they show (a missing attribute is an error: no match for a rule, fail
closed for a guardrail unless it says ``on_error: allow``; ``&&``/``||`` let a decisive
operand win over an error), the same sticky hashing (SHA-256 of ``tier:value``), the same
cache-key hashing (SHA-256 of canonical JSON) and the same rollout bucketing. Tier
targets and expanded fallback chains are constants, worked out by hand from the policy.

It returns the observable fields as a plain dict (see :func:`observable`, which gives
the same dict for a ``Decision``), and raises :class:`BadRequest` where ``decide()``
raises ``RequestError``. ``tests/test_handwritten_agrees.py`` checks both agree.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

POLICY = "routing-heavy"


class BadRequest(ValueError):
    """The request cannot be decided; ``field`` names the request field, as RequestError."""

    def __init__(self, field: str | None) -> None:
        super().__init__(field)
        self.field = field


# --------------------------------------------------------------------------- request checks

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 64
_MAX_VALUES = 200_000
_MAX_TOKENS = 1_000_000_000
_LEAVES = (float, bool, type(None), datetime, timedelta, bytes)
_PLAIN = frozenset([float, bool, type(None)])


class _Refused(Exception):
    def __init__(self) -> None:
        self.path: list[str | int] = []


def _bad_text(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _value(item: Any, depth: int, budget: list[int]) -> None:
    cls = item.__class__
    if cls is str:
        if not item.isascii() and _bad_text(item):
            raise _Refused
    elif cls is int:
        if not _INT64_MIN <= item <= _INT64_MAX:
            raise _Refused
    elif cls is dict or cls is list or isinstance(item, Mapping | list | tuple):
        _walk(item, depth + 1, budget)
    elif isinstance(item, str):
        if _bad_text(item):
            raise _Refused
    elif isinstance(item, int) and not isinstance(item, bool):
        if not _INT64_MIN <= item <= _INT64_MAX:
            raise _Refused
    elif not isinstance(item, _LEAVES):
        raise _Refused


def _walk(value: Any, depth: int, budget: list[int]) -> None:
    if depth >= _MAX_DEPTH:
        raise _Refused
    budget[0] -= len(value)
    if budget[0] < 0:
        raise _Refused
    if value.__class__ is dict or (value.__class__ is not list and isinstance(value, Mapping)):
        for key, item in value.items():
            if key.__class__ is not str or (not key.isascii() and _bad_text(key)):
                raise _Refused  # named by the path to the mapping, as the engine does
            cls = item.__class__
            if (cls is str and item.isascii()) or cls in _PLAIN:
                continue
            if cls is int and _INT64_MIN <= item <= _INT64_MAX:
                continue
            try:
                _value(item, depth, budget)
            except _Refused as refused:
                refused.path.append(key)
                raise
    else:
        for i, item in enumerate(value):
            cls = item.__class__
            if (cls is str and item.isascii()) or cls in _PLAIN:
                continue
            if cls is int and _INT64_MIN <= item <= _INT64_MAX:
                continue
            try:
                _value(item, depth, budget)
            except _Refused as refused:
                refused.path.append(i)
                raise


def _where(path: list[str | int]) -> str | None:
    text = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in reversed(path))
    return (text[1:] if text.startswith(".") else text) or None


def check_string(value: Any, where: str) -> None:
    if value.__class__ is not str and not isinstance(value, str):
        raise BadRequest(where)


def _int(value: Any, where: str) -> None:
    if value.__class__ is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise BadRequest(where)


def _double(value: Any, where: str) -> None:
    cls = value.__class__
    if (cls is not float and cls is not int) and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise BadRequest(where)


def _bool(value: Any, where: str) -> None:
    if value.__class__ is not bool:
        raise BadRequest(where)


def check_record(value: Any, where: str, fields: tuple[tuple[str, Any], ...]) -> None:
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise BadRequest(where)
    for name, check in fields:
        field = value.get(name)
        if field is not None:
            check(field, f"{where}.{name}")


_TENANT = (("id", check_string), ("plan", check_string), ("region", check_string))
_USER = (("id", check_string), ("country", check_string), ("beta", _bool))


def _message(message: Any, i: int) -> None:
    if message.__class__ is not dict and not isinstance(message, Mapping):
        raise BadRequest(f"messages[{i}]")
    role = message.get("role")
    if role is not None and not isinstance(role, str):
        raise BadRequest(f"messages[{i}].role")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"messages[{i}].content")
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise BadRequest(f"messages[{i}].content[{j}]")
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"messages[{i}].content[{j}].text")


def checked_copy(request: Any) -> tuple[dict[str, Any], int, int]:
    """The checks every policy's request gets, in the engine's order (the request is a
    mapping, every value, the messages' chat shape, ``max_tokens`` and ``input_tokens`` in
    range, the built-in attributes' types): a copy with ``messages`` a list, and the
    characters and estimated tokens of the messages. The declared attributes are the
    policy's own: check them next, then :func:`with_tokens`."""
    if request.__class__ is not dict and not isinstance(request, Mapping):
        raise BadRequest(None)
    try:
        _walk(request, 0, [_MAX_VALUES])
    except _Refused as refused:
        raise BadRequest(_where(refused.path)) from None
    except RecursionError:
        raise BadRequest(None) from None
    r = dict(request)
    messages = r.get("messages")
    if messages is None:
        messages = []
    elif messages.__class__ is not list:
        if not isinstance(messages, list | tuple):
            raise BadRequest("messages")
        messages = list(messages)
    chars = tokens = 0
    for i, message in enumerate(messages):
        _message(message, i)
        content = message.get("content")
        if isinstance(content, str):
            n = len(content)
        elif isinstance(content, list):
            n = sum(
                len(p["text"])
                for p in content
                if isinstance(p, Mapping) and isinstance(p.get("text"), str)
            )
        else:
            n = 0
        chars += n
        tokens += (n + 3) // 4 + 4
    r["messages"] = messages
    for name in ("max_tokens", "input_tokens"):
        value = r.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > _MAX_TOKENS:
            raise BadRequest(name)
    get = r.get
    if (v := get("id")) is not None:
        check_string(v, "id")
    if (v := get("model")) is not None:
        check_string(v, "model")
    if (v := get("max_tokens")) is not None:
        _int(v, "max_tokens")
    if (v := get("temperature")) is not None:
        _double(v, "temperature")
    if (v := get("metadata")) is not None and not isinstance(v, Mapping):
        raise BadRequest("metadata")
    return r, chars, tokens


def string_list(value: Any, where: str) -> None:
    """A declared ``list<string>``."""
    if not isinstance(value, list | tuple):
        raise BadRequest(where)
    for i, item in enumerate(value):
        if item.__class__ is not str:
            check_string(item, f"{where}[{i}]")


def with_tokens(r: dict[str, Any], chars: int, tokens: int) -> dict[str, Any]:
    """``input_chars``, and ``input_tokens`` unless the request gives a count of its own."""
    r["input_chars"] = chars
    provided = r.get("input_tokens")
    if (
        provided.__class__ is not int
        and (not isinstance(provided, int) or isinstance(provided, bool))
    ) or provided < 0:
        r["input_tokens"] = tokens
    return r


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
        if not isinstance(v, list | tuple):
            raise BadRequest("tags")
        for i, tag in enumerate(v):
            if tag.__class__ is not str:
                check_string(tag, f"tags[{i}]")
    if (v := get("priority")) is not None:
        _int(v, "priority")
    # with_tokens(r, chars, tokens), written out: the twin's cost stays what it was
    r["input_chars"] = chars
    provided = r.get("input_tokens")
    if (
        provided.__class__ is not int
        and (not isinstance(provided, int) or isinstance(provided, bool))
    ) or provided < 0:
        r["input_tokens"] = tokens
    return r


# --------------------------------------------------------------------------- CEL, by hand

# What makes a CEL expression an error rather than true or false (a missing key,
# an operator on null, ...): the exceptions the engine's generated code maps to errors.
_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError)
ERROR = object()  # a condition that errored


def _truth(value: Any) -> Any:
    """A CEL bool, or ERROR for anything else (CEL's `_as_bool`)."""
    return value if value is True or value is False else ERROR


def _and(*operands: Any) -> Any:
    """CEL `&&` over evaluated operands: false wins over an error."""
    if False in operands:
        return False
    return ERROR if any(o is ERROR for o in operands) else True


def _or(*operands: Any) -> Any:
    if True in operands:
        return True
    return ERROR if any(o is ERROR for o in operands) else False


def _atom(fn: Any, r: dict[str, Any]) -> Any:
    try:
        return _truth(fn(r))
    except _ERRORS:
        return ERROR


_EMBARGO = frozenset(["KP", "IR", "SY", "CU"])
_PAID = frozenset(["pro", "enterprise"])


def _embargoed(r: dict[str, Any]) -> Any:
    try:
        return r["user"]["country"] in _EMBARGO
    except _ERRORS:
        return ERROR


def _free_limits(r: dict[str, Any]) -> Any:
    try:
        return r["tenant"]["plan"] == "free" and ("research" in r["tags"] or r["priority"] > 5)
    except _ERRORS:  # three-valued: a false operand wins over an error
        return _and(
            _atom(lambda r: r["tenant"]["plan"] == "free", r),
            _or(_atom(lambda r: "research" in r["tags"], r), _atom(lambda r: r["priority"] > 5, r)),
        )


def _hot(r: dict[str, Any]) -> Any:
    try:
        return r["temperature"] > 1.5
    except _ERRORS:
        return ERROR


def _admin_outsider(r: dict[str, Any]) -> Any:
    try:
        return r["feature"] == "admin" and not r["tenant"]["id"].startswith("internal-")
    except _ERRORS:
        return _and(
            _atom(lambda r: r["feature"] == "admin", r),
            _atom(lambda r: not r["tenant"]["id"].startswith("internal-"), r),
        )


# (name, condition, action, on_error)
GUARDRAILS = (
    ("embargoed-country", _embargoed, "block", "block"),
    ("free-plan-limits", _free_limits, "block", "block"),
    ("hot-temperature", _hot, "warn", "allow"),
    ("admin-internal-only", _admin_outsider, "block", "allow"),
)


# Routing and cache rules only ask "true?": an error is no match, so in `a && b` and
# `a || b` an operand that errors counts as false.
def _r_frontier(r: dict[str, Any]) -> bool:
    return r["tenant"]["plan"] == "enterprise" and "research" in r["tags"]


def _r_long(r: dict[str, Any]) -> bool:
    return r["input_tokens"] > 30000


def _r_code(r: dict[str, Any]) -> bool:
    return r["feature"] == "code" and r["tenant"]["plan"] in _PAID


def _r_eu_beta(r: dict[str, Any]) -> bool:
    return r["tenant"]["region"] == "eu" and r["user"]["beta"] is True


def _r_priority(r: dict[str, Any]) -> bool:
    return r["priority"] >= 8


def _r_batch(r: dict[str, Any]) -> bool:
    try:
        if r["feature"] == "batch":
            return True
    except _ERRORS:
        pass
    return "batch" in r["tags"]


def _r_summaries(r: dict[str, Any]) -> bool:
    return r["feature"] == "summarize" and len(r["messages"]) <= 2


def _r_us_beta(r: dict[str, Any]) -> bool:
    user = r["user"]
    return "beta" in user and user["beta"] is True and user["country"] == "US"


def _r_model_hint(r: dict[str, Any]) -> bool:
    return r["model"].startswith("big")


def _r_long_deterministic(r: dict[str, Any]) -> bool:
    return r["temperature"] == 0.0 and r["max_tokens"] > 2000


RULES = (
    (_r_frontier, "frontier"),
    (_r_long, "premium"),
    (_r_code, "premium"),
    (_r_eu_beta, "edge"),
    (_r_priority, "premium"),
    (_r_batch, "standard"),
    (_r_summaries, "edge"),
    (_r_us_beta, "standard"),
    (_r_model_hint, "premium"),
    (_r_long_deterministic, "standard"),
)
DEFAULT_TIER = "economy"


# --------------------------------------------------------------------------- tiers, by hand

WINDOW = {
    "local": 8192,
    "small-a": 128000,
    "small-b": 200000,
    "mid-a": 128000,
    "mid-b": 32000,
    "big-a": 128000,
    "big-b": 200000,
    "huge": 200000,
}
LITELLM = {
    "local": "ollama/llama3",
    "small-a": "openai/gpt-4o-mini",
    "small-b": "anthropic/claude-haiku-4-5",
    "mid-a": "openai/gpt-4.1-mini",
    "mid-b": "mistral/mistral-medium-latest",
    "big-a": "openai/gpt-4o",
    "big-b": "anthropic/claude-sonnet-4-5",
    "huge": "anthropic/claude-opus-4-1",
}

# tier -> (weighted?, sticky attribute, targets in preference order, weights, expanded
# fallback chain, smallest window of targets and chain). "standard" is cheapest-first:
# mid-a ($2.00/Mtok in+out), mid-b ($2.40), small-b ($6.00).
Tier = tuple[bool, tuple[str, str] | None, tuple[str, ...], tuple[int, ...], tuple[str, ...], int]
TIERS: dict[str, Tier] = {
    "edge": (
        False,
        None,
        ("local",),
        (1,),
        ("small-a", "small-b", "mid-a", "mid-b", "big-a"),
        8192,
    ),
    "economy": (
        True,
        ("user", "id"),
        ("small-a", "small-b"),
        (70, 30),
        ("mid-a", "mid-b", "small-b", "big-a"),
        32000,
    ),
    "standard": (False, None, ("mid-a", "mid-b", "small-b"), (1, 1, 1), ("big-a",), 32000),
    "premium": (
        True,
        ("tenant", "id"),
        ("big-b", "big-a"),
        (60, 40),
        ("mid-a", "mid-b", "small-b", "big-a", "small-a"),
        32000,
    ),
    "frontier": (
        False,
        None,
        ("huge", "big-b"),
        (1, 1),
        ("big-b", "big-a", "mid-a", "mid-b", "small-b", "small-a"),
        32000,
    ),
}


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _point(r: dict[str, Any], tier: str, sticky: tuple[str, str] | None) -> float:
    if sticky is not None:
        holder = r.get(sticky[0])
        value = holder.get(sticky[1]) if holder is not None else None
        if value is not None:
            return _unit(f"{tier}:{value if isinstance(value, str) else repr(value)}")
    request_id = r.get("id")
    if isinstance(request_id, str) and request_id:
        return _unit(f"{tier}:{request_id}")
    return random.random()


def _pick(r: dict[str, Any], tier: str, spec: Tier, usable: tuple[str, ...] | list[str]) -> str:
    weighted, sticky, targets, weights, _, _ = spec
    if not weighted or len(usable) == 1:
        return usable[0]
    if usable is not targets:
        weights = [weights[targets.index(m)] for m in usable]
    total = sum(weights)
    if total <= 0:
        return usable[0]
    target = _point(r, tier, sticky) * total
    cumulative = 0
    for model, weight in zip(usable, weights, strict=True):
        cumulative += weight
        if target < cumulative:
            return model
    return usable[-1]


def _fallbacks(chosen: str, rest: Any) -> tuple[str, ...]:
    out: list[str] = []
    for m in rest:
        if m != chosen and m not in out:
            out.append(m)
    return tuple(out)


def _route(r: dict[str, Any], tier: str) -> tuple[str, tuple[str, ...]] | None:
    """(model, fallbacks), or None when the request fits no model (blocked)."""
    spec = TIERS[tier]
    targets, chain, smallest = spec[2], spec[4], spec[5]
    max_tokens = r.get("max_tokens")
    extra = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else 0
    needed = r["input_tokens"] + (extra if extra > 0 else 0)
    if needed <= smallest:
        chosen = _pick(r, tier, spec, targets)
        return chosen, _fallbacks(chosen, (*targets, *chain))
    usable = [m for m in targets if not needed or needed <= WINDOW[m]]
    usable_chain = [m for m in chain if not needed or needed <= WINDOW[m]]
    if not usable:
        if usable_chain:
            return usable_chain[0], _fallbacks(usable_chain[0], usable_chain[1:])
        return None
    chosen = _pick(r, tier, spec, usable)
    return chosen, _fallbacks(chosen, [*(m for m in usable if m != chosen), *usable_chain])


# --------------------------------------------------------------------------- cache, prompts


def _cache(r: dict[str, Any], model: str) -> dict[str, Any] | None:
    try:
        feature = r["feature"]
    except KeyError:
        return None  # every rule reads request.feature first: none matches
    if feature == "admin":
        return {"ttl_s": 0.0, "key": None, "namespace": None, "rule": "admin-no-store"}
    try:
        faq = feature == "faq" and r["temperature"] == 0.0
    except _ERRORS:
        faq = False
    if faq:
        name, ttl, scope, fields = "faq", 86400.0, "tenant", ("model", "messages", "max_tokens")
    else:
        try:
            summary = feature == "summarize" and r["input_tokens"] < 4000
        except _ERRORS:
            summary = False
        if not summary:
            return None
        name, ttl, scope = "summaries", 3600.0, "user"
        fields = ("model", "messages", "temperature")
    holder = r.get(scope)
    value = holder.get("id") if isinstance(holder, dict) else None
    if value is None or value == "":
        return None  # no id for the scope: not cached
    namespace = f"policyd:{POLICY}:{scope}:{value}"
    payload = {f: (model if f == "model" else r.get(f)) for f in fields}
    payload["__namespace__"] = namespace
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return {"ttl_s": ttl, "key": key, "namespace": namespace, "rule": name}


_NOV = datetime(2026, 11, 1, tzinfo=UTC)
_JAN = datetime(2027, 1, 1, tzinfo=UTC)


def _bucket(rollout: str, value: Any) -> int:
    text = value if isinstance(value, str) else repr(value)
    digest = hashlib.sha256(f"{rollout}:{text}".encode()).digest()
    return int.from_bytes(digest, "big") % 10_000


def _prompts(r: dict[str, Any], now: datetime) -> dict[str, str]:
    system = "v1"
    tenant = r.get("tenant")
    try:
        eligible = tenant["plan"] != "free"  # type: ignore[index]
    except _ERRORS:
        eligible = False
    user = r.get("user")
    sticky = user.get("id") if user is not None else None
    if eligible and sticky is not None and sticky != "":
        point = _bucket("system-v2", sticky)
        upper = 0 if now >= _JAN else 5000 if now >= _NOV else 8000
        system = "v1" if point < upper else "v2"
    style = "plain"
    sticky = tenant.get("id") if tenant is not None else None
    if sticky is not None and sticky != "":
        point = _bucket("style-test", sticky)
        style = "plain" if point < 3400 else "bullets" if point < 6700 else "table"
    return {"footer": "v1", "system": system, "style": style}


# --------------------------------------------------------------------------- the decision


def decide(request: Any, now: datetime) -> dict[str, Any]:
    """The routing-heavy policy's decision on ``request`` at ``now`` (observable fields)."""
    r = prepare(request)
    warnings: list[str] = []
    for name, condition, action, on_error in GUARDRAILS:
        hit = condition(r)
        if hit is ERROR:
            if on_error == "allow":
                continue
            return _blocked(name, warnings)
        if hit is True:
            if action == "block":
                return _blocked(name, warnings)
            warnings.append(f"{name}: condition matched")
    tier = DEFAULT_TIER
    for rule, rule_tier in RULES:
        try:
            if rule(r) is True:
                tier = rule_tier
                break
        except _ERRORS:
            pass
    routed = _route(r, tier)
    if routed is None:
        return _blocked("context_window", warnings)
    model, fallbacks = routed
    return {
        "allowed": True,
        "blocked_by": None,
        "tier": tier,
        "model": model,
        "litellm_model": LITELLM[model],
        "fallbacks": fallbacks,
        "cache": _cache(r, model),
        "prompts": _prompts(r, now),
        "warnings": tuple(warnings),
    }


def _blocked(name: str, warnings: list[str]) -> dict[str, Any]:
    return {
        "allowed": False,
        "blocked_by": name,
        "tier": None,
        "model": None,
        "litellm_model": None,
        "fallbacks": (),
        "cache": None,
        "prompts": {},
        "warnings": tuple(warnings),
    }


def observable(decision: Any) -> dict[str, Any]:
    """The fields :func:`decide` returns, read from an engine ``Decision``."""
    cache = decision.cache
    return {
        "allowed": decision.allowed,
        "blocked_by": decision.blocked_by,
        "tier": decision.tier,
        "model": decision.model,
        "litellm_model": decision.litellm_model,
        "fallbacks": decision.fallbacks,
        "cache": None if cache is None else cache.to_dict(),
        "prompts": {name: choice.version for name, choice in decision.prompts.items()},
        "warnings": decision.warnings,
    }
