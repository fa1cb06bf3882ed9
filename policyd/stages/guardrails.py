"""Input guardrails: size limits, conditions, text checks and plugins, run in declared order.

A guardrail fires when one of its checks finds something (or, with no check, when its
``when`` is true). ``block`` stops the decision and names the guardrail, ``warn`` records a
warning and goes on, ``redact`` replaces every finding in the messages with a typed
placeholder (``[EMAIL]``) and hands the redacted messages to the next guardrail and to
``Decision.messages``. A condition or plugin that fails blocks (fail closed) unless the
guardrail says ``on_error: allow``; the trace says which happened. Traces, warnings and
messages name what was found (type, rule id, message index), never the matched text.

Text checks come from :mod:`policyd.guardrails`, built once per guardrail at compile time
(:func:`build_text_check`); that package is imported only by policies that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policyd import cel, document, fields
from policyd.stages.base import CompileEnv, DecisionState, matches
from policyd.stages.flow import Flow, Io, drive
from policyd.stages.guardrail_texts import (
    Located,
    Where,
    located,
    message_texts,
    redaction,
    replaced,
    scan_texts,
)

if TYPE_CHECKING:
    from policyd.guardrails import Check as TextCheck
    from policyd.guardrails import PluginError, PluginFn, PluginVerdict

STAGE = "guardrails"
DEFAULT_PLUGIN_TIMEOUT_S = 1.0

# A request-level check looks at the request (through the state): why it fired, or None.
Check = Callable[[DecisionState], str | None]


@dataclass(frozen=True, slots=True)
class SizeLimit:
    """A request-level size limit (``max_tokens``, ``max_chars``, ``max_messages``): why
    it fired, or None. Its fields let the generated decide function (policyd.fused)
    write the comparison out; the words are :meth:`reason`'s either way."""

    field: str  # the prepared request's count: input_tokens, input_chars, messages
    limit: int

    def __call__(self, state: DecisionState) -> str | None:
        n = self.size(state.request)
        return self.reason(n) if n > self.limit else None

    def size(self, request: Mapping[str, Any]) -> int:
        value = request[self.field]
        return len(value) if self.field == "messages" else value

    def reason(self, n: int) -> str:
        if self.field == "messages":
            return f"{n} messages, limit {self.limit}"
        unit = "tokens" if self.field == "input_tokens" else "characters"
        return f"input is {n} {unit}, limit {self.limit}"


def simple_checks(guard: document.Guardrail) -> list[Check]:
    checks: list[Check] = []
    if guard.max_tokens is not None:
        checks.append(SizeLimit("input_tokens", guard.max_tokens))
    if guard.max_chars is not None:
        checks.append(SizeLimit("input_chars", guard.max_chars))
    if guard.max_messages is not None:
        checks.append(SizeLimit("messages", guard.max_messages))
    return checks


# --------------------------------------------------------------------------- shared with output


def build_text_check(guard: document.Guardrail, side: str) -> TextCheck | None:
    """The guardrail's text checks as one library check (pii, injection and deny_patterns
    merged into one RE2 set), or None. Output adds max_chars and json_schema."""
    used: list[object] = [
        guard.pii,
        guard.injection,
        guard.deny_patterns,
        guard.deny_terms,
        guard.allow_patterns,
    ]
    if side == "output":
        used += [guard.max_chars, guard.json_schema]
    if all(u is None or u is False for u in used):
        return None
    from policyd import guardrails as lib

    parts: list[Any] = []

    if guard.pii:
        parts.append(lib.pii_check(guard.pii))
    if guard.injection:
        opts = guard.injection
        if isinstance(opts, document.InjectionOptions):
            parts.append(lib.injection_check(opts.patterns, opts.version, disable=opts.disable))
        else:
            parts.append(lib.injection_check())
    if guard.deny_patterns:
        parts.append(lib.pattern_check(guard.deny_patterns))
    if guard.deny_terms:
        parts.append(lib.terms_check(guard.deny_terms))
    if guard.allow_patterns:
        parts.append(lib.allow_check(guard.allow_patterns))
    if side == "output":
        if guard.max_chars is not None:
            parts.append(lib.max_chars_check(guard.max_chars))
        if guard.json_schema is not None:
            parts.append(
                lib.json_schema_check(
                    guard.json_schema, strip_code_fences=bool(guard.strip_code_fences)
                )
            )
    return lib.combine_checks(parts) if parts else None


