"""Build a new revision of a bundle off to the side: load, compare, compile, test gate.

:func:`build_revision` returns what happened (``Accepted``, ``Rejected`` or
``Unchanged``); :meth:`policyd.engine.Engine.reload` only swaps and records status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from policyd.bundle import load_bundle
from policyd.compile import CompiledBundle, compile_bundle
from policyd.diagnostics import Diagnostic, PolicyError
from policyd.reload.revisions import gate_revision, internal_error, same_revision

log = logging.getLogger("policyd")


@dataclass(frozen=True)
class Unchanged:
    """The files hold the serving revision's content: nothing to swap."""


@dataclass(frozen=True)
class Rejected:
    """The files could not become a revision; ``digest`` is None when they did not load."""

    digest: str | None
    errors: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Accepted:
    compiled: CompiledBundle


def build_revision(
    path: str, current: CompiledBundle, runtime: Any, counter: Any
) -> Accepted | Rejected | Unchanged:
    bundle = None
    try:
        bundle = load_bundle(path)
        if bundle.ok and same_revision(bundle, current):
            return Unchanged()
        compiled = compile_bundle(bundle, runtime, token_counter=counter)
        gate_revision(bundle)
    except Exception as exc:
        if isinstance(exc, PolicyError):
            errors = tuple(d for d in exc.diagnostics if d.is_error)
        else:
            log.exception("policyd: building a revision of %s failed", path)
            errors = (internal_error(path, exc),)
        return Rejected(bundle.digest if bundle is not None else None, errors)
    return Accepted(compiled)
