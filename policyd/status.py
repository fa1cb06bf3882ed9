"""Status: what an operator asks a running engine (revision, reloads, last error)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policyd.diagnostics import Diagnostic


@dataclass(frozen=True)
class Status:
    """What an operator asks a running engine: which revision, and what went wrong last.

    ``last_error``/``last_error_at`` describe the most recent rejected revision (kept as
    history); ``rejected_revision`` is the digest of files on disk that were rejected and
    are not serving right now, ``None`` once the files match a good revision again.
    """

    path: str
    revision: str
    policies: tuple[str, ...]
    loaded_at: datetime
    reloads: int
    rejected: int
    last_error_at: datetime | None
    last_error: tuple[Diagnostic, ...]
    watching: bool
    rejected_revision: str | None = None
    watch_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "revision": self.revision,
            "policies": list(self.policies),
            "loaded_at": self.loaded_at.isoformat(),
            "reloads": self.reloads,
            "rejected": self.rejected,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_error": [d.to_dict() for d in self.last_error],
            "watching": self.watching,
            "rejected_revision": self.rejected_revision,
            "watch_error": self.watch_error,
        }
