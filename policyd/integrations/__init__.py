"""Integrations with other tools; each submodule imports its tool only when imported itself.

- :mod:`policyd.integrations.litellm` — :class:`PolicyRouter`, which carries out
  decisions on LiteLLM calls (``pip install 'policyd[litellm]'``);
- :mod:`policyd.integrations.litellm_proxy` — a LiteLLM proxy guardrail/logger hook;
- :mod:`policyd.integrations.litellm_export` — a proxy ``config.yaml`` from a policy.

Nothing here is imported by ``import policyd``: LiteLLM alone takes seconds to import.
"""
