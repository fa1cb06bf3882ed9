"""``policyd watch LIVE --shadow CANDIDATE --requests FILE``: a shadow kept up to date.

An operator or policy author edits a candidate bundle next to the live one and sees, on
every save, what it would decide differently on recorded traffic: at start and after each
accepted revision of either bundle, every request in FILE (a decision log or JSON Lines of
requests) is decided under both the way ``policyd diff`` does (same clock and decision id,
budgets on a fresh in-memory store per side, no real store touched) and the shadow report
is printed. With ``follow``, lines appended to FILE afterwards (the app's decision log as
it grows) are compared as they arrive, one line printed per changed decision. A broken
revision of either bundle is reported and the last good one keeps being compared.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from policyd.bundle import Bundle, load_bundle
from policyd.decision_log import parse_line
from policyd.diagnostics import PolicyError
from policyd.diff import DiffReport, Side, run_diff
from policyd.diff_input import replays
from policyd.diff_report import render_text
from policyd.render import render as render_diagnostics

ROLES = ("live", "shadow")


def _stamp() -> str:
    return datetime.now(UTC).astimezone().strftime("%H:%M:%S")


class ShadowWatch:
    """Both bundles' last good revisions and the report of FILE replayed under them."""

    def __init__(
        self,
        live: str,
        candidate: str,
        requests: str,
        *,
        echo: Callable[[str], Any] = print,
        policy: str | None = None,
        top: int = 10,
        follow: bool = False,
    ) -> None:
        self.paths = {"live": live, "shadow": candidate}
        self.requests = requests
        self.echo = echo
        self.policy = policy
        self.top = top
        self.follow = follow
        self.bundles: dict[str, Bundle] = {}
        self.digests: dict[str, str] = {}
        self.sides: tuple[Side, Side] | None = None
        self.report: DiffReport | None = None
        self.lock = threading.Lock()
        self._offset = 0  # bytes of FILE already compared
        self._inode: int | None = None
        self._line = 0  # lines of FILE already read

    # -- revisions --------------------------------------------------------------------------

    def change(self, role: str) -> None:
        """A watcher saw ``role``'s bundle change: load it and, when it is a new good
        revision and both sides have one, replay FILE under both."""
        with self.lock:
            if self._load(role) and len(self.bundles) == len(ROLES):
                self._replay_all()

    def _load(self, role: str) -> bool:
        path = self.paths[role]
        try:
            bundle = load_bundle(path)
            side = Side(path, role, datetime.now(UTC), bundle=bundle)
        except PolicyError as exc:
            errors = [d for d in exc.diagnostics if d.is_error]
            keeps = self.digests.get(role)
            still = f"still comparing {keeps[:12]}" if keeps else "nothing to compare yet"
            self.echo(f"{_stamp()} {role:<6} REJECTED revision of {path}; {still}")
            self.echo(render_diagnostics(errors, "text", {}))
            return False
        if self.digests.get(role) == side.digest:
            return False  # the same revision again (a save without a change)
        previous = self.digests.get(role)
        self.bundles[role] = bundle
        self.digests[role] = side.digest
        was = f" (was {previous[:12]})" if previous else ""
        self.echo(f"{_stamp()} {role:<6} revision {side.digest[:12]} of {path}{was}")
        return True

    def _fresh_sides(self) -> tuple[Side, Side]:
        clock = datetime.now(UTC)
        live, shadow = (
            Side(self.paths[role], role, clock, bundle=self.bundles[role]) for role in ROLES
        )
        return live, shadow

    def _replay_all(self) -> None:
        self.sides = self._fresh_sides()
        self._offset, self._line, self._inode = 0, 0, None
        report = DiffReport("live", "shadow", self.sides[0].digest, self.sides[1].digest)
        self.report = report
        self._compare_new(report, quiet=True)
        title = f"{_stamp()} shadow report"
        self.echo(render_text(report, self.top, title=title))

    # -- FILE ---------------------------------------------------------------------------------

    def poll(self) -> None:
        """With ``follow``: compare the complete lines appended to FILE since last time."""
        if not self.follow:
            return
        with self.lock:
            if self.report is not None:
                self._compare_new(self.report, quiet=False)

    def _compare_new(self, report: DiffReport, *, quiet: bool) -> None:
        assert self.sides is not None
        lines = self._read_new()
        if not lines:
            return
        items = replays(lines)
        before = report.changed
        seen = {key: n for key, n in report.transitions.items()}
        now = datetime.now(UTC)
        part = run_diff(*self.sides, items, policy=self.policy, now=now)
        report.merge(part)
        if quiet or report.changed == before:
            return
        for (field, a, b), n in part.transitions.items():
            ids = part.examples.get((field, a, b), [])
            self.echo(
                f"{_stamp()} shadow {field}: {a} -> {b} on {n:,} new request(s)"
                + (f" (e.g. id {ids[0]})" if ids else "")
                + f"; {seen.get((field, a, b), 0) + n:,} in all"
            )

    def _read_new(self) -> list[tuple[int, dict[str, Any]]]:
        """Complete lines of FILE past the last offset (from the start again when FILE was
        replaced or truncated, as a rotated log is); a malformed line is reported, skipped."""
        try:
            with open(self.requests, "rb") as fh:
                info = os.fstat(fh.fileno())
                if info.st_ino != self._inode or info.st_size < self._offset:
                    if self._inode is not None:
                        self.echo(f"{_stamp()} {self.requests} was replaced: reading it anew")
                    self._inode, self._offset, self._line = info.st_ino, 0, 0
                fh.seek(self._offset)
                data = fh.read()
        except OSError as exc:
            self.echo(f"{_stamp()} cannot read {self.requests}: {exc.strerror}")
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        self._offset += end
        out: list[tuple[int, dict[str, Any]]] = []
        for raw in data[:end].splitlines():
            self._line += 1
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue
            try:
                out.append((self._line, parse_line(text, self.requests, self._line)))
            except ValueError as exc:
                self.echo(f"{_stamp()} skipped: {exc}")
        return out


