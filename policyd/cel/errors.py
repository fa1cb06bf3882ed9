"""CEL errors: what went wrong at load time (CompileError) and at run time (EvaluationError).

A :class:`CompileError` carries the position inside the expression text (0-based
``offset``, 1-based ``line``/``column``), a diagnostic ``code`` and, where one is
known, a ``hint`` ("did you mean 'tier'?"). An :class:`EvaluationError` is a CEL
runtime error (no such key, division by zero, overflow, no matching overload);
it is raised, never turned silently into ``False``.
"""

from __future__ import annotations

from policyd.errors import PolicydError

# Diagnostic codes shared with policyd.validate.
SYNTAX = "PD301"
UNKNOWN_NAME = "PD302"
TYPE_MISMATCH = "PD303"
UNKNOWN_FUNCTION = "PD304"
TOO_COMPLEX = "PD306"


class CelError(PolicydError):
    """Base of every error raised by :mod:`policyd.cel`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CompileError(CelError):
    """An expression that cannot be loaded: syntax, unknown name, type mismatch, too complex."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        source: str,
        offset: int,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.source = source
        self.offset = max(0, min(offset, len(source)))
        self.hint = hint
        before = source[: self.offset]
        self.line = before.count("\n") + 1
        self.column = self.offset - (before.rfind("\n") + 1) + 1

    def __str__(self) -> str:
        text = f"{self.line}:{self.column}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def __reduce__(self) -> tuple[object, ...]:  # keep pickling working with keyword args
        return (
            _rebuild_compile_error,
            (self.message, self.code, self.source, self.offset, self.hint),
        )

    def pointer(self) -> str:
        """The offending line of the expression with a caret under the column."""
        line_text = self.source.splitlines()[self.line - 1] if self.source else ""
        return f"{line_text}\n{' ' * (self.column - 1)}^"


def _rebuild_compile_error(
    message: str, code: str, source: str, offset: int, hint: str | None
) -> CompileError:
    return CompileError(message, code=code, source=source, offset=offset, hint=hint)


class EvaluationError(CelError):
    """A CEL runtime error while evaluating an expression against an activation."""


class CostLimitExceeded(EvaluationError):
    """The evaluation ran out of its cost budget. Unlike other errors, ``&&``, ``||``,
    ``all`` and ``exists`` never absorb it: the whole expression fails."""
