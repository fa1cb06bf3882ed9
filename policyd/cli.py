"""The ``policyd`` command line: parse arguments, call the library, render results; the
commands with a module of their own (``cli_eval``, ``cli_diff``, ``cli_budgets``,
``cli_watch``) load when run.

Exit codes everywhere: 0 success, 1 the policies (or a test) failed, 2 usage
errors (bad option, missing path, unreadable request file).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

import click

from policyd import __version__
from policyd.bundle import Bundle, load_bundle
from policyd.diagnostics import Diagnostic, Severity, sort_diagnostics

FORMATS = ("text", "json", "github", "sarif")
CheckFormat = Literal["text", "json", "github", "sarif"]


def _load_all(
    paths: Sequence[str], each: bool = False
) -> tuple[list[Bundle], list[Diagnostic], dict[str, str]]:
    """All paths as one bundle, or (``each``) every path as its own bundle."""
    bundles = [load_bundle(p) for p in paths] if each else [load_bundle(*paths)]
    diagnostics = sort_diagnostics(d for b in bundles for d in b.diagnostics)
    files: dict[str, str] = {}
    for bundle in bundles:
        files.update(bundle.files)
    return bundles, diagnostics, files


#: Commands in a module of their own: name -> (module, attribute), imported when run or listed.
_LAZY = {
    "budgets": ("policyd.cli_budgets", "budgets_command"),
    "diff": ("policyd.cli_diff", "diff_command"),
    "eval": ("policyd.cli_eval", "eval_command"),
    "watch": ("policyd.cli_watch", "watch_command"),
}


class _Commands(click.Group):
    """The commands, those of their own module loaded only when run or listed (``--help``):
    ``policyd check``, which a pre-commit hook runs on every commit, imports none of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            module, attribute = _LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="policyd")
