"""OpenTelemetry for decisions: a span per decide()/record(), and the policyd metrics.

Imported only when telemetry is on, so ``import policyd`` never imports OpenTelemetry.
Attributes follow the GenAI semantic conventions where one exists (``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``, ``error.type``)
and use ``policyd.*`` for the rest. Why spans and not events: see docs/observability.md.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from policyd import __version__
from policyd.decision import Decision

SCOPE = "policyd"


def _sdk_installed() -> bool:
    """True when the app installed a real (SDK) tracer or meter provider globally."""
    trace = sys.modules.get("opentelemetry.trace")
    metrics = sys.modules.get("opentelemetry.metrics")
    if trace is None or metrics is None:
        return False  # the app never imported OpenTelemetry: nothing can be configured
    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    return not (
        type(tracer_provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider")
        and type(meter_provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider")
    )


def from_option(option: Any) -> Telemetry | None:
    """``Engine.from_path(otel=...)``: None = on when a provider is installed; True; False;
    or a ready :class:`Telemetry` (e.g. with explicit providers)."""
    if option is False:
        return None
    if isinstance(option, Telemetry):
        return option
    if option is None and not _sdk_installed():
        return None
    return _global()


_GLOBAL: list[Telemetry] = []


def _global() -> Telemetry:
    """One Telemetry on the global providers, shared by every engine of the process (an
    observable instrument registered twice on one meter would report only once)."""
    with _GLOBAL_LOCK:
        if not _GLOBAL:
            _GLOBAL.append(Telemetry())
        return _GLOBAL[0]


_GLOBAL_LOCK = threading.Lock()


class Telemetry:
    """Spans and metrics (providers default to the global ones). One instance may serve
    several engines: build one per meter provider and pass it to each."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from opentelemetry import metrics, trace

        self._trace = trace
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        # Counted in plain dicts on the request path and reported when the SDK collects
        # (observable counters): one dict update instead of an SDK measurement per decision.
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str, str], int] = {}
        self._reserved: dict[tuple[str, str, str], int] = {}
        self._store_errors: dict[str, int] = {}
        meter.create_observable_counter(
            "policyd.decisions",
            [self._observe_decisions],
            "{decision}",
            "Decisions by policy, outcome and blocking rule",
        )
        self.duration = meter.create_histogram("policyd.decide.duration", "s", "Time decide() took")
        self.spend = meter.create_counter(
            "policyd.budget.spend", "USD", "Spend reported with record(), per policy and model"
        )
        meter.create_observable_counter(
            "policyd.budget.reservations",
            [self._observe_reserved],
            "{reservation}",
            "Budget checks by budget and state",
        )
        meter.create_observable_counter(
            "policyd.store.errors",
            [self._observe_store_errors],
            "{error}",
            "Decisions whose budget store could not be reached",
        )
        self.reloads = meter.create_counter(
            "policyd.reloads", "{reload}", "Revisions accepted or rejected by reload()"
        )
        self.shadow = meter.create_counter(
            "policyd.shadow.comparisons", "{decision}", "Shadow decisions, changed or not"
        )
        self._meter = meter
        self._logs: list[Any] = []

    def watch_log(self, decision_log: Any) -> None:
        """Report a decision log's dropped lines as ``policyd.decision_log.dropped``."""
        from opentelemetry.metrics import Observation

        self._logs.append(decision_log)
        if len(self._logs) == 1:
            self._meter.create_observable_counter(
                "policyd.decision_log.dropped",
                [lambda options: [Observation(sum(log.dropped for log in self._logs))]],
                "{line}",
                "Decision log lines dropped because the writer fell behind",
            )

    # -- decide -----------------------------------------------------------------------------

    def decided(self, decision: Decision, started_ns: int, index: Any) -> None:
        took_ns = time.perf_counter_ns() - started_ns
        end = time.time_ns()
        policy = decision.policy
        attributes: dict[str, Any] = {
            "policyd.policy.name": policy.name,
            "policyd.policy.digest": policy.digest,
            "policyd.decision.id": decision.id,
            "policyd.allowed": decision.allowed,
        }
        if policy.version:
            attributes["policyd.policy.version"] = policy.version
        revision = index.revision(decision)
        if revision:
            attributes["policyd.revision"] = revision
        if decision.allowed:
            attributes["gen_ai.request.model"] = decision.litellm_model or decision.model or ""
            attributes["policyd.model"] = decision.model or ""
            attributes["policyd.tier"] = decision.tier or ""
            if decision.fallbacks:
                attributes["policyd.fallbacks"] = list(decision.fallbacks)
            rule = next(
                (t.rule for t in decision.trace if t.stage == "routing" and t.outcome == "match"),
                None,
            )
            if rule:
                attributes["policyd.rule"] = rule
            if decision.cache is not None:
                attributes["policyd.cache.ttl_s"] = decision.cache.ttl_s
                attributes["policyd.cache.rule"] = decision.cache.rule
            if decision.prompts:
                attributes["policyd.prompt.versions"] = [
                    f"{name}={c.version}" for name, c in decision.prompts.items()
                ]
        else:
            attributes["policyd.blocked_by"] = decision.blocked_by or ""
        if decision.budgets:
            attributes["policyd.budget.states"] = [f"{b.name}={b.state}" for b in decision.budgets]
        if decision.redacted:
            attributes["policyd.redacted"] = True
        if decision.warnings:
            attributes["policyd.warnings"] = len(decision.warnings)
        span = self.tracer.start_span(
            f"policyd.decide {policy.name}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=end - took_ns,
        )
        span.end(end_time=end)

        self.duration.record(took_ns / 1e9, {"policyd.policy": policy.name})
        key = (policy.name, "allowed" if decision.allowed else "blocked", decision.blocked_by or "")
        with self._lock:
            self._decisions[key] = self._decisions.get(key, 0) + 1
            store_error = False
            for budget in decision.budgets:
                line = (policy.name, budget.name, budget.state)
                self._reserved[line] = self._reserved.get(line, 0) + 1
                store_error = store_error or budget.state == "store_error"
            if store_error:
                self._store_errors[policy.name] = self._store_errors.get(policy.name, 0) + 1

    def _observe_decisions(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            counts = list(self._decisions.items())
        out = []
        for (policy, outcome, blocked_by), n in counts:
            labels = {"policyd.policy": policy, "policyd.outcome": outcome}
            if outcome == "blocked":
                labels["policyd.blocked_by"] = blocked_by
            out.append(Observation(n, labels))
        return out

    def _observe_reserved(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            counts = list(self._reserved.items())
        return [
            Observation(
                n,
                {"policyd.policy": p, "policyd.budget": b, "policyd.budget.state": state},
            )
            for (p, b, state), n in counts
        ]

    def _observe_store_errors(self, options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            counts = list(self._store_errors.items())
        return [Observation(n, {"policyd.policy": p}) for p, n in counts]

    # -- record -----------------------------------------------------------------------------

    def recorded(self, decision: Decision, outcome: Any, attempts: int) -> None:
        policy = decision.policy
        attributes: dict[str, Any] = {
            "policyd.policy.name": policy.name,
            "policyd.decision.id": decision.id,
            "policyd.attempts": attempts,
        }
        if outcome.model:
            info = getattr(decision.revision, "models", {}).get(outcome.model)
            attributes["gen_ai.response.model"] = info.litellm if info else outcome.model
            attributes["policyd.model"] = outcome.model
        if outcome.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = outcome.input_tokens
        if outcome.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = outcome.output_tokens
        cost = _cost(decision, outcome)
        if cost is not None:
            attributes["policyd.cost_usd"] = cost
        if outcome.latency_s is not None:
            attributes["policyd.latency_s"] = outcome.latency_s
        if outcome.error:
            attributes["error.type"] = error_type(outcome.error)
        span = self.tracer.start_span(
            f"policyd.record {policy.name}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        if outcome.error:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()
        if cost:
            self.spend.add(
                cost, {"policyd.policy": policy.name, "policyd.model": outcome.model or ""}
            )

    # -- engine events ------------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "reloaded":
            self.reloads.add(1, {"policyd.result": "accepted"})
        elif kind == "reload_rejected":
            self.reloads.add(1, {"policyd.result": "rejected"})

    def compared(self, policy: str, changed: tuple[str, ...]) -> None:
        self.shadow.add(
            1,
            {
                "policyd.policy": policy,
                "policyd.changed": bool(changed),
                "policyd.fields": ",".join(changed),
            },
        )


def _cost(decision: Decision, outcome: Any) -> float | None:
    """Reported cost, else priced from the tokens and the serving model's price."""
    if outcome.cost_usd is not None:
        return float(outcome.cost_usd)
    if outcome.input_tokens is None and outcome.output_tokens is None:
        return None
    models = getattr(decision.revision, "models", {})
    info = models.get(outcome.model or decision.model or "")
    if info is None or not info.priced:
        return None
    return float(info.cost_micros(outcome.input_tokens or 0, outcome.output_tokens or 0)) / 1e6


def error_type(error: str) -> str:
    """The exception's class only (``ValueError``): its message, or an error given as
    free text to ``record(error=...)``, may quote the request."""
    head = error.split(":", 1)[0].strip()
    name = head.replace(".", "_")
    return head if name.isidentifier() and name.isascii() and len(head) <= 100 else "error"
