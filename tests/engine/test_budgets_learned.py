"""Reservations learned from recorded outcomes, per-policy reserve defaults, and the
reason a budget refused (#14): on the memory store and on real Redis."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from engine_bundles import policy
from engine_bundles import small_request as req

from policyd import Engine, PolicyError
from policyd.stores import MemoryStore

# large: $3/M input, $15/M output, no output limit known (4,096 assumed)
BODY = """
tiers:
  premium: {targets: [{model: large}]}
routing: {default: premium, context_window: ignore}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: LIMIT}
    reserve: RESERVE
    on_exceed: {action: ACTION, message: Tenant daily budget used up}
"""


def body(reserve: str, limit: str = "5", action: str = "block") -> str:
    return BODY.replace("RESERVE", reserve).replace("LIMIT", limit).replace("ACTION", action)


def output_reserved(engine: Engine, request: dict | None = None) -> int:
    """Output tokens the first budget's line of a fresh decision reserved (released)."""
    d = engine.decide(request or req())
    assert d.allowed, d.message
    engine.record(d, error="not called")  # a failed call: nothing learned
    state = d.budgets[0]
    assert state.reserved_tokens is not None
    return state.reserved_tokens - int(d.request["input_tokens"])


def record_outputs(engine: Engine, outputs: range | list[int]) -> None:
    for n in outputs:
        d = engine.decide(req())
        assert d.allowed, d.message
        engine.record(d, input_tokens=5, output_tokens=n)


@pytest.fixture
def stores(request: pytest.FixtureRequest, redis_or_memory: dict) -> dict:
    """Engine keyword arguments for two instances sharing one store: the same memory
    store object, or the same Redis prefix; exchanges on every record."""
    kwargs = dict(redis_or_memory)
    if not kwargs:
        kwargs["store"] = MemoryStore()
    kwargs["estimate_refresh_s"] = 0
    return kwargs


def test_the_reservation_is_the_recorded_p95_of_output_tokens(make_engine, stores):
    engine = make_engine(
        policy(body("{estimate: p95, output_tokens: 2000, min_samples: 50}")), **stores
    )
    # fewer than min_samples outcomes: the cap is the fallback
    assert output_reserved(engine) == 2000
    record_outputs(engine, range(1, 101))  # 1 .. 100 output tokens
    reserved = output_reserved(engine)
    # p95 of 1..100 is 95: reserved within one bucket (2**(1/4), 19 %) above it, never below
    assert 95 <= reserved <= 95 * 2**0.25
    [note] = [t for t in engine.decide(req()).trace if t.outcome == "estimate"]
    assert note.rule == "tenant-daily" and "p95 of 100 recorded outputs of large" in note.detail
    # never more than the request's max_tokens
    assert output_reserved(engine, req(max_tokens=40)) == 40
    engine.close()


def test_another_instance_reserves_from_what_the_first_recorded(make_engine, stores):
    text = policy(body("{estimate: p50, output_tokens: 3000, min_samples: 20}"))
    first, second = make_engine(text, **stores), make_engine(text, **stores)
    record_outputs(first, [300] * 30)
    assert output_reserved(second) == 3000  # no exchange yet: its snapshot is empty
    record_outputs(second, [300])  # its record exchanges with the store
    assert 300 <= output_reserved(second) <= 300 * 2**0.25
    first.close()
    second.close()


def test_below_min_samples_the_worst_case_applies_without_a_cap(make_engine, stores):
    engine = make_engine(policy(body("{estimate: p99, min_samples: 10}")), **stores)
    record_outputs(engine, [100] * 9)
    assert output_reserved(engine) == 4096  # the default output limit: the worst case
    record_outputs(engine, [100])
    assert 100 <= output_reserved(engine) <= 100 * 2**0.25
    engine.close()


def test_the_estimate_follows_drift(make_engine, stores, clock):
    engine = make_engine(
        policy(body("{estimate: p95, output_tokens: 2000, min_samples: 20}")), **stores
    )
    record_outputs(engine, [1000] * 30)
    assert 1000 <= output_reserved(engine) <= 1000 * 2**0.25
    # a day later the old outcomes are gone: fallback until new ones are recorded
    clock.now += timedelta(days=1)
    record_outputs(engine, [50] * 19)
    assert output_reserved(engine) == 2000
    record_outputs(engine, [50])
    assert 50 <= output_reserved(engine) <= 50 * 2**0.25
    engine.close()