def build_plugin(guard: document.Guardrail) -> tuple[PluginFn | None, float]:
    """The guardrail's plugin (imported now) and its time limit in seconds."""
    timeout = fields.parse_duration(guard.timeout) if guard.timeout else DEFAULT_PLUGIN_TIMEOUT_S
    if guard.plugin is None:
        return None, timeout
    from policyd.guardrails import load_plugin

    return load_plugin(guard.plugin), timeout


def plugin_error_text(exc: PluginError) -> str:
    return f"plugin failed ({exc.reason}): {exc.message}"


# --------------------------------------------------------------------------- input stage

_CONTINUE, _STOP, _PLUGIN = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CompiledGuardrail:
    name: str
    when: cel.Expression | None
    action: str
    message: str
    on_error: str
    checks: tuple[Check, ...]
    text: TextCheck | None = None
    plugin: PluginFn | None = None
    timeout_s: float = DEFAULT_PLUGIN_TIMEOUT_S
    roles: frozenset[str] | None = None
    custom_message: bool = False


class InputGuardrailsStage:
    name = STAGE
    # a redaction replaces texts of request["messages"] too (later stages see them redacted)
    writes = frozenset({"messages", "redacted", "request"})

    def __init__(self, env: CompileEnv, guards: list[document.Guardrail]) -> None:
        self.guards = tuple(
            CompiledGuardrail(
                g.name,
                env.optional_expr("guardrails", "input", i, "when"),
                g.action,
                g.message or f"Request blocked by guardrail {g.name}",
                g.on_error,
                tuple(simple_checks(g)),
                build_text_check(g, "input"),
                *build_plugin(g),
                frozenset(g.roles) if g.roles is not None else None,
                g.message is not None,
            )
            for i, g in enumerate(guards)
        )
        # the text library, when a guardrail uses it (imported once, here, not per request)
        self._lib: Any = None
        if any(g.text is not None or g.plugin is not None for g in self.guards):
            from policyd import guardrails

            self._lib = guardrails

    # -- running ----------------------------------------------------------------------------

    def run(self, state: DecisionState) -> None:
        """Every guardrail in order until one stops the request (no guardrail of this
        stage calls a plugin: see :class:`PluginGuardrailsStage`)."""
        for guard in self.guards:
            if self._check(state, guard) == _STOP:
                return

    def _check(self, state: DecisionState, guard: CompiledGuardrail) -> int:
        """Condition, size limits and text checks; _PLUGIN when the plugin is still to run."""
        if guard.when is not None:
            hit, error = matches(guard.when, state)
            if error is not None:
                return self._failed(state, guard, f"condition failed: {error}")
            if not hit:
                return _CONTINUE
            if not guard.checks and guard.text is None and guard.plugin is None:
                return self._fire(state, guard, "condition matched")
        for check in guard.checks:
            reason = check(state)
            if reason is not None:
                return self._fire(state, guard, reason)
        if guard.text is not None:
            if guard.action == "redact":
                self._redact(state, guard)
            else:
                found = self._scan(state, guard)
                if found:
                    return self._fire(state, guard, "found " + located(found))
        return _PLUGIN if guard.plugin is not None else _CONTINUE

    def _fire(self, state: DecisionState, guard: CompiledGuardrail, reason: str) -> int:
        if guard.action == "block" or guard.action == "redact":  # redact: nothing to replace
            state.block(STAGE, guard.name, guard.message, reason)
            return _STOP
        state.warn(STAGE, guard.name, reason)
        return _CONTINUE

    def _failed(self, state: DecisionState, guard: CompiledGuardrail, reason: str) -> int:
        """A condition or plugin failed: allowed when the guardrail says so, else blocked."""
        if guard.on_error == "allow":
            state.note(STAGE, guard.name, "error-allowed", f"{reason}; on_error: allow")
            return _CONTINUE
        state.block(STAGE, guard.name, guard.message, f"{reason}; failing closed")
        return _STOP

    # -- text checks --------------------------------------------------------------------------

    def _scan(self, state: DecisionState, guard: CompiledGuardrail) -> Located:
        assert guard.text is not None
        return scan_texts(state.request["messages"], guard.text, guard.roles)

    def _redact(self, state: DecisionState, guard: CompiledGuardrail) -> None:
        assert guard.text is not None
        done = redaction(state.request["messages"], guard.text, guard.roles, self._lib.redact)
        if done is not None:
            messages, detail = done
            _redacted(state, messages)
            state.note(STAGE, guard.name, "redact", detail)

    # -- plugins ------------------------------------------------------------------------------

    def _plugin_flow(self, state: DecisionState, guard: CompiledGuardrail) -> Flow[int]:
        """One plugin guardrail on each text it sees; each plugin call is yielded."""
        assert guard.plugin is not None
        lib = self._lib
        changes: dict[Where, str] = {}
        for i, j, text in message_texts(state.request["messages"], guard.roles):
            args = (guard.plugin, text, state.request, guard.timeout_s)
            try:
                verdict = yield Io(lib.run_plugin, lib.arun_plugin, args)
            except lib.PluginError as exc:
                return self._failed(state, guard, plugin_error_text(exc))
            step = self._verdict(state, guard, (i, j), verdict, changes)
            if step is not None:
                return step
        return self._plugin_done(state, guard, changes)

    def _verdict(
        self,
        state: DecisionState,
        guard: CompiledGuardrail,
        where: Where,
        verdict: PluginVerdict,
        changes: dict[Where, str],
    ) -> int | None:
        """Act on one plugin verdict; None means go on with the next text."""
        if verdict.allowed:
            return None
        if guard.action == "redact" and verdict.redacted_text is not None:
            changes[where] = verdict.redacted_text
            return None
        reason = f"plugin: {verdict.message or 'not allowed'} (message {where[0]})"
        if guard.action == "redact":
            reason += "; it gave no redacted text, so the request is blocked"
        if guard.action != "warn" and verdict.message and not guard.custom_message:
            state.block(STAGE, guard.name, verdict.message, reason)
            return _STOP
        return self._fire(state, guard, reason)

    @staticmethod
    def _plugin_done(
        state: DecisionState, guard: CompiledGuardrail, changes: dict[Where, str]
    ) -> int:
        if changes:
            _replace_texts(state, changes)
            where = ", ".join(str(i) for i in sorted({i for i, _ in changes}))
            state.note(STAGE, guard.name, "redact", f"plugin redacted messages {where}")
        return _CONTINUE


class PluginGuardrailsStage(InputGuardrailsStage):
    """Input guardrails of which one or more calls a plugin: I/O, so the stage is a flow
    (``run`` drives it blocking; the pipeline binds the flow for ``adecide``)."""

    def run(self, state: DecisionState) -> None:
        drive(self.flow(state))

    def flow(self, state: DecisionState) -> Flow[None]:
        """Like run(), with plugins: each is called blocking by decide() and awaited by
        adecide() (``async def`` ones on its event loop)."""
        for guard in self.guards:
            step = self._check(state, guard)
            if step == _PLUGIN:
                step = yield from self._plugin_flow(state, guard)
            if step == _STOP:
                return


def _replace_texts(state: DecisionState, changes: Mapping[Where, str]) -> None:
    """Copies of the messages with some texts replaced (:func:`replaced`)."""
    _redacted(state, replaced(state.request["messages"], changes))


def _redacted(state: DecisionState, messages: list[Any]) -> None:
    """The request's ``messages`` become the redacted ones too, so later guardrails, routing
    conditions, cache keys and ``Decision.request`` never see the replaced text."""
    state.request["messages"] = messages
    state.messages = messages
    state.redacted = True
