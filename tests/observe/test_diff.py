"""policyd diff: recorded requests decided under two revisions, on real files and git."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from observe_helpers import fixed_clock, request

from policyd import Engine
from policyd.cli import main
from policyd.decision_log import read_lines
from policyd.diff import Side, replays


def write_requests(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def traffic(n: int = 40) -> list[dict[str, Any]]:
    """Requests of several tenants and users, some long (input_tokens over 1,000)."""
    rows = []
    for i in range(n):
        rows.append(
            request(
                tenant={"id": f"t{i % 4}", "tier": "enterprise" if i % 5 == 0 else "pro"},
                user={"id": f"u{i}"},
                tags=["code"] if i % 2 else [],
                input_tokens=2000 if i % 3 == 0 else 100,
            )
        )
    return rows


def diff(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["diff", *args])
    return result.exit_code, result.output


def edit(bundle: Path, old: str, new: str) -> None:
    policy = bundle / "support-bot.yaml"
    text = policy.read_text()
    assert old in text
    policy.write_text(text.replace(old, new))


def test_a_routing_change_is_counted_by_field_transition_and_rule(bundle: Path, tmp_path: Path):
    head = tmp_path / "head"
    subprocess.run(["cp", "-r", str(bundle), str(head)], check=True)
    edit(head, "request.input_tokens > 60000", "request.input_tokens > 1000")
    reqs = write_requests(
        tmp_path / "r.jsonl",
        [
            {"request": r, "policy": "support-bot", "time": "2026-11-24T12:00:00Z"}
            for r in traffic()
        ],
    )
    code, out = diff(str(bundle), str(head), "--requests", str(reqs), "--format", "json")
    assert code == 0, out
    report = json.loads(out)
    # every third request is long; those not already premium (enterprise+code) move
    long_rows = [r for r in traffic() if r["input_tokens"] == 2000]
    moved = [r for r in long_rows if not (r["tenant"]["tier"] == "enterprise" and r["tags"])]
    assert report["requests"] == 40
    assert report["by_field"]["tier"] == len(moved)
    top = report["transitions"][0]
    assert (top["field"], top["base"], top["head"], top["requests"]) == (
        "tier",
        "economy",
        "premium",
        len(moved),
    )
    rules = {r["step"]: r["requests"] for r in report["rules"]}
    assert rules["+ routing long-input match"] == len(moved)
    assert report["cost"]["delta_usd"] > 0
    assert report["newly_blocked"] == 0


def test_the_same_revision_on_its_own_decision_log_changes_nothing(bundle: Path, tmp_path: Path):
    log = tmp_path / "decisions.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        logged = []
        for row in traffic():
            d = engine.decide(row, policy="support-bot")
            engine.record(d, input_tokens=row["input_tokens"], output_tokens=50)
            logged.append(d)
        assert engine._observer.log.flush()
    code, out = diff(str(bundle), str(bundle), "--requests", str(log), "--fail-on", "any")
    assert code == 0, out
    assert "40 requests replayed, 0 decisions changed" in out
    # and a replay from the log reproduces each live decision
    side = Side(str(bundle), "b", fixed_clock())
    items = replays(read_lines(log))
    assert [i.id for i in items] == [d.id for d in logged]
    for item, live in zip(items, logged, strict=True):
        assert (item.input_tokens, item.output_tokens) == (live.request["input_tokens"], 50)
        replayed, _ = side.decide(side.bundle.policy(item.policy), item, item.now or fixed_clock())
        assert (replayed.tier, replayed.model, replayed.fallbacks, replayed.prompts) == (
            live.tier,
            live.model,
            live.fallbacks,
            live.prompts,
        )


BUDGET = """
budgets:
  - name: tenant-requests
    key: request.tenant.id
    window: calendar_day
    limit: {requests: 5}
