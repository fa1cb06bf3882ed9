"""Helpers shared by the loader, YAML 1.2 and source-map tests."""

from __future__ import annotations

from policyd.loader import Document, load_text


def one(text: str | bytes) -> Document:
    """The single document of ``text``, which must load cleanly."""
    result = load_text(text)
    assert result.ok, result.diagnostics
    assert len(result.documents) == 1
    return result.documents[0]


def problem(text: str | bytes) -> tuple[str, int, int, str]:
    """The single diagnostic for ``text``: (code, line, column, message)."""
    result = load_text(text)
    assert not result.ok and not result.documents
    assert len(result.diagnostics) == 1, result.diagnostics
    d = result.diagnostics[0]
    assert d.hint, "every loader error carries a fix hint"
    return d.code, d.line, d.column, d.message
