"""Engine.reload(): atomic swap, last-good on rejection, require_tests, state kept across."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import PATIENT

from policyd.engine import Engine
from policyd.reload import NO_TESTS, TESTS_FAILED

from .conftest import REQUEST, revision, revision_of, serving, wait_for

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def events_of(engine: Engine) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    engine.on_event(seen.append)
    return seen


def test_reload_swaps_to_a_changed_bundle_and_names_it_in_decisions(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    events = events_of(engine)
    before = engine.status().revision
    assert revision_of(engine.decide(REQUEST).to_dict()) == 0

    (rev_dir / "p.yaml").write_text(revision(1))
    assert engine.reload() is True

    decision = engine.decide(REQUEST).to_dict()
    assert revision_of(decision) == 1
    assert decision["policy"]["digest"] == engine.policy_ref("p").digest
    status = engine.status()
    assert status.revision != before and status.reloads == 1 and status.rejected == 0
    (event,) = events
    assert event["type"] == "reloaded"
    assert (event["previous"], event["revision"]) == (before, status.revision)
    (change,) = event["changes"]["changed"]
    assert change["old_version"] == "r0" and change["new_version"] == "r1"
    assert {"models", "tiers", "routing", "cache", "prompts"} <= set(change["sections"])


def test_identical_content_is_not_a_new_revision(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    events = events_of(engine)
    (rev_dir / "p.yaml").write_text(revision(0))  # rewritten, same bytes
    assert engine.reload() is False
    assert engine.status().reloads == 0 and events == []


def test_broken_revision_is_rejected_and_a_fix_recovers(
    rev_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine.from_path(rev_dir)
    events = events_of(engine)
    good = engine.status().revision

    (rev_dir / "p.yaml").write_text(revision(1, broken=True))
    with caplog.at_level(logging.WARNING, logger="policyd"):
        assert engine.reload() is False
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "still serving " + good[:12] in record.getMessage()
    assert "p.yaml:10:1: error PD001" in record.getMessage()
    assert serving(engine) == 0 and revision_of(engine.decide(REQUEST).to_dict()) == 0
    status = engine.status()
    assert status.revision == good and status.rejected == 1
    assert status.rejected_revision is not None and status.last_error_at is not None
    assert [d.code for d in status.last_error] == ["PD001"]
    assert status.last_error[0].file.endswith("p.yaml") and status.last_error[0].line == 10
    assert status.to_dict()["last_error"][0]["code"] == "PD001"
    (event,) = events
    assert event["type"] == "reload_rejected" and event["serving"] == good
    assert event["revision"] == status.rejected_revision
    assert event["errors"][0]["code"] == "PD001"

    assert engine.reload() is False  # the same broken files again: not reported twice
    assert engine.status().rejected == 1 and len(events) == 1

    (rev_dir / "p.yaml").write_text(revision(2))
    assert engine.reload() is True
    assert serving(engine) == 2
    assert engine.status().rejected_revision is None
    assert engine.status().last_error_at == status.last_error_at  # kept as history


def test_a_validation_error_is_rejected_with_its_location(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    (rev_dir / "p.yaml").write_text(revision(1).replace("default: t1", "default: nowhere"))
    assert engine.reload() is False
    (error,) = engine.status().last_error
    assert error.code.startswith("PD2") and "nowhere" in error.message
    assert serving(engine) == 0


def test_a_bundle_that_vanishes_is_rejected(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    (rev_dir / "p.yaml").unlink()
    assert engine.reload() is False
    assert serving(engine) == 0
    assert {d.code for d in engine.status().last_error} == {"PD010"}


def test_reverting_files_to_the_serving_revision_clears_the_rejection(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    events = events_of(engine)
    (rev_dir / "p.yaml").write_text(revision(1, broken=True))
    engine.reload()
    (rev_dir / "p.yaml").write_text(revision(0))
    assert engine.reload() is False
    assert engine.status().rejected_revision is None
    assert [e["type"] for e in events] == ["reload_rejected", "reload_recovered"]
    assert events[1]["revision"] == engine.status().revision


def test_a_prompt_file_change_alone_is_a_new_revision(bundle_dir: Path) -> None:
    engine = Engine.from_path(bundle_dir, clock=lambda: NOW)
    request = {
        "tenant": {"id": "acme", "tier": "enterprise"},
        "user": {"id": "u1"},
        "tags": [],
        "messages": [{"role": "user", "content": "hi"}],
    }
    before = engine.policy_ref("support-bot")
    prompt = bundle_dir / "prompts" / "support-system" / "v3.md"
    prompt.write_text("A brand new system prompt.\n")
    assert engine.reload() is True
    after = engine.policy_ref("support-bot")
    assert after.digest != before.digest
    choice = engine.decide(request, policy="support-bot").prompts["support-system"]
    assert choice.version == "v3" and choice.text == "A brand new system prompt.\n"
    assert engine.policy_ref("code-assistant") == engine.policy_ref("code-assistant")


REQUIRE_TESTS = """\
reload: {require_tests: true}
---
apiVersion: policyd/v1
kind: PolicyTest
metadata: {name: p-tests}
policy: p
cases:
  - name: routes to m%d
    request: {messages: [{role: user, content: hi}]}
    expect: {model: m%d}
