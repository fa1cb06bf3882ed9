"""Diagnostics: one problem found in a bundle, with where it is and how to fix it.

Every stage before the engine (loading, schema validation, semantic checks, CEL
type-checking) reports problems as :class:`Diagnostic` values; nothing in
``policyd`` raises a traceback at a user for a mistake in their files.
Renderers for people and machines live in :mod:`policyd.render`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from policyd.errors import PolicyError, sort_diagnostics

__all__ = ["Diagnostic", "PolicyError", "Severity", "has_errors", "sort_diagnostics"]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=False)
class Diagnostic:
    """One problem, located at ``file:line:column`` (both 1-based)."""

    file: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str
    hint: str | None = None
    end_line: int | None = field(default=None, compare=False)
    end_column: int | None = field(default=None, compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.code, self.message)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.severity.value} {self.code}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
