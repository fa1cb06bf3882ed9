"""The commands of docs/observability.md and the README's observability tour run and print
what the page shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from observe_helpers import REPO

TOUR = str(REPO / "examples" / "observe_tour.py")


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=REPO, env=env)
    return done.stdout


def test_the_observability_tour(tmp_path: Path):
    out = tmp_path / "tour"
    run(sys.executable, TOUR, "traffic", str(out))
    log = out / "decisions.jsonl"
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds.count("decision") == 2000

    first = json.loads(run(sys.executable, TOUR, "log").splitlines()[0])
    # the length of the message as the model receives it: "I am [EMAIL], reset my password"
    assert first["kind"] == "decision" and first["request"]["messages"]["chars"] == [31]
    assert "jane@example.com" not in json.dumps(first)

    spans = run(sys.executable, TOUR, "span")
    assert '"name": "policyd.decide support-bot"' in spans
    assert '"gen_ai.request.model": "anthropic/claude-sonnet-4-5"' in spans

    policyd = str(Path(sys.executable).with_name("policyd"))
    report = run(
        policyd,
        "diff",
        "policies/",
        str(out / "candidate"),
        "--requests",
        str(log),
        "--format",
        "markdown",
    )
    assert report.startswith("### policyd diff: `policies/` → ")
    assert "| tier | `economy` → `premium` |" in report
    assert "| support-system-v4 |" in report

    shadow = run(sys.executable, TOUR, "shadow", str(out / "candidate"))
    assert "policyd shadow: live" in shadow
    assert "+ routing long-input match" in shadow
    assert '"type": "shadow_diff"' in shadow
