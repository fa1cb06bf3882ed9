"""Shadow revisions: a candidate decides live requests off the hot path and never spends."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from observe_helpers import REPO, fixed_clock, request

from policyd import Engine, PolicyError

SCHEMA = json.loads((REPO / "schemas" / "decision-log.schema.json").read_text())


def candidate_of(bundle: Path, tmp_path: Path, old: str, new: str) -> Path:
    target = tmp_path / "candidate"
    shutil.copytree(bundle, target)
    policy = target / "support-bot.yaml"
    text = policy.read_text()
    assert old in text
    policy.write_text(text.replace(old, new))
    return target


def long_and_short(n: int) -> list[dict[str, Any]]:
    return [request(user={"id": f"u{i}"}, input_tokens=2000 if i % 2 else 100) for i in range(n)]


def test_differences_are_events_log_lines_and_a_report(bundle: Path, tmp_path: Path):
    candidate = candidate_of(bundle, tmp_path, "input_tokens > 60000", "input_tokens > 1000")
    log = tmp_path / "d.jsonl"
    events: list[dict[str, Any]] = []
    plain = Engine.from_path(bundle, clock=fixed_clock)
    with Engine.from_path(bundle, clock=fixed_clock, shadow=candidate, decision_log=log) as engine:
        engine.on_event(events.append)
        for req in long_and_short(10):
            live = engine.decide(req, policy="support-bot")
            # the answer is the live revision's, untouched by the candidate
            assert live.tier == plain.decide(req, policy="support-bot").tier == "economy"
        assert engine._observer.shadow.flush()
        report = engine.shadow_report()
        assert engine._observer.log.flush()
    assert report is not None
    assert (report["requests"], report["changed"]) == (10, 5)
    assert report["by_field"]["tier"] == 5
    assert report["rules"][0] == {"step": "+ routing long-input match", "requests": 5}
    diffs = [e for e in events if e["type"] == "shadow_diff"]
    assert len(diffs) == 5
    assert diffs[0]["changed"]["tier"] == ["economy", "premium"]
    assert diffs[0]["candidate_revision"] == report["head"]["revision"]
    shadow_lines = [json.loads(x) for x in log.read_text().splitlines()]
    shadow_lines = [x for x in shadow_lines if x["kind"] == "shadow"]
    assert len(shadow_lines) == 5
    for line in shadow_lines:
        jsonschema.Draft202012Validator(SCHEMA).validate(line)
        assert line["decision"]["tier"] == "economy"
        assert line["candidate"]["tier"] == "premium"


def test_a_sampling_rate_of_zero_compares_nothing(bundle: Path, tmp_path: Path):
    candidate = candidate_of(bundle, tmp_path, "input_tokens > 60000", "input_tokens > 1000")
    with Engine.from_path(bundle, shadow=candidate, shadow_rate=0.0) as engine:
        for req in long_and_short(6):
            engine.decide(req, policy="support-bot")
        assert engine._observer.shadow.flush()
        report = engine.shadow_report()
    assert report is not None
    assert report["requests"] == 0 and report["sampled_out"] == 6


BUDGET = """
budgets:
  - name: tenant-requests
    key: request.tenant.id
    window: calendar_day
    limit: {{requests: {limit}}}
"""


def test_the_candidate_reads_live_budgets_but_never_reserves(bundle: Path, tmp_path: Path):
    policy = bundle / "support-bot.yaml"
    policy.write_text(policy.read_text() + textwrap.dedent(BUDGET.format(limit=100)))
    candidate = candidate_of(bundle, tmp_path, "{requests: 100}", "{requests: 3}")
    with Engine.from_path(bundle, clock=fixed_clock, shadow=candidate) as engine:
        shadow = engine._observer.shadow
        for _ in range(5):
            decision = engine.decide(request(), policy="support-bot")
            engine.record(decision, input_tokens=10, output_tokens=10)
            assert shadow.flush()
        assert decision.budgets[0].spent_requests == 4  # only the live reservations counted
        report = engine.shadow_report()
    assert report is not None
    # live usage before each request: 0,1,2,3,4 -> the candidate (limit 3) blocks the last two
    assert report["newly_blocked"] == 2
    assert report["transitions"][0]["field"] == "allowed"


def test_promote_makes_the_candidate_live(bundle: Path, tmp_path: Path):
    candidate = candidate_of(bundle, tmp_path, "input_tokens > 60000", "input_tokens > 1000")
    events: list[dict[str, Any]] = []
    with Engine.from_path(bundle, clock=fixed_clock, shadow=candidate) as engine:
        engine.on_event(events.append)
        long = request(input_tokens=2000)
        assert engine.decide(long, policy="support-bot").tier == "economy"
        assert engine.promote_shadow()
        assert engine.decide(long, policy="support-bot").tier == "premium"
        assert engine.shadow_report() is None
        assert not engine.promote_shadow()
        status = engine.status()
        assert status.path == str(candidate)
        assert status.reloads == 1
    (event,) = [e for e in events if e["type"] == "reloaded"]
    assert event["promoted"] == "shadow" and event["revision"] == status.revision


def test_a_broken_candidate_is_refused_at_construction(bundle: Path, tmp_path: Path):
    candidate = candidate_of(bundle, tmp_path, "tier: premium", "tier: nowhere")
    with pytest.raises(PolicyError):
        Engine.from_path(bundle, shadow=candidate)


def test_shadow_comparisons_are_a_metric(bundle: Path, tmp_path: Path):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from policyd.telemetry import Telemetry

    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    candidate = candidate_of(bundle, tmp_path, "input_tokens > 60000", "input_tokens > 1000")
    with Engine.from_path(bundle, shadow=candidate, otel=telemetry) as engine:
        for req in long_and_short(4):
            engine.decide(req, policy="support-bot")
        assert engine._observer.shadow.flush()
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "policyd.shadow.comparisons":
                    for p in metric.data.data_points:
                        points[p.attributes["policyd.changed"]] = p.value
    assert points == {True: 2, False: 2}
