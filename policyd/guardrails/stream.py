"""Streaming output checks: scan an LLM's output chunk by chunk with bounded memory.

Rule sets (PII, secrets, patterns, terms, injection) run the linear scan of
:mod:`policyd.guardrails._scan` on the stream itself: a step is taken once the text it
depends on has arrived, so a stream finds exactly what one scan of the whole text finds
(same spans, same rule ids), whatever the chunking, and :attr:`StreamScanner.safe` says up
to where every finding is known. Other positional checks (a custom :class:`Check`) rescan
a sliding window of ``overlap`` characters, holding back matches ending within
``settle`` characters of the end. Whole-text checks (``json_schema``, ``max_chars``,
``allow_patterns``) keep their own state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from policyd.errors import ConfigError, UsageError
from policyd.guardrails._core import (
    Check,
    CheckStream,
    Finding,
    IncrementalCheck,
    StreamableCheck,
    sort_findings,
)
from policyd.guardrails._rules import CombinedCheck, Rule, RuleSetCheck
from policyd.guardrails._scan import RuleCursor


def _flatten(checks: Sequence[Check]) -> list[Check]:
    flat: list[Check] = []
    for check in checks:
        if isinstance(check, CombinedCheck):
            flat.extend(_flatten(check.checks))
        else:
            flat.append(check)
    return flat


def _full_scan(check: Check) -> Callable[[str, int], list[Finding]]:
    return lambda text, _min_end: check.scan(text)


class StreamScanner:
    """Feed chunks, get findings as soon as they are visible, offsets absolute in the stream.

    Memory is bounded by ``overlap`` + ``context`` + one chunk (plus what a whole-text
    check needs: ``json_schema`` keeps the output up to its ``stream_limit``). ``context``
    extra characters are kept before the window so that a finding's left neighbourhood
    (word boundaries, "is this digit run longer?") is always judged on real text.
    """

    __slots__ = (
        "_buf",
        "_buf_start",
        "_context",
        "_cursor",
        "_keep",
        "_reported",
        "_settle",
        "_settled",
        "_streams",
        "_total",
        "_whole",
        "_window_scans",
        "finished",
    )

    def __init__(
        self, checks: Sequence[Check], *, overlap: int = 4096, context: int = 64, settle: int = 16
    ):
        if overlap < 0 or context < 0 or settle < 0:
            raise ConfigError("overlap, context and settle must be >= 0")
        flat = _flatten(checks)
        self._streams: list[CheckStream] = [
            c.open_stream(overlap) for c in flat if isinstance(c, StreamableCheck)
        ]
        rule_sets = [c for c in flat if isinstance(c, RuleSetCheck)]
        if len(rule_sets) > 1:  # one cursor: exclusive findings are judged across all
            rules: list[Rule] = [r for c in rule_sets for r in c.rules]
            rule_sets = [RuleSetCheck(rules)]
        self._cursor: RuleCursor | None = rule_sets[0].open_cursor() if rule_sets else None
        # each other window check as "scan(text, min_end)": incremental ones skip settled text
        self._window_scans = [
            c.scan_after if isinstance(c, IncrementalCheck) else _full_scan(c)
            for c in flat
            if not isinstance(c, StreamableCheck | RuleSetCheck)
        ]
        self._keep = overlap + context
        self._context = context
        self._settle = settle
        self._buf = ""
        self._buf_start = 0  # absolute offset of self._buf[0]
        self._total = 0  # characters fed so far
        self._reported: set[tuple[str, str | None, int]] = set()
        self._settled = 0  # absolute offset up to which window findings are decided
        self._whole: set[tuple[str, str | None]] = set()
        self.finished = False

    @property
    def position(self) -> int:
        """How many characters have been fed."""
        return self._total

    @property
    def safe(self) -> int:
        """Characters before this offset can hold no positional finding not yet returned."""
        safe = self._total
        if self._cursor is not None:
            safe = min(safe, self._cursor.safe)
        if self._window_scans and not self.finished:
            safe = min(safe, max(0, self._total - self._keep))
        return safe

    def feed(self, chunk: str) -> list[Finding]:
        """Add the next chunk; return findings that became visible (absolute offsets)."""
        if self.finished:
            raise UsageError("feed() after finish()")
        if not chunk:
            return []
        offset = self._total
        self._total += len(chunk)
        found: list[Finding] = []
        for stream in self._streams:
            found.extend(stream.feed(chunk, offset))
        if self._cursor is not None:
            self._cursor.feed(chunk)
            found.extend(self._cursor.advance(final=False))
        if not self._window_scans:
            return sort_findings(found)
        self._buf += chunk
        found.extend(self._scan_window(final=False))
        if len(self._buf) > self._keep:
            cut = len(self._buf) - self._keep
            self._buf = self._buf[cut:]
            self._buf_start += cut
            floor = self._buf_start + self._context
            self._reported = {key for key in self._reported if key[2] >= floor}
        return sort_findings(found)

    def finish(self) -> list[Finding]:
        """The stream ended: findings held back at the end, and whole-text verdicts."""
        if self.finished:
            return []
        self.finished = True
        found = self._scan_window(final=True)
        if self._cursor is not None:
            found.extend(self._cursor.advance(final=True))
        for stream in self._streams:
            found.extend(stream.finish())
        self._buf = ""
        self._reported.clear()
        return sort_findings(found)

    def _scan_window(self, *, final: bool) -> list[Finding]:
        if not self._window_scans or not self._buf:
            return []
        base = self._buf_start
        margin = self._context if base > 0 else 0
        settled = len(self._buf) if final else len(self._buf) - self._settle
        # findings ending at or before the last scan's settled point were decided then
        done = self._settled - base
        self._settled = base + settled
        new: list[Finding] = []
        for scan in self._window_scans:
            for f in scan(self._buf, done):
                if not f.positional:  # a whole-text finding from a custom check: report once
                    if (f.kind, f.rule) not in self._whole:
                        self._whole.add((f.kind, f.rule))
                        new.append(f)
                    continue
                # in the margin: judged by an earlier window; near the end: may still grow
                if f.start < margin or f.end > settled:
                    continue
                key = (f.kind, f.rule, base + f.start)
                if key in self._reported:
                    continue
                self._reported.add(key)
                new.append(Finding(f.kind, base + f.start, base + f.end, f.label, f.rule, f.detail))
        return new
