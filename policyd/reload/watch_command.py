"""The ``policyd watch`` loop: serve a bundle and print every revision change.

``run_watch`` is what an operator tails during a rollout: each accepted revision with its
policies' versions, digests and changed sections, and each rejection with its diagnostics.
It runs an :class:`~policyd.engine.Engine` (the engine never imports this module).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from policyd.diagnostics import PolicyError
from policyd.reload.revisions import prompt_files
from policyd.reload.watcher import Watcher

if TYPE_CHECKING:
    from policyd.engine import Engine

log = logging.getLogger("policyd")


def run_watch(
    path: str,
    *,
    echo: Callable[[str], Any] = print,
    debounce_ms: int = 200,
    stop: threading.Event | None = None,
) -> int:
    """Watch ``path`` and print each accepted revision and each rejection; 0 when stopped.

    Runs until Ctrl-C or SIGTERM (or until ``stop`` is set); SIGHUP forces a reload. A
    bundle that is broken at start is reported and waited on: the first good revision is
    served once the files are fixed.
    """
    session = _WatchSession(path, echo)
    stop = stop or threading.Event()
    echo(f"policyd watch: {path} (debounce {debounce_ms} ms; Ctrl-C stops)")
    session.change()
    watcher = Watcher(
        path,
        session.change,
        debounce_ms=debounce_ms,
        prompt_paths=session.prompt_paths,
        catch_up=True,
    )
    restore: list[tuple[int, Any]] = []
    quiet = _quiet_log()
    watcher.start()
    try:
        if threading.current_thread() is threading.main_thread():
            restore.append((signal.SIGTERM, signal.signal(signal.SIGTERM, lambda *_: stop.set())))
            if hasattr(signal, "SIGHUP"):
                restore.append((signal.SIGHUP, signal.signal(signal.SIGHUP, session.poke)))
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        for signum, handler in restore:
            signal.signal(signum, handler)
        if quiet is not None:
            log.removeHandler(quiet)
        session.close()
    echo("policyd watch: stopped")
    return 0


def _quiet_log() -> logging.Handler | None:
    """With no logging configured, keep Python's last-resort handler from echoing warnings
    that ``policyd watch`` already prints."""
    if logging.getLogger().handlers or log.handlers:
        return None
    handler = logging.NullHandler()
    log.addHandler(handler)
    return handler


class _WatchSession:
    """The engine behind ``policyd watch`` (none until the bundle is first valid)."""

    def __init__(self, path: str, echo: Callable[[str], Any]) -> None:
        self.path = path
        self.echo = echo
        self.engine: Engine | None = None
        self.lock = threading.Lock()
        self.last_errors: list[dict[str, Any]] | None = None

    def change(self) -> None:
        with self.lock:
            if self.engine is not None:
                self.engine.reload()
            else:
                self._start()

    def poke(self, signum: int, frame: Any) -> None:
        threading.Thread(target=self.change, name="policyd-sighup", daemon=True).start()

    def prompt_paths(self) -> frozenset[str]:
        return prompt_files(self.engine.compiled) if self.engine is not None else frozenset()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def _start(self) -> None:
        from policyd.engine import Engine

        try:
            engine = Engine.from_path(self.path)
        except PolicyError as exc:
            errors = [d.to_dict() for d in exc.diagnostics if d.is_error]
            if errors != self.last_errors:  # the same broken files again: said already
                self.last_errors = errors
                _echo_event(self.echo, {"type": "reload_rejected", "errors": errors}, None)
            return
        self.engine = engine
        engine.on_event(lambda event: _echo_event(self.echo, event, engine))
        _echo_serving(self.echo, engine)


def _stamp() -> str:
    return datetime.now(UTC).astimezone().strftime("%H:%M:%S")


def _echo_serving(echo: Callable[[str], Any], engine: Engine) -> None:
    compiled = engine.compiled
    echo(
        f"{_stamp()} serving  revision {compiled.digest[:12]}, "
        f"{len(compiled.policies)} polic{'y' if len(compiled.policies) == 1 else 'ies'}"
    )
    for policy in compiled.policies.values():
        echo(f"           {policy.name} {policy.ref.version or '-'} ({policy.ref.digest})")


def _echo_event(echo: Callable[[str], Any], event: Mapping[str, Any], engine: Any) -> None:
    kind = event.get("type")
    if kind == "reloaded":
        took = event.get("compile_ms")
        timing = f" in {took:.0f} ms" if isinstance(took, int | float) else ""
        echo(
            f"{_stamp()} accepted revision {str(event['revision'])[:12]} "
            f"(was {str(event['previous'])[:12]}){timing}"
        )
        for line in event.get("diff_lines") or ():
            echo(f"           {line}")
    elif kind == "reload_recovered":
        echo(
            f"{_stamp()} recovered: the files match serving revision "
            f"{str(event['revision'])[:12]} again"
        )
    elif kind == "reload_rejected":
        revision = event.get("revision")
        serving = f"{engine.compiled.digest[:12]}" if engine is not None else "nothing yet"
        name = f" {str(revision)[:12]}" if revision else ""
        echo(f"{_stamp()} REJECTED revision{name}; still serving {serving}")
        for d in event.get("errors") or ():
            hint = f" (hint: {d['hint']})" if d.get("hint") else ""
            echo(
                f"           {d['file']}:{d['line']}:{d['column']}: {d['code']} "
                f"{d['message']}{hint}"
            )