def main() -> None:
    """policyd: versioned YAML policies for LLM apps, checked in CI and decided in microseconds.

    \b
    Typical use:
      policyd check policies/                 # validate (CI, pre-commit)
      policyd test policies/ --coverage       # run PolicyTest cases
      policyd eval policies/ --request req.json --policy support-bot --explain
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people; json (list of problems); github (workflow annotations); "
    "sarif (SARIF 2.1.0 for code scanning).",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only errors.")
@click.option(
    "--each",
    is_flag=True,
    help="Treat every PATH as a bundle of its own (by default all PATHs are one bundle).",
)
@click.option(
    "--show-info/--no-info",
    default=False,
    show_default=True,
    help="Also show info notes (e.g. expressions on the slow CEL path).",
)
def check(
    paths: tuple[str, ...], fmt: CheckFormat, strict: bool, show_info: bool, each: bool
) -> None:
    """Validate a policy bundle (files or directories of YAML), reporting every problem.

    All PATHs together are one bundle (a policy may use a catalog named separately,
    e.g. policyd check policies/*.yaml); --each checks every PATH on its own.

    Each problem has a file:line:column, a stable code (PDxxx), a message and a hint.
    Exit 0 when clean, 1 on errors (or on warnings with --strict), 2 on usage errors.
    """
    from policyd.render import render

    _, diagnostics, files = _load_all(paths, each)
    shown = [d for d in diagnostics if show_info or d.severity is not Severity.INFO]
    output = render(shown, fmt, files, color=fmt == "text" and sys.stdout.isatty())
    if output:
        click.echo(output)
    failing = any(d.is_error for d in diagnostics) or (
        strict and any(d.severity is Severity.WARNING for d in diagnostics)
    )
    # The interpreter's exit walks every live object in full collections, the loader's
    # reuse of what it read included (1.2 s of a 3.2 s check of 1,000 policies); frozen
    # objects are skipped. Frozen at exit, not now, so a caller running check in-process
    # keeps its collector as it was (Python promises no finalizers at exit either way).
    atexit.unregister(gc.freeze)  # once, however many checks ran
    atexit.register(gc.freeze)
    sys.exit(1 if failing else 0)


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--coverage",
    is_flag=True,
    help="List routing rules, input and output guardrails, cache rules and rollout variants "
    "that no case reached.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--each",
    is_flag=True,
    help="Treat every PATH as a bundle of its own (by default all PATHs are one bundle).",
)
def test_command(paths: tuple[str, ...], coverage: bool, fmt: str, each: bool) -> None:
    """Run the PolicyTest cases of a bundle; exit 1 if any case fails or there is none.

    All PATHs together are one bundle; --each runs every PATH as its own.

    A case's expect keys are dotted paths into the decision's to_dict(), e.g.
    tier, fallbacks, cache.ttl_s, prompts.support-system.version. A case with an
    output (the model's answer) also checks it with the output guardrails; expect
    output.allowed, output.blocked_by, output.text, output.findings.0.label, ...
    """
    from policyd.render import render
    from policyd.testing import run_tests

    bundles, diagnostics, files = _load_all(paths, each)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        click.echo(render(errors, "text", files), err=True)
        click.echo("policyd test: fix the errors above first (policyd check)", err=True)
        sys.exit(1)
    results = []
    missed: dict[str, list[tuple[str, str]]] = {}
    for bundle in bundles:
        bundle_results, cov = run_tests(bundle)
        results.extend(bundle_results)
        missed.update(cov.missed())
    failed = [r for r in results if not r.passed]
    if fmt == "json":
        payload: dict[str, Any] = {
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "cases": [r.to_dict() for r in results],
        }
        if coverage:
            payload["not_covered"] = {p: [list(i) for i in v] for p, v in missed.items()}
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        _print_test_text(results, missed if coverage else None)
    if not results:
        click.echo(
            "policyd test: no PolicyTest cases found: add a kind: PolicyTest document "
            "with cases (see the README, kind: PolicyTest)",
            err=True,
        )
        sys.exit(1)
    sys.exit(1 if failed else 0)


def _print_test_text(results: list[Any], missed: dict[str, list[tuple[str, str]]] | None) -> None:
    for r in results:
        mark = click.style("PASS", fg="green") if r.passed else click.style("FAIL", fg="red")
        run = f", run {r.run}" if r.run > 1 else ""
        click.echo(f"{mark} {r.policy}: {r.case}  ({r.file}:{r.line}{run})")
        if r.error:
            click.echo(f"     error: {r.error}")
        for m in r.mismatches:
            actual = "<missing>" if m.to_dict()["missing"] else json.dumps(m.actual, default=str)
            click.echo(f"     {m.path}:")
            click.echo(f"       expected: {json.dumps(m.expected, default=str)}")
            click.echo(f"       actual:   {actual}")
        if r.why:
            click.echo("     why:")
            for line in r.why:
                click.echo(f"       {line}")
    if missed is not None:
        if missed:
            click.echo("\nNot covered by any case:")
            for policy, items in sorted(missed.items()):
                for kind, name in items:
                    click.echo(f"  {policy}: {kind} {name}")
        else:
            click.echo(
                "\nCoverage: every routing rule, input and output guardrail, cache rule and "
                "variant was reached."
            )
    failed = sum(not r.passed for r in results)
    click.echo(f"\n{len(results) - failed} passed, {failed} failed")


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
def schema(output: str | None) -> None:
    """Print the JSON Schema of policy files (for editors and CI)."""
    from policyd.document import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
    _write_or_echo("schema", output, text)


def _write_or_echo(command: str, output: str | None, text: str) -> None:
    """Write ``text`` to ``output`` (exit 2 with a message, never a traceback, when the
    file cannot be written), or print it."""
    if not output:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        parent = os.path.dirname(output) or "."
        hint = (
            f"create the directory first (mkdir -p {parent})"
            if not os.path.isdir(parent)
            else "check the path and its permissions"
        )
        click.echo(f"policyd {command}: cannot write {output}: {exc.strerror}; {hint}", err=True)
        sys.exit(2)


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--policy", help="Only this policy (default: every policy with PolicyTest cases).")
@click.option(
    "--n",
    "calls",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="Timed decide() calls per policy.",
)
@click.option(
    "--stages", is_flag=True, help="Then time each stage of the decision (mean µs, share)."
)
def bench(path: str, policy: str | None, calls: int, stages: bool) -> None:
    """Time decide() on a bundle: median, p99 and decisions per second per policy.

    The requests are the bundle's own PolicyTest cases (each policy's cases, in a
    loop), decided with an in-memory store; a policy without cases is timed on an
    empty request. ``--stages`` then prints a second table: per stage, how many
    decisions reached it, its mean time and its share of decide().
    """
    from policyd.benchmark import run_bench, run_stage_bench
    from policyd.cli_eval import engine_or_exit
    from policyd.words import suggest

    engine = engine_or_exit(path, None, _engine_class())
    if policy is not None and policy not in engine.policies:
        known = ", ".join(sorted(engine.policies))
        hint = suggest(policy, engine.policies) or f"policies: {known}"
        click.echo(f"policyd bench: unknown policy {policy!r} ({hint})", err=True)
        sys.exit(2)
    bundle = load_bundle(path)
    for line in run_bench(engine, bundle, policy=policy, calls=calls):
        click.echo(line)
    if stages:
        click.echo("")
        for line in run_stage_bench(bundle, policy=policy, calls=calls):
            click.echo(line)


def _engine_class() -> Any:
    from policyd.engine import Engine

    return Engine


@main.group()
def export() -> None:
    """Export a policy's routing to other tools' configuration formats."""


@export.command("litellm")
@click.argument("path", type=click.Path(exists=True))
@click.option("--policy", help="Policy name; optional when the bundle has one policy.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
def export_litellm(path: str, policy: str | None, output: str | None) -> None:
    """Write a LiteLLM proxy config.yaml (model_list, router_settings) from a policy."""
    from policyd.diagnostics import PolicyError
    from policyd.errors import RequestError
    from policyd.integrations.litellm_export import export_litellm
    from policyd.render import render

    try:
        text, missing = export_litellm(path, policy)
    except PolicyError as exc:
        errors = [d for d in exc.diagnostics if d.is_error]
        click.echo(render(errors, "text", load_bundle(path).files), err=True)
        sys.exit(1)
    except RequestError as exc:
        click.echo(f"policyd export: {exc}", err=True)
        sys.exit(2)
    for line in missing:  # also in the file's header
        click.echo(f"policyd export: not expressed in the LiteLLM config: {line}", err=True)
    _write_or_echo("export", output, text)


if __name__ == "__main__":  # pragma: no cover
    main()
