"""policyd: declarative, versioned, hot-reloaded policies for production LLM applications.

The public API lives here; everything else is an implementation module.
``import policyd`` stays fast: nothing here imports litellm, redis or watchfiles.
"""

import typing as _typing

from policyd.bundle import Bundle, load_bundle
from policyd.cel.errors import CelError, CompileError, EvaluationError
from policyd.decision import (
    BudgetState,
    CacheDirective,
    Decision,
    PolicyRef,
    PromptChoice,
    RetryPolicy,
    TraceEntry,
)
from policyd.diagnostics import Diagnostic, PolicyError, Severity
from policyd.engine import Engine, Status
from policyd.errors import ConfigError, PolicydError, RequestError, UsageError
from policyd.verdict import OutputFinding, OutputStep, OutputVerdict

if _typing.TYPE_CHECKING:
    from policyd.guardrails._core import GuardrailConfigError
    from policyd.guardrails.plugins import PluginError
    from policyd.stores.base import StoreError, StoreUnavailable

# Exceptions whose modules ``import policyd`` does not load: imported on first use.
_LAZY = {
    "GuardrailConfigError": "policyd.guardrails._core",
    "PluginError": "policyd.guardrails.plugins",
    "StoreError": "policyd.stores.base",
    "StoreUnavailable": "policyd.stores.base",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'policyd' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "BudgetState",
    "Bundle",
    "CacheDirective",
    "CelError",
    "CompileError",
    "ConfigError",
    "Decision",
    "Diagnostic",
    "Engine",
    "EvaluationError",
    "GuardrailConfigError",
    "OutputFinding",
    "OutputStep",
    "OutputVerdict",
    "PluginError",
    "PolicyError",
    "PolicyRef",
    "PolicydError",
    "PromptChoice",
    "RequestError",
    "RetryPolicy",
    "Severity",
    "Status",
    "StoreError",
    "StoreUnavailable",
    "TraceEntry",
    "UsageError",
    "__version__",
    "load_bundle",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
