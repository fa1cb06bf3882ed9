"""Typed model of policy documents: the pydantic schema users write against.

One class per YAML shape in ``policy-format.md``. Structure only: every field is
typed, unknown keys are rejected, values are range-checked. Cross-references
(unknown models, tier cycles, CEL types) are checked in :mod:`policyd.validate`;
the committed JSON Schema (``schemas/policyd-v1.schema.json``) is generated from
these classes by :func:`json_schema`.
"""

# No `from __future__ import annotations` here: pydantic would compile and evaluate every
# annotation string again when it builds the models (~15% of building them).

import re
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from policyd.document_guardrails import (  # the guardrails section, re-exported
    GUARDRAIL_CHECKS as GUARDRAIL_CHECKS,
)
from policyd.document_guardrails import Guardrail as Guardrail
from policyd.document_guardrails import Guardrails as Guardrails
from policyd.document_guardrails import Injection as Injection
from policyd.document_guardrails import InjectionOptions as InjectionOptions
from policyd.document_guardrails import PiiKind as PiiKind
from policyd.document_reserve import (  # a budget's reserve and the policy's defaults, re-exported
    DEFAULT_MIN_SAMPLES as DEFAULT_MIN_SAMPLES,
)
from policyd.document_reserve import BudgetDefaults as BudgetDefaults
from policyd.document_reserve import Quantile as Quantile
from policyd.document_reserve import Reserve as Reserve
from policyd.document_reserve import ReserveCap as ReserveCap
from policyd.document_reserve import ReserveMode as ReserveMode
from policyd.fields import (
    CelKey,
    Condition,
    Duration,
    LimitCount,
    Name,
    Percent,
    PricePerMtok,
    Strict,
    Text,
    Timestamp,
    TokenCount,
    TypeDecl,
    Usd,
    at_most,
    new_dict,
    new_list,
    problem,
)

API_VERSION = "policyd/v1"
SCHEMA_ID = "https://policyd.dev/schemas/policyd-v1.schema.json"

# --------------------------------------------------------------------------- common parts


class Metadata(Strict):
    name: Name
    version: Text | None = Field(None, description="Author-set version; a digest is added")
    description: Text | None = None
    labels: dict[str, Text] = Field(default_factory=new_dict)


class Price(Strict):
    input_per_mtok: PricePerMtok = Field(description="USD per million input tokens")
    output_per_mtok: PricePerMtok = Field(description="USD per million output tokens")


class ModelSpec(Strict):
    litellm: Text = Field(min_length=1, description="Model string handed to LiteLLM")
    context_window: TokenCount | None = Field(None, description="Max input+output tokens")
    max_output_tokens: TokenCount | None = Field(None, description="Max output tokens")
    price: Price | None = None


# --------------------------------------------------------------------------- routing


class Target(Strict):
    model: Name
    weight: Annotated[int, at_most(1_000_000, "a weight")] = Field(
        1, ge=0, description="Relative weight for the weighted strategy"
    )


class Tier(Strict):
    strategy: Literal["weighted", "ordered", "cheapest"] = "ordered"
    sticky_by: CelKey | None = None
    targets: list[Target] = Field(min_length=1)
    fallback: list[Name] = Field(default_factory=new_list, description="Models or tiers, in order")


class RoutingRule(Strict):
    name: Name
    when: Condition
    tier: Name


RetryCause = Literal[
    "rate_limit", "timeout", "server_error", "connection_error", "context_window", "any"
]


_DEFAULT_RETRY_ON: tuple[RetryCause, ...] = ("rate_limit", "timeout", "server_error")


class Retry(Strict):
    attempts: int = Field(1, ge=1, le=20, description="Total tries, the first included")
    backoff: Literal["none", "constant", "exponential"] = "exponential"
    base: Duration = "500ms"
    max: Duration = "10s"
    jitter: Literal["none", "full", "equal"] = "full"
    on: list[RetryCause] = Field(default_factory=lambda: list(_DEFAULT_RETRY_ON))


class Cooldown(Strict):
    after_failures: Annotated[int, at_most(1_000_000, "a failure count")] = Field(ge=1)
    for_: Duration = Field(alias="for")


class Routing(Strict):
    default: Name
    rules: list[RoutingRule] = Field(default_factory=new_list)
    context_window: Literal["skip_small", "ignore"] = "skip_small"
    retry: Retry | None = None
    timeout: Duration | None = None
    cooldown: Cooldown | None = None


# --------------------------------------------------------------------------- budgets


class RollingWindow(Strict):
    rolling: Duration


