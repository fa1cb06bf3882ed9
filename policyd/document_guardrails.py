"""Typed model of a policy's ``guardrails:`` section (input and output checks).

Split from :mod:`policyd.document`, which re-exports every name here; like it, structure
only: cross-checks live in :mod:`policyd.checks.guardrails`.
"""

# No `from __future__ import annotations` here: pydantic would compile and evaluate every
# annotation string again when it builds the models (~15% of building them).

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from policyd.fields import (
    Condition,
    Duration,
    Name,
    Strict,
    Text,
    new_list,
)

PiiKind = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "secret",
    "secret:openai",
    "secret:anthropic",
    "secret:aws_access_key",
    "secret:aws_secret_key",
    "secret:github",
    "secret:slack",
    "secret:slack_webhook",
    "secret:google_api_key",
    "secret:stripe",
    "secret:private_key",
    "secret:jwt",
]
GUARDRAIL_CHECKS = (
    "max_tokens",
    "max_chars",
    "max_messages",
    "pii",
    "injection",
    "deny_patterns",
    "allow_patterns",
    "deny_terms",
    "json_schema",
    "plugin",
)


class InjectionOptions(Strict):
    """``injection: {...}``: the built-in ruleset, pinned and tuned."""

    version: Text = Field("v1", description="Built-in ruleset version; a version never changes")
    patterns: list[Text] = Field(
        default_factory=new_list, description="Your own RE2 patterns, reported as injection"
    )
    disable: list[Text] = Field(
        default_factory=new_list, description="Built-in rules to turn off, by name"
    )


def _injection_value(value: Any) -> Any:
    """``injection: on`` says "must be true or false" (with the YAML 1.2 hint), not a union."""
    if isinstance(value, bool | dict) or value is None:
        return value
    raise PydanticCustomError("bool_type", "Input should be a valid boolean")


Injection = Annotated[bool | InjectionOptions, BeforeValidator(_injection_value)]


class Guardrail(Strict):
    name: Name
    when: Condition | None = Field(
        None,
        description="Alone: the guardrail fires when it is true. With a check: the check "
        "runs only when it is true.",
    )
    action: Literal["block", "redact", "warn"] = "block"
    message: Text | None = None
    on_error: Literal["allow", "block"] = Field(
        "block", description="When the condition or plugin fails: block (default) or allow"
    )
    roles: list[Text] | None = Field(
        None, description="Input only: message roles whose text is checked; default all"
    )
    max_tokens: int | None = Field(None, gt=0)
    max_chars: int | None = Field(None, gt=0)
    max_messages: int | None = Field(None, gt=0)
    pii: list[PiiKind] | None = None
    injection: Injection | None = Field(
        None, description="true, or {version, patterns, disable}: prompt-injection phrasings"
    )
    deny_patterns: list[Text] | None = Field(None, description="RE2 patterns that must not match")
    allow_patterns: list[Text] | None = Field(
        None, description="RE2 patterns of which the text must match at least one"
    )
    deny_terms: list[Text] | None = Field(
        None, description="Words and phrases, matched case-insensitively as whole words"
    )
    json_schema: dict[str, Any] | None = Field(
        None, description="Output only: the answer must be JSON valid against this schema"
    )
    strip_code_fences: bool | None = Field(
        None, description="json_schema: accept an answer wrapped in a ```json code fence"
    )
    plugin: Text | None = Field(None, description="package.module:function")
    timeout: Duration | None = Field(None, description="Time limit for a plugin call (1s)")

    def checks(self) -> list[str]:
        """Names of the check fields this guardrail sets."""
        return [name for name in GUARDRAIL_CHECKS if getattr(self, name) not in (None, False)]


class Guardrails(Strict):
    input: list[Guardrail] = Field(default_factory=new_list)
    output: list[Guardrail] = Field(default_factory=new_list)
