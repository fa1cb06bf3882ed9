"""Render a :class:`~policyd.diff.DiffReport` as text, Markdown (a PR comment) or JSON, and
decide ``--fail-on``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from policyd.errors import ConfigError

if TYPE_CHECKING:  # policyd.diff imports the compiler: not for `policyd diff --help`
    from policyd.diff import DiffReport

FAIL_ON_HELP = (
    "any (any decision changed), newly-blocked, errors, a field (allowed, blocked_by, tier, "
    "model, fallbacks, cache_ttl, prompts, budgets), or cost>PCT (estimated cost up more "
    "than PCT percent, e.g. cost>5)"
)


def failures(report: DiffReport, conditions: tuple[str, ...]) -> list[str]:
    """The --fail-on conditions that hold, each as a sentence; ConfigError for a bad one."""
    from policyd.diff import FIELDS

    out = []
    for raw in conditions:
        cond = raw.strip()
        if cond == "any":
            if report.changed:
                out.append(f"{report.changed:,} decisions changed")
        elif cond == "newly-blocked":
            if report.newly_blocked:
                out.append(f"{report.newly_blocked:,} requests newly blocked")
        elif cond == "errors":
            if report.errors:
                out.append(f"{sum(report.errors.values()):,} requests could not be replayed")
        elif cond.startswith("cost>"):
            try:
                limit = float(cond[5:].rstrip("%"))
            except ValueError:
                raise ConfigError(f"--fail-on {raw!r}: write cost>PCT, e.g. cost>5") from None
            pct = report.cost_delta_pct
            if pct is not None and pct > limit:
                out.append(f"estimated cost up {pct:.1f}% (more than {limit:g}%)")
        elif cond in FIELDS or cond in ("prompts", "budgets"):
            prefix = {"prompts": "prompt ", "budgets": "budget "}.get(cond)
            n = sum(
                v
                for k, v in report.by_field.items()
                if (k.startswith(prefix) if prefix else k == cond)
            )
            if n:
                out.append(f"{cond} changed for {n:,} requests")
        else:
            raise ConfigError(f"--fail-on {raw!r} is not a condition; use {FAIL_ON_HELP}")
    return out


def _usd(micros: int) -> str:
    return f"${micros / 1e6:,.2f}"


def _delta(report: DiffReport) -> str:
    delta = report.head_micros - report.base_micros
    sign = "+" if delta >= 0 else "-"
    pct = report.cost_delta_pct
    tail = f" ({pct:+.1f}%)" if pct is not None else ""
    return f"{sign}${abs(delta) / 1e6:,.2f}{tail}"


def _share(n: int, total: int) -> str:
    return f"{n * 100.0 / total:.1f}%" if total else "0%"


def render_text(report: DiffReport, top: int = 10, title: str = "policyd diff") -> str:
    lines = [
        f"{title}: {report.base} ({report.base_digest[:12]}) -> "
        f"{report.head} ({report.head_digest[:12]})",
        f"{report.requests:,} requests replayed, {report.changed:,} decisions changed "
        f"({_share(report.changed, report.decided)}), "
        f"{sum(report.errors.values()):,} not replayed",
        f"newly blocked {report.newly_blocked:,}, newly allowed {report.newly_allowed:,}",
    ]
    for why, n in sorted(report.errors.items()):
        lines.append(f"  not replayed: {why}: {n:,}")
    if report.by_field:
        lines += ["", "changed fields"]
        lines += [f"  {k:<28} {n:>9,}" for k, n in report.by_field.most_common()]
        lines += ["", "top transitions"]
        lines += [
            f"  {f} {a} -> {b}".ljust(60) + f" {n:>9,}"
            for (f, a, b), n in report.transitions.most_common(top)
        ]
        lines += ["", "rules responsible (+ head only, - base only)"]
        lines += [f"  {s}".ljust(60) + f" {n:>9,}" for s, n in report.rules.most_common(top)]
    if report.priced or report.unpriced:
        lines += [
            "",
            "estimated cost (model prices x logged tokens)",
            f"  base {_usd(report.base_micros)}  head {_usd(report.head_micros)}  "
            f"delta {_delta(report)}  over {report.priced:,} priced requests"
            + (f" ({report.unpriced:,} unpriced)" if report.unpriced else ""),
        ]
    if report.rollouts:
        lines += ["", "rollouts"]
        data = report.to_dict(top)["rollouts"]
        for name, info in data.items():
            moves = ", ".join(f"{k}: {n:,}" for k, n in info["moves"].items())
            lines.append(
                f"  {name}: {info['requests']:,} requests, {info['sticky_keys']:,} sticky keys "
                f"change variant ({moves})"
            )
    return "\n".join(lines)


def render_markdown(report: DiffReport, top: int = 10) -> str:
    changed = report.changed
    head = (
        f"### policyd diff: `{report.base}` → `{report.head}`\n\n"
        f"**{changed:,} of {report.decided:,} recorded requests decide differently** "
        f"({_share(changed, report.decided)}) · newly blocked {report.newly_blocked:,} · "
        f"newly allowed {report.newly_allowed:,} · estimated cost {_delta(report)}"
    )
    parts = [head]
    if report.errors:
        parts.append(
            "Not replayed: "
            + ", ".join(f"{why}: {n:,}" for why, n in sorted(report.errors.items()))
        )
    if not changed:
        parts.append("No decision changes.")
    else:
        rows = "\n".join(f"| {k} | {n:,} |" for k, n in report.by_field.most_common())
        parts.append("| field | requests changed |\n|---|---:|\n" + rows)
        rows = "\n".join(
            f"| {f} | `{a}` → `{b}` | {n:,} |"
            for (f, a, b), n in report.transitions.most_common(top)
        )
        parts.append(
            "**Top transitions**\n\n| field | change | requests |\n|---|---|---:|\n" + rows
        )
        rows = "\n".join(f"| `{s}` | {n:,} |" for s, n in report.rules.most_common(top))
        parts.append(
            "<details><summary>Rules responsible</summary>\n\n"
            "| trace step (+ head only, − base only) | requests |\n|---|---:|\n"
            + rows
            + "\n\n</details>"
        )
    parts.append(
        f"Estimated cost on these requests (model prices × logged tokens): "
        f"base {_usd(report.base_micros)}, head {_usd(report.head_micros)}, "
        f"**{_delta(report)}** over {report.priced:,} priced requests."
    )
    if report.rollouts:
        data = report.to_dict(top)["rollouts"]
        rows = "\n".join(
            f"| {name} | {info['requests']:,} | {info['sticky_keys']:,} | "
            + ", ".join(f"{k}: {n:,}" for k, n in info["moves"].items())
            + " |"
            for name, info in data.items()
        )
        parts.append(
            "**Rollout shifts**\n\n| rollout | requests | sticky keys moved | moves |\n"
            "|---|---:|---:|---|\n" + rows
        )
    parts.append(
        f"<sub>base revision `{report.base_digest[:12]}`, head revision "
        f"`{report.head_digest[:12]}`, {report.requests:,} requests replayed</sub>"
    )
    return "\n\n".join(parts) + "\n"


def render(report: DiffReport, fmt: str, top: int = 10) -> str:
    if fmt == "json":
        data: dict[str, Any] = report.to_dict(top)
        return json.dumps(data, indent=2)
    if fmt == "markdown":
        return render_markdown(report, top)
    return render_text(report, top)
