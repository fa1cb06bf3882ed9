"""The observability tour of docs/observability.md: decision logs, spans, diff, shadow.

    python examples/observe_tour.py traffic DIR   # DIR/decisions.jsonl + DIR/candidate/
    python examples/observe_tour.py log           # one decision-log line
    python examples/observe_tour.py span          # the spans of one decide() and record()
    python examples/observe_tour.py shadow DIR/candidate   # a shadow report

Everything runs offline on the shipped bundle (policies/) with a fixed clock.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policyd import Engine

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def requests(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """A day of support-bot traffic: tenants, users, features, some long conversations."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tier = rng.choice(["free", "pro", "pro", "pro", "enterprise"])
        size = rng.choice([40, 200, 800, 3000, 40_000])
        out.append(
            {
                "tenant": {"id": f"tenant-{rng.randrange(40)}", "tier": tier},
                "user": {"id": f"user-{rng.randrange(600)}", "country": "DE"},
                "feature": rng.choice(["chat", "chat", "faq", "account"]),
                "temperature": 0.0,
                "tags": ["code"] if rng.random() < 0.2 else [],
                "messages": [{"role": "user", "content": "a" * size}],
            }
        )
    return out


def traffic(directory: str, n: int = 2000) -> None:
    """Record ``n`` decisions (and outcomes) to DIR/decisions.jsonl; write a candidate
    bundle to DIR/candidate (long-input threshold 60,000 -> 8,000 tokens, v4 at 50%)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "decisions.jsonl"
    log.unlink(missing_ok=True)
    clock = [START]
    rng = random.Random(5)
    with Engine.from_path(ROOT / "policies", clock=lambda: clock[0], decision_log=log) as engine:
        for i, request in enumerate(requests(n)):
            clock[0] = START + timedelta(seconds=20 * i)
            decision = engine.decide(request, policy="support-bot")
            if decision.allowed:
                engine.record(
                    decision,
                    input_tokens=decision.request["input_tokens"],
                    output_tokens=rng.randrange(50, 600),
                    latency_s=round(rng.uniform(0.4, 3.0), 2),
                )
        engine._observer.log.flush(600)
    candidate = out / "candidate"
    shutil.rmtree(candidate, ignore_errors=True)
    shutil.copytree(ROOT / "policies", candidate)
    policy = candidate / "support-bot.yaml"
    policy.write_text(
        policy.read_text()
        .replace("request.input_tokens > 60000", "request.input_tokens > 8000")
        .replace("{v3: 90, v4: 10}", "{v3: 50, v4: 50}")
    )
    print(f"wrote {log} and {candidate}/")


def one_line() -> None:
    """Decide one request with a decision log to a callable; print the lines."""
    lines: list[dict[str, Any]] = []
    with Engine.from_path(ROOT / "policies", clock=lambda: START, decision_log=lines.append) as e:
        request = {
            "tenant": {"id": "acme", "tier": "pro"},
            "user": {"id": "user-7", "country": "DE"},
            "feature": "faq",
            "temperature": 0.0,
            "messages": [{"role": "user", "content": "I am jane@example.com, reset my password"}],
        }
        decision = e.decide(request, policy="support-bot")
        e.record(decision, input_tokens=18, output_tokens=120, latency_s=0.9)
        e._observer.log.flush()
    for line in lines:
        print(json.dumps(line))  # as written to a decision-log file: one JSON object a line


def span() -> None:
    """decide() and record() under an app span, printed by the SDK's console exporter."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "support-app"}))
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(formatter=lambda s: s.to_json(indent=2) + "\n"))
    )
    trace.set_tracer_provider(provider)
    engine = Engine.from_path(ROOT / "policies", clock=lambda: START)  # otel: on (SDK installed)
    tracer = trace.get_tracer("support-app")
    with tracer.start_as_current_span("POST /chat"):
        decision = engine.decide(
            {
                "tenant": {"id": "acme", "tier": "enterprise"},
                "user": {"id": "user-7"},
                "tags": ["code"],
                "messages": [{"role": "user", "content": "Why does my loop never end?"}],
            },
            policy="support-bot",
        )
        engine.record(decision, input_tokens=950, output_tokens=310, latency_s=2.4)
    provider.shutdown()


def shadow(candidate: str, n: int = 2000) -> None:
    """Serve ``n`` requests from policies/ with ``candidate`` in shadow; print its report."""
    clock = [START]
    with Engine.from_path(
        ROOT / "policies", clock=lambda: clock[0], shadow=candidate, shadow_rate=0.25
    ) as engine:
        events: list[dict[str, Any]] = []
        engine.on_event(lambda e: events.append(e) if e["type"] == "shadow_diff" else None)
        for i, request in enumerate(requests(n)):
            clock[0] = START + timedelta(seconds=20 * i)
            engine.decide(request, policy="support-bot")
        text = engine.shadow_report(text=True, wait_s=600)
        summary = engine.shadow_report()
    print(
        f"sampled {summary['rate']:.0%}: {summary['requests']:,} compared, "
        f"{summary['sampled_out']:,} sampled out, {summary['dropped']:,} dropped\n"
    )
    print(text)
    print("\nfirst shadow_diff event:")
    print(json.dumps(events[0], indent=2))


def main(argv: list[str]) -> None:
    if argv[:1] == ["traffic"] and len(argv) == 2:
        traffic(argv[1])
    elif argv == ["log"]:
        one_line()
    elif argv == ["span"]:
        span()
    elif argv[:1] == ["shadow"] and len(argv) == 2:
        shadow(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