def run_shadow_watch(
    live: str,
    candidate: str,
    requests: str,
    *,
    echo: Callable[[str], Any] = print,
    debounce_ms: int = 200,
    stop: threading.Event | None = None,
    policy: str | None = None,
    top: int = 10,
    follow: bool = False,
) -> int:
    """Watch both bundles (and, with ``follow``, FILE) until Ctrl-C, SIGTERM or ``stop``;
    0 when stopped."""
    import signal

    from policyd.reload.revisions import prompt_files
    from policyd.reload.watcher import Watcher

    session = ShadowWatch(
        live, candidate, requests, echo=echo, policy=policy, top=top, follow=follow
    )
    stop = stop or threading.Event()
    tail = "; new lines of it compared as they come" if follow else ""
    echo(
        f"policyd watch: {live}, shadow {candidate}, on the requests in {requests}{tail} "
        f"(debounce {debounce_ms} ms; Ctrl-C stops)"
    )
    restore: list[tuple[int, Any]] = []
    if threading.current_thread() is threading.main_thread():  # before the first replay
        restore.append((signal.SIGTERM, signal.signal(signal.SIGTERM, lambda *_: stop.set())))

    def prompts(role: str) -> Callable[[], frozenset[str]]:
        def paths() -> frozenset[str]:
            sides = session.sides
            return prompt_files(sides[ROLES.index(role)].bundle) if sides else frozenset()

        return paths

    watchers = [
        Watcher(
            session.paths[role],
            lambda role=role: session.change(role),  # type: ignore[misc]
            debounce_ms=debounce_ms,
            prompt_paths=prompts(role),
            catch_up=True,
        )
        for role in ROLES
    ]
    try:
        for role in ROLES:
            session.change(role)
        for watcher in watchers:
            watcher.start()
        while not stop.wait(0.25):
            session.poll()
    except KeyboardInterrupt:
        pass
    finally:
        for watcher in watchers:
            watcher.stop()
        for signum, handler in restore:
            signal.signal(signum, handler)
    echo("policyd watch: stopped")
    return 0
