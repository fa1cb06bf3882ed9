"""``policyd watch PATH [--shadow CANDIDATE --requests FILE]``: tail a bundle's revisions.

Without ``--shadow`` it prints each accepted revision and each rejection (the loop is
:func:`policyd.reload.run_watch`); with it, a shadow comparison on recorded requests kept
up to date as either bundle changes (:mod:`policyd.watch_shadow`).
"""

from __future__ import annotations

import sys

import click


@click.command("watch")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--debounce",
    "debounce_ms",
    type=click.IntRange(0, 60_000),
    default=200,
    show_default=True,
    help="Wait this many ms after the last change before reloading.",
)
@click.option(
    "--shadow",
    "candidate",
    type=click.Path(exists=True),
    help="A candidate bundle to compare with PATH on the requests in --requests, again "
    "after every accepted revision of either.",
)
@click.option(
    "--requests",
    "requests_file",
    type=click.Path(exists=True, dir_okay=False),
    help="With --shadow: a decision log or JSON Lines of requests to compare on.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="With --shadow: also compare lines appended to --requests as they arrive "
    "(the app's decision log as it grows), one line per changed decision.",
)
@click.option("--policy", help="With --shadow: decide every request under this policy.")
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="With --shadow: how many transitions and rules each report shows.",
)
def watch_command(
    path: str,
    debounce_ms: int,
    candidate: str | None,
    requests_file: str | None,
    follow: bool,
    policy: str | None,
    top: int,
) -> None:
    """Watch a bundle and print each accepted revision or rejection (Ctrl-C stops).

    What an operator tails during a rollout: every accepted revision with its name,
    version, digest and what changed; every rejected one with its diagnostics. The
    last good revision keeps serving while the files are broken.

    With --shadow CANDIDATE --requests FILE it is a shadow revision kept up to date:
    at start and after every accepted revision of PATH or CANDIDATE, every request in
    FILE is decided under both (as `policyd diff` does: same clock and ids, budgets on
    an in-memory store, no real store touched) and the differences are printed.
    """
    shadow_only = [
        name
        for name, given in (
            ("--requests", requests_file),
            ("--follow", follow),
            ("--policy", policy),
        )
        if given
    ]
    if candidate is None:
        if shadow_only:
            raise click.UsageError(f"{shadow_only[0]} needs --shadow CANDIDATE")
        from policyd.reload import run_watch

        sys.exit(run_watch(path, echo=click.echo, debounce_ms=debounce_ms))
    if requests_file is None:
        raise click.UsageError(
            "--shadow needs --requests FILE: the decision log or JSON Lines of requests "
            "to compare the two bundles on"
        )
    from policyd.watch_shadow import run_shadow_watch

    sys.exit(
        run_shadow_watch(
            path,
            candidate,
            requests_file,
            echo=click.echo,
            debounce_ms=debounce_ms,
            policy=policy,
            top=top,
            follow=follow,
        )
    )
