"""Hot reload: watch a bundle, debounce bursts, and swap in each new good revision.

:meth:`policyd.engine.Engine.reload` does the swap (load -> validate -> compile -> gate ->
one reference assignment); this package is everything around it:

- :mod:`~policyd.reload.watcher`: the ``watchfiles`` thread and which changes count;
- :mod:`~policyd.reload.revisions`: ``require_tests`` gating, content identity, diffs;
- :mod:`~policyd.reload.build`: building a revision (load, compare, compile, gate);
- :mod:`~policyd.reload.control`: ``SIGHUP``;
- :mod:`~policyd.reload.watch_command`: the ``policyd watch`` loop (which runs an engine).

The engine imports the modules it uses directly, never this package, so no import
cycle runs through it.

Nothing here runs inside ``decide()``.
"""

from __future__ import annotations

from policyd.reload.control import install_sighup
from policyd.reload.revisions import (
    NO_TESTS,
    TESTS_FAILED,
    PolicyChange,
    RevisionDiff,
    diff_revisions,
    gate_revision,
    internal_error,
    prompt_files,
    same_revision,
)
from policyd.reload.watch_command import run_watch
from policyd.reload.watcher import BundleFilter, Watcher, is_scratch_name

__all__ = [
    "NO_TESTS",
    "TESTS_FAILED",
    "BundleFilter",
    "PolicyChange",
    "RevisionDiff",
    "Watcher",
    "diff_revisions",
    "gate_revision",
    "install_sighup",
    "internal_error",
    "is_scratch_name",
    "prompt_files",
    "run_watch",
    "same_revision",
]