"""


def test_require_tests_rejects_a_revision_whose_tests_fail(rev_dir: Path) -> None:
    (rev_dir / "p.yaml").write_text(revision(0) + REQUIRE_TESTS % (0, 0))
    engine = Engine.from_path(rev_dir)
    events = events_of(engine)

    (rev_dir / "p.yaml").write_text(revision(1) + REQUIRE_TESTS % (0, 0))  # test expects m0
    assert engine.reload() is False
    assert serving(engine) == 0
    (failure,) = engine.status().last_error
    assert failure.code == TESTS_FAILED
    assert "routes to m0" in failure.message and "'m0'" in failure.message
    assert "'m1'" in failure.message
    assert failure.line == 21  # the failing case's line in p.yaml
    assert events[-1]["type"] == "reload_rejected"

    (rev_dir / "p.yaml").write_text(revision(1) + REQUIRE_TESTS % (1, 1))
    assert engine.reload() is True
    assert serving(engine) == 1


def test_require_tests_without_any_test_is_rejected(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    (rev_dir / "p.yaml").write_text(revision(1) + "reload: {require_tests: true}\n")
    assert engine.reload() is False
    (problem,) = engine.status().last_error
    assert problem.code == NO_TESTS and problem.line == 14
    assert "require_tests" in (problem.hint or "")


def test_failing_tests_do_not_block_without_require_tests(rev_dir: Path) -> None:
    body = REQUIRE_TESTS.replace("reload: {require_tests: true}\n", "") % (0, 0)
    engine = Engine.from_path(rev_dir)
    (rev_dir / "p.yaml").write_text(revision(1) + body)
    assert engine.reload() is True


BUDGETED = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: p, version: "%s"}
context:
  user: {id: string}
models:
  m1: {litellm: openai/m1, context_window: 100000, price: {input_per_mtok: 1, output_per_mtok: 2}}
  m2: {litellm: openai/m2, context_window: 100000, price: {input_per_mtok: 1, output_per_mtok: 2}}
tiers:
  main: {strategy: ordered, targets: [{model: m1}, {model: m2}]}
routing:
  default: main
  timeout: %ds
  cooldown: {after_failures: 2, for: 1h}
budgets:
  - name: user-daily
    key: request.user.id
    window: calendar_day
    limit: {requests: 3}
    on_exceed: {action: block}
"""


