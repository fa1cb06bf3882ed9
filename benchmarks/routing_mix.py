"""Seeded, varied requests for the routing-heavy policy: every rule, tier and error path.

Attributes are present, missing or of the wrong type in varying mixes, sizes cross the
models' context windows, and a few requests are malformed (the engine must refuse them
naming the field). Used by the agreement test and the decide() benchmark (#17).
"""

from __future__ import annotations

import random
from typing import Any

PLANS = ("free", "pro", "enterprise", "team")
REGIONS = ("eu", "us", "apac")
COUNTRIES = ("DE", "US", "US", "FR", "JP", "KP", "IR", "BR")
CLEAN_COUNTRIES = ("DE", "US", "US", "FR", "JP", "BR")  # no embargoed country
FEATURES = ("faq", "chat", "code", "batch", "summarize", "admin", "account")
TAGS = ("research", "batch", "code", "billing")
WORDS = ("reset", "password", "invoice", "deploy", "café", "naïve", "日本", "error", "help")


def _maybe(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _text(rng: random.Random, long: bool) -> str:
    n = rng.choice((2000, 9000, 40000)) if long else rng.randint(1, 30)
    words = [rng.choice(WORDS) for _ in range(min(n, 60))]
    text = " ".join(words)
    return (text * (n // max(len(text), 1) + 1))[:n] if long else text


def _messages(rng: random.Random, clean: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if _maybe(rng, 0.5):
        out.append({"role": "system", "content": "You are helpful."})
    for _ in range(rng.randint(1, 3)):
        long = not clean and _maybe(rng, 0.08)
        if _maybe(rng, 0.1):
            content: Any = [{"type": "text", "text": _text(rng, long)}, {"type": "image_url"}]
        else:
            content = _text(rng, long)
        out.append({"role": rng.choice(("user", "user", "assistant", "tool")), "content": content})
    return out


def _record(rng: random.Random, fields: dict[str, Any], clean: bool) -> dict[str, Any]:
    return fields if clean else {k: v for k, v in fields.items() if not _maybe(rng, 0.1)}


# One malformed field per bad request: (where it goes, the bad value)
_BAD: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("tenant", "plan"), 5),
    (("user", "beta"), "yes"),
    (("tags",), "research"),
    (("tags",), ["ok", 3]),
    (("priority",), True),
    (("priority",), 2.5),
    (("temperature",), "hot"),
    (("temperature",), False),
    (("max_tokens",), 2_000_000_000),
    (("metadata", "n"), 2**70),
    (("metadata", "s"), {1, 2}),
    (("messages",), "hello"),
    (("id",), 7),
    (("model",), ["big"]),
    (("feature",), {"name": "faq"}),
    (("user",), "u-1"),
)


def varied_requests(n: int, seed: int = 17, *, clean: bool = False) -> list[dict[str, Any]]:
    """``n`` requests; ``clean``: production-like traffic (tenant and user always
    complete, short messages, no malformed request), for timing rather than for
    finding disagreements."""
    rng = random.Random(seed)
    keep = 1.0 if clean else 0.88
    out = []
    for i in range(n):
        r: dict[str, Any] = {"messages": _messages(rng, clean)}
        if _maybe(rng, 0.9):
            r["id"] = f"req-{i}"
        elif _maybe(rng, 0.5):
            r["id"] = ""
        if _maybe(rng, keep):
            tenant = rng.randrange(30)
            r["tenant"] = _record(
                rng,
                {
                    "id": f"internal-{tenant}" if tenant < 3 else f"t-{tenant}",
                    "plan": rng.choice(PLANS),
                    "region": rng.choice(REGIONS),
                },
                clean,
            )
        if _maybe(rng, keep):
            r["user"] = _record(
                rng,
                {
                    "id": "" if _maybe(rng, 0.03) else f"u-{rng.randrange(400)}",
                    "country": rng.choice(CLEAN_COUNTRIES if clean else COUNTRIES),
                    "beta": _maybe(rng, 0.3),
                },
                clean,
            )
        if _maybe(rng, 0.88):
            r["feature"] = rng.choice(FEATURES)
        if _maybe(rng, 0.8):
            r["tags"] = rng.sample(TAGS, rng.randint(0, 2))
        if _maybe(rng, 0.7):
            r["priority"] = rng.randint(0, 10)
        if _maybe(rng, 0.8):
            r["temperature"] = rng.choice((0.0, 0, 0.7, 1.0, 1.8, 2))
        if _maybe(rng, 0.8):
            r["max_tokens"] = rng.choice((256, 1024, 2048, 4096, 8192, 0, -1))
        if _maybe(rng, 0.2):
            r["model"] = rng.choice(("big-one", "small", "bigger"))
        if _maybe(rng, 0.2):
            r["input_tokens"] = rng.choice((100, 3000, 35000, 90000, 150000, 250000, -5))
        if _maybe(rng, 0.1):
            r["metadata"] = {"trace": "abc", "n": 3}
        if not clean and _maybe(rng, 0.04):
            path, value = rng.choice(_BAD)
            holder = r
            for step in path[:-1]:
                holder = holder.setdefault(step, {})
                if not isinstance(holder, dict):
                    break
            else:
                holder[path[-1]] = value
        out.append(r)
    return out
