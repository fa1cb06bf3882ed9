"""Output guardrails: checks on the model's answer, by ``engine.check_output`` or streamed.

Each guardrail under ``guardrails.output`` runs in order on the text: ``redact`` passes
the redacted text to the next guardrail, ``warn`` records, the first ``block`` stops and
names the guardrail. ``when`` sees the request the decision saw. A condition or plugin
that fails blocks unless the guardrail says ``on_error: allow``. :class:`OutputChecker`
does the same on a stream, chunk by chunk, with bounded memory (see
:mod:`policyd.stages.output_stream`); joined, the text it releases is what
:meth:`OutputGuardrails.check` returns for the whole answer. Verdicts name what was found
(type, rule id, offsets), never the matched text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from policyd import cel, document
from policyd.decision import Decision, TraceEntry
from policyd.errors import UsageError
from policyd.stages.flow import Flow, Io, adrive, drive
from policyd.stages.guardrail_texts import summarize
from policyd.stages.guardrails import (
    DEFAULT_PLUGIN_TIMEOUT_S,
    build_plugin,
    build_text_check,
    plugin_error_text,
)
from policyd.stages.output_stream import GuardStream, Hold, lib, redact_output
from policyd.verdict import OutputFinding, OutputStep, OutputVerdict

if TYPE_CHECKING:
    from policyd.guardrails import Check, Finding, PluginFn, PluginVerdict

__all__ = ["OutputChecker", "OutputFinding", "OutputGuardrails", "OutputStep", "OutputVerdict"]

STAGE = "output"


@dataclass(frozen=True, slots=True)
class CompiledOutputGuardrail:
    name: str
    when: cel.Expression | None
    action: str
    message: str
    on_error: str
    check: Check | None = None
    plugin: PluginFn | None = None
    timeout_s: float = DEFAULT_PLUGIN_TIMEOUT_S
    custom_message: bool = False
    hold: Hold = "none"  # how much of a stream it holds back (see output_stream)
    fallback: Hold = "none"  # ... once a whole-answer hold overflows with on_error: allow


def _holds(g: document.Guardrail) -> tuple[Hold, Hold]:
    positional = bool(g.pii or g.injection or g.deny_patterns or g.deny_terms)
    window: Hold = "window" if positional else "none"
    if g.action == "warn":
        return "none", "none"
    if g.json_schema is not None or g.allow_patterns or g.plugin is not None:
        return "all", window
    return window, window


def compile_output_guardrail(
    g: document.Guardrail, when: cel.Expression | None
) -> CompiledOutputGuardrail:
    hold, fallback = _holds(g)
    plugin, timeout_s = build_plugin(g)
    return CompiledOutputGuardrail(
        g.name,
        when,
        g.action,
        g.message or f"Response blocked by guardrail {g.name}",
        g.on_error,
        build_text_check(g, "output"),
        plugin,
        timeout_s,
        g.message is not None,
        hold,
        fallback,
    )


class _Report:
    """The verdict being built: findings, warnings, trace, and the block if any."""

    __slots__ = ("blocked_by", "counts", "findings", "message", "redacted", "trace", "warnings")

    def __init__(self) -> None:
        self.findings: list[OutputFinding] = []
        self.warnings: list[str] = []
        self.trace: list[TraceEntry] = []
        self.blocked_by: str | None = None
        self.message: str | None = None
        self.redacted = False
        self.counts: dict[str, Counter[tuple[str, str | None, str | None]]] = {}

    def found(self, guard: CompiledOutputGuardrail, found: list[Finding]) -> list[OutputFinding]:
        new = [
            OutputFinding(guard.name, f.kind, f.label, f.rule, f.start, f.end, f.detail)
            for f in found
        ]
        self.findings.extend(new)
        return new

    def block(
        self, guard: CompiledOutputGuardrail, reason: str, message: str | None = None
    ) -> None:
        self.blocked_by = guard.name
        self.message = message or guard.message
        self.trace.append(TraceEntry(STAGE, guard.name, "block", reason))

    def warn(self, guard: CompiledOutputGuardrail, reason: str) -> None:
        self.warnings.append(f"{guard.name}: {reason}")
        self.trace.append(TraceEntry(STAGE, guard.name, "warn", reason))

    def act(self, guard: CompiledOutputGuardrail, found: list[Finding]) -> bool:
        """A block/warn guardrail found something; True when that blocks."""
        reason = "found " + summarize(found)
        if guard.action == "warn":
            self.warn(guard, reason)
            return False
        self.block(guard, reason)
        return True

    def failed(self, guard: CompiledOutputGuardrail, reason: str) -> bool:
        """A condition or plugin failed; True when that blocks (no on_error: allow)."""
        if guard.on_error == "allow":
            self.warnings.append(f"{guard.name}: {reason}; allowed")
            self.trace.append(TraceEntry(STAGE, guard.name, "error-allowed", reason))
            return False
        self.block(guard, f"{reason}; failing closed")
        return True

    def redacting(self, guard: CompiledOutputGuardrail, found: list[Finding]) -> None:
        counts = self.counts.setdefault(guard.name, Counter())
        counts.update((f.label, f.rule, None) for f in found if f.positional)
        self.redacted = self.redacted or bool(counts)

    def plugin(
        self, guard: CompiledOutputGuardrail, verdict: PluginVerdict, text: str
    ) -> str | None:
        """Act on a plugin's verdict: the text to go on with, or None when blocked."""
        if verdict.allowed:
            return text
        if guard.action == "redact" and verdict.redacted_text is not None:
            self.redacted = True
            self.trace.append(TraceEntry(STAGE, guard.name, "redact", "plugin redacted the text"))
            return verdict.redacted_text
        reason = f"plugin: {verdict.message or 'not allowed'}"
        if guard.action == "warn":
            self.warn(guard, reason)
            return text
        if guard.action == "redact":
            reason += "; it gave no redacted text, so the answer is blocked"
        self.block(guard, reason, None if guard.custom_message else verdict.message)
        return None

    def redactions(self) -> list[TraceEntry]:
        """The redactions counted so far, per type and rule (never the values)."""
        entries = []
        for name, counts in self.counts.items():
            if counts:
                parts = [
                    label + (f" ({rule})" if rule else "") + (f" x{n}" if n > 1 else "")
                    for (label, rule, _), n in counts.items()
                ]
                entries.append(TraceEntry(STAGE, name, "redact", "redacted " + ", ".join(parts)))
        return entries

    def flush(self) -> None:
        """Trace the redactions counted so far now, in order with the other entries."""
        self.trace.extend(self.redactions())
        self.counts.clear()

    def verdict(self, text: str) -> OutputVerdict:
        return OutputVerdict(
            self.blocked_by is None,
            text,
            self.blocked_by,
            self.message,
            tuple(self.findings),
            tuple(self.warnings),
            self.redacted,
            (*self.trace, *self.redactions()),
        )


