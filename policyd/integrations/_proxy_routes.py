"""The proxy's request routes: which LiteLLM call types policyd enforces, and their text.

Each enforced route's caller text (chat messages, a Responses ``input`` and
``instructions``, Anthropic ``system`` and ``messages``, a completion ``prompt``, an
embeddings ``input``) is read into chat-shaped messages for the engine, and the
redacted text the decision returns is written back into the same places before the
request goes upstream. Answers are read the same way for the output guardrails.
Nothing here imports litellm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyd.errors import RequestError

# call type -> (route name, the proxy path it is served on)
ROUTES: dict[str, tuple[str, str]] = {
    "completion": ("chat", "/v1/chat/completions"),
    "acompletion": ("chat", "/v1/chat/completions"),
    "responses": ("responses", "/v1/responses"),
    "aresponses": ("responses", "/v1/responses"),
    "anthropic_messages": ("messages", "/v1/messages"),
    "aanthropic_messages": ("messages", "/v1/messages"),
    "text_completion": ("completions", "/v1/completions"),
    "atext_completion": ("completions", "/v1/completions"),
    "embedding": ("embeddings", "/v1/embeddings"),
    "aembedding": ("embeddings", "/v1/embeddings"),
}
# routes whose streams the output guardrails can check chunk by chunk
STREAM_CHECKED = frozenset({"chat"})
# routes where the decided model replaces the caller's (embeddings keep theirs: a policy's
# tiers name chat models)
ROUTED = frozenset({"chat", "responses", "messages", "completions"})
# the request field each route's output limit is in, read as request.max_tokens
_MAX_TOKENS = {
    "chat": ("max_tokens", "max_completion_tokens"),
    "responses": ("max_output_tokens",),
    "messages": ("max_tokens",),
    "completions": ("max_tokens",),
    "embeddings": (),
}


class RouteInputError(RequestError):
    """The request's text is in a shape policyd cannot check; ``field`` names where."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")  # the proxy's body field, not request.*
        self.field = field


Slot = tuple[Any, Any, str]  # (container, key, role): container[key] is one caller text


@dataclass(frozen=True, slots=True)
class RouteInput:
    """A request's text as the engine sees it, and how to put redacted text back."""

    route: str
    messages: list[dict[str, Any]]
    slots: tuple[Slot, ...]  # empty for chat: its messages go to the engine as they are
    max_tokens: int | None

    def write_back(self, redacted: Sequence[Mapping[str, Any]]) -> None:
        """Put the decision's (redacted) texts back where they were read from."""
        for (container, key, _), message in zip(self.slots, redacted, strict=False):
            text = message.get("content")
            if isinstance(text, str):
                container[key] = text


def route_of(call_type: str) -> tuple[str, str] | None:
    return ROUTES.get(str(call_type))


def read_input(route: str, data: Mapping[str, Any]) -> RouteInput:
    """The engine's view of a request on ``route`` (raises RouteInputError)."""
    max_tokens = None
    for name in _MAX_TOKENS[route]:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            max_tokens = value
            break
    if route == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise RouteInputError("must be a list of chat messages", "messages")
        return RouteInput(route, messages, (), max_tokens)
    slots: list[Slot] = []
    reader = _READERS[route]
    reader(data, slots)
    messages = [{"role": role, "content": container[key]} for container, key, role in slots]
    return RouteInput(route, messages, tuple(slots), max_tokens)


def _text_parts(container: Any, key: Any, role: str, field: str, slots: list[Slot]) -> None:
    """A string, or a list of content blocks whose text is checked (images etc. pass)."""
    value = container[key]
    if isinstance(value, str):
        slots.append((container, key, role))
        return
    if not isinstance(value, list):
        raise RouteInputError("must be text or a list of content blocks", field)
    for i, part in enumerate(value):
        if isinstance(part, str):
            slots.append((value, i, role))
        elif isinstance(part, MutableMapping):
            if isinstance(part.get("text"), str):
                slots.append((part, "text", role))
            elif "content" in part and part["content"] is not None:  # a tool result's content
                _text_parts(part, "content", role, f"{field}[{i}].content", slots)
            elif isinstance(part.get("output"), str):  # a function call's output
                slots.append((part, "output", role))


def _responses(data: Mapping[str, Any], slots: list[Slot]) -> None:
    if isinstance(data.get("instructions"), str):
        slots.append((data, "instructions", "system"))
    value = data.get("input")
    if value is None:
        return
    if isinstance(value, str):
        slots.append((data, "input", "user"))
        return
    if not isinstance(value, list):
        raise RouteInputError("must be text or a list of input items", "input")
    for i, item in enumerate(value):
        if isinstance(item, str):
            slots.append((value, i, "user"))
        elif isinstance(item, MutableMapping):
            role = str(item.get("role") or "user")
            if item.get("content") is not None:
                _text_parts(item, "content", role, f"input[{i}].content", slots)
            elif isinstance(item.get("output"), str):
                slots.append((item, "output", "tool"))


def _anthropic(data: Mapping[str, Any], slots: list[Slot]) -> None:
    if data.get("system") is not None:
        _text_parts(data, "system", "system", "system", slots)
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise RouteInputError("must be a list of messages", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, MutableMapping):
            raise RouteInputError("must be an object with role and content", f"messages[{i}]")
        if message.get("content") is not None:
            role = str(message.get("role") or "user")
            _text_parts(message, "content", role, f"messages[{i}].content", slots)


def _strings(field: str) -> Callable[[Mapping[str, Any], list[Slot]], None]:
    def read(data: Mapping[str, Any], slots: list[Slot]) -> None:
        value = data.get(field)
        if isinstance(value, str):
            slots.append((data, field, "user"))
            return
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            slots.extend((value, i, "user") for i in range(len(value)))
            return
        raise RouteInputError(
            "must be text or a list of texts (token ids cannot be checked by the policy)", field
        )

    return read


_READERS: dict[str, Callable[[Mapping[str, Any], list[Slot]], None]] = {
    "responses": _responses,
    "messages": _anthropic,
    "completions": _strings("prompt"),
    "embeddings": _strings("input"),
}


# -- answers --------------------------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


class _Attr:
    """An object's attribute addressed like a mapping key (for write-back)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getitem__(self, key: str) -> Any:
        return getattr(self.obj, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self.obj, key, value)


def _slot(obj: Any, key: str) -> Slot | None:
    value = _get(obj, key)
    if not isinstance(value, str):
        return None
    return (obj if isinstance(obj, MutableMapping) else _Attr(obj), key, "assistant")


def answer_slots(response: Any) -> list[Slot]:
    """Every piece of answer text in a chat, text-completion, Responses or Anthropic
    answer (embeddings have none)."""
    out: list[Slot | None] = []
    for choice in _get(response, "choices") or ():
        message = _get(choice, "message")
        out.append(_slot(message, "content") if message is not None else _slot(choice, "text"))
    for item in _get(response, "output") or ():  # Responses API
        for part in _get(item, "content") or ():
            if _get(part, "type") in ("output_text", "text", None):
                out.append(_slot(part, "text"))
    if _get(response, "type") == "message" or _get(response, "stop_reason") is not None:
        for block in _get(response, "content") or ():  # Anthropic messages
            if _get(block, "type") == "text":
                out.append(_slot(block, "text"))
    return [s for s in out if s is not None]
