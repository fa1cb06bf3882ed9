"""Decision logs: one scrubbed JSON line per decision and outcome, off the request path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from observe_helpers import REPO, fixed_clock, request

from policyd import Engine, PolicyError
from policyd.decision_log import DecisionLog

SCHEMA = json.loads((REPO / "schemas" / "decision-log.schema.json").read_text())


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def flush(engine: Engine) -> None:
    assert engine._observer.log.flush()


def test_a_decision_and_its_outcome_are_two_schema_valid_lines(bundle: Path, tmp_path: Path):
    log = tmp_path / "decisions.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        decision = engine.decide(request(), policy="support-bot")
        engine.record_attempt(decision, model="gpt-4o-mini", error="RateLimitError: slow down")
        engine.record(
            decision, input_tokens=120, output_tokens=30, latency_s=0.8, model="claude-haiku"
        )
        flush(engine)
        revision = engine.status().revision
    first, second = lines_of(log)
    for line in (first, second):
        jsonschema.Draft202012Validator(SCHEMA).validate(line)
        assert line["id"] == decision.id
        assert line["revision"] == revision
        assert line["policy"] == decision.policy.to_dict()
    assert first["kind"] == "decision"
    assert first["time"] == "2026-11-24T12:00:00+00:00"
    assert first["decision"]["tier"] == decision.tier
    assert first["decision"]["model"] == decision.model
    assert first["decision"]["prompts"] == {
        "support-system": {"version": "v3", "rollout": "support-system-v4"}
    }
    assert second["kind"] == "outcome"
    assert second["outcome"] == {
        "model": "claude-haiku",
        "attempts": 2,
        "input_tokens": 120,
        "output_tokens": 30,
        "cost_usd": None,
        "latency_s": 0.8,
        "error": None,
    }


def test_by_default_the_declared_attributes_and_message_lengths_are_logged(
    bundle: Path, tmp_path: Path
):
    log = tmp_path / "d.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        engine.decide(request(feature="faq", temperature=0.0, id="req-1"), policy="support-bot")
        flush(engine)
    (line,) = lines_of(log)
    assert line["request"] == {
        "tenant": {"id": "acme", "tier": "pro"},
        "user": {"id": "u1", "country": "DE"},
        "feature": "faq",
        "tags": [],
        "temperature": 0.0,
        "input_tokens": 19,
        "messages": {"count": 2, "roles": ["system", "user"], "chars": [16, 27]},
    }
    assert "password" not in log.read_text()


def test_the_policy_log_section_chooses_attributes(bundle: Path, tmp_path: Path):
    policy = bundle / "support-bot.yaml"
    policy.write_text(
        policy.read_text() + "\nlog:\n  request: [tenant.id, feature]\n  messages: count\n"
    )
    log = tmp_path / "d.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        engine.decide(request(feature="faq"), policy="support-bot")
        flush(engine)
    (line,) = lines_of(log)
    assert line["request"] == {"tenant": {"id": "acme"}, "feature": "faq", "messages": {"count": 2}}


def test_an_unknown_log_attribute_is_a_check_error_with_its_position(bundle: Path):
    policy = bundle / "support-bot.yaml"
    text = policy.read_text() + "\nlog:\n  request: [tenant.idd]\n"
    policy.write_text(text)
    with pytest.raises(PolicyError) as info:
        Engine.from_path(bundle)
    (problem,) = [d for d in info.value.diagnostics if d.code == "PD220"]
    assert problem.line == len(text.splitlines())
    assert "tenant.idd" in problem.message
    assert problem.hint == "did you mean 'id'?"


def test_message_text_can_not_be_chosen_for_the_log(bundle: Path):
    policy = bundle / "support-bot.yaml"
    policy.write_text(policy.read_text() + "\nlog:\n  request: [messages]\n")
    with pytest.raises(PolicyError) as info:
        Engine.from_path(bundle)
    assert any(d.code == "PD220" and "never" in d.message for d in info.value.diagnostics)


def test_a_callable_sink_receives_each_line(bundle: Path):
    seen: list[dict[str, Any]] = []
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=seen.append) as engine:
        d = engine.decide(request(), policy="support-bot")
        engine.record(d, error=TimeoutError("upstream took too long"))
        flush(engine)
    assert [line["kind"] for line in seen] == ["decision", "outcome"]
    assert seen[1]["outcome"]["error"] == "TimeoutError: upstream took too long"


def test_a_full_queue_drops_and_counts_instead_of_blocking(bundle: Path):
    release = threading.Event()
    written: list[dict[str, Any]] = []

    def slow_sink(line: dict[str, Any]) -> None:
        release.wait(30)
        written.append(line)

    log = DecisionLog(slow_sink, capacity=5)
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        for _ in range(50):
            engine.decide(request(), policy="support-bot")  # never waits for the sink
        assert log.dropped >= 50 - 5 - 1
        release.set()
        flush(engine)
    assert len(written) + log.dropped == 50


def test_the_file_rotates_by_size_and_keeps_every_line(bundle: Path, tmp_path: Path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, max_bytes=20_000, backups=10)
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        for _ in range(40):
            engine.decide(request(), policy="support-bot")
        flush(engine)
    files = sorted(tmp_path.glob("d.jsonl*"))
    assert len(files) > 1
    assert all(f.stat().st_size <= 20_000 for f in files)
    assert sum(len(lines_of(f)) for f in files) == 40


def test_import_policyd_and_a_logging_engine_do_not_import_opentelemetry(bundle: Path):
    code = (
        "import sys, policyd\n"
        f"e = policyd.Engine.from_path({str(bundle)!r}, decision_log=lambda line: None)\n"
        "e.decide({}, policy='support-bot'); e.close()\n"
        "print('opentelemetry' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_adecide_and_arecord_are_logged_too(bundle: Path):
    seen: list[dict[str, Any]] = []
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=seen.append) as engine:
        d = await engine.adecide(request(), policy="support-bot")
        await engine.arecord(d, input_tokens=5, output_tokens=7)
        flush(engine)
    assert [(x["kind"], x["id"]) for x in seen] == [("decision", d.id), ("outcome", d.id)]
    assert seen[1]["outcome"]["output_tokens"] == 7


def test_one_decision_log_shared_by_two_engines(bundle: Path, tmp_path: Path):
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    policy = other / "support-bot.yaml"
    policy.write_text(policy.read_text().replace('"2026.11.3"', '"2026.12.0"'))
    seen: list[dict[str, Any]] = []
    log = DecisionLog(seen.append)
    first = Engine.from_path(bundle, clock=fixed_clock, decision_log=log)
    second = Engine.from_path(other, clock=fixed_clock, decision_log=log)
    first.decide(request(), policy="support-bot")
    first.close()  # the app's log stays open for the other engine
    second.decide(request(), policy="support-bot")
    second.close()
    assert log.flush()
    assert [(x["policy"]["version"], x["revision"]) for x in seen] == [
        ("2026.11.3", first.status().revision),
        ("2026.12.0", second.status().revision),
    ]
    assert seen[1]["request"]["tenant"] == {"id": "acme", "tier": "pro"}
    log.close()