def _gate(guard: CompiledOutputGuardrail, activation: Mapping[str, Any]) -> str | None:
    """Run the guardrail's condition: "skip", "run", "fire" (when-only and true), or
    "error: <why>"."""
    if guard.when is None:
        return "run"
    try:
        hit = guard.when.evaluate(activation)
    except cel.EvaluationError as exc:
        return f"error: condition failed: {exc}"
    except RecursionError:
        return "error: condition failed: expression too deep to evaluate"
    if hit is not True and hit is not False:
        return f"error: condition failed: condition gave {type(hit).__name__}, not bool"
    if not hit:
        return "skip"
    return "run" if guard.check is not None or guard.plugin is not None else "fire"


def _opened(
    report: _Report, guard: CompiledOutputGuardrail, activation: Mapping[str, Any]
) -> bool | None:
    """Whether the guardrail's checks run (True), it is skipped (False), or it blocked (None)."""
    gate = _gate(guard, activation)
    if gate == "run":
        return True
    if gate == "skip":
        return False
    if gate is not None and gate.startswith("error: "):
        return None if report.failed(guard, gate[len("error: ") :]) else False
    if guard.action == "warn":
        report.warn(guard, "condition matched")
        return False
    report.block(guard, "condition matched")
    return None


class OutputGuardrails:
    """The compiled ``guardrails.output`` list of one policy."""

    def __init__(
        self,
        guards: list[document.Guardrail],
        expressions: Mapping[tuple[str | int, ...], cel.Expression],
    ) -> None:
        self.guards = tuple(
            compile_output_guardrail(g, expressions.get(("guardrails", "output", i, "when")))
            for i, g in enumerate(guards)
        )

    def check(self, decision: Decision, text: str, now: datetime | None = None) -> OutputVerdict:
        """Every output guardrail on the whole answer, in order."""
        report = _Report()
        activation = {"request": decision.request, "now": now or datetime.now(UTC)}
        for guard in self.guards:
            opened = _opened(report, guard, activation)
            if opened is None:
                return report.verdict(text)
            if not opened:
                continue
            if guard.check is not None:
                found = guard.check.scan(text)
                if found:
                    report.found(guard, found)
                    if guard.action == "redact":
                        report.redacting(guard, found)
                        report.flush()
                        text = redact_output(text, found)
                    elif report.act(guard, found):
                        return report.verdict(text)
            if guard.plugin is not None:
                g = lib()
                try:
                    verdict = g.run_plugin(guard.plugin, text, decision.request, guard.timeout_s)
                except g.PluginError as exc:
                    if report.failed(guard, plugin_error_text(exc)):
                        return report.verdict(text)
                    continue
                after = report.plugin(guard, verdict, text)
                if after is None:
                    return report.verdict(text)
                text = after
        return report.verdict(text)

    def open_stream(
        self, decision: Decision, now: datetime | None = None, overlap: int = 4096
    ) -> OutputChecker:
        return OutputChecker(self.guards, decision, now or datetime.now(UTC), overlap)