def test_the_settle_corrects_an_estimate_and_an_overshoot_is_reported(make_engine, stores):
    # p50 of 100-token outputs reserves about $0.0015; the limit is $0.01
    engine = make_engine(
        policy(body("{estimate: p50, output_tokens: 200, min_samples: 5}", limit="0.01")),
        **stores,
    )
    events: list[dict] = []
    engine.on_event(events.append)
    record_outputs(engine, [100] * 5)
    assert [e for e in events if e["type"] == "budget_overshoot"] == []
    spent = engine.decide(req(max_tokens=1)).budgets[0].spent_usd
    assert spent == pytest.approx(5 * (5 * 3 + 100 * 15) / 1e6)  # actual costs, not estimates
    d = engine.decide(req())
    assert d.allowed
    engine.record(d, input_tokens=5, output_tokens=1000)  # $0.015: past the limit
    [event] = [e for e in events if e["type"] == "budget_overshoot"]
    assert event["budget"] == "tenant-daily" and event["limit_usd"] == 0.01
    after = engine.decide(req(max_tokens=1))
    assert after.reason == "used_up" and after.retry_after_s is not None
    engine.close()


def test_outcomes_of_unknown_models_and_failed_calls_are_not_learned(make_engine, stores):
    engine = make_engine(
        policy(body("{estimate: p50, output_tokens: 700, min_samples: 3}")), **stores
    )
    for _ in range(5):
        d = engine.decide(req())
        engine.record(d, output_tokens=10, model="someone-elses-model")
        d = engine.decide(req())
        engine.record(d, output_tokens=10, error="timeout")
    assert output_reserved(engine) == 700
    assert engine._runtime.outputs.stats()["keys"] == 1  # (p, large) only
    engine.close()


# --------------------------------------------------------------------------- defaults


DEFAULTS_BODY = """
tiers:
  premium: {targets: [{model: large}]}
routing: {default: premium, context_window: ignore}
budget_defaults:
  reserve: {output_tokens: 1024}
budgets:
  - name: capped
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 5}
  - name: own
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 5}
    reserve: worst_case
"""


def test_budget_defaults_reserve_applies_unless_a_budget_sets_its_own(make_engine):
    engine = make_engine(policy(DEFAULTS_BODY))
    d = engine.decide(req())
    capped, own = d.budgets
    inputs = int(d.request["input_tokens"])
    assert capped.reserved_tokens == inputs + 1024  # the policy's default
    assert own.reserved_tokens == inputs + 4096  # its own: the worst case
    engine.close()


# --------------------------------------------------------------------------- reasons


def test_never_fits_has_its_own_reason_and_says_waiting_will_not_help(make_engine):
    engine = make_engine(policy(body("worst_case", limit="0.05")))
    d = engine.decide(req())  # 4,096 x $15/M = $0.061 > $0.05 on zero spend
    assert not d.allowed and d.blocked_by == "tenant-daily"
    assert d.reason == "too_large" and d.to_dict()["reason"] == "too_large"
    assert d.retry_after_s is None and d.budgets[0].state == "too_large"
    assert d.message is not None
    assert "waiting will not help" in d.message
    assert "max_tokens" in d.message and "output_tokens" in d.message
    assert "limit" in d.message
    for _ in range(3):  # $0.015 each
        ok = engine.decide(req(max_tokens=1000))
        assert ok.allowed and ok.reason is None and ok.to_dict()["reason"] is None
        engine.record(ok, input_tokens=5, output_tokens=1000, cost_usd=0.015)
    used = engine.decide(req(max_tokens=1000))
    assert (used.reason, used.message) == ("used_up", "Tenant daily budget used up")
    assert used.retry_after_s is not None and used.retry_after_s > 0
    engine.close()


def test_never_fits_still_downgrades_when_the_budget_says_so(make_engine):
    text = body("worst_case", limit="0.05", action="downgrade").replace(
        "message: Tenant", "tier: economy, message: Tenant"
    )
    text = text.replace(
        "  premium: {targets: [{model: large}]}",
        "  premium: {targets: [{model: large}]}\n  economy: {targets: [{model: small}]}",
    )
    engine = make_engine(policy(text))
    d = engine.decide(req())
    assert d.allowed and d.model == "small" and d.reason is None
    assert d.budgets[0].state == "ok"
    engine.close()


def test_a_concurrency_refusal_says_concurrent(make_engine):
    text = policy(body("worst_case").replace("limit: {usd: 5}", "limit: {usd: 5, concurrent: 1}"))
    engine = make_engine(text)
    assert engine.decide(req(10)).allowed
    d = engine.decide(req(10))
    assert d.reason == "concurrent" and d.retry_after_s is None
    engine.close()


# --------------------------------------------------------------------------- check


def diagnostics_of(make_engine, tmp_path, text: str) -> list:
    """Every diagnostic of a bundle of the shared catalog plus ``text`` (loaded by check)."""
    from policyd.bundle import load_bundle

    with contextlib.suppress(PolicyError):
        make_engine(text).close()
    return list(load_bundle(tmp_path).diagnostics)


