"""Fixtures for observability tests: the reference bundle in a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from observe_helpers import REPO


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of policies/ (support-bot and code-assistant) that a test may edit."""
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies", target)
    return target
