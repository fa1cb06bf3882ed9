"""The stage contract: what a stage may write, steps bound once, one core for sync and async."""

from __future__ import annotations

import asyncio
import inspect
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.deciding import start
from policyd.errors import ConfigError
from policyd.pipeline import STAGES, StageTimings, bind
from policyd.stages.base import ALWAYS_WRITTEN, DecisionState, IoStage
from policyd.stages.flow import Io, adrive, drive
from policyd.stores.base import StoreUnavailable

# Every stage, and a budget that downgrades (budgets re-route through routing).
EVERY_STAGE = """
guardrails:
  input:
    - {name: pii, pii: [email], action: redact}
    - {name: no-secrets, deny_terms: ["password"], action: block}
tiers:
  premium: {targets: [{model: large}], fallback: [economy]}
  economy: {targets: [{model: small}, {model: medium}]}
routing:
  default: premium
  rules:
    - {name: cheap, when: request.feature == "cheap", tier: economy}
  cooldown: {after_failures: 2, for: 1m}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.02}
    on_exceed: {action: downgrade, tier: economy}
  - name: user-requests
    key: request.user.id
    window: {rolling: 1m}
    limit: {requests: 3}
    on_exceed: {action: block, message: Slow down}
cache:
  rules:
    - {name: faq, when: request.feature == "faq", ttl: 1h, key: [model, messages], scope: tenant}
prompts:
  system:
    versions:
      v1: {template: "Hello {{ tenant.id }}!"}
"""


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("contract")
    (where / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (where / "policy.yaml").write_text(policy(EVERY_STAGE))
    return where


@pytest.fixture
def engine(bundle_dir: Path) -> Iterator[Engine]:
    with Engine.from_path(bundle_dir) as engine:
        yield engine


def request(
    user: str = "u1", tenant: str = "t1", feature: str = "chat", text: str = "hi"
) -> dict[str, Any]:
    return {
        "tenant": {"id": tenant, "tier": "pro"},
        "user": {"id": user},
        "feature": feature,
        "max_tokens": 500,
        "messages": [{"role": "user", "content": text}],
    }


def test_stages_are_named_and_ordered_in_one_place(engine: Engine) -> None:
    names = [name for name, _ in STAGES]
    assert names == ["guardrails", "routing", "budgets", "cache", "prompts"]
    compiled = engine.compiled.policy(None)
    assert [step.name for step in compiled.steps] == names
    assert [stage.name for stage in compiled.stages] == names


def test_steps_are_bound_once_with_what_each_stage_does(engine: Engine) -> None:
    steps = {step.name: step for step in engine.compiled.policy(None).steps}
    # stages with I/O are flows (budgets: the store; guardrails only with a plugin); the
    # others are called directly
    assert {n for n, s in steps.items() if s.flow is not None} == {"budgets"}
    for step in steps.values():
        if step.flow is None:
            assert step.run == step.stage.run  # nothing between decide() and the stage
    assert {n for n, s in steps.items() if s.attempt is not None} == {"routing"}
    assert {n for n, s in steps.items() if s.settle is not None} == {"budgets"}
    budgets: Any = steps["budgets"].stage
    assert budgets.routing is steps["routing"].stage  # its dependency, given when built


def test_an_object_that_is_no_stage_is_refused_when_bound() -> None:
    class Nothing:
        name = "nothing"
        writes: frozenset[str] = frozenset()

    with pytest.raises(ConfigError, match="neither run"):
        bind("nothing", Nothing())  # type: ignore[arg-type]


def _fields(state: DecisionState) -> dict[str, Any]:
    defaults = {
        n for n, v in vars(DecisionState).items() if not n.startswith("_") and not callable(v)
    }
    names = {n for n in defaults if not isinstance(getattr(DecisionState, n), property)}
    names |= set(vars(state))
    out = {}
    for name in names:
        value = getattr(state, name)
        out[name] = (
            dict(value)
            if isinstance(value, dict)
            else (list(value) if isinstance(value, list) else value)
        )
    return out


def test_every_stage_declares_only_fields_the_state_has(engine: Engine) -> None:
    state = DecisionState({}, engine.compiled.loaded_at, "id", "estimate")
    known = set(_fields(state))
    for stage in engine.compiled.policy(None).stages:
        assert stage.writes <= known, stage.name
        assert known >= ALWAYS_WRITTEN


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "u3"]),
            st.sampled_from(["t1", "t2"]),
            st.sampled_from(["chat", "cheap", "faq"]),
            st.sampled_from(["hi", "mail me at a@b.example", "my password is x", "x" * 3000]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_each_stage_changes_only_what_it_declares(
    bundle_dir: Path, calls: list[tuple[str, str, str, str]]
) -> None:
    """Run the steps one by one on a sequence of requests (budgets fill up, downgrade and
    block): every change a step makes to the state is in its ``writes``."""
    with Engine.from_path(bundle_dir) as engine:
        compiled = engine.compiled.policy(None)
        for user, tenant, feature, text in calls:
            state = start(
                compiled, engine._runtime, engine._counter, request(user, tenant, feature, text)
            )
            for step in compiled.steps:
                before = _fields(state)
                step.run(state)
                after = _fields(state)
                changed = {n for n in before if before[n] is not after[n] and before[n] != after[n]}
                assert changed <= step.stage.writes | ALWAYS_WRITTEN, step.name
                if state.blocked_by is not None:
                    break


def test_record_and_arecord_take_the_same_keywords_and_refuse_a_misspelled_one(
    engine: Engine,
) -> None:
    assert inspect.signature(Engine.record) == inspect.signature(Engine.arecord)
    decision = engine.decide(request())
    with pytest.raises(TypeError, match="input_token"):
        engine.record(decision, input_token=10)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="input_token"):
        engine.arecord(decision, input_token=10)  # type: ignore[call-arg]
    # the misspelled calls recorded nothing: the reservation is still there to settle
    engine.record(decision, input_tokens=10, output_tokens=5, cost_usd=0.001)
    usage = engine.usage(None, "tenant-daily", "t1")
    assert usage.spent_usd == pytest.approx(0.001) and usage.reserved_usd == 0


