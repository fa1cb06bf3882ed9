"""Every command the README shows runs, in a scratch copy of the repository (#12).

Concrete ``policyd`` commands (they name a path) run as written and must exit 0; a
synopsis or a mention (``policyd bench PATH [--policy N]``, ``policyd test --coverage``)
must name a command and options that ``--help`` lists. Shell lines in code blocks run
segment by segment; what installs packages or runs this very suite is checked for its
target instead (the extra exists, the script compiles).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
# Not copied: git data, virtualenvs, test caches. The mypy and ruff caches are copied:
# they make the lint command seconds instead of a minute (both revalidate by content).
_SKIP_DIRS = {".git", ".venv", ".ci-venv", ".ci-base-venv", ".pytest_cache", ".hypothesis",
              ".benchmarks", "__pycache__", ".mutation", ".stress"}  # fmt: skip


# A segment of a `a && b` line needs the segments before it (`b` reads what `a` wrote):
# segment -> the line up to and including it, which is what the test runs.
WITH_PREREQUISITES: dict[str, str] = {}


def readme_commands() -> list[str]:
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            segments = [seg.strip() for seg in line.split("&&") if seg.strip()]
            for i, seg in enumerate(segments):
                WITH_PREREQUISITES.setdefault(seg, " && ".join(segments[: i + 1]))
            found += segments
    for span in re.findall(r"`([^`\n]+)`", README):
        if re.match(r"(policyd|python|pip|ruff|mypy)( |$)", span):
            found.append(span.replace("\\|", "|"))
    return list(dict.fromkeys(found))


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("repo") / "policyd"
    shutil.copytree(REPO, target, ignore=lambda _d, names: [n for n in names if n in _SKIP_DIRS])
    return target


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch) + os.pathsep + env.get("PYTHONPATH", "")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _is_concrete_policyd(command: str) -> bool:
    words = shlex.split(command)
    return words[0] == "policyd" and any("/" in w for w in words[1:]) and "PATH" not in words


def test_the_readme_shows_commands() -> None:
    assert any(_is_concrete_policyd(c) for c in COMMANDS)
    assert "ruff check . && ruff format --check . && mypy" in README


@pytest.mark.parametrize("command", [c for c in COMMANDS if _is_concrete_policyd(c)])
def test_concrete_policyd_commands_run(command: str, scratch: Path) -> None:
    result = subprocess.run(
        WITH_PREREQUISITES.get(command, command), shell=True, cwd=scratch,
        env=_env(scratch), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c.startswith("policyd") and not _is_concrete_policyd(c)],
)
def test_synopses_name_real_commands_and_options(command: str, scratch: Path) -> None:
    words = [w for w in re.split(r"[\s\[\]|]+", command) if w]
    subcommand = [w for w in words[1:3] if re.fullmatch(r"[a-z]+", w)]
    if subcommand[:1] == ["command"]:  # "policyd <command> --help"
        subcommand = []
    if subcommand and subcommand[0] != "export":
        subcommand = subcommand[:1]
    result = subprocess.run(
        ["policyd", *subcommand, "--help"], cwd=scratch, env=_env(scratch),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for option in (w for w in words if w.startswith("-")):
        assert option in result.stdout, f"{command}: {option} is not in --help"


def test_install_and_suite_commands_point_at_real_targets() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for command in COMMANDS:
        for extra in re.findall(r"\[(\w+)\]'", command):
            if command.startswith("pip install"):
                assert extra in extras, command
        for script in re.findall(r"python (\S+\.py)", command):
            compile((REPO / script).read_text(), script, "exec")


@pytest.mark.slow
def test_the_development_lint_command_passes(scratch: Path) -> None:
    command = "ruff check . && ruff format --check . && mypy"
    result = subprocess.run(
        command, shell=True, cwd=scratch, env=_env(scratch), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