CalendarWindow = Literal["calendar_day", "calendar_week", "calendar_month"]


def _one_of_set(*names: str, exactly: bool = False) -> dict[str, Any]:
    """JSON Schema for "at least one (or exactly one) of these keys is set to a non-null"."""
    forms = [{"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names]
    return {"oneOf" if exactly else "anyOf": forms}


class Limit(Strict):
    model_config = ConfigDict(
        json_schema_extra=_one_of_set("usd", "tokens", "requests", "concurrent")
    )

    usd: Usd | None = None
    tokens: LimitCount | None = None
    requests: LimitCount | None = None
    concurrent: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Calls in flight at once per key: from decide() until record() or expiry",
    )

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (
            self.usd is None
            and self.tokens is None
            and self.requests is None
            and self.concurrent is None
        ):
            raise problem(
                "limit",
                "a limit needs at least one of usd, tokens, requests, concurrent",
                "for example {usd: 500} or {requests: 600, tokens: 200000}",
            )
        return self


class OnExceed(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"action": {"const": "downgrade"}}},
            "then": {"required": ["tier"], "properties": {"tier": {"type": "string"}}},
            "else": {"properties": {"tier": {"type": "null"}}},
        }
    )

    action: Literal["block", "downgrade", "warn"]
    tier: Name | None = Field(None, description="Tier to downgrade to (action: downgrade)")
    message: Text | None = None

    @model_validator(mode="after")
    def _tier_for_downgrade(self) -> Self:
        if self.action == "downgrade" and not self.tier:
            raise problem(
                "downgrade",
                "action: downgrade needs a tier to downgrade to",
                "add tier: <name of a cheaper tier>",
            )
        if self.action != "downgrade" and self.tier:
            raise problem(
                "downgrade",
                f"tier is only used with action: downgrade, not {self.action}",
                "remove tier, or set action: downgrade",
            )
        return self


class Budget(Strict):
    name: Name
    key: CelKey
    when: Condition | None = None
    window: CalendarWindow | RollingWindow
    timezone: Text = "UTC"
    limit: Limit
    on_exceed: OnExceed = Field(default_factory=lambda: OnExceed(action="block", tier=None))
    alerts: list[float] = Field(default_factory=new_list)
    on_store_error: Literal["allow", "block"] = "allow"
    reserve: ReserveMode | None = Field(
        None,
        description="How a reservation is priced: worst_case (max_tokens or the model's "
        "output limit), a cap {output_tokens: N}, or a learned {estimate: p95}; default "
        "budget_defaults.reserve, else worst_case",
    )


# --------------------------------------------------------------------------- guardrails

# the section's classes live in document_guardrails.py (imported above)

# --------------------------------------------------------------------------- cache


class CacheRule(Strict):
    name: Name
    when: Condition
    ttl: Duration
    key: list[Text] = Field(
        default_factory=lambda: ["model", "messages"],
        description="Request attributes hashed into the cache key",
    )
    scope: Literal["global", "tenant", "user"] = "user"


class Cache(Strict):
    rules: list[CacheRule] = Field(default_factory=new_list)


# --------------------------------------------------------------------------- prompts


class PromptVersion(Strict):
    model_config = ConfigDict(json_schema_extra=_one_of_set("file", "template", exactly=True))

    file: Text | None = Field(None, description="Path relative to the policy file")
    template: Text | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.file is None) == (self.template is None):
            raise problem(
                "prompt_source",
                "a prompt version needs exactly one of file or template",
                'write {file: prompts/name/v1.md} or {template: "..."}',
            )
        return self


class Prompt(Strict):
    description: Text | None = None
    versions: dict[Name, PromptVersion] = Field(min_length=1)


class ScheduleEntry(Strict):
    at: Timestamp
    variants: dict[Name, Percent]


class Rollout(Strict):
    name: Name
    prompt: Name
    sticky_by: CelKey
    when: Condition | None = None
    default: Name
    variants: dict[Name, Percent] = Field(min_length=1)
    schedule: list[ScheduleEntry] = Field(default_factory=new_list)


class Reload(Strict):
    require_tests: bool = False


class DecisionLogSpec(Strict):
    """``log:``: what a decision log line keeps of each request (message text never)."""

    request: list[Text] | None = Field(
        None,
        description="Request attributes (dotted paths, e.g. tenant.id) written to decision "
        "logs; default: every declared context attribute plus model, max_tokens, "
        "temperature and input_tokens",
    )
    messages: Literal["lengths", "count", "none"] = Field(
        "lengths", description="lengths: count, roles and lengths of messages; count; none"
    )


