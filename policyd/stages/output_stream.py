"""One output guardrail's view of a streamed answer: scan, hold back, release.

:class:`GuardStream` feeds chunks to the guardrails library's ``StreamScanner`` and
releases text once no later finding can reach into it: nothing is held back by a guardrail
that only warns; one whose positional checks (PII, patterns, terms, injection) could still
match holds back from where the scanner's :attr:`StreamScanner.safe` says a match may
still start (the current word or run a detector could extend, 16 characters of
look-ahead, a private key from its header to its END marker); one whose verdict needs the
whole answer (``json_schema``, ``allow_patterns``, a plugin) holds everything until the
end, up to ``limit`` characters. A redacting guardrail replaces its findings as it
releases, never splitting a placeholder across two releases, and truncates at
``max_chars`` (``[MAX_CHARS]``), so the released pieces join up to exactly what a one-shot
check of the whole text gives (:func:`redact_output`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from policyd.guardrails import Check, Finding

Hold = Literal["none", "window", "all"]
HOLD_LIMIT = 1 << 20  # characters a whole-answer guardrail keeps (json_schema keeps as many)
CONTEXT = 64  # the scanner's look-behind before its overlap window
TRUNCATED = "[MAX_CHARS]"
_lib: ModuleType | None = None


def lib() -> ModuleType:
    """:mod:`policyd.guardrails`, imported on first use (it loads RE2; most policies that
    never check text never pay for it)."""
    global _lib
    if _lib is None:
        from policyd import guardrails

        _lib = guardrails
    return _lib


def _shift(f: Finding, by: int, start: int | None = None, end: int | None = None) -> Finding:
    s = f.start if start is None else start
    e = f.end if end is None else end
    finding: Finding = lib().Finding(f.kind, s - by, e - by, f.label, f.rule, f.detail)
    return finding


def redact_output(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with positional findings replaced by ``[LABEL]``; a ``max_chars`` finding
    truncates at the limit (findings reaching past it are cut there) and adds
    ``[MAX_CHARS]``."""
    redact = lib().redact
    cut = min((f.start for f in findings if f.kind == "max_chars"), default=None)
    if cut is None:
        return redact(text, findings)
    kept = [
        _shift(f, 0, end=min(f.end, cut))
        for f in findings
        if f.positional and f.kind != "max_chars" and f.start < cut
    ]
    return redact(text[:cut], kept) + TRUNCATED


class GuardStream:
    """Per-stream state of one output guardrail (see the module docstring)."""

    __slots__ = (
        "_cut",
        "_cut_done",
        "_fallback",
        "_held",
        "_hold",
        "_limit",
        "_more",
        "_open",
        "_pending",
        "_pos",
        "_redact",
        "_scanner",
        "_start",
        "_whole",
        "_whole_size",
        "overflowed",
    )

    def __init__(
        self,
        check: Check | None,
        *,
        hold: Hold,
        redact: bool,
        overlap: int,
        fallback: Hold = "none",
        keep_whole: bool = False,
        limit: int = HOLD_LIMIT,
    ) -> None:
        self._scanner = (
            lib().StreamScanner([check], overlap=overlap, context=CONTEXT)
            if check is not None
            else None
        )
        self._hold: Hold = hold
        self._fallback: Hold = fallback
        self._redact = redact
        self._limit = limit
        self._pending = ""  # input received and not released yet (with _more after it)
        self._more: list[str] = []  # chunks received since: joined once, when text is released
        self._held = 0  # len(_pending) + the lengths in _more
        self._start = 0  # input offset of _pending[0]: everything before is released
        self._pos = 0  # input characters received
        self._open: list[Finding] = []  # redactions not applied yet
        self._cut: int | None = None  # max_chars under redact: nothing after this
        self._cut_done = False
        self._whole: list[str] | None = [] if keep_whole else None
        self._whole_size = 0
        self.overflowed = False  # held or kept more than ``limit``: the whole-text verdict is off

    @property
    def whole(self) -> str | None:
        """Everything released (``keep_whole``), or None past the limit."""
        return None if self._whole is None or self.overflowed else "".join(self._whole)

    def feed(self, chunk: str) -> tuple[str, list[Finding]]:
        """(text now safe to release, findings now visible) for the next chunk."""
        if not chunk:
            return "", []
        self._pos += len(chunk)
        found = self._scanner.feed(chunk) if self._scanner is not None else []
        self._note(found)
        if not self._cut_done:
            # kept as pieces: adding each chunk to one string copied all the text held so
            # far, quadratic while a whole-answer guardrail holds up to ``limit`` characters
            self._more.append(chunk)
            self._held += len(chunk)
        if self._hold == "all" and self._held > self._limit:
            self.overflowed = True
            self._hold = self._fallback
        if self._hold == "all":
            return "", found
        safe = self._pos
        if self._hold != "none" and self._scanner is not None:
            safe = self._scanner.safe  # every finding before it is known
        return self._release(safe), found

    def finish(self) -> tuple[str, list[Finding]]:
        """The stream ended: the last findings, and all the text still held."""
        found = self._scanner.finish() if self._scanner is not None else []
        self._note(found)
        return self._release(self._pos), found

    def _note(self, found: list[Finding]) -> None:
        if not self._redact:
            return
        for f in found:
            if f.kind == "max_chars":
                cut = f.start if self._cut is None else min(self._cut, f.start)
                self._cut = cut
                self._open = [
                    _shift(o, 0, end=min(o.end, cut)) for o in self._open if o.start < cut
                ]
            elif f.positional:
                if self._cut is not None:
                    if f.start >= self._cut:
                        continue
                    f = _shift(f, 0, end=min(f.end, self._cut))
                self._open.append(f)

    def _release(self, upto: int) -> str:
        if self._cut is not None:
            upto = min(upto, self._cut)
        moved = True
        while moved:  # never split a redaction (or a group of overlapping ones)
            moved = False
            for f in self._open:
                if f.start < upto < f.end:
                    upto, moved = f.start, True
        if self._more:
            self._pending = "".join([self._pending, *self._more])
            self._more.clear()
        text = ""
        if upto > self._start:
            n = upto - self._start
            ready = [f for f in self._open if f.end <= upto]
            if ready:
                self._open = [f for f in self._open if f.end > upto]
                base = self._start
                text = redact_output(
                    self._pending[:n], [_shift(f, base, start=max(f.start, base)) for f in ready]
                )
            else:
                text = self._pending[:n]
            self._pending = self._pending[n:]
            self._held = len(self._pending)
            self._start = upto
        if self._cut is not None and self._start >= self._cut and not self._cut_done:
            self._cut_done = True
            self._pending, self._held = "", 0
            text += TRUNCATED
        if self._whole is not None and text and not self.overflowed:
            self._whole_size += len(text)
            if self._whole_size > self._limit:
                self.overflowed = True
                self._whole = []
            else:
                self._whole.append(text)
        return text
