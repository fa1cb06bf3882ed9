"""A bundle: every document under a path, loaded, structure-checked and validated.

``load_bundle`` is the first half of the pipeline (load -> structure ->
validate). It never raises for a mistake in the files: the returned
:class:`Bundle` carries every diagnostic, and only policies without errors are
handed on to the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from policyd import document, loader, structure
from policyd.diagnostics import Diagnostic, has_errors, sort_diagnostics
from policyd.validate import Broken, PolicyContext, check_bundle
from policyd.words import hint_budget


@dataclass(frozen=True)
class Bundle:
    """The typed, validated content of a bundle and what was wrong with it."""

    path: str
    policies: dict[str, PolicyContext]
    tests: list[tuple[document.PolicyTest, loader.Document]]
    files: dict[str, str]
    diagnostics: list[Diagnostic]
    digest: str
    document_count: int = 0
    catalogs: list[tuple[document.ModelCatalog, loader.Document]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


@loader.gc_paused()
@hint_budget()  # one budget of "did you mean" comparisons per bundle read
def load_bundle(path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> Bundle:
    """Load, structure-check and validate every policy file under ``path`` (and ``more``
    paths: all of them are one bundle, so a policy may use a catalog given separately)."""
    loaded = loader.load_path(path)
    for extra in more:
        other = loader.load_path(extra)
        known = {os.path.realpath(f) for f in loaded.files}
        loaded.documents.extend(d for d in other.documents if os.path.realpath(d.file) not in known)
        for name, text in other.files.items():
            loaded.files.setdefault(name, text)
        loaded.diagnostics.extend(other.diagnostics)
    diagnostics = list(loaded.diagnostics)
    policies: list[tuple[document.Policy, loader.Document]] = []
    catalogs: list[tuple[document.ModelCatalog, loader.Document]] = []
    tests: list[tuple[document.PolicyTest, loader.Document]] = []
    broken = Broken()
    for doc in loaded.documents:
        typed, problems = structure.to_model(doc)
        diagnostics.extend(problems)
        if typed is None and problems:
            typed, removed = structure.repair(doc)
            broken.note(doc, typed, removed)
        if isinstance(typed, document.Policy):
            policies.append((typed, doc))
        elif isinstance(typed, document.ModelCatalog):
            catalogs.append((typed, doc))
        elif isinstance(typed, document.PolicyTest):
            tests.append((typed, doc))
    contexts, semantic = check_bundle(policies, catalogs, tests, broken)
    diagnostics.extend(semantic)
    return Bundle(
        path=os.fspath(path),
        policies=contexts,
        tests=tests,
        files=loaded.files,
        diagnostics=sort_diagnostics(diagnostics),
        digest=_digest(loaded.files, contexts),
        document_count=len(loaded.documents),
        catalogs=catalogs,
    )


def _digest(files: dict[str, str], contexts: dict[str, PolicyContext]) -> str:
    """Content digest of a revision: every YAML file and every prompt file it reads."""
    h = hashlib.sha256()
    # names relative to the files' common directory: the same files hash the same wherever
    # they are mounted and whatever the working directory (a git:REV checkout, two hosts)
    absolute = {name: os.path.abspath(name) for name in files}
    root = os.path.commonpath(list(absolute.values())) if absolute else ""
    if len(absolute) == 1:
        root = os.path.dirname(root)
    for name in sorted(files, key=lambda n: os.path.relpath(absolute[n], root)):
        h.update(os.path.relpath(absolute[name], root).encode())
        h.update(b"\0")
        h.update(files[name].encode())
        h.update(b"\0")
    for policy in sorted(contexts):
        for (prompt, version), text in sorted(contexts[policy].prompt_texts.items()):
            h.update(f"{policy}/{prompt}/{version}".encode())
            h.update(b"\0")
            h.update(text.encode())
            h.update(b"\0")
    return h.hexdigest()


def policy_digest(ctx: PolicyContext) -> str:
    """Content digest of one policy: its document, the models and prompt texts it uses."""
    payload: dict[str, Any] = {
        "policy": ctx.policy.model_dump(mode="json", by_alias=True),
        "models": {k: v.model_dump(mode="json") for k, v in sorted(ctx.models.items())},
        "prompts": {f"{p}/{v}": t for (p, v), t in sorted(ctx.prompt_texts.items())},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
