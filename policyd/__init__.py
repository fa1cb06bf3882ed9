"""policyd: declarative, versioned, hot-reloaded policies for production LLM applications.

The public API lives here; everything else is an implementation module.
``import policyd`` stays fast: nothing here imports litellm, redis or watchfiles.
"""

from policyd.bundle import Bundle, load_bundle
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
from policyd.errors import OutcomeError, PolicydError, RequestError
from policyd.verdict import OutputFinding, OutputStep, OutputVerdict

__version__ = "0.1.0"

__all__ = [
    "BudgetState",
    "Bundle",
    "CacheDirective",
    "Decision",
    "Diagnostic",
    "Engine",
    "OutcomeError",
    "OutputFinding",
    "OutputStep",
    "OutputVerdict",
    "PolicyError",
    "PolicyRef",
    "PolicydError",
    "PromptChoice",
    "RequestError",
    "RetryPolicy",
    "Severity",
    "Status",
    "TraceEntry",
    "__version__",
    "load_bundle",
]
