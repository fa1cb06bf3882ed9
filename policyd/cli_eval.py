"""``policyd eval``: decide one request read from a file and print the decision; also the
engine loading that ``policyd bench`` shares (a bundle with errors prints them, exit 1)."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any

import click

from policyd.bundle import load_bundle


@click.command("eval")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--request",
    "request_file",
    required=True,
    type=click.File("r"),
    help="JSON (or YAML) file with the request; - reads standard input.",
)
@click.option("--policy", help="Policy name; optional when the bundle has one policy.")
@click.option(
    "--now", help="Clock for this decision, ISO-8601 with zone (e.g. 2026-12-01T09:00:00Z)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the decision's to_dict() as JSON (without the redacted messages).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Show every stage's rules as a table: what matched, blocked or redacted, and the "
    "routing rules and input guardrails that did not fire.",
)
def eval_command(
    path: str, request_file: Any, policy: str | None, now: str | None, as_json: bool, explain: bool
) -> None:
    """Decide one request against a bundle and print the decision.

    When an input guardrail redacted, the text output also shows the messages as the
    model would receive them.
    """
    from policyd.cli_decision import print_decision, print_trace
    from policyd.engine import Engine
    from policyd.errors import RequestError
    from policyd.fields import parse_timestamp

    clock = None
    if now:
        try:
            fixed = parse_timestamp(now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None
        clock = _fixed(fixed)
    request = _read_request(request_file.read(), getattr(request_file, "name", "-"))
    engine = engine_or_exit(path, clock, Engine)
    if policy is None and len(engine.policies) > 1:
        names = ", ".join(sorted(engine.policies))
        raise click.UsageError(
            f"the bundle has {len(engine.policies)} policies ({names}): "
            "choose one with --policy NAME"
        )
    try:
        decision = engine.decide(request, policy=policy)
    except RequestError as exc:
        click.echo(f"policyd eval: {exc}", err=True)
        sys.exit(2)
    _warn_undeclared(request, engine.compiled.source.policies[decision.policy.name].policy)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2, default=str))
    else:
        print_decision(decision.to_dict(), decision.messages if decision.redacted else None)
    if explain:
        from policyd.explain import explain_rows

        compiled = load_bundle(path).policies[decision.policy.name].policy
        print_trace(explain_rows(compiled, decision.to_dict()["trace"]))


_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _warn_undeclared(request: Any, policy: Any) -> None:
    """Warn about a request attribute the policy never reads that looks like a typo of one
    it declares (the PD503 warning PolicyTest requests get): a misspelt ``tenant`` would
    otherwise decide as a request without a tenant, silently."""
    from policyd.checks.policytests import OPENAI_FIELDS
    from policyd.words import suggest

    declared = [str(k) for k in policy.context if k not in OPENAI_FIELDS]
    for key in request:
        name = str(key)
        if name in policy.context or name in OPENAI_FIELDS or not _NAME_LIKE.fullmatch(name):
            continue  # a key that is not name-like may be data: never echoed
        close = suggest(name, declared)
        if close:
            click.echo(
                f"policyd eval: warning: request attribute {name!r} is not declared by "
                f"policy {policy.metadata.name!r}, which never reads it; {close}",
                err=True,
            )


def _read_request(text: str, name: str) -> Any:
    """A request file: JSON, or YAML read like policy files (YAML 1.2: 'no' stays a string)."""
    from policyd.loader import load_text

    try:
        return json.loads(text)
    except ValueError:
        pass
    except RecursionError:
        raise click.BadParameter(
            "the request is nested too deeply", param_hint="--request"
        ) from None
    loaded = load_text(text, name)
    if loaded.diagnostics:
        first = loaded.diagnostics[0]
        raise click.BadParameter(
            f"{name}:{first.line}:{first.column}: not JSON, and not YAML: {first.message}"
            + (f" (hint: {first.hint})" if first.hint else ""),
            param_hint="--request",
        )
    if len(loaded.documents) != 1:
        raise click.BadParameter("expected one request mapping", param_hint="--request")
    return _plain(loaded.documents[0].data)


def _plain(value: Any) -> Any:
    """Loader data as JSON would give it: plain int/float, not YamlInt/YamlFloat."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _fixed(moment: datetime) -> Any:
    return lambda: moment


def engine_or_exit(path: str, clock: Any, engine_cls: Any) -> Any:
    """``engine_cls.from_path(path)``, or the bundle's errors printed and exit 1."""
    from policyd.diagnostics import PolicyError
    from policyd.render import render

    try:
        return engine_cls.from_path(path, clock=clock)
    except PolicyError as exc:
        bundle = load_bundle(path)
        click.echo(
            render([d for d in exc.diagnostics if d.is_error], "text", bundle.files), err=True
        )
        sys.exit(1)
