"""Prompts and rollouts: prompt files read (PD210), rollouts naming defined prompts and
versions (PD204, PD209), variant shares (PD401), and schedule order (PD402).

:func:`check_prompts` returns every prompt version's text, read once here for the compiler.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path as FsPath

from policyd import document, fields
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
from policyd.words import listing, suggest

#: Largest prompt file policyd reads (bytes); a prompt is sent with every call.
MAX_PROMPT_BYTES = 1024 * 1024


def read_prompt_file(file: FsPath) -> str:
    """A prompt file's UTF-8 text. Raises OSError or ValueError with the reason.

    Only regular files up to :data:`MAX_PROMPT_BYTES` are read: opening is
    non-blocking and the type is checked on the open descriptor, so a FIFO, a
    device such as /dev/zero or a directory is refused at once, never read.
    """
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("is not a regular file")
        if info.st_size > MAX_PROMPT_BYTES:
            raise ValueError(f"is larger than {MAX_PROMPT_BYTES:,} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_PROMPT_BYTES:  # the file may grow while it is read
            chunk = os.read(fd, MAX_PROMPT_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_PROMPT_BYTES:
            raise ValueError(f"is larger than {MAX_PROMPT_BYTES:,} bytes")
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None


def check_prompts(
    policy: document.Policy, doc: Document, checker: Checker
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
                texts[(prompt_name, version)] = read_prompt_file(file)
            except (OSError, ValueError) as exc:
                hint = "paths are relative to the policy file's directory"
                if isinstance(exc, FileNotFoundError):
                    reason = "does not exist"
                elif isinstance(exc, OSError):
                    reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
                else:
                    reason = str(exc)
                    hint = (
                        f"a prompt file is a regular UTF-8 text file of at most "
                        f"{MAX_PROMPT_BYTES:,} bytes"
                    )
                checker.add(
                    doc, (*path, "file"), PROMPT_FILE, f"prompt file {str(file)!r} {reason}", hint
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
                    or f"defined versions: {listing(versions)}; add {version} under "
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
