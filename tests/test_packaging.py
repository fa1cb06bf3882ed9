"""Packaging: what ``pip install policyd`` gives, and what ``import policyd`` costs.

LiteLLM alone takes seconds to import, and Redis and the file watcher are only needed by
apps that use them, so the core must not import any of them at module import time. Each
check runs in a fresh interpreter: this test process has imported plenty already.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import policyd

HEAVY = ("litellm", "redis", "watchfiles")


def _modules_after(statement: str) -> set[str]:
    """Top-level names of the modules loaded by a fresh interpreter running ``statement``."""
    code = f"{statement}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in json.loads(out.stdout.splitlines()[-1])}


@pytest.mark.parametrize(
    "statement",
    ["import policyd", "import policyd.cli", "from policyd import Engine, load_bundle"],
)
def test_importing_the_core_does_not_import_heavy_or_io_packages(statement: str) -> None:
    loaded = _modules_after(statement)
    assert "policyd" in loaded  # the probe works: it sees what the statement imported
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_probe_would_notice_a_heavy_import() -> None:
    assert "redis" in _modules_after("import policyd, redis")


def test_installed_version_is_the_package_version() -> None:
    assert importlib.metadata.version("policyd") == policyd.__version__


def test_console_script_points_at_the_click_group() -> None:
    scripts = importlib.metadata.distribution("policyd").entry_points.select(
        group="console_scripts"
    )
    assert {(e.name, e.value) for e in scripts} == {("policyd", "policyd.cli:main")}


def test_public_api_is_exactly_what_all_lists() -> None:
    public = {name for name in dir(policyd) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(policyd, name)).__name__ == "module"}
    assert public - modules == set(policyd.__all__) - {"__version__"}
    for name in policyd.__all__:
        assert getattr(policyd, name) is not None
