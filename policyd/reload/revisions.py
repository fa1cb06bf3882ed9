"""Revisions: is a loaded bundle new, may it go live, and what changed at a glance.

Owns the checks a revision must pass beyond compiling (:func:`gate_revision`:
``reload.require_tests``), content identity (:func:`same_revision`) and the difference
between two revisions (:func:`diff_revisions`) that events and ``policyd watch`` show.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policyd.bundle import policy_digest
from policyd.diagnostics import Diagnostic, PolicyError, Severity

log = logging.getLogger("policyd")

if TYPE_CHECKING:
    from policyd.bundle import Bundle
    from policyd.compile import CompiledBundle

TESTS_FAILED = "PD601"
NO_TESTS = "PD602"
INTERNAL = "PD690"


def prompt_files(compiled: CompiledBundle) -> frozenset[str]:
    """Absolute paths of the prompt files a revision reads (``file:`` prompt versions)."""
    out = set()
    for ctx in compiled.source.policies.values():
        base = os.path.dirname(os.path.abspath(ctx.document.file))
        for prompt in ctx.policy.prompts.values():
            for spec in prompt.versions.values():
                if spec.file is not None:
                    out.add(os.path.normpath(os.path.join(base, spec.file)))
    return frozenset(out)


# --- gating a revision -----------------------------------------------------------------------


def same_revision(bundle: Bundle, current: CompiledBundle) -> bool:
    """True when ``bundle`` has the content ``current`` serves (files and prompt texts)."""
    if bundle.digest != current.digest or set(bundle.policies) != set(current.policies):
        return False
    return all(
        policy_digest(ctx) == current.policies[name].ref.digest
        for name, ctx in bundle.policies.items()
    )


def gate_revision(bundle: Bundle) -> None:
    """Raise PolicyError when a policy sets ``reload.require_tests`` and its tests fail.

    Each failing case becomes one diagnostic at the case's line in its PolicyTest file.
    """
    required = {
        name
        for name, ctx in bundle.policies.items()
        if ctx.policy.reload is not None and ctx.policy.reload.require_tests
    }
    if not required:
        return
    from policyd.testing import run_tests

    results, _ = run_tests(bundle)
    problems = []
    for r in results:
        if r.policy not in required or r.passed:
            continue
        what = r.error or "; ".join(
            f"{m.path}: expected {m.expected!r}, got {m.to_dict()['actual']!r}"
            for m in r.mismatches
        )
        problems.append(
            Diagnostic(
                r.file,
                r.line,
                1,
                Severity.ERROR,
                TESTS_FAILED,
                f"test case {r.case!r} of policy {r.policy!r} failed: {what}",
                "the policy sets reload.require_tests, so a revision whose tests fail "
                "is not loaded; run `policyd test` on it",
            )
        )
    tested = {r.policy for r in results}
    for name in sorted(required - tested):
        ctx = bundle.policies[name]
        line = ctx.document.source_map.key(("reload", "require_tests")).line
        problems.append(
            Diagnostic(
                ctx.document.file,
                line,
                1,
                Severity.ERROR,
                NO_TESTS,
                f"policy {name!r} sets reload.require_tests but no PolicyTest case tests it",
                "add a PolicyTest with `policy: " + name + "`, or drop require_tests",
            )
        )
    if problems:
        raise PolicyError(problems)


def internal_error(path: str, exc: BaseException) -> Diagnostic:
    """A diagnostic for a bug hit while building a revision (it is rejected, not crashed on)."""
    return Diagnostic(
        path,
        1,
        1,
        Severity.ERROR,
        INTERNAL,
        f"internal error while compiling: {type(exc).__name__}: {exc}",
        "this is a policyd bug; the log has the traceback, please report it",
    )


# --- what changed ----------------------------------------------------------------------------

_SECTIONS = (
    "context",
    "models",
    "tiers",
    "routing",
    "budgets",
    "guardrails",
    "cache",
    "prompts",
    "rollouts",
    "reload",
)


@dataclass(frozen=True)
class PolicyChange:
    """One policy that differs between two revisions."""

    name: str
    old_version: str | None
    new_version: str | None
    digest: str
    sections: tuple[str, ...]  # which top-level sections differ ("prompt texts", "models"...)

    def __str__(self) -> str:
        version = self.new_version or "-"
        if self.old_version != self.new_version:
            version = f"{self.old_version or '-'} -> {version}"
        changed = ", ".join(self.sections) or "metadata"
        return f"{self.name} {version} ({self.digest}): {changed}"


@dataclass(frozen=True)
class RevisionDiff:
    """What an operator wants to see at a glance when a new revision goes live."""

    added: tuple[str, ...]  # policies
    removed: tuple[str, ...]
    changed: tuple[PolicyChange, ...]
    files_added: tuple[str, ...]
    files_removed: tuple[str, ...]
    files_changed: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [f"+ policy {name}" for name in self.added]
        out += [f"- policy {name}" for name in self.removed]
        out += [f"~ policy {change}" for change in self.changed]
        files = [f"+{f}" for f in self.files_added] + [f"-{f}" for f in self.files_removed]
        files += [f"~{f}" for f in self.files_changed]
        if files:
            out.append("files: " + " ".join(files))
        return out or ["no policy changed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [
                {
                    "name": c.name,
                    "old_version": c.old_version,
                    "new_version": c.new_version,
                    "digest": c.digest,
                    "sections": list(c.sections),
                }
                for c in self.changed
            ],
            "files_added": list(self.files_added),
            "files_removed": list(self.files_removed),
            "files_changed": list(self.files_changed),
        }


def diff_revisions(old: CompiledBundle, new: CompiledBundle) -> RevisionDiff:
    """Policies added, removed and changed (with the sections that differ), and files."""
    changed = []
    for name in sorted(set(old.policies) & set(new.policies)):
        before, after = old.policies[name], new.policies[name]
        if before.ref.digest == after.ref.digest:
            continue
        sections = _changed_sections(old.source.policies[name], new.source.policies[name])
        changed.append(
            PolicyChange(name, before.ref.version, after.ref.version, after.ref.digest, sections)
        )
    old_files, new_files = old.source.files, new.source.files
    return RevisionDiff(
        added=tuple(sorted(set(new.policies) - set(old.policies))),
        removed=tuple(sorted(set(old.policies) - set(new.policies))),
        changed=tuple(changed),
        files_added=tuple(sorted(set(new_files) - set(old_files))),
        files_removed=tuple(sorted(set(old_files) - set(new_files))),
        files_changed=tuple(
            sorted(f for f in set(old_files) & set(new_files) if old_files[f] != new_files[f])
        ),
    )


def _changed_sections(before: Any, after: Any) -> tuple[str, ...]:
    a = before.policy.model_dump(mode="json", by_alias=True)
    b = after.policy.model_dump(mode="json", by_alias=True)
    out = [s for s in _SECTIONS if a.get(s) != b.get(s)]
    if before.models != after.models and "models" not in out:
        out.append("models")
    if before.prompt_texts != after.prompt_texts:
        out.append("prompt texts")
    return tuple(out)


def went_live(
    path: str, current: CompiledBundle, compiled: CompiledBundle, took_ms: float, extra: Any
) -> dict[str, Any]:
    """Log that ``compiled`` replaced ``current`` and return the ``reloaded`` event."""
    diff = diff_revisions(current, compiled)
    log.info(
        "policyd: revision %s of %s is live (was %s, built in %.0f ms): %s",
        compiled.digest[:12],
        path,
        current.digest[:12],
        took_ms,
        "; ".join(diff.lines()),
    )
    return {
        "type": "reloaded",
        "path": path,
        "revision": compiled.digest,
        "previous": current.digest,
        "at": compiled.loaded_at.isoformat(),
        "compile_ms": took_ms,
        "policies": {n: p.ref.to_dict() for n, p in compiled.policies.items()},
        "changes": diff.to_dict(),
        "diff_lines": diff.lines(),
        **extra,
    }
