"""Any request gives a Decision or a RequestError, never another exception (#11).

Arbitrary JSON-shaped requests, the shapes OpenAI's chat API allows (content parts,
images, tool calls) and Python-only hazards (non-string keys, cycles, deep nesting,
lone surrogates, huge integers) go through every shipped policy on the memory store.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_policy_bounds import _bundle  # the shipped bundle with budgets added

from policyd import Decision, Engine, RequestError
from policyd.cli import main

POLICIES = Path(__file__).resolve().parents[2] / "policies"

_ENGINES: list[Engine] = []


def engines() -> list[Engine]:
    """The shipped bundle, and the same with budgets on support-bot (memory store)."""
    if not _ENGINES:
        budgeted = _bundle(Path(tempfile.mkdtemp(prefix="policyd-hostile-")))
        _ENGINES.append(Engine.from_path(POLICIES, store="memory"))
        _ENGINES.append(Engine.from_path(budgeted, store="memory"))
    return _ENGINES


def engine() -> Engine:
    return engines()[0]


def names() -> list[str]:
    return sorted(engine().policies)


def decide_all(request: Any) -> None:
    """Every shipped policy, sync and async: a Decision or a RequestError, nothing else."""
    for current in engines():
        for name in sorted(current.policies):
            for run in (
                current.decide,
                lambda r, policy, e=current: asyncio.run(e.adecide(r, policy)),
            ):
                try:
                    decision = run(request, policy=name)
                except RequestError as exc:
                    str(exc)  # renders
                    continue
                assert isinstance(decision, Decision)
                json.dumps(decision.to_dict(), default=str)
                current.record(decision, input_tokens=1, output_tokens=1)


# --------------------------------------------------------------------------- strategies

text = st.text(max_size=30) | st.sampled_from(["\ud800", "a\udfffb", "code", "enterprise", ""])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**53, 10**20, -1, 0, 2**63, -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text | json_values}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_audio"), "input_audio": st.dictionaries(text, json_values)}
    ),
    json_values,
)
tool_call = st.fixed_dictionaries(
    {
        "id": text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": text, "arguments": text | json_values}),
    }
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"]) | json_values},
    optional={
        "content": text | st.lists(part, max_size=3) | json_values,
        "tool_calls": st.lists(tool_call, max_size=2) | json_values,
        "tool_call_id": text,
        "name": json_values,
    },
)
FIELDS = ["messages", "tenant", "user", "feature", "tags", "metadata", "model", "max_tokens",
          "input_tokens", "temperature", "id"]  # fmt: skip
# A plausible request (so that every stage runs) with some fields replaced by anything.
plausible = st.fixed_dictionaries(
    {
        "tenant": st.fixed_dictionaries(
            {"id": text, "tier": st.sampled_from(["pro", "enterprise", "free"]) | text}
        ),
        "user": st.fixed_dictionaries(
            {"id": text, "country": st.sampled_from(["US", "DE"]) | text}
        ),
        "feature": st.sampled_from(["chat", "code", "support"]) | text,
        "tags": st.lists(st.sampled_from(["code", "billing"]) | text, max_size=3),
        "messages": st.lists(message, min_size=1, max_size=4),
    },
    optional={
        "metadata": st.dictionaries(text, json_values, max_size=3),
        "model": st.sampled_from(["gpt-4o", "claude-haiku"]) | text,
        "max_tokens": scalars,
        "input_tokens": scalars,
        "temperature": scalars,
    },
)
request = st.builds(
    lambda base, changes: {**base, **changes},
    plausible,
    st.dictionaries(st.sampled_from(FIELDS), json_values | scalars, max_size=2),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(request=request)
def test_any_json_shaped_request_gives_a_decision_or_a_request_error(request: Any) -> None:
    decide_all(request)


@settings(max_examples=40, deadline=None)
@given(value=json_values)
def test_any_json_value_as_the_whole_request(value: Any) -> None:
    decide_all(value)


# --------------------------------------------------------------------------- the findings


def _cyclic() -> Iterator[dict[str, Any]]:
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    messages.append(messages)
    yield {"messages": messages}
    part: dict[str, Any] = {"type": "text", "text": "x"}
    part["self"] = part
    yield {"messages": [{"role": "user", "content": [part]}]}
    meta: dict[str, Any] = {}
    meta["loop"] = meta
    yield {"metadata": meta, "messages": [{"role": "user", "content": "hi"}]}


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


FOUND: list[tuple[str, Any]] = [
    ("surrogate sticky id", {"user": {"id": "\ud800"}, "messages": [{"role": "user"}]}),
    ("surrogate content", {"messages": [{"role": "user", "content": "hi \ud800"}]}),
    (
        "surrogate in a part",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
    ),
    ("surrogate key", {"metadata": {"\ud800": 1}, "messages": []}),
    ("role list", {"messages": [{"role": [], "content": "hi"}]}),
    ("role dict", {"messages": [{"role": {}, "content": "hi"}]}),
    ("max_tokens 2**53", {"max_tokens": 2**53, "messages": [{"role": "user", "content": "x"}]}),
    ("max_tokens 2**64", {"max_tokens": 2**64, "messages": [{"role": "user", "content": "x"}]}),
    ("input_tokens 10**20", {"input_tokens": 10**20, "messages": []}),
    ("mixed keys", {"metadata": {1: "a", "b": 2}, "messages": [{"role": "user", "content": "x"}]}),
    ("int key", {"metadata": {(1, 2): "a"}, "messages": []}),
    ("deep metadata", {"metadata": _deep(5000), "messages": [{"role": "user", "content": "x"}]}),
    ("deep content", {"messages": [{"role": "user", "content": [_deep(3000)]}]}),
    ("huge int", {"metadata": {"n": 10**5000}, "messages": [{"role": "user", "content": "x"}]}),
    ("object", {"metadata": {"o": object()}, "messages": [{"role": "user", "content": "x"}]}),
    ("set", {"tags": {"a", "b"}, "messages": []}),
]


@pytest.mark.parametrize(("label", "request_"), FOUND, ids=[f[0] for f in FOUND])
def test_found_crashes_are_request_errors(label: str, request_: Any) -> None:
    for current in engines():
        for name in sorted(current.policies):
            with pytest.raises(RequestError):
                current.decide(request_, policy=name)


def test_the_largest_token_counts_allowed_are_decided_with_budgets() -> None:
    budgeted = engines()[1]
    request = {"tenant": {"id": "t", "tier": "pro"}, "user": {"id": "u"}, "feature": "chat",
               "max_tokens": 10**9, "input_tokens": 90_000,
               "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    decision = budgeted.decide(request, policy="support-bot")
    assert not decision.allowed  # no model's window holds 2 x 10^9 tokens
    decision = budgeted.decide({**request, "max_tokens": 1000}, policy="support-bot")
    assert {b.name for b in decision.budgets} == {"tenant-usd", "user-rate"}
    budgeted.record(decision, input_tokens=10**9, output_tokens=10**9)
    with pytest.raises(RequestError, match="max_tokens"):
        budgeted.decide({**request, "max_tokens": 10**9 + 1}, policy="support-bot")


@pytest.mark.parametrize("request_", list(_cyclic()))
def test_cyclic_requests_are_request_errors(request_: Any) -> None:
    for name in names():
        with pytest.raises(RequestError, match=r"deep|cycl"):
            engine().decide(request_, policy=name)


def test_policyd_eval_exits_2_for_a_bad_request(tmp_path: Path) -> None:
    for request_ in (
        {"messages": [{"role": [], "content": "hi"}]},
        {"max_tokens": 2**53, "messages": [{"role": "user", "content": "x"}]},
        {"user": {"id": "\ud800"}, "messages": [{"role": "user", "content": "x"}]},
    ):
        path = tmp_path / "request.json"
        path.write_text(json.dumps(request_))  # JSON escapes the lone surrogate
        for name in names():
            result = CliRunner().invoke(
                main, ["eval", str(POLICIES), "--request", str(path), "--policy", name]
            )
            assert result.exit_code == 2, result.output
            assert "Traceback" not in result.output
    deep = tmp_path / "deep.json"
    deep.write_text('{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = CliRunner().invoke(main, ["eval", str(POLICIES), "--request", str(deep),
                                       "--policy", "support-bot"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "nested too deeply" in result.output


def test_request_errors_name_the_field_but_not_a_key_that_is_data() -> None:
    request = {
        "metadata": {"plan": {"jane.doe@example.com": "\ud800"}},
        "messages": [{"role": "user", "content": "x"}],
    }
    with pytest.raises(RequestError) as info:
        engine().decide(request, policy="support-bot")
    assert info.value.field == "metadata.plan[key #0]"
    assert "jane" not in str(info.value) and "\ud800" not in str(info.value)
    with pytest.raises(RequestError) as info:
        engine().decide(
            {"messages": [{"role": "user", "content": [{"text": 5}]}]}, policy="support-bot"
        )
    assert info.value.field == "messages[0].content[0].text"
