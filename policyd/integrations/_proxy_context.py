"""Where the proxy hook's request attributes come from, and what a caller may not set.

Three sources, in this order of trust:

1. computed by policyd from the request itself — ``messages``, ``input_tokens``,
   ``input_chars`` (from the route's text), ``model``, ``max_tokens`` and ``temperature``
   (from the request's own fields) and ``metadata`` (LiteLLM's key identity); a caller's
   ``policyd_context`` value for any of these is dropped;
2. LiteLLM's authenticated identity, for the attributes the guardrail's ``identity``
   parameter maps (``{"tenant.id": "team_id", "tags": "tags"}``): the value comes from
   the key/team/user/end-user LiteLLM resolved, never from the caller — a mapped
   attribute LiteLLM has no value for is left out, not taken from the caller;
3. the caller's ``policyd_context`` for everything else — except the attributes named
   in ``refuse_context``, whose presence gets the request refused (HTTP 400).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyd.errors import ConfigError, RequestError

COMPUTED = frozenset(
    {"messages", "input_tokens", "input_chars", "model", "max_tokens", "temperature", "metadata"}
)
# identity sources: the UserAPIKeyAuth attribute each reads
_AUTH = {
    "team_id": "team_id",
    "team_alias": "team_alias",
    "user_id": "user_id",
    "user_email": "user_email",
    "key_alias": "key_alias",
    "org_id": "org_id",
    "org_alias": "organization_alias",
    "end_user": "end_user_id",
}
_METADATA = {
    "key_metadata": "metadata",
    "team_metadata": "team_metadata",
    "org_metadata": "organization_metadata",
}
DEFAULT_IDENTITY = {"tags": "tags"}


class ContextRefused(RequestError):
    """The caller set an attribute the guardrail's ``refuse_context`` names."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"policyd_context.{path} may not be set by the caller (the gateway's "
            f"refuse_context names it); remove it from the request"
        )
        self.field = f"policyd_context.{path}"
        self.path = path


def _source_ok(source: str) -> bool:
    if source in _AUTH or source == "tags":
        return True
    head, _, name = source.partition(".")
    return head in _METADATA and bool(name)


@dataclass(frozen=True, slots=True)
class ContextRules:
    """The guardrail's ``identity`` and ``refuse_context`` parameters, checked."""

    identity: tuple[tuple[tuple[str, ...], str], ...]
    refuse: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, identity: Any = None, refuse_context: Any = None) -> ContextRules:
        mapping = DEFAULT_IDENTITY if identity is None else identity
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                "policyd guardrail: identity must map request attributes to LiteLLM sources, "
                'e.g. {"tenant.id": "team_id", "tags": "tags"}'
            )
        pairs = []
        for path, source in mapping.items():
            if not isinstance(source, str) or not _source_ok(source):
                known = ", ".join([*_AUTH, "tags", *(f"{m}.<name>" for m in _METADATA)])
                raise ConfigError(
                    f"policyd guardrail: identity.{path}: unknown source {source!r}; use one of "
                    f"{known}"
                )
            pairs.append((_path(path, "identity"), source))
        refuse = refuse_context or ()
        if isinstance(refuse, str) or not isinstance(refuse, Sequence):
            raise ConfigError(
                "policyd guardrail: refuse_context must be a list of attribute names, "
                'e.g. ["tenant", "user.id"]'
            )
        return cls(tuple(pairs), tuple(_path(p, "refuse_context") for p in refuse))

    def build(
        self, caller: Mapping[str, Any] | None, auth: Any, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The request attributes: the caller's context filtered, plus LiteLLM's identity.

        Raises ContextRefused for an attribute ``refuse_context`` names."""
        context: dict[str, Any] = copy.deepcopy(dict(caller or {}))
        for path in self.refuse:
            if _lookup(context, path) is not _MISSING:
                raise ContextRefused(".".join(path))
        for name in COMPUTED:
            context.pop(name, None)
        for path, source in self.identity:
            _remove(context, path)
            value = resolve(source, auth, data)
            if value is not None:
                _assign(context, path, value)
        context["metadata"] = identity_metadata(auth, data)
        return context


def resolve(source: str, auth: Any, data: Mapping[str, Any]) -> Any:
    """The value of one identity source, or None."""
    if source == "tags":
        return litellm_tags(data)
    if source in _AUTH:
        value = getattr(auth, _AUTH[source], None)
        if value is None and source == "end_user":
            value = data.get("user")
        return value
    head, _, name = source.partition(".")
    bucket = getattr(auth, _METADATA[head], None)
    return bucket.get(name) if isinstance(bucket, Mapping) else None


def litellm_tags(data: Mapping[str, Any]) -> list[str]:
    """The request's tags as LiteLLM resolved them: body ``tags`` and ``metadata.tags``,
    the ``x-litellm-tags`` header, and the key's and team's tags."""
    from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs

    tags: list[str] = []
    bucket = data.get(get_metadata_variable_name_from_kwargs(dict(data)))
    for source in (bucket.get("tags") if isinstance(bucket, Mapping) else None, data.get("tags")):
        if isinstance(source, list):
            tags.extend(t for t in source if isinstance(t, str) and t not in tags)
    return tags


def identity_metadata(auth: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """``request.metadata``: the caller's key identity as LiteLLM authenticated it."""
    return {
        "team_id": getattr(auth, "team_id", None),
        "team_alias": getattr(auth, "team_alias", None),
        "user_id": getattr(auth, "user_id", None),
        "key_alias": getattr(auth, "key_alias", None),
        "org_id": getattr(auth, "org_id", None),
        "end_user": resolve("end_user", auth, data),
        "tags": litellm_tags(data),
    }


_MISSING = object()


def _path(text: Any, where: str) -> tuple[str, ...]:
    parts = tuple(str(text).split(".")) if isinstance(text, str) else ()
    if not parts or not all(p.isidentifier() for p in parts):
        raise ConfigError(
            f"policyd guardrail: {where}: {text!r} is not an attribute name like tenant.id"
        )
    if parts[0] in COMPUTED:
        raise ConfigError(
            f"policyd guardrail: {where}: {parts[0]} is computed by policyd from the request"
        )
    return parts


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = context
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _remove(context: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = context
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _assign(context: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = context
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
