"""Prompts and rollouts: prompt files read (PD210), rollouts naming defined prompts and
versions (PD204, PD209), variant shares (PD401), and schedule order (PD402).

:func:`check_prompts` returns every prompt version's text, read once here for the compiler.
"""

from __future__ import annotations

from pathlib import Path as FsPath

from policyd import fields, model
from policyd.checks.base import (
    PROMPT_FILE,
    ROLLOUT_SUM,
    SCHEDULE_ORDER,
    UNKNOWN_PROMPT,
    UNKNOWN_VERSION,
    Checker,
    Path,
)
from policyd.loader import Document
from policyd.words import suggest


def check_prompts(
    policy: model.Policy, doc: Document, checker: Checker
) -> dict[tuple[str, str], str]:
    """Check prompts and rollouts; return each (prompt, version)'s text that could be read."""
    texts: dict[tuple[str, str], str] = {}
    base_dir = FsPath(doc.file).parent
    for prompt_name, prompt in policy.prompts.items():
        for version, spec in prompt.versions.items():
            path: Path = ("prompts", prompt_name, "versions", version)
            if spec.template is not None:
                texts[(prompt_name, version)] = spec.template
                continue
            assert spec.file is not None
            file = base_dir / spec.file
            try:
                texts[(prompt_name, version)] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = "does not exist" if isinstance(exc, FileNotFoundError) else str(exc)
                checker.add(
                    doc,
                    (*path, "file"),
                    PROMPT_FILE,
                    f"prompt file {str(file)!r} {reason}",
                    "paths are relative to the policy file's directory",
                )
    for i, rollout in enumerate(policy.rollouts):
        base: Path = ("rollouts", i)
        rolled = policy.prompts.get(rollout.prompt)
        if rolled is None:
            checker.add(
                doc,
                (*base, "prompt"),
                UNKNOWN_PROMPT,
                f"unknown prompt {rollout.prompt!r}",
                suggest(rollout.prompt, policy.prompts) or "define it under prompts:",
            )
            continue
        versions = rolled.versions
        refs: list[tuple[Path, str]] = [((*base, "default"), rollout.default)]
        refs += [((*base, "variants", v), v) for v in rollout.variants]
        for j, entry in enumerate(rollout.schedule):
            refs += [((*base, "schedule", j, "variants", v), v) for v in entry.variants]
        for path, version in refs:
            if version not in versions:
                checker.add(
                    doc,
                    path,
                    UNKNOWN_VERSION,
                    f"prompt {rollout.prompt!r} has no version {version!r}",
                    suggest(version, versions)
                    or f"defined versions: {', '.join(versions)}; add {version} under "
                    f"prompts.{rollout.prompt}.versions, or use one of those",
                    key=path[-2] == "variants",
                )
        shares = [((*base, "variants"), rollout.variants)]
        shares += [
            ((*base, "schedule", j, "variants"), e.variants) for j, e in enumerate(rollout.schedule)
        ]
        for path, variants in shares:
            _check_shares(doc, path, variants, checker)
        previous = None
        for j, entry in enumerate(rollout.schedule):
            at = fields.parse_timestamp(entry.at)
            if previous is not None and at <= previous:
                checker.add(
                    doc,
                    (*base, "schedule", j, "at"),
                    SCHEDULE_ORDER,
                    f"schedule entry {entry.at} is not after the one before it",
                    "list schedule entries in increasing time order",
                )
            previous = at
    return texts


def _check_shares(doc: Document, path: Path, variants: dict[str, float], checker: Checker) -> None:
    total = sum(variants.values())
    if abs(total - 100) > 1e-9:
        checker.add(
            doc,
            path,
            ROLLOUT_SUM,
            f"variant percentages sum to {total:g}, not 100",
            "adjust the shares so they add up to exactly 100",
        )
    for name, share in variants.items():
        if abs(share * 100 - round(share * 100)) > 1e-9:
            checker.add(
                doc,
                (*path, name),
                ROLLOUT_SUM,
                f"share {share:g}% of {name!r} is finer than 0.01%",
                "rollouts use 10,000 buckets: round to two decimals",
            )
