"""OpenTelemetry: spans and metrics through the real SDK's in-memory exporters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from observe_helpers import fixed_clock, request
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from policyd import Engine
from policyd.telemetry import Telemetry


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def telemetry(self) -> Telemetry:
        return Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            if value is None:
                                value = point.count
                            out.append((dict(point.attributes), value))
        return out


@pytest.fixture
def otel() -> Otel:
    return Otel()


def test_decide_is_a_child_span_with_gen_ai_and_policyd_attributes(bundle: Path, otel: Otel):
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry())
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        decision = engine.decide(
            request(tenant={"id": "acme", "tier": "enterprise"}, tags=["code"]),
            policy="support-bot",
        )
    spans = {s.name: s for s in otel.spans.get_finished_spans()}
    span = spans["policyd.decide support-bot"]
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.kind is trace.SpanKind.INTERNAL
    assert span.end_time >= span.start_time
    attrs = dict(span.attributes)
    assert attrs["gen_ai.request.model"] == decision.litellm_model
    assert attrs["policyd.policy.name"] == "support-bot"
    assert attrs["policyd.policy.version"] == "2026.11.3"
    assert attrs["policyd.policy.digest"] == decision.policy.digest
    assert attrs["policyd.revision"] == engine.status().revision
    assert attrs["policyd.decision.id"] == decision.id
    assert attrs["policyd.tier"] == "premium"
    assert attrs["policyd.rule"] == "enterprise-code"
    assert attrs["policyd.fallbacks"] == tuple(decision.fallbacks)
    assert attrs["policyd.prompt.versions"] == ("support-system=v3",)
    # nothing from the request's text or identity is on the span
    assert not any("acme" in str(v) or "password" in str(v) for v in attrs.values())


def test_record_is_a_span_with_usage_and_error_type_only(bundle: Path, otel: Otel):
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry())
    decision = engine.decide(request(), policy="support-bot")
    engine.record(decision, input_tokens=1000, output_tokens=200, latency_s=1.5)
    engine.record(decision, error=ValueError("the user jane.doe@example.com was rejected"))
    ok, failed = [s for s in otel.spans.get_finished_spans() if s.name.startswith("policyd.record")]
    assert ok.attributes["gen_ai.usage.input_tokens"] == 1000
    assert ok.attributes["gen_ai.usage.output_tokens"] == 200
    assert ok.attributes["gen_ai.response.model"] == decision.litellm_model
    assert ok.attributes["policyd.model"] == decision.model
    assert ok.attributes["policyd.cost_usd"] > 0
    assert failed.attributes["error.type"] == "ValueError"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert "jane" not in str(dict(failed.attributes))


def test_metrics_count_decisions_latency_and_blocks(bundle: Path, otel: Otel):
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry())
    engine.decide(request(), policy="support-bot")
    engine.decide(request(), policy="support-bot")
    engine.decide(request(tenant={"id": "t", "tier": "free"}, tags=["code"]), policy="support-bot")
    decisions = otel.points("policyd.decisions")
    assert ({"policyd.policy": "support-bot", "policyd.outcome": "allowed"}, 2) in decisions
    assert (
        {
            "policyd.policy": "support-bot",
            "policyd.outcome": "blocked",
            "policyd.blocked_by": "free-tier-no-code",
        },
        1,
    ) in decisions
    assert otel.points("policyd.decide.duration") == [({"policyd.policy": "support-bot"}, 3)]


BUDGET = """
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 1}
    on_store_error: allow
"""


def test_budget_spend_reservations_and_store_errors(bundle: Path, otel: Otel):
    policy = bundle / "support-bot.yaml"
    policy.write_text(policy.read_text() + textwrap.dedent(BUDGET))
    telemetry = otel.telemetry()  # one per meter provider, shared by both engines
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=telemetry)
    decision = engine.decide(request(), policy="support-bot")
    engine.record(decision, cost_usd=0.25)
    assert otel.points("policyd.budget.reservations") == [
        (
            {
                "policyd.policy": "support-bot",
                "policyd.budget": "tenant-daily",
                "policyd.budget.state": "ok",
            },
            1,
        )
    ]
    assert otel.points("policyd.budget.spend") == [
        ({"policyd.policy": "support-bot", "policyd.model": decision.model}, 0.25)
    ]
    down = Engine.from_path(
        bundle,
        clock=fixed_clock,
        otel=telemetry,
        store="redis://127.0.0.1:1/15",
        connect_timeout_s=0.2,
    )
    assert down.decide(request(), policy="support-bot").budgets[0].state == "store_error"
    assert otel.points("policyd.store.errors") == [({"policyd.policy": "support-bot"}, 1)]


def test_reloads_accepted_and_rejected_are_counted(bundle: Path, otel: Otel):
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry())
    policy = bundle / "support-bot.yaml"
    good = policy.read_text()
    policy.write_text(good.replace('version: "2026.11.3"', 'version: "2026.11.4"'))
    assert engine.reload()
    policy.write_text(good.replace("tier: premium", "tier: nonexistent", 1))
    assert not engine.reload()
    reloads = dict((p["policyd.result"], v) for p, v in otel.points("policyd.reloads"))
    assert reloads == {"accepted": 1, "rejected": 1}


def test_decision_log_drops_are_a_metric(bundle: Path, otel: Otel):
    import threading

    from policyd.decision_log import DecisionLog

    release = threading.Event()
    log = DecisionLog(lambda line: release.wait(30), capacity=2)
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry(), decision_log=log)
    for _ in range(10):
        engine.decide(request(), policy="support-bot")
    dropped = log.dropped
    assert dropped > 0
    assert otel.points("policyd.decision_log.dropped") == [({}, dropped)]
    release.set()
    engine.close()


def test_telemetry_is_on_only_when_the_app_installed_an_sdk_provider(bundle: Path):
    code = textwrap.dedent(
        f"""
        import sys
        import policyd
        e = policyd.Engine.from_path({str(bundle)!r})
        print(e._observer is None, 'opentelemetry' in sys.modules)
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        e = policyd.Engine.from_path({str(bundle)!r})
        print(e._observer is None)
        trace.set_tracer_provider(TracerProvider())
        e = policyd.Engine.from_path({str(bundle)!r})
        print(e._observer is not None and e._observer.telemetry is not None)
        e2 = policyd.Engine.from_path({str(bundle)!r})
        print(e2._observer.telemetry is e._observer.telemetry)
        e = policyd.Engine.from_path({str(bundle)!r}, otel=False)
        print(e._observer is None)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "True", "True", "True", "True"]
