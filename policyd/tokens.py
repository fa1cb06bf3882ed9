"""Token counting: a request's input tokens, estimated offline or counted with tiktoken.

The estimate is about four characters per token plus a small overhead per message
(what the decision names as ``estimate:chars/4``); tiktoken's cl100k_base is used
when the engine is configured with ``token_counter="tiktoken"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policyd.errors import ConfigError

# Token estimate when no tokenizer is configured: about four characters per token
# for English text, plus a small per-message overhead (role, separators), as the
# OpenAI chat format adds. Deterministic and offline; the decision names it.
ESTIMATE = "estimate:chars/4"
PER_MESSAGE = 4


def content_chars(message: Mapping[str, Any]) -> int:
    """Characters of one chat message's text: its content string or its text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return 0


def count_text(messages: list[Any]) -> tuple[int, int]:
    """(characters, estimated tokens) of chat messages' text content."""
    chars = 0
    tokens = 0
    for message in messages:
        n = content_chars(message)
        chars += n
        tokens += (n + 3) // 4 + PER_MESSAGE
    return chars, tokens


class TokenCounter:
    """Counts input tokens: a deterministic estimate, or tiktoken when configured."""

    def __init__(self, kind: str = "estimate") -> None:
        self.name = ESTIMATE
        self._encode: Callable[[str], list[int]] | None = None
        if kind == "tiktoken":
            self._encode = _tiktoken_encoder()
            self.name = "tiktoken:cl100k_base"
        elif kind != "estimate":
            raise ConfigError(f"unknown token counter {kind!r}: use 'estimate' or 'tiktoken'")

    def count(self, messages: list[Any]) -> tuple[int, int]:
        chars, estimate = count_text(messages)
        if self._encode is None:
            return chars, estimate
        tokens = 0
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    p["text"] for p in content if isinstance(p, Mapping) and "text" in p
                )
            tokens += len(self._encode(content if isinstance(content, str) else ""))
            tokens += PER_MESSAGE
        return chars, tokens


def _tiktoken_encoder() -> Callable[[str], list[int]]:
    """cl100k_base from the copy LiteLLM ships, so nothing is downloaded at run time."""
    import importlib.util
    import os
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            cache = Path(location) / "litellm_core_utils" / "tokenizers"
            if cache.is_dir():
                os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    return encoding.encode_ordinary
