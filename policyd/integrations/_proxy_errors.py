"""The proxy hook's refusals as LiteLLM's proxy sends them: status, body and headers.

A refusal is both a FastAPI ``HTTPException`` (the chat and Responses routes send its
``detail`` and ``headers``) and LiteLLM's ``ProxyException`` (the Anthropic route sends
only a ProxyException's headers, so ``Retry-After`` would otherwise be lost there).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import HTTPException
from litellm.proxy._types import ProxyException

from policyd.errors import PolicydError
from policyd.integrations._litellm_support import PolicyBlockedError
from policyd.verdict import OutputVerdict


class Refusal(ProxyException, HTTPException):  # type: ignore[misc]
    """An HTTP error the hook raises: ``{"error": {...}}`` with ``status`` and ``headers``."""

    def __init__(
        self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        ProxyException.__init__(  # first: its super().__init__ is HTTPException's here
            self, message=str(error.get("message")), type=str(error.get("type")), param=None,
            code=status, headers=dict(headers or {}),
            provider_specific_fields={k: v for k, v in error.items()
                                      if k not in ("message", "type")} or None,
        )  # fmt: skip
        HTTPException.__init__(self, status, {"error": error}, headers=dict(headers or {}))

    def __str__(self) -> str:
        return self.message


def bad_request(message: str) -> Refusal:
    return Refusal(400, {"message": message, "type": "policyd_bad_request"})


class StreamBlockedError(PolicydError):
    """An output guardrail stopped a stream after some of it was sent: the proxy turns this
    into an SSE error event (``message``, ``type``, ``code``) ending the stream (an
    HTTPException raised at that point would cut the stream off without a word)."""

    def __init__(self, message: str, blocked_by: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.type = "policyd_output_blocked"
        self.param = None
        self.status_code = 400
        self.blocked_by = blocked_by


def output_blocked(verdict: OutputVerdict, *, started: bool) -> Exception:
    """The error for an answer an output guardrail blocked: an HTTP 400 before anything
    was sent, an SSE error event once the stream has started."""
    message = verdict.message or f"Response blocked by {verdict.blocked_by}"
    if started:
        return StreamBlockedError(f"{message} (output guardrail {verdict.blocked_by})",
                                  verdict.blocked_by)  # fmt: skip
    return Refusal(400, {"message": message, "type": "policyd_output_blocked",
                        "blocked_by": verdict.blocked_by})  # fmt: skip


def output_unchecked() -> Refusal:
    """The answer to a request whose decision the hook no longer holds (dropped past the
    in-flight bound): its output guardrails cannot run, so it is refused, not passed."""
    message = ("policyd cannot check this answer: too many requests were in flight and its "
               "decision was dropped; retry")  # fmt: skip
    return Refusal(503, {"message": message, "type": "policyd_output_unchecked"})


def blocked(exc: PolicyBlockedError) -> Refusal:
    """A request the policy blocked: 429 with ``Retry-After`` on a budget, else 400 (and
    400 for a budget the request can never fit: retrying it is no use)."""
    reason = exc.decision.reason
    status = 429 if exc.kind == "budget" and reason != "too_large" else 400
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    error = {"message": exc.message, "type": "policyd_blocked", "blocked_by": exc.blocked_by,
             "kind": exc.kind, "reason": reason, "retry_after": exc.retry_after}  # fmt: skip
    return Refusal(status, error, headers)