def test_budget_counters_and_cooldowns_survive_a_reload(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(BUDGETED % ("1", 10))
    engine = Engine.from_path(tmp_path, clock=lambda: NOW)
    spender = {"user": {"id": "u1"}, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        engine.record(engine.decide(spender), input_tokens=1, output_tokens=1)
    failing = engine.decide({"user": {"id": "u2"}, "messages": spender["messages"]})
    engine.record(failing, error="server_error")
    engine.record(failing, error="server_error")  # m1 now cools down for an hour

    (tmp_path / "p.yaml").write_text(BUDGETED % ("2", 20))
    assert engine.reload() is True

    third = engine.decide(spender)
    assert third.policy.version == "2" and third.timeout_s == 20
    assert third.model == "m2"  # still cooling down after the reload
    assert third.budgets[0].to_dict()["spent_requests"] == 2
    engine.record(third, input_tokens=1, output_tokens=1)
    fourth = engine.decide(spender)
    assert not fourth.allowed and fourth.blocked_by == "user-daily"


def test_rollout_assignments_move_only_where_the_new_policy_moves_them(bundle_dir: Path) -> None:
    engine = Engine.from_path(bundle_dir, clock=lambda: NOW)

    def assignments() -> dict[str, str]:
        out = {}
        for i in range(300):
            request = {
                "tenant": {"id": "t", "tier": "pro"},
                "user": {"id": f"user-{i}"},
                "tags": [],
                "messages": [{"role": "user", "content": "hi"}],
            }
            choice = engine.decide(request, policy="support-bot").prompts["support-system"]
            out[f"user-{i}"] = choice.version
        return out

    before = assignments()
    policy = bundle_dir / "support-bot.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("timeout: 30s", "timeout: 45s"))
    assert engine.reload() is True
    assert assignments() == before  # an unrelated change moves nobody

    policy.write_text(text.replace("variants: {v3: 90, v4: 10}", "variants: {v3: 70, v4: 30}"))
    assert engine.reload() is True
    after = assignments()
    assert all(after[u] == "v4" for u, v in before.items() if v == "v4")  # nobody moves out
    moved = [u for u, v in before.items() if v == "v3" and after[u] == "v4"]
    assert 20 <= len(moved) <= 100  # about 20% of the 300 users move in


def test_decisions_from_four_threads_during_100_reloads(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(4)]

    def decide_loop(index: int) -> None:
        try:
            while not stop.is_set():
                seen[index].append(revision_of(engine.decide(REQUEST).to_dict()))
                time.sleep(0.0002)  # let the reloading thread in: it competes for the GIL
        except BaseException as exc:  # any error at all fails the test
            errors.append(exc)

    threads = [threading.Thread(target=decide_loop, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 101):
            (rev_dir / "p.yaml").write_text(revision(n))
            assert engine.reload() is True
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert engine.status().reloads == 100
    for numbers in seen:
        assert numbers, "a thread made no decision"
        assert numbers == sorted(numbers)  # a thread never goes back to an older revision
    assert len({n for numbers in seen for n in numbers}) > 10


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_forces_a_reload(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    previous = signal.getsignal(signal.SIGHUP)
    engine.install_sighup_handler()
    try:
        (rev_dir / "p.yaml").write_text(revision(7))
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: serving(engine) == 7)
    finally:
        engine.close()
    assert signal.getsignal(signal.SIGHUP) is previous  # close() puts the old handler back


@pytest.mark.redis
def test_budget_counters_in_redis_survive_a_reload(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    (tmp_path / "p.yaml").write_text(BUDGETED % ("1", 10))
    engine = Engine.from_path(
        tmp_path, clock=lambda: NOW, store=redis_url, key_prefix=redis_prefix, **PATIENT
    )
    try:
        spender = {"user": {"id": "u1"}, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            engine.record(engine.decide(spender), input_tokens=1, output_tokens=1)
        (tmp_path / "p.yaml").write_text(BUDGETED % ("2", 20))
        assert engine.reload() is True
        third = engine.decide(spender)
        assert third.policy.version == "2"
        assert third.budgets[0].to_dict()["spent_requests"] == 2
        engine.record(third, input_tokens=1, output_tokens=1)
        assert engine.decide(spender).blocked_by == "user-daily"
    finally:
        engine.close()