def at(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of ``needle`` in ``text``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("reserve", "message", "hint"),
    [
        ("{estimate: p100}", "'estimate': unknown quantile 'p100'", "e.g. p50, p95 or p99.9"),
        ("{estimate: median}", "'estimate': unknown quantile 'median'", "e.g. p50, p95"),
        ("{estimate: 95}", "'estimate': unknown quantile 95", "write p95"),
        ("{estimate: 0.95}", "'estimate': unknown quantile 0.95", "write p95"),
    ],
)
def test_an_unknown_quantile_is_a_check_error_at_its_value(
    make_engine, tmp_path, reserve, message, hint
):
    text = policy(body(reserve))
    [diag] = [d for d in diagnostics_of(make_engine, tmp_path, text) if d.is_error]
    assert diag.code == "PD104" and diag.message.startswith(message)
    assert diag.hint is not None and hint in diag.hint
    value = reserve.split(": ", 1)[1].rstrip("}")
    line, column = at(text, reserve)
    assert diag.file.endswith("policy.yaml")
    assert (diag.line, diag.column) == (line, column + reserve.index(value))


@pytest.mark.parametrize(
    ("reserve", "message", "hint"),
    [
        (
            "{output_tokens: 5, min_samples: 10}",
            "'reserve': min_samples is only used with estimate",
            "add estimate: p95 (for example), or remove min_samples",
        ),
        ("{}", "'reserve': needs output_tokens, estimate or both", "{estimate: p95, "),
    ],
)
def test_a_reserve_mapping_without_a_mode_is_a_check_error(
    make_engine, tmp_path, reserve, message, hint
):
    text = policy(body(reserve))
    [diag] = [d for d in diagnostics_of(make_engine, tmp_path, text) if d.is_error]
    assert (diag.code, diag.message) == ("PD104", message)
    assert diag.hint is not None and hint in diag.hint
    assert (diag.line, diag.column) == at(text, reserve)


def test_check_warns_when_an_estimate_has_no_fallback_that_fits(make_engine, tmp_path):
    text = policy(body("{estimate: p95}", limit="0.05"))
    [warning] = [d for d in diagnostics_of(make_engine, tmp_path, text) if d.code == "PD505"]
    assert warning.severity == "warning"
    assert warning.hint is not None and "{estimate: p95, output_tokens: N}" in warning.hint
    capped = policy(body("{estimate: p95, output_tokens: 1024}", limit="0.05"))
    assert [d for d in diagnostics_of(make_engine, tmp_path, capped) if d.code == "PD505"] == []


def test_check_uses_budget_defaults_for_the_never_fits_warning(make_engine, tmp_path):
    text = policy(
        body("worst_case", limit="0.05")
        .replace("    reserve: worst_case\n", "")
        .replace("budgets:\n", "budget_defaults:\n  reserve: {output_tokens: 1024}\nbudgets:\n")
    )
    assert [d for d in diagnostics_of(make_engine, tmp_path, text) if d.code == "PD505"] == []


def test_budget_defaults_without_budgets_have_no_effect(make_engine, tmp_path):
    text = policy(
        """
        tiers:
          premium: {targets: [{model: large}]}
        routing: {default: premium}
        budget_defaults:
          reserve: {output_tokens: 10}
        """
    )
    [warning] = [d for d in diagnostics_of(make_engine, tmp_path, text) if d.code == "PD504"]
    assert warning.severity == "warning" and "budget_defaults has no effect" in warning.message
    assert (warning.line, warning.column) == at(text, "budget_defaults:")


def test_the_worked_example_of_docs_budgets(make_engine, stores):
    # docs/budgets.md: {estimate: p95, output_tokens: 2048} on $3/M in, $15/M out
    engine = make_engine(policy(body("{estimate: p95, output_tokens: 2048}")), **stores)
    d = engine.decide(req())
    inputs = int(d.request["input_tokens"])
    assert d.budgets[0].reserved_usd == pytest.approx((inputs * 3 + 2048 * 15) / 1e6)
    record_outputs(engine, [700] * 95 + [5000] * 5)  # p95: 700 tokens
    d = engine.decide(req())
    assert d.budgets[0].reserved_tokens == inputs + 724  # 700's bucket is 609 .. 724
    assert d.budgets[0].reserved_usd == pytest.approx((inputs * 3 + 724 * 15) / 1e6)
    engine.close()


def test_async_decide_and_record_learn_the_same_way(make_engine, stores):
    import asyncio

    engine = make_engine(
        policy(body("{estimate: p50, output_tokens: 900, min_samples: 4}")), **stores
    )

    async def run() -> tuple[int, int]:
        first = await engine.adecide(req())
        for _ in range(4):
            d = await engine.adecide(req())
            await engine.arecord(d, input_tokens=5, output_tokens=60)
        last = await engine.adecide(req())
        await engine._runtime.store.aclose()  # this loop's client
        return (
            first.budgets[0].reserved_tokens - int(first.request["input_tokens"]),
            last.budgets[0].reserved_tokens - int(last.request["input_tokens"]),
        )

    assert asyncio.run(run()) == (900, 63)  # 60 is in the bucket 54 .. 63
    engine.close()
