"""``policyd diff BASE HEAD --requests FILE``: what a policy change does to recorded traffic.

BASE and HEAD are bundle paths or ``git:REV`` (the bundle at that revision of the git
repository the other side's path lives in; ``git:REV:PATH`` names the path). A git
revision is extracted with ``git archive`` into a temporary directory. Modules only
``diff`` uses are imported when it runs: every ``policyd`` command imports this one.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from policyd.diff_report import FAIL_ON_HELP

if TYPE_CHECKING:
    import tarfile


def _git(cwd: Path, *args: str) -> bytes:
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise click.UsageError("git:REV needs git, which is not installed") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise click.UsageError(
            f"git {' '.join(args[:2])} failed in {cwd}: {err[-1] if err else '?'}"
        )
    return done.stdout


def resolve(spec: str, other: str, scratch: Path, name: str) -> tuple[str, str]:
    """(bundle path to load, label) for a BASE or HEAD argument."""
    if not spec.startswith("git:"):
        if not os.path.exists(spec):
            raise click.BadParameter(f"no such file or directory: {spec}", param_hint=name)
        return spec, spec
    rev, _, path = spec[4:].partition(":")
    if not rev:
        raise click.BadParameter("write git:REV, e.g. git:origin/main", param_hint=name)
    if not path:
        path = other[4:].partition(":")[2] if other.startswith("git:") else other
        if not path:
            raise click.BadParameter(
                "both sides are git revisions: name the bundle, e.g. git:main:policies/",
                param_hint=name,
            )
    target = Path(path).resolve()
    here = target if target.is_dir() else target.parent
    probe = here if here.exists() else Path.cwd()
    top = Path(_git(probe, "rev-parse", "--show-toplevel").decode().strip())
    try:
        short = _git(top, "rev-parse", "--short", f"{rev}^{{commit}}").decode().strip()
    except click.UsageError:
        raise click.BadParameter(
            f"git:{rev}: no such revision in {top} (a branch, tag or commit, e.g. git:main)",
            param_hint=name,
        ) from None
    directory = (here if target.suffix not in (".yaml", ".yml") else target.parent).relative_to(top)
    data = _git(top, "archive", "--format=tar", rev, "--", str(directory) or ".")
    out = scratch / name
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        _extract(archive, out)
    return str(out / target.relative_to(top)), f"{rev} ({short})"


def _extract(archive: tarfile.TarFile, out: Path) -> None:
    """Extract ``git archive`` output: with tarfile's ``data`` filter where Python has it
    (3.11.4+), else regular files and folders only, each kept inside ``out``."""
    import tarfile

    if hasattr(tarfile, "data_filter"):
        archive.extractall(out, filter="data")
        return
    root = out.resolve()
    for member in archive.getmembers():
        dest = (root / member.name).resolve()
        if not dest.is_relative_to(root) or not (member.isfile() or member.isdir()):
            continue  # git writes neither links out of the tree nor devices; skip them anyway
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        source = archive.extractfile(member)
        if source is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(source.read())


@click.command("diff")
@click.argument("base")
@click.argument("head")
@click.option(
    "--requests",
    "requests_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A decision log (JSON Lines) or JSON Lines of requests.",
)
@click.option("--policy", help="Decide every request under this policy (default: as logged).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown is a pull-request comment.",
)
@click.option(
    "--fail-on", "fail_on", multiple=True, help=f"Exit 1 when: {FAIL_ON_HELP}. Repeatable."
)
@click.option("--now", help="Clock for requests without a logged time (ISO-8601; default now).")
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="How many transitions and rules to show.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=min(4, os.cpu_count() or 1),
    show_default=True,
    help="Processes to replay in (one when a side has budgets: their order matters).",
)
def diff_command(
    base: str,
    head: str,
    requests_file: str,
    policy: str | None,
    fmt: str,
    fail_on: tuple[str, ...],
    now: str | None,
    top: int,
    jobs: int,
) -> None:
    """Decide recorded requests under BASE and HEAD and report what changes.

    BASE and HEAD are bundle paths or git:REV (e.g. `policyd diff git:origin/main policies/
    --requests decisions.jsonl`). Every request is decided under both with the same clock
    and decision id; budgets run on a fresh in-memory store per side. Exit 0, or 1 when a
    --fail-on condition holds, 2 on usage errors.
    """
    from policyd.diagnostics import PolicyError
    from policyd.diff import Side, diff_file
    from policyd.diff_report import failures, render
    from policyd.fields import parse_timestamp

    clock = datetime.now(UTC)
    if now:
        try:
            clock = parse_timestamp(now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="policyd-diff-") as scratch:
        sides = []
        for spec, other, name in ((base, head, "BASE"), (head, base, "HEAD")):
            path, label = resolve(spec, other, Path(scratch), name)
            try:
                sides.append(Side(path, label, clock))
            except PolicyError as exc:
                from policyd.render import render as render_diagnostics

                errors = [d for d in exc.diagnostics if d.is_error]
                click.echo(f"policyd diff: {name} {label} does not compile:", err=True)
                click.echo(render_diagnostics(errors, "text", {}), err=True)
                sys.exit(1)
        try:
            report = diff_file(
                sides[0], sides[1], requests_file, policy=policy, now=clock, jobs=jobs
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--requests") from None
    try:
        failed = failures(report, fail_on)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    click.echo(render(report, fmt, top), nl=fmt != "markdown")
    if failed:
        click.echo("policyd diff: failing: " + "; ".join(failed), err=True)
        sys.exit(1)