# --------------------------------------------------------------------------- documents


class PolicySpec(Strict):
    """The body of a Policy document (everything but apiVersion/kind/metadata)."""

    context: dict[str, TypeDecl] = Field(default_factory=new_dict)
    models: dict[Name, ModelSpec] = Field(default_factory=new_dict)
    tiers: dict[Name, Tier] = Field(default_factory=new_dict)
    routing: Routing | None = None
    budgets: list[Budget] = Field(default_factory=new_list)
    budget_defaults: BudgetDefaults | None = None
    guardrails: Guardrails = Field(default_factory=Guardrails)
    cache: Cache = Field(default_factory=Cache)
    prompts: dict[Name, Prompt] = Field(default_factory=new_dict)
    rollouts: list[Rollout] = Field(default_factory=new_list)
    reload: Reload | None = None
    log: DecisionLogSpec | None = None


def reserve_of(policy: PolicySpec, budget: Budget) -> ReserveMode:
    """How ``budget`` prices a reservation: its own reserve, else the policy's default."""
    if budget.reserve is not None:
        return budget.reserve
    return policy.budget_defaults.reserve if policy.budget_defaults else "worst_case"


class Policy(PolicySpec):
    api_version: Literal["policyd/v1"] = Field(alias="apiVersion")
    kind: Literal["Policy"]
    metadata: Metadata


class ModelCatalog(Strict):
    api_version: Literal["policyd/v1"] = Field(alias="apiVersion")
    kind: Literal["ModelCatalog"]
    metadata: Metadata
    models: dict[Name, ModelSpec] = Field(min_length=1)


_OUTPUT_PATH = r"^output(\.|$)"


class RecordedOutcome(Strict):
    """What happened on the call a test case's decision led to: ``engine.record(...)``."""

    input_tokens: int | None = Field(None, ge=0, description="Default: the decision's count")
    output_tokens: int = Field(0, ge=0)
    cost_usd: Usd | None = Field(None, description="Default: priced from the model's price")
    error: Text | None = Field(
        None, description="The call failed (feeds cooldowns): e.g. rate_limit, timeout"
    )
    model: Name | None = Field(None, description="The model that was called; default the decided")


class TestCase(Strict):
    # expect naming an output.* path needs an output (the validator below, for editors)
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "required": ["expect"],
                "properties": {
                    "expect": {"not": {"propertyNames": {"not": {"pattern": _OUTPUT_PATH}}}}
                },
            },
            "then": {"required": ["output"], "properties": {"output": {"type": "string"}}},
        }
    )

    name: Text
    request: dict[str, Any]
    now: Timestamp | None = Field(None, description="Overrides the file's clock")
    output: Text | None = Field(
        None,
        description="The model's answer, checked by the output guardrails "
        "(engine.check_output); expect it under output.* paths",
    )
    expect: dict[str, Any] = Field(
        min_length=1,
        description="Dotted paths into decision.to_dict(); output.* paths into "
        "check_output(...).to_dict() plus text",
    )
    record: RecordedOutcome | None = Field(
        None,
        description="Record this outcome of the call after the case (engine.record), so "
        "later cases see the spend, tokens or failure",
    )
    repeat: int = Field(1, ge=1, le=10_000, description="Run the case this many times in a row")

    @model_validator(mode="after")
    def _output_for_output_paths(self) -> Self:
        if self.output is None:
            paths = [str(k) for k in self.expect if re.match(_OUTPUT_PATH, str(k))]
            if paths:
                raise problem(
                    "output_missing",
                    f"expect has {paths[0]} but the case has no output to check",
                    "add output: <the model's answer> to the case",
                )
        return self


class PolicyTest(Strict):
    __test__ = False  # not a pytest class

    api_version: Literal["policyd/v1"] = Field(alias="apiVersion")
    kind: Literal["PolicyTest"]
    metadata: Metadata
    policy: Name
    now: Timestamp | None = None
    cases: list[TestCase] = Field(min_length=1)


Document: TypeAlias = Policy | ModelCatalog | PolicyTest
KINDS: dict[str, type[Policy] | type[ModelCatalog] | type[PolicyTest]] = {
    "Policy": Policy,
    "ModelCatalog": ModelCatalog,
    "PolicyTest": PolicyTest,
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (any of the three kinds), for editors and CI."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[Policy | ModelCatalog | PolicyTest, Field(discriminator="kind")]
    )
    schema = adapter.json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "policyd policy file (apiVersion policyd/v1)",
        **schema,
    }
    return schema
