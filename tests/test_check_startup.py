"""`policyd check` start-up (#17): a pre-commit hook pays it on every commit, so `check`
loads only what checking needs. Guarded by the modules a warm run imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN_CHECK = """
import json, sys
sys.argv = ["policyd", "check", "policies/"]
from policyd.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# What `check` on the shipped bundle never needs: the CEL parser once its expressions are
# cached, cel-python, the compiler and the diff engine, guardrail modules the bundle does
# not use, the budget ledger and its stores, hot reload, telemetry and the optional
# packages behind them, what only `policyd diff` uses (git through subprocess, tar), and
# the modules of the other commands (loaded when run or listed by `policyd --help`).
NOT_LOADED = (
    "lark",
    "celpy",
    "policyd.compile",
    "policyd.diff",
    "policyd.engine",
    "policyd.stages.base",
    "policyd.guardrails.pii",
    "policyd.guardrails.plugins",
    "policyd.budgets.ledger",
    "policyd.budgets.windows",
    "policyd.stores",
    "policyd.reload",
    "policyd.telemetry",
    "policyd.decision_log",
    "redis",
    "watchfiles",
    "litellm",
    "opentelemetry",
    "subprocess",
    "tarfile",
    "policyd.cli_budgets",
    "policyd.cli_decision",
    "policyd.cli_diff",
    "policyd.cli_eval",
    "policyd.cli_watch",
    "policyd.diff_report",
)


def _check(cache_home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "POLICYD_NO_CACHE"}
    env.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(cache_home))
    done = subprocess.run(
        [sys.executable, "-c", RUN_CHECK],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_warm_check_loads_only_what_checking_needs(tmp_path: Path) -> None:
    cold = _check(tmp_path)
    warm = _check(tmp_path)
    assert cold["code"] == warm["code"] == 0
    assert "lark" in cold["modules"]  # type: ignore[operator]
    loaded = set(warm["modules"])  # type: ignore[call-overload]
    assert not [name for name in NOT_LOADED if name in loaded]
    assert "policyd.guardrails._regex" in loaded  # the bundle's patterns are still checked


def test_check_in_process_leaves_the_collector_as_it_was() -> None:
    """check freezes the heap only when the process exits (the exit's full collections
    would walk everything read); a caller running it in-process keeps its collector."""
    import gc

    from click.testing import CliRunner

    from policyd.cli import main

    enabled = gc.isenabled()
    result = CliRunner().invoke(main, ["check", str(REPO / "policies")])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0
    assert gc.isenabled() == enabled
