"""Bookkeeping for the proxy hook: where its state lives in a LiteLLM request, the
request's route, the retry header, and policyd's log in the proxy's output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from policyd.errors import ConfigError

log = logging.getLogger("policyd")

DECISION_KEY = "policyd_decision_id"
CONTEXT_KEY = "policyd_context"


def decision_id(data: Mapping[str, Any]) -> str | None:
    sources = [data.get("metadata"), data.get("litellm_metadata")]
    params = data.get("litellm_params")
    if isinstance(params, Mapping):
        sources += [params.get("metadata"), params.get("litellm_metadata")]
    for source in sources:
        if isinstance(source, Mapping) and isinstance(source.get(DECISION_KEY), str):
            return str(source[DECISION_KEY])
    return None


def model_group(kwargs: Mapping[str, Any]) -> str | None:
    params = kwargs.get("litellm_params")
    for source in (kwargs.get("metadata"), params.get("metadata") if isinstance(params, Mapping)
                   else None):  # fmt: skip
        if isinstance(source, Mapping) and isinstance(source.get("model_group"), str):
            return str(source["model_group"])
    return None


def count_retries(response: Any, tries: int | None) -> None:
    """``x-litellm-attempted-retries`` for the whole request: LiteLLM counts only the retries
    of the model group that answered, so after a fallback it says 0 however many retries
    the decided model had. Retries = upstream calls - 1 - fallbacks."""
    hidden = getattr(response, "_hidden_params", None)
    headers = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    if not tries or not isinstance(headers, dict):
        return
    said = str(headers.get("x-litellm-attempted-fallbacks"))
    fallbacks = int(said) if said.isdigit() else 0
    headers["x-litellm-attempted-retries"] = max(0, tries - 1 - fallbacks)


def seconds(start: Any, end: Any) -> float | None:
    try:
        return float((end - start).totalseconds())
    except (TypeError, AttributeError):
        return None


def pop_context(data: dict[str, Any], bucket: dict[str, Any]) -> Any:
    """The caller's ``policyd_context`` (body, or either metadata field), removed from the
    request so it never goes upstream."""
    found = data.pop(CONTEXT_KEY, None)
    for holder in (bucket, data.get("metadata"), data.get("litellm_metadata")):
        if isinstance(holder, dict) and CONTEXT_KEY in holder:
            value = holder.pop(CONTEXT_KEY)
            found = value if found is None else found
    return found


def request_path(data: Mapping[str, Any]) -> str | None:
    server = data.get("proxy_server_request")
    url = server.get("url") if isinstance(server, Mapping) else None
    return urlsplit(url).path or None if isinstance(url, str) else None


def allowed_call_types(setting: Any) -> frozenset[str]:
    if setting == "refuse":
        return frozenset()
    if setting == "allow":
        return frozenset({"*"})
    if isinstance(setting, list) and all(isinstance(c, str) for c in setting):
        return frozenset(setting)
    raise ConfigError(
        "policyd guardrail: unsupported_call_types must be refuse (the default), allow, or a "
        f"list of LiteLLM call types to let through unchecked, not {setting!r}"
    )


def log_to_stderr(level: str | None) -> None:
    """Make policyd's log (reloads accepted and rejected, routes passed unchecked) visible
    in the proxy's output: LiteLLM configures only its own loggers."""
    if level is None or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    log.propagate = False
