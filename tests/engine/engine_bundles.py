"""Small policy bundles for engine tests: a shared catalog and a policy header."""

from __future__ import annotations

import textwrap
from typing import Any

CATALOG = """
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: models}
models:
  small: {litellm: openai/gpt-4o-mini, context_window: 1000,
          price: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
  medium: {litellm: anthropic/claude-haiku-4-5, context_window: 8000,
           price: {input_per_mtok: 1.0, output_per_mtok: 5.0}}
  large: {litellm: anthropic/claude-sonnet-4-5, context_window: 200000,
          price: {input_per_mtok: 3.0, output_per_mtok: 15.0}}
  huge: {litellm: openai/gpt-4o, context_window: 128000,
         price: {input_per_mtok: 2.5, output_per_mtok: 10.0}}
"""


def policy(body: str, name: str = "p", context: str = "") -> str:
    """A Policy document with a standard header and the given body (dedented)."""
    head = f"""\
apiVersion: policyd/v1
kind: Policy
metadata: {{name: {name}, version: "1"}}
context:
  tenant: {{id: string, tier: string}}
  user: {{id: string}}
  feature: string
  tags: list<string>
{textwrap.indent(textwrap.dedent(context), "  ")}
"""
    return head + textwrap.dedent(body)


def small_request(max_tokens: int | None = None) -> dict[str, Any]:
    """A pro tenant's one-word request, with ``max_tokens`` when given (budget tests)."""
    request: dict[str, Any] = {
        "tenant": {"id": "acme", "tier": "pro"},
        "user": {"id": "u1"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    return request
