"""An error given as free text to record() never reaches a span attribute."""

from __future__ import annotations

from pathlib import Path

from observe_helpers import fixed_clock, request
from test_telemetry import Otel

from policyd import Engine
from policyd.telemetry import error_type


def test_a_free_text_error_is_not_an_error_type(bundle: Path):
    otel = Otel()
    engine = Engine.from_path(bundle, clock=fixed_clock, otel=otel.telemetry())
    decision = engine.decide(request(), policy="support-bot")
    engine.record(decision, error="upstream rejected jane.doe@example.com")
    [span] = [s for s in otel.spans.get_finished_spans() if s.name.startswith("policyd.record")]
    # before: the whole text (no ':' in it) became error.type
    assert span.attributes["error.type"] == "error"
    assert "jane" not in str(dict(span.attributes))


def test_exception_classes_are_kept():
    assert error_type("ValueError: the user jane.doe@example.com") == "ValueError"
    assert error_type("litellm.RateLimitError: slow down") == "litellm.RateLimitError"
    assert error_type("timeout") == "timeout"
    assert error_type("a b c") == "error"
