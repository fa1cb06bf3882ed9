"""Fixtures for the hot-reload tests: bundles in temporary directories, polling helpers."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from policyd.engine import Engine

POLICIES = Path(__file__).resolve().parents[2] / "policies"
WAIT_S = 10.0  # generous: the machine is shared


def wait_for(predicate: Callable[[], object], timeout: float = WAIT_S) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; True when it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content in one rename, as deploy tools do.

    ``Path.write_text`` truncates first: a watcher whose debounce ends between the
    truncation and the write loads an empty file, which makes a test see an extra rejection.
    """
    scratch = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    scratch.write_text(text)
    os.replace(scratch, path)


def revision(n: int, *, broken: bool = False) -> str:
    """A one-policy bundle whose every decided field encodes ``n``.

    A decision from revision ``n`` has version ``r<n>``, model ``m<n>``, tier ``t<n>``,
    timeout ``n + 1`` s, cache rule ``c<n>`` with ttl ``n + 1`` s and prompt text ``rev <n>``;
    a decision mixing two revisions would disagree with its own ``policy.version``.
    """
    body = f"""\
apiVersion: policyd/v1
kind: Policy
metadata: {{name: p, version: "r{n}"}}
models:
  m{n}: {{litellm: openai/m{n}, context_window: 100000,
         price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
tiers:
  t{n}: {{strategy: ordered, targets: [{{model: m{n}}}]}}
routing: {{default: t{n}, timeout: {n + 1}s}}
cache:
  rules: [{{name: c{n}, when: "true", ttl: {n + 1}s, scope: global}}]
prompts:
  sys: {{versions: {{v{n}: {{template: "rev {n}"}}}}}}
"""
    return body.replace("routing:", "routing: [") if broken else body


def revision_of(decision: dict[str, object]) -> int:
    """The revision number a decision claims, checked against every field that encodes it."""
    version = decision["policy"]["version"]  # type: ignore[index]
    n = int(str(version)[1:])
    assert decision["model"] == f"m{n}", decision
    assert decision["tier"] == f"t{n}", decision
    assert decision["timeout_s"] == n + 1, decision
    assert decision["cache"]["rule"] == f"c{n}", decision  # type: ignore[index]
    assert decision["cache"]["ttl_s"] == n + 1, decision  # type: ignore[index]
    assert decision["prompts"]["sys"]["text"] == f"rev {n}", decision  # type: ignore[index]
    return n


REQUEST = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policies/ bundle."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture
def rev_dir(tmp_path: Path) -> Path:
    """A bundle directory holding revision 0 of :func:`revision`."""
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "p.yaml").write_text(revision(0))
    return target


@pytest.fixture
def watched(rev_dir: Path) -> Iterator[Engine]:
    """An engine on ``rev_dir`` with the real watcher running (short debounce)."""
    engine = Engine.from_path(rev_dir)
    engine.start_watching(debounce_ms=50)
    yield caught_up(engine)
    engine.close()


def caught_up(engine: Engine) -> Engine:
    """Wait for the watcher's first check (it reloads once after starting, for changes made
    meanwhile), so that a test's change is seen through a file event, not that check."""
    watcher = engine._watcher
    assert watcher is not None
    assert wait_for(lambda: watcher.bursts >= 1)
    return engine


def serving(engine: Engine) -> int:
    """The revision number the engine serves now."""
    return int(str(engine.policy_ref("p").version)[1:])