def _sequence(engine: Engine, sync: bool) -> list[tuple[Any, ...]]:
    """Decisions and records through one driver: reserve, downgrade, block, settle."""

    async def run() -> list[tuple[Any, ...]]:
        out = []
        for i in range(7):
            req = request(user=f"u{i % 2}", text="hi " * 200)
            d = engine.decide(req) if sync else await engine.adecide(req)
            if d.allowed:
                if sync:
                    engine.record(d, input_tokens=300, output_tokens=200, error=None)
                else:
                    await engine.arecord(d, input_tokens=300, output_tokens=200, error=None)
            out.append((d.allowed, d.blocked_by, d.model, d.fallbacks, d.budgets, d.warnings))
        return out

    return asyncio.run(run())


def test_decide_and_adecide_record_and_arecord_make_the_same_decisions(
    bundle_dir: Path,
) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with (
        Engine.from_path(bundle_dir, clock=lambda: now) as a,
        Engine.from_path(bundle_dir, clock=lambda: now) as b,
    ):
        sync, awaited = _sequence(a, sync=True), _sequence(b, sync=False)
    assert sync == awaited
    assert any(m == "small" or m == "medium" for _, _, m, *_ in sync)  # downgraded
    assert any(not allowed for allowed, *_ in sync)  # and blocked


def test_timed_policy_decides_the_same_and_counts_each_stage(engine: Engine) -> None:
    compiled = engine.compiled.policy(None)
    timings = StageTimings()
    timed = compiled.timed(timings)
    from policyd.deciding import decide

    plain = decide(compiled, engine._runtime, engine._counter, request(user="a"))
    counted = decide(timed, engine._runtime, engine._counter, request(user="b"))
    assert (plain.model, plain.allowed) == (counted.model, counted.allowed)
    assert set(timings.calls) == {step.name for step in compiled.steps}
    assert all(ns > 0 for ns in timings.ns.values())
    assert compiled.steps[0].run != timed.steps[0].run  # the policy itself is untimed


def test_a_call_that_raises_is_raised_at_the_flows_yield_in_both_drivers() -> None:
    def down(*args: Any) -> Any:
        raise StoreUnavailable("store down")

    async def adown(*args: Any) -> Any:
        raise StoreUnavailable("store down")

    def flow() -> Any:
        try:
            yield Io(down, adown, ())
        except StoreUnavailable:
            got = yield Io(lambda x: x + 1, _aplus_one, (41,))
            return ("recovered", got)
        return "not reached"

    assert drive(flow()) == ("recovered", 42)
    assert asyncio.run(adrive(flow())) == ("recovered", 42)


async def _aplus_one(x: int) -> int:
    return x + 1


def test_a_cancelled_await_is_raised_at_the_flows_yield_and_its_finally_runs_then() -> None:
    seen: list[str] = []

    def flow() -> Any:
        try:
            yield Io(lambda: None, asyncio.sleep, (60,))
        except asyncio.CancelledError:
            seen.append("undo")
            raise
        finally:
            seen.append("finally")

    async def scenario() -> None:
        task = asyncio.create_task(adrive(flow()))
        await asyncio.sleep(0)  # the flow now awaits its call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["undo", "finally"]  # not left to the collector

    asyncio.run(scenario())


def test_io_stages_are_the_ones_with_a_flow(engine: Engine) -> None:
    for step in engine.compiled.policy(None).steps:
        assert isinstance(step.stage, IoStage) == (step.flow is not None)
