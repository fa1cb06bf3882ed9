"""Embedding policyd in an application: decide, call the model, record the outcome.

Run: python examples/embedded_engine.py   (offline; no model is called)
"""

from __future__ import annotations

from pathlib import Path

from policyd import Engine, RequestError

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def main() -> None:
    engine = Engine.from_path(POLICIES)  # add watch=True to hot-reload, store="redis://..."
    engine.on_event(lambda event: print("event:", event["type"]))

    request = {
        "tenant": {"id": "acme", "tier": "enterprise"},
        "user": {"id": "u-1842", "country": "DE"},
        "tags": ["code"],
        "max_tokens": 512,
        "messages": [{"role": "user", "content": "My export script loops forever."}],
    }
    decision = engine.decide(request, policy="support-bot")
    if not decision.allowed:
        print(f"refused by {decision.blocked_by}: {decision.message}")
        return
    print(f"call {decision.litellm_model} (tier {decision.tier}), then {decision.fallbacks}")
    print(f"retry {decision.retry}, timeout {decision.timeout_s}s, cache {decision.cache}")
    system = decision.prompts["support-system"]
    print(f"system prompt {system.version}: {system.text[:40]!r}...")

    # ... call the model here (or let policyd.integrations.litellm.PolicyRouter do it) ...
    engine.record(decision, input_tokens=120, output_tokens=300, latency_s=1.4)
    verdict = engine.check_output(decision, "Here is the fixed loop: ...")
    print("output allowed:", verdict.allowed)

    try:
        engine.decide({"tenant": "acme"}, policy="support-bot")
    except RequestError as exc:
        print("bad request:", exc)
    print("serving revision (content digest):", engine.status().to_dict()["revision"][:12])


if __name__ == "__main__":
    main()
