"""What every semantic check shares: the diagnostic codes, the path type, and :class:`Checker`.

The modules of :mod:`policyd.checks` take these from here, never from :mod:`policyd.validate`
(which imports them), so there is no import cycle.
"""

from __future__ import annotations

from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import Document, Position

Path = tuple[str | int, ...]

UNKNOWN_MODEL = "PD201"
UNKNOWN_TIER = "PD202"
UNKNOWN_TARGET = "PD203"
UNKNOWN_PROMPT = "PD204"
FALLBACK_CYCLE = "PD205"
DUPLICATE_NAME = "PD206"
DUPLICATE_MODEL = "PD207"
UNKNOWN_POLICY = "PD208"
UNKNOWN_VERSION = "PD209"
PROMPT_FILE = "PD210"
NAME_CLASH = "PD211"
BAD_CONTEXT = "PD212"
BAD_CACHE_KEY = "PD213"
UNKNOWN_PLACEHOLDER = "PD214"
TEST_REQUEST = "PD215"
UNKNOWN_EXPECT = "PD216"
CEL_NOT_BOOL = "PD305"
CEL_SLOW_PATH = "PD310"
ROLLOUT_SUM = "PD401"
SCHEDULE_ORDER = "PD402"
ALERTS = "PD403"
TIMEZONE = "PD404"
REGEX = "PD405"
WEIGHTS = "PD406"
GUARDRAIL_SHAPE = "PD407"
GUARDRAIL_ACTION = "PD408"
UNKNOWN_ROLE = "PD409"
UNPRICED_USD_LIMIT = "PD410"
UNREACHABLE_RULE = "PD501"
MISSING_PRICE = "PD502"
UNDECLARED_TEST_ATTRIBUTE = "PD503"
NO_EFFECT = "PD504"
NEVER_FITS = "PD505"


class Checker:
    """Collects diagnostics for one bundle."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(
        self,
        doc: Document,
        path: Path,
        code: str,
        message: str,
        hint: str | None = None,
        *,
        severity: Severity = Severity.ERROR,
        key: bool = False,
        offset: int | None = None,
        at: Position | None = None,
    ) -> None:
        """A diagnostic at ``path`` (its key with ``key``, character ``offset`` of its
        string with ``offset``), or at ``at`` when the caller already knows where."""
        if at is not None:
            pos = at
        elif offset is not None:
            pos = doc.source_map.scalar_offset(path, offset)
        elif key:
            pos = doc.source_map.key(path)
        else:
            pos = doc.source_map.value(path)
        self.diagnostics.append(
            Diagnostic(doc.file, pos.line, pos.column, severity, code, message, hint)
        )

    def mute(self, since: int, codes: set[str] | frozenset[str]) -> None:
        """Drop the diagnostics with one of ``codes`` added since index ``since``."""
        kept = [d for d in self.diagnostics[since:] if d.code not in codes]
        del self.diagnostics[since:]
        self.diagnostics.extend(kept)
