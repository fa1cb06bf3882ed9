"""policyd: declarative, versioned, hot-reloaded policies for production LLM applications.

What is public: the names in ``__all__`` here, and the modules in ``PUBLIC_MODULES``, each
as far as its own ``__all__`` or the docs show it (the text checks of ``policyd.guardrails``,
``policyd.cel.compile``, the LiteLLM integration, ``DecisionLog``, the telemetry providers).
Every other module is an implementation module, whatever its name: it may change in any
release. Inside a public package a leading underscore marks the implementation modules
(``guardrails/_scan.py``, ``integrations/_proxy_routes.py``). ``tests/test_public_api.py``
fails when the README, docs/ (docs/architecture.md, for contributors, aside) or examples/
send users to an implementation module.

``import policyd`` is nearly free: each public name is imported from its module on first use
(PEP 562), so ``policyd check`` never loads the engine, and nothing here imports litellm,
redis or watchfiles. The exception tree is drawn in :mod:`policyd.errors`.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from policyd.budgets.usage import UnknownBudget
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
    from policyd.engine import Engine
    from policyd.errors import ConfigError, OutcomeError, PolicydError, RequestError, UsageError
    from policyd.guardrails._core import GuardrailConfigError
    from policyd.guardrails.plugins import PluginError
    from policyd.status import Status
    from policyd.stores.base import StoreError, StoreUnavailable
    from policyd.verdict import OutputFinding, OutputStep, OutputVerdict

__version__ = "0.1.0"

PUBLIC_MODULES = (
    "policyd",
    "policyd.guardrails",
    "policyd.cel",
    "policyd.decision_log",
    "policyd.telemetry",
    "policyd.integrations.litellm",
    "policyd.integrations.litellm_proxy",
    "policyd.integrations.litellm_export",
)

_HOMES = {
    "policyd.budgets.usage": ("UnknownBudget",),
    "policyd.bundle": ("Bundle", "load_bundle"),
    "policyd.cel.errors": ("CelError", "CompileError", "EvaluationError"),
    "policyd.decision": (
        "BudgetState",
        "CacheDirective",
        "Decision",
        "PolicyRef",
        "PromptChoice",
        "RetryPolicy",
        "TraceEntry",
    ),
    "policyd.diagnostics": ("Diagnostic", "PolicyError", "Severity"),
    "policyd.engine": ("Engine",),
    "policyd.status": ("Status",),
    "policyd.errors": ("ConfigError", "OutcomeError", "PolicydError", "RequestError", "UsageError"),
    "policyd.guardrails._core": ("GuardrailConfigError",),
    "policyd.guardrails.plugins": ("PluginError",),
    "policyd.stores.base": ("StoreError", "StoreUnavailable"),
    "policyd.verdict": ("OutputFinding", "OutputStep", "OutputVerdict"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    """Import a public name from its module the first time it is used."""
    module = _HOME.get(name)
    if module is None:  # not ours: `from policyd import document` then imports the submodule
        raise AttributeError(f"module 'policyd' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "PUBLIC_MODULES",
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
    "OutcomeError",
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
    "UnknownBudget",
    "UsageError",
    "__version__",
    "load_bundle",
]