@dataclass
class _Open:
    guard: CompiledOutputGuardrail
    stream: GuardStream
    overflow_seen: bool = field(default=False)


class OutputChecker:
    """Checks a streamed answer chunk by chunk: ``feed(chunk)`` and, at the end,
    ``finish()`` (or ``await afinish()``, which awaits plugins), each returning an
    :class:`OutputStep` with the text that is safe to show so far.

    Joined, the released text is exactly what :meth:`OutputGuardrails.check` returns for
    the whole answer (same redactions, same block), for any chunking. A violation is
    flagged by the step in which every detector has judged it; text is held back only as
    far as a match could still reach (a word or digit run, a few bytes of look-ahead, a
    private key from its header to its END marker); ``overlap`` bounds only custom
    positional checks. A guardrail that needs the whole answer to judge (``json_schema``,
    ``allow_patterns``, a plugin) holds its text back until the end, up to 1 MiB (past
    that its verdict fails, and ``on_error`` decides).
    """

    def __init__(
        self,
        guards: tuple[CompiledOutputGuardrail, ...],
        decision: Decision,
        now: datetime,
        overlap: int = 4096,
    ) -> None:
        self._request = decision.request
        self._report = _Report()
        self._open: list[_Open] = []
        self._finished = False
        activation = {"request": decision.request, "now": now}
        for guard in guards:
            opened = _opened(self._report, guard, activation)
            if opened is None:
                break
            if opened:
                stream = GuardStream(
                    guard.check,
                    hold=guard.hold,
                    redact=guard.action == "redact",
                    overlap=overlap,
                    fallback=guard.fallback,
                    keep_whole=guard.plugin is not None and guard.hold != "all",
                )
                self._open.append(_Open(guard, stream))

    @property
    def allowed(self) -> bool:
        return self._report.blocked_by is None

    @property
    def blocked_by(self) -> str | None:
        return self._report.blocked_by

    @property
    def findings(self) -> tuple[OutputFinding, ...]:
        return tuple(self._report.findings)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._report.warnings)

    def verdict(self) -> OutputVerdict:
        """The verdict so far (its ``text`` is empty: the text went out step by step)."""
        return self._report.verdict("")

    def feed(self, chunk: str) -> OutputStep:
        if self._finished:
            raise UsageError("feed() after finish()")
        if not self.allowed:
            return self._step("", len(self._report.findings))
        mark = len(self._report.findings)
        for opened in self._open:
            if not chunk:
                break
            chunk = self._pass(opened, *opened.stream.feed(chunk))
            if not self.allowed:
                return self._step("", mark)
        return self._step(chunk, mark)

    def finish(self) -> OutputStep:
        """The stream ended: the text still held, and the verdicts that needed it all."""
        return drive(self.finish_flow())

    async def afinish(self) -> OutputStep:
        """Like finish(), for async code: plugins are awaited instead of blocking."""
        return await adrive(self.finish_flow())

    def finish_flow(self) -> Flow[OutputStep]:
        """:meth:`finish` as a flow (:mod:`policyd.stages.flow`): each plugin call is
        yielded, so ``finish`` runs it blocking and ``afinish`` awaits it."""
        g = lib()
        text, mark, pending = self._start_finish()
        for opened in pending:
            text = self._finish_one(opened, text)
            if text is not None and opened.guard.plugin is not None:
                judged = self._plugin_text(opened, text)
                if judged is not None:
                    args = (opened.guard.plugin, judged, self._request, opened.guard.timeout_s)
                    try:
                        verdict = yield Io(g.run_plugin, g.arun_plugin, args)
                    except g.PluginError as exc:
                        text = self._plugin_failed(opened, text, exc)
                    else:
                        text = self._plugin_verdict(opened, text, verdict)
            if text is None:
                return self._step("", mark)
        return self._step(text, mark)

    # -- internals ----------------------------------------------------------------------------

    def _start_finish(self) -> tuple[str | None, int, list[_Open]]:
        if self._finished:
            raise UsageError("finish() called twice")
        self._finished = True
        return "", len(self._report.findings), self._open if self.allowed else []

    def _pass(self, opened: _Open, text: str, found: list[Finding]) -> str:
        """Record what one guardrail's stream gave; the text it passes on."""
        guard = opened.guard
        if found:
            self._report.found(guard, found)
            if guard.action == "redact":
                self._report.redacting(guard, found)
            elif self._report.act(guard, found):
                return ""
        if opened.stream.overflowed and not opened.overflow_seen:
            opened.overflow_seen = True
            if self._report.failed(guard, "answer too long to judge whole (over 1 MiB)"):
                return ""
        return text

    def _finish_one(self, opened: _Open, text: str | None) -> str | None:
        if text is None:
            return None
        head = self._pass(opened, *opened.stream.feed(text)) if text else ""
        if not self.allowed:
            return None
        tail = self._pass(opened, *opened.stream.finish())
        return None if not self.allowed else head + tail

    @staticmethod
    def _plugin_text(opened: _Open, text: str) -> str | None:
        """What the plugin judges: all of this guardrail's text (None: too long, skipped)."""
        if opened.overflow_seen:
            return None
        return text if opened.guard.hold == "all" else opened.stream.whole

    def _plugin_failed(self, opened: _Open, text: str, exc: Any) -> str | None:
        return None if self._report.failed(opened.guard, plugin_error_text(exc)) else text

    def _plugin_verdict(self, opened: _Open, text: str, verdict: PluginVerdict) -> str | None:
        # a warn plugin judged stream.whole and changes nothing; block and redact ones
        # held the whole answer back, so text is all of it
        return self._report.plugin(opened.guard, verdict, text)

    def _step(self, text: str | None, mark: int) -> OutputStep:
        report = self._report
        new = tuple(report.findings[mark:])
        if report.blocked_by is not None:
            return OutputStep(False, "", new, report.blocked_by, report.message)
        return OutputStep(True, text or "", new)