"""


def test_a_new_budget_shows_what_it_would_block_without_a_store(bundle: Path, tmp_path: Path):
    head = tmp_path / "head"
    subprocess.run(["cp", "-r", str(bundle), str(head)], check=True)
    (head / "support-bot.yaml").write_text(
        (head / "support-bot.yaml").read_text() + textwrap.dedent(BUDGET)
    )
    rows = [request(tenant={"id": "busy", "tier": "pro"}, user={"id": f"u{i}"}) for i in range(8)]
    reqs = write_requests(tmp_path / "r.jsonl", rows)
    code, out = diff(
        str(bundle),
        str(head),
        "--requests",
        str(reqs),
        "--policy",
        "support-bot",
        "--now",
        "2026-11-24T12:00:00Z",
        "--fail-on",
        "newly-blocked",
    )
    assert code == 1
    assert "newly blocked 3," in out
    assert "allowed allowed -> blocked" in out
    assert "3 requests newly blocked" in out


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(bundle: Path, tmp_path: Path) -> Path:
    """A git repository whose policies/ changed in its last commit (v3/v4 split 90/10 -> 0/100)."""
    root = bundle.parent
    git(root, "init", "-q")
    git(root, "add", "policies")
    git(root, "commit", "-qm", "base")
    edit(bundle, "{v3: 90, v4: 10}", "{v3: 0, v4: 100}")
    git(root, "commit", "-qam", "head")
    return root


def test_git_revisions_are_diffed_from_the_repository(repo: Path, tmp_path: Path):
    reqs = write_requests(tmp_path / "r.jsonl", traffic())
    bundle = str(repo / "policies")
    args = ["--requests", str(reqs), "--policy", "support-bot", "--now", "2026-11-20T12:00:00Z"]
    code, out = diff("git:HEAD~1", bundle, *args, "--format", "json")
    assert code == 0, out
    report = json.loads(out)
    assert report["base"]["ref"].startswith("HEAD~1 (")
    eligible = [r for r in traffic() if r["tenant"]["tier"] != "enterprise"]
    rollout = report["rollouts"]["support-system-v4"]
    assert rollout["sticky_keys"] == rollout["requests"] <= len(eligible)
    assert rollout["moves"] == {"v3 -> v4": rollout["requests"]}
    # both sides from git, the path named once
    code, same = diff(f"git:HEAD:{bundle}", "git:HEAD", *args)
    assert code == 0, same
    assert "0 decisions changed" in same


def test_markdown_is_a_pull_request_comment(repo: Path, tmp_path: Path):
    reqs = write_requests(tmp_path / "r.jsonl", traffic())
    code, out = diff(
        "git:HEAD~1",
        str(repo / "policies"),
        "--requests",
        str(reqs),
        "--policy",
        "support-bot",
        "--now",
        "2026-11-20T12:00:00Z",
        "--format",
        "markdown",
    )
    assert code == 0, out
    assert out.startswith("### policyd diff: `HEAD~1 (")
    assert "| prompt support-system | `v3` → `v4` |" in out
    assert "**Rollout shifts**" in out


def test_usage_errors_exit_2_without_a_traceback(bundle: Path, tmp_path: Path):
    reqs = write_requests(tmp_path / "r.jsonl", traffic(2))
    code, out = diff(str(bundle), str(bundle), "--requests", str(reqs), "--fail-on", "colour")
    assert code == 2 and "not a condition" in out
    code, out = diff("git:nope", str(bundle), "--requests", str(reqs))
    assert code == 2 and "git rev-parse" in out and "Traceback" not in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tenant": {"id": "a"}}\nnot json\n')
    code, out = diff(str(bundle), str(bundle), "--requests", str(bad))
    assert code == 2 and "bad.jsonl:2: not JSON" in out


def test_a_request_the_policy_rejects_is_counted_not_echoed(bundle: Path, tmp_path: Path):
    rows = [request(tenant={"id": 12345678, "tier": "pro"}), request()]
    reqs = write_requests(tmp_path / "r.jsonl", rows)
    code, out = diff(str(bundle), str(bundle), "--requests", str(reqs), "--policy", "support-bot")
    assert code == 0, out
    assert "not replayed: request rejected (tenant.id): 1" in out
    assert "12345678" not in out


def test_the_github_actions_example_diffs_base_and_head_and_posts_markdown():
    from observe_helpers import REPO

    from policyd.loader import load_path

    loaded = load_path(REPO / "examples/ci/policy-diff.yml")
    assert loaded.ok, loaded.diagnostics
    [workflow] = loaded.documents
    steps = workflow.data["jobs"]["diff"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert 'policyd diff "git:${{ github.event.pull_request.base.sha }}" policies/' in script
    assert "--format markdown" in script
    assert "gh pr comment" in script
    assert steps[0]["with"]["fetch-depth"] == 0


def test_parallel_replay_gives_the_report_of_one_process(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from policyd import diff as diff_module
    from policyd.diff import diff_file

    monkeypatch.setattr(diff_module, "_PARALLEL_BYTES", 0)

    head = tmp_path / "head"
    subprocess.run(["cp", "-r", str(bundle), str(head)], check=True)
    edit(head, "request.input_tokens > 60000", "request.input_tokens > 1000")
    edit(head, "{v3: 90, v4: 10}", "{v3: 50, v4: 50}")
    log = tmp_path / "decisions.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=log) as engine:
        for row in traffic(60):
            d = engine.decide(row, policy="support-bot")
            engine.record(d, input_tokens=row["input_tokens"], output_tokens=40)
        assert engine._observer.log.flush()
    base_side = Side(str(bundle), "base", fixed_clock())
    head_side = Side(str(head), "head", fixed_clock())
    args = {"policy": None, "now": fixed_clock()}
    one = diff_file(base_side, head_side, str(log), jobs=1, **args)
    three = diff_file(base_side, head_side, str(log), jobs=3, **args)
    assert one.changed > 0 and one.priced == 60
    # the same counts; example ids and the order of equal counts may differ
    assert three.transitions == one.transitions and three.rules == one.rules
    a, b = one.to_dict(), three.to_dict()
    for report in (a, b):
        report.pop("transitions"), report.pop("rules")
    assert a == b


def test_a_policy_the_change_does_not_touch_is_reported_unchanged(bundle: Path, tmp_path: Path):
    head = tmp_path / "head"
    subprocess.run(["cp", "-r", str(bundle), str(head)], check=True)
    code_policy = head / "code-assistant.yaml"
    code_policy.write_text(code_policy.read_text().replace("> 500", "> 50"))
    reqs = write_requests(tmp_path / "r.jsonl", traffic(10))
    code, out = diff(str(bundle), str(head), "--requests", str(reqs), "--policy", "support-bot")
    assert code == 0, out
    assert "10 requests replayed, 0 decisions changed" in out


def test_git_archive_extraction_stays_inside_its_folder_without_the_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python before 3.11.4 has no tarfile data filter: the fallback keeps regular files
    # and folders inside the scratch folder and skips anything else.
    import io
    import tarfile

    from policyd.cli_diff import _extract

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in (("policies/a.yaml", b"kind: Policy\n"), ("../evil.yaml", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
        link = tarfile.TarInfo("policies/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    out = tmp_path / "out"
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as archive:
        _extract(archive, out)
    assert (out / "policies" / "a.yaml").read_bytes() == b"kind: Policy\n"
    assert not (tmp_path / "evil.yaml").exists() and not (out / "policies" / "link").exists()
