"""policyd bench: a table of decide() timings per policy of a bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policyd.cli import main

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_bench_prints_one_row_per_policy_with_numbers():
    result = CliRunner().invoke(main, ["bench", str(POLICIES), "--n", "200"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:2] == ["policy", "requests"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {"code-assistant", "support-bot"}
    for requests, median, p99, per_second in rows.values():
        assert int(requests) >= 1
        assert 0 < float(median) <= float(p99)
        assert int(per_second.replace(",", "")) > 0


def test_bench_one_policy_and_a_broken_bundle(tmp_path):
    result = CliRunner().invoke(
        main, ["bench", str(POLICIES), "--policy", "support-bot", "--n", "100"]
    )
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.strip().splitlines()[1:]] == ["support-bot"]
    (tmp_path / "p.yaml").write_text(
        "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: x}\nrouting: {default: nowhere}\n"
    )
    broken = CliRunner().invoke(main, ["bench", str(tmp_path)])
    assert broken.exit_code == 1
    assert "PD202" in broken.output


def test_bench_stages_prints_each_stage_in_order_with_its_share():
    result = CliRunner().invoke(
        main, ["bench", str(POLICIES), "--policy", "support-bot", "--n", "300", "--stages"]
    )
    assert result.exit_code == 0, result.output
    table = result.output.split("\n\n", 1)[1].strip().splitlines()
    assert table[0].split() == ["policy", "stage", "runs", "mean", "µs", "share"]
    rows = [line.split() for line in table[1:]]
    assert {row[0] for row in rows} == {"support-bot"}
    stages = [row[1] for row in rows]
    # the pipeline's order, each stage the policy has, then the rest of decide()
    assert stages == ["guardrails", "routing", "cache", "prompts", "other"]
    for _, _, runs, mean, _share in rows:
        assert 0 < int(runs) <= 300 and float(mean) >= 0
    assert sum(float(share.rstrip("%")) for *_, share in rows) == pytest.approx(100, abs=0.5)
