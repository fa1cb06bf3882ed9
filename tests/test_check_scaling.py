"""`policyd check` work that grew with the square of a bundle's size, pinned by counting
the work (not timing it): a policy's declarations are turned into CEL types once, not
once per expression that fails to compile, and hints about unknown fields stay short."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyd.bundle import load_bundle
from policyd.cel import types


def policy_with_fields(fields: int, rules: int) -> str:
    declared = ", ".join(f"field_{i:05d}: string" for i in range(fields))
    written = "\n".join(
        f'    - name: r{j}\n      when: request.tenant.qqq_{j:05d}x == "a"\n      tier: premium'
        for j in range(rules)
    )
    return f"""apiVersion: policyd/v1
kind: Policy
metadata:
  name: demo
context:
  tenant: {{{declared}}}
models:
  small: {{litellm: openai/gpt-4o-mini}}
  large: {{litellm: openai/gpt-4o}}
tiers:
  economy:
    targets: [{{model: small}}]
  premium:
    targets: [{{model: large}}]
routing:
  default: economy
  rules:
{written}
"""


def test_declarations_become_types_once_however_many_expressions_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted = 0
    original = types.from_declaration

    def counting(decl: object, name: str = "") -> types.CelType:
        nonlocal converted
        converted += 1
        return original(decl, name)

    monkeypatch.setattr(types, "from_declaration", counting)  # its recursion looks it up
    (tmp_path / "p.yaml").write_text(policy_with_fields(1_000, 200))
    bundle = load_bundle(tmp_path)
    unknown = [d for d in bundle.diagnostics if d.code == "PD302"]
    assert len(unknown) == 200
    assert converted <= 1_000 + 10  # each field once (200 x 1,000 before)
    hint = unknown[-1].hint or ""
    assert hint.startswith("declared fields are field_00000, field_00001,")
    assert hint.endswith(" and 980 more") and len(hint) < 600
