"""The exception hierarchy: every error policyd raises derives from :class:`PolicydError`.

Check-time problems in a bundle are :class:`~policyd.diagnostics.Diagnostic` values;
they reach a caller only inside a :class:`PolicyError`. The whole tree (``except
PolicydError`` catches all of it; each class also keeps the builtin base shown)::

    PolicydError
    ├── PolicyError                 a bundle failed to load (carries every Diagnostic)
    ├── RequestError (ValueError)   a request cannot be decided: field, type, policy name
    ├── OutcomeError (ValueError)   record() got a figure no store can count (negative, NaN, huge)
    ├── ConfigError (ValueError)    a bad argument to a policyd constructor or function
    ├── UsageError (RuntimeError)   an object used out of order (feed() after finish(), ...)
    ├── StoreError                  a store is misconfigured (bad URL or option)
    │   └── StoreUnavailable        the store could not be reached in time
    ├── CelError                    policyd.cel
    │   ├── CompileError            an expression cannot be loaded
    │   └── EvaluationError         a CEL runtime error (no such key, overflow, ...)
    ├── GuardrailConfigError (ValueError)  a guardrail option that cannot be compiled
    ├── PluginError                 a guardrail plugin failed (timeout, exception, bad return)
    └── LiteLLM integration (policyd.integrations.litellm)
        ├── PolicyBlockedError      the policy refused the request; nothing was sent
        ├── OutputBlockedError      an output guardrail blocked the (paid) answer
        ├── PolicyUsageError (TypeError)  the integration was called or configured wrongly
        └── StreamBlockedError      (policyd.integrations.litellm_proxy) an output
                                    guardrail stopped a proxied stream part-way

Every class is importable from ``policyd`` except the LiteLLM ones, which live in
``policyd.integrations`` so ``import policyd`` never imports LiteLLM. This
module imports nothing from policyd at load time, so any module may import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policyd.diagnostics import Diagnostic

__all__ = [
    "ConfigError",
    "OutcomeError",
    "PolicyError",
    "PolicydError",
    "RequestError",
    "UsageError",
]


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, line, column; exact duplicates removed (here, not in diagnostics.py,
    so this module imports nothing from policyd; ``policyd.diagnostics`` re-exports it)."""
    seen: set[Diagnostic] = set()
    unique = []
    for d in diagnostics:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return sorted(unique, key=lambda d: d.sort_key())


class PolicydError(Exception):
    """Base of every error policyd raises."""


class PolicyError(PolicydError):
    """A bundle could not be loaded: carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sort_diagnostics(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        head = "\n".join(str(d) for d in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} error(s) in policy bundle:\n{head}{more}")


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


class ConfigError(PolicydError, ValueError):
    """An argument given to a policyd constructor or function is invalid (a naive
    clock, a negative size, an unknown option): a mistake in the calling code."""


class UsageError(PolicydError, RuntimeError):
    """A policyd object was used out of order (``feed()`` after ``finish()``, a
    signal handler installed off the main thread, ...)."""
