"""The input guardrails written out for the generated decide function (:mod:`policyd.fused`).

``InputGuardrailsStage._check`` for each guardrail, in declared order: its condition
inlined, its size limits as comparisons, its text checks as calls of the functions the
stage itself calls (:mod:`policyd.stages.guardrail_texts`: the same scanners on the same
texts, the same redacted copies and trace words). A redaction rebinds ``r['messages']``
and ``msgs`` (``Decision.messages``), as ``_replace_texts`` sets the state's. Plugins are
not written out (a policy with one decides through its steps).
"""

from __future__ import annotations

from typing import Any

from policyd.fused_source import Source
from policyd.stages.guardrail_texts import located, redaction, scan_texts
from policyd.stages.guardrails import InputGuardrailsStage, SizeLimit

REST = "(did, counter, r, _ref, _policy)"  # blocked()'s last argument
FAILED = "condition failed: "


def writable(stage: InputGuardrailsStage) -> bool:
    """Whether every guardrail is one this module writes out (no plugin)."""
    for guard in stage.guards:
        if guard.plugin is not None:
            return False
        if not all(isinstance(check, SizeLimit) for check in guard.checks):
            return False
    return True


def names(ns: dict[str, Any]) -> None:
    """What the written-out guardrails call, into the generated function's namespace."""
    ns.update(_scan_texts=scan_texts, _redaction=redaction, _located=located)


def guardrails(src: Source, stage: InputGuardrailsStage) -> None:
    """``InputGuardrailsStage._check`` for every guardrail, in order."""
    for guard in stage.guards:
        if guard.when is None:
            _checks(src, guard)
            continue
        src.condition(guard.when)
        src.emit("if v is True:")
        src.depth += 1
        if guard.checks or guard.text is not None:
            _checks(src, guard)
        else:
            _fire(src, guard, src.const("condition matched"))
        src.depth -= 1
        src.emit("elif v is not False:")
        name, message = src.const(guard.name), src.const(guard.message)
        if guard.on_error == "allow":
            after = "; on_error: allow"
            src.emit("    " + src.later("guardrails", guard.name, "error-allowed", FAILED, after))
        else:
            after = "; failing closed"
            src.emit(
                "    " + src.later("guardrails", guard.name, "block", FAILED, after),
                f"    return _blocked({name}, {message}, warned, trace, lazy, msgs, {REST}), now",
            )


def _checks(src: Source, guard: Any) -> None:
    """The guardrail's size limits in order, then its text checks: the first limit
    exceeded fires and nothing else of this guardrail runs (a warning too)."""
    depth = src.depth
    for i, check in enumerate(guard.checks):
        assert isinstance(check, SizeLimit)
        if i:
            src.emit("else:")
            src.depth += 1
        size = "len(r['messages'])" if check.field == "messages" else f"r[{check.field!r}]"
        src.emit(f"n = {size}", f"if n > {src.const(check.limit)}:")
        src.depth += 1
        src.emit(f"reason = {src.const(check)}.reason(n)")
        _fire(src, guard, "reason")
        src.depth -= 1
    if guard.text is not None:
        if guard.checks:
            src.emit("else:")
            src.depth += 1
        _text(src, guard)
    src.depth = depth


def _text(src: Source, guard: Any) -> None:
    """``InputGuardrailsStage._redact`` or ``_scan`` and its firing."""
    args = f"r['messages'], {src.const(guard.text)}, {src.const(guard.roles)}"
    if guard.action == "redact":
        from policyd.guardrails import redact

        name, stage = src.const(guard.name), src.const("guardrails")
        src.emit(
            f"done = _redaction({args}, {src.const(redact)})",
            "if done is not None:",
            "    msgs = r['messages'] = done[0]",
            f"    trace.append(_new_tuple(_TE, ({stage}, {name}, 'redact', done[1])))",
        )
        return
    src.emit(f"found = _scan_texts({args})", "if found:")
    src.depth += 1
    src.emit("reason = 'found ' + _located(found)")
    _fire(src, guard, "reason")
    src.depth -= 1


def _fire(src: Source, guard: Any, reason: str) -> None:
    """``InputGuardrailsStage._fire``: block (redact with nothing to replace too) or warn,
    ``reason`` (code) the trace's detail."""
    name, message = src.const(guard.name), src.const(guard.message)
    stage = src.const("guardrails")
    if guard.action in ("block", "redact"):
        src.emit(
            f"trace.append(_new_tuple(_TE, ({stage}, {name}, 'block', {reason})))",
            f"return _blocked({name}, {message}, warned, trace, lazy, msgs, {REST}), now",
        )
    else:
        prefix = src.const(f"{guard.name}: ")
        src.emit(
            f"warned.append({prefix} + {reason})",
            f"trace.append(_new_tuple(_TE, ({stage}, {name}, 'warn', {reason})))",
        )
