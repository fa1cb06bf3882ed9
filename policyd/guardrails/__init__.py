"""The text-checking library behind policyd's guardrails stage: text in, findings out.

Everything is compiled when a check is built (at policy load time): RE2 patterns and sets,
term alternations, JSON Schema validators, plugin imports. A configuration mistake raises
:class:`GuardrailConfigError` then, never at scan time. Findings never hold matched text.
This package imports nothing else from policyd, so the engine can use it from any stage.
"""

import importlib as _importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policyd.guardrails._core import (
        Check,
        CheckStream,
        Finding,
        GuardrailConfigError,
        StreamableCheck,
        sort_findings,
    )
    from policyd.guardrails._rules import CombinedCheck, Rule, RuleSetCheck, combine_checks
    from policyd.guardrails.injection import INJECTION_RULESET_VERSION, RULESETS, injection_check
    from policyd.guardrails.patterns import (
        AllowCheck,
        TermsCheck,
        allow_check,
        pattern_check,
        terms_check,
    )
    from policyd.guardrails.pii import PII_KINDS, SECRET_KINDS, PiiCheck, pii_check
    from policyd.guardrails.plugins import (
        PluginError,
        PluginFn,
        PluginVerdict,
        arun_plugin,
        load_plugin,
        run_plugin,
        to_verdict,
    )
    from policyd.guardrails.stream import StreamScanner
    from policyd.guardrails.structured import (
        JsonSchemaCheck,
        MaxCharsCheck,
        json_schema_check,
        max_chars_check,
    )

# Imported now: the function ``redact`` must win over the submodule of the same name, which
# the import system binds here when policyd.guardrails.redact is first imported.
from policyd.guardrails.redact import (
    MessageFinding,
    iter_message_texts,
    redact,
    redact_messages,
    scan_messages,
)

# Other public names are imported from their modules on first use: `policyd check` loads only
# the modules its guardrails need (RE2 and the injection rules, not PII or plugins).
_HOMES = {
    "policyd.guardrails._core": (
        "Check",
        "CheckStream",
        "Finding",
        "GuardrailConfigError",
        "StreamableCheck",
        "sort_findings",
    ),
    "policyd.guardrails._rules": (
        "CombinedCheck",
        "Rule",
        "RuleSetCheck",
        "combine_checks",
    ),
    "policyd.guardrails.injection": (
        "INJECTION_RULESET_VERSION",
        "RULESETS",
        "injection_check",
    ),
    "policyd.guardrails.patterns": (
        "AllowCheck",
        "TermsCheck",
        "allow_check",
        "pattern_check",
        "terms_check",
    ),
    "policyd.guardrails.pii": (
        "PII_KINDS",
        "SECRET_KINDS",
        "PiiCheck",
        "pii_check",
    ),
    "policyd.guardrails.plugins": (
        "PluginError",
        "PluginFn",
        "PluginVerdict",
        "arun_plugin",
        "load_plugin",
        "run_plugin",
        "to_verdict",
    ),
    "policyd.guardrails.stream": ("StreamScanner",),
    "policyd.guardrails.structured": (
        "JsonSchemaCheck",
        "MaxCharsCheck",
        "json_schema_check",
        "max_chars_check",
    ),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    """Import a public name from its module the first time it is used."""
    module = _HOME.get(name)
    if module is None:  # not a public name: `from policyd.guardrails import pii` imports it
        raise AttributeError(f"module 'policyd.guardrails' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "INJECTION_RULESET_VERSION",
    "PII_KINDS",
    "RULESETS",
    "SECRET_KINDS",
    "AllowCheck",
    "Check",
    "CheckStream",
    "CombinedCheck",
    "Finding",
    "GuardrailConfigError",
    "JsonSchemaCheck",
    "MaxCharsCheck",
    "MessageFinding",
    "PiiCheck",
    "PluginError",
    "PluginFn",
    "PluginVerdict",
    "Rule",
    "RuleSetCheck",
    "StreamScanner",
    "StreamableCheck",
    "TermsCheck",
    "allow_check",
    "arun_plugin",
    "combine_checks",
    "injection_check",
    "iter_message_texts",
    "json_schema_check",
    "load_plugin",
    "max_chars_check",
    "pattern_check",
    "pii_check",
    "redact",
    "redact_messages",
    "run_plugin",
    "scan_messages",
    "sort_findings",
    "terms_check",
    "to_verdict",
]
