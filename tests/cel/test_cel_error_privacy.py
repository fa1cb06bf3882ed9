"""CEL run-time errors name the operation and the type, never a value (#11)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import cel

PII = "mail jane.doe@example.com"

# Each errors on a value from the request; none may quote it.
ERRORING = [
    "int(request.note) > 3",
    "double(request.note) > 3.0",
    "bool(request.note)",
    "timestamp(request.note) > timestamp('2024-01-01T00:00:00Z')",
    "duration(request.note) > duration('1s')",
    "request.note.matches(request.pattern)",
    "request.meta[request.note] == 1",
    "request.meta[request.note] == 1 || request.ts.getHours() == 99",  # slow path
    "int(request.note) > 3 || request.ts.getHours() == 99",  # slow path
    "request.items[request.big] == 1",
    "request.items[dyn(request.huge)] == 1",
    "{request.note: 1, request.note: 2}.size() == 1",
    "request.note + 1 == 2",
    "request.note < 1",
    "request.note.size() > int(request.digits)",
    "timestamp(request.bigint) > timestamp('2024-01-01T00:00:00Z')",
    "int(request.hugefloat) > 1",
]


def _activation(note: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "request": {
            "note": note,
            "pattern": f"({note}",
            "meta": {"x": 1},
            "items": [1, 2],
            "big": 123456789,
            "huge": 123456.5,
            "digits": "98765432109876543210987654321",
            "bigint": 987654321987654321,
            "hugefloat": 9.87654321e30,
            "ts": datetime.now(UTC),
        }
    }


def _secrets(note: str) -> list[str]:
    return [note, "123456789", "123456.5", "98765432109876543210987654321", "987654321987654321"]


@pytest.mark.parametrize("source", ERRORING)
def test_errors_quote_no_request_value(source: str) -> None:
    expr = cel.compile(source)
    with pytest.raises(cel.EvaluationError) as info:
        expr.evaluate(_activation(PII))
    text = str(info.value)
    for secret in [*_secrets(PII), "jane", "example.com"]:
        assert secret not in text, (source, text)


def test_a_missing_key_written_in_the_expression_is_still_named() -> None:
    expr = cel.compile("request.meta.tier == 'x' || request.meta['plan'] == 'y'")
    with pytest.raises(cel.EvaluationError, match="no such key: 'tier'"):
        expr.evaluate({"request": {"meta": {}}})


@settings(max_examples=60, deadline=None)
@given(note=st.text(min_size=3, max_size=40).map(lambda s: "\u00a7" + s))  # never in a message
def test_no_error_text_contains_the_value(note: str) -> None:
    for source in ERRORING:
        expr = cel.compile(source)
        try:
            expr.evaluate(_activation(note))
        except cel.EvaluationError as exc:
            assert note not in str(exc), (source, str(exc))
