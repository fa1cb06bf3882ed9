"""Exceptions a caller of the engine can catch (check-time problems are Diagnostics)."""

from __future__ import annotations

from policyd.diagnostics import PolicyError

__all__ = ["OutcomeError", "PolicyError", "PolicydError", "RequestError"]


class PolicydError(Exception):
    """Base of the errors the engine raises at run time."""


class RequestError(PolicydError, ValueError):
    """The request cannot be decided: not a mapping, a field of the wrong type, or an
    unknown policy name. ``field`` names the request field (dotted) when there is one."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        self.field = field
        self.hint = hint
        text = f"request.{field}: {message}" if field else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class OutcomeError(PolicydError, ValueError):
    """``record()`` got an outcome it cannot count: ``field`` names the argument
    (``cost_usd``, ``input_tokens``, ``output_tokens``). Raised after the decision's
    reservation was settled as if that figure had not been reported."""

    def __init__(self, message: str, field: str):
        self.field = field
        super().__init__(f"record(): {field} {message}")
