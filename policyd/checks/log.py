"""The ``log:`` section: every attribute a decision log keeps is one the request can have."""

from __future__ import annotations

from typing import Any

from policyd import document
from policyd.checks.base import Checker
from policyd.loader import Document
from policyd.words import suggest

BAD_LOG_FIELD = "PD220"


def check_log(
    policy: document.Policy, doc: Document, declarations: dict[str, Any], checker: Checker
) -> None:
    """``log.request`` paths name declared (or built-in) request attributes."""
    if policy.log is None or policy.log.request is None:
        return
    for i, path in enumerate(policy.log.request):
        if path == "messages" or path.startswith("messages."):
            checker.add(
                doc,
                ("log", "request", i),
                BAD_LOG_FIELD,
                "message text is never written to decision logs",
                "remove it; use log.messages (lengths, count or none) for a summary",
            )
            continue
        decl: Any = declarations["request"]
        for part in path.split("."):
            if isinstance(decl, dict) and part in decl:
                decl = decl[part]
            elif isinstance(decl, str) and decl.startswith(("map<", "dyn")):
                break  # inside a map: any key may be present
            else:
                options = decl if isinstance(decl, dict) else {}
                checker.add(
                    doc,
                    ("log", "request", i),
                    BAD_LOG_FIELD,
                    f"log field {path!r} is not a request attribute",
                    suggest(part, options)
                    or "use a declared context attribute (tenant.id, ...) "
                    "or model, max_tokens, temperature, input_tokens, metadata",
                )
                break
