"""Decision logs: one JSON line per decision and per recorded outcome, written off the hot path.

``decide()`` only appends a tuple to a bounded in-memory queue (a full queue drops the line
and counts it); a daemon thread turns queued items into lines (the request reduced to what
the policy's ``log:`` section keeps, every string scrubbed of PII and secrets) and writes
them to a size-rotated JSON Lines file or hands them to a callable. The line format is
documented by ``schemas/decision-log.schema.json``.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from policyd.decision import Decision
from policyd.errors import ConfigError
from policyd.worker import BoundedWorker

log = logging.getLogger("policyd")

LINE_VERSION = 1
# Built-in request attributes logged by default: needed to replay routing, not personal.
DEFAULT_BUILTINS = ("model", "max_tokens", "temperature", "input_tokens")
_ALWAYS_SCRUB = ("request", "decision", "outcome", "candidate")

Sink = Callable[[dict[str, Any]], None]


class RequestFields:
    """The request attributes one policy's log lines keep (paths into the request)."""

    def __init__(self, paths: tuple[tuple[str, ...], ...], messages: str = "lengths") -> None:
        self.paths = paths
        self.messages = messages

    @classmethod
    def for_policy(cls, policy: Any) -> RequestFields:
        """From a typed policy: its ``log:`` section, else every declared context attribute."""
        spec = getattr(policy, "log", None)
        messages = spec.messages if spec is not None else "lengths"
        if spec is not None and spec.request is not None:
            return cls(tuple(tuple(p.split(".")) for p in spec.request), messages)
        paths: list[tuple[str, ...]] = []
        for name, decl in policy.context.items():
            paths.extend(_leaf_paths((name,), decl))
        paths.extend((b,) for b in DEFAULT_BUILTINS)
        return cls(tuple(paths), messages)

    def extract(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The logged request: selected attributes (nested as in the request) and a message
        summary (count, roles, lengths; never the text)."""
        out: dict[str, Any] = {}
        for path in self.paths:
            value: Any = request
            for part in path:
                if not isinstance(value, Mapping) or part not in value:
                    value = None
                    break
                value = value[part]
            if value is None:
                continue
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    break
            else:
                target[path[-1]] = value
        if self.messages != "none":
            messages = request.get("messages") or []
            summary: dict[str, Any] = {"count": len(messages)}
            if self.messages == "lengths":
                summary["roles"] = [str(m.get("role", "")) for m in messages]
                summary["chars"] = [_chars(m.get("content")) for m in messages]
            out["messages"] = summary
        return out


def _leaf_paths(prefix: tuple[str, ...], decl: Any) -> Iterator[tuple[str, ...]]:
    if isinstance(decl, dict):
        for key, sub in decl.items():
            yield from _leaf_paths((*prefix, key), sub)
    else:
        yield prefix


def _chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(p["text"])
            for p in content
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


class Scrubber:
    """Replaces PII and secrets (every kind policyd detects) in strings with [LABEL]."""

    def __init__(self) -> None:
        from policyd.guardrails import PII_KINDS, pii_check

        self._check = pii_check(list(PII_KINDS))

    def text(self, text: str) -> str:
        from policyd.guardrails import redact

        findings = self._check.scan(text)
        return redact(text, findings) if findings else text

    def line(self, line: dict[str, Any], keys: tuple[str, ...]) -> None:
        """Scrub ``line[key]`` for each key, in place. One scan of all their strings joined
        finds nothing in the common case; only a line with a finding is scrubbed string by
        string."""
        texts: list[str] = []
        for key in keys:
            if key in line:
                _collect(line[key], texts)
        if not texts or not self._check.scan("\n\n".join(texts)):
            return
        for key in keys:
            if key in line:
                line[key] = self.value(line[key])

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _BIG:
            digits = str(value)
            scrubbed = self.text(digits)
            return value if scrubbed == digits else scrubbed
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(_plain(value))


_BIG = 100_000  # an integer this large may be a phone or card number written as a number


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            out.append(str(key))
            _collect(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, out)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _BIG:
        out.append(str(value))
    elif value is not None and not isinstance(value, bool | int | float):
        out.append(_plain(value))


def decision_summary(decision: Decision) -> dict[str, Any]:
    """``decision.to_dict()`` without prompt texts (rendered from the request), plus the
    routing rule that chose the tier."""
    summary = decision.to_dict()
    summary["prompts"] = {
        name: {"version": c.version, "rollout": c.rollout} for name, c in decision.prompts.items()
    }
    summary["rule"] = next(
        (t.rule for t in decision.trace if t.stage == "routing" and t.outcome == "match"), None
    )
    return summary


class RotatingFile:
    """Appends to ``path``; past ``max_bytes`` renames it to ``path.1`` (keeping ``backups``)."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, backups: int) -> None:
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open between batches
        self._size = self._fh.tell()

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._fh.write(data)
        self._size += len(data)

    def flush(self) -> None:
        self._fh.flush()

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{i}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{i + 1}")
        if self.backups > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.remove(self.path)
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._fh.close()


class DecisionLog(BoundedWorker):
    """A bounded queue and one writer thread; ``log_*`` never block and never raise.

    ``sink`` is a path (JSON Lines, rotated at ``max_bytes`` keeping ``backups`` old files)
    or a callable receiving each line as a dict. ``capacity`` bounds the queue: when the
    writer falls behind, new lines are dropped and counted in :attr:`dropped`.
    """

    def __init__(
        self,
        sink: str | os.PathLike[str] | Sink,
        *,
        capacity: int = 10_000,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        describe: Callable[[Decision], tuple[str, RequestFields] | None] | None = None,
    ) -> None:
        self._file: RotatingFile | None = None
        self._callable: Sink | None = None
        if callable(sink):
            self._callable = sink
        else:
            self._file = RotatingFile(sink, max_bytes, backups)
        # how to find a decision's revision and logged fields: one per engine writing here
        self.describers: list[Callable[[Decision], tuple[str, RequestFields] | None]] = (
            [describe] if describe is not None else []
        )
        self.written = 0
        self.failed = 0
        self._scrub: Scrubber | None = None
        self._batch: list[bytes] = []  # lines for the file, written at the end of a batch
        super().__init__("policyd-decision-log", capacity)
        atexit.register(self.close)

    # -- the request path: append a tuple, nothing else ------------------------------------

    def log_decision(self, decision: Decision, now: datetime) -> None:
        self._put(("decision", decision, now))

    def log_outcome(self, decision: Decision, outcome: Any, attempts: int) -> None:
        self._put(("outcome", decision, outcome, attempts))

    def log_line(self, line: dict[str, Any]) -> None:
        """A prepared line (e.g. a shadow comparison); scrubbed like the others."""
        self._put(("line", line))

    # -- the writer thread -------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the thread, close the file."""
        super().close(timeout)
        atexit.unregister(self.close)

    def _handle(self, item: tuple[Any, ...]) -> None:
        try:
            line = self._line(item)
            if self._callable is not None:
                self._callable(line)
            else:
                self._batch.append(json.dumps(line, default=_plain).encode() + b"\n")
            self.written += 1
        except Exception:
            self.failed += 1
            log.exception("policyd: writing a decision log line failed")

    def _batch_done(self) -> None:
        batch, self._batch = self._batch, []
        if batch and self._file is not None:
            try:
                for data in batch:  # line by line: a file rotates between lines
                    self._file.write(data)
                self._file.flush()
            except OSError:
                self.failed += len(batch)
                log.exception("policyd: writing the decision log failed")

    def _stopped(self) -> None:
        if self._file is not None:
            self._file.close()

    def describe(self, decision: Decision) -> tuple[str | None, RequestFields]:
        """The bundle revision that made ``decision`` and what its policy logs of a request
        (unknown: no revision, and only the message summary)."""
        for describer in self.describers:
            found = describer(decision)
            if found is not None:
                return found
        return None, RequestFields((), "lengths")

    def _line(self, item: tuple[Any, ...]) -> dict[str, Any]:
        if self._scrub is None:
            self._scrub = Scrubber()
        if item[0] == "line":
            line = dict(item[1])
        else:
            revision, fields = self.describe(item[1])
            if item[0] == "decision":
                line = decision_line(item[1], item[2], revision, fields)
            else:
                line = outcome_line(item[1], item[2], item[3], revision)
        self._scrub.line(line, _ALWAYS_SCRUB)
        return line


def _head(kind: str, decision: Decision, time: datetime, revision: str | None) -> dict[str, Any]:
    return {
        "v": LINE_VERSION,
        "kind": kind,
        "id": decision.id,
        "time": time.isoformat(),
        "policy": decision.policy.to_dict(),
        "revision": revision,
    }


def decision_line(
    decision: Decision, now: datetime, revision: str | None, fields: RequestFields
) -> dict[str, Any]:
    line = _head("decision", decision, now, revision)
    line["request"] = fields.extract(decision.request)
    line["decision"] = decision_summary(decision)
    return line


def outcome_line(
    decision: Decision, outcome: Any, attempts: int, revision: str | None
) -> dict[str, Any]:
    line = _head("outcome", decision, outcome.at, revision)
    error = outcome.error
    line["outcome"] = {
        "model": outcome.model,
        "attempts": attempts,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cost_usd": outcome.cost_usd,
        "latency_s": outcome.latency_s,
        "error": error[:500] if isinstance(error, str) else None,
    }
    return line


_SUMMARY = ', "decision": {'
_DECISION = '{"v": 1, "kind": "decision"'


def parse_line(
    text: str, path: str | os.PathLike[str], number: int, *, summaries: bool = True
) -> dict[str, Any]:
    """One JSON Lines line as a dict; ConfigError (a ValueError) naming ``path:number``
    when it is not a JSON object. ``summaries=False`` leaves out the decision summary of a
    decision-log line (the last key policyd writes, and most of the line), for readers
    that only replay."""
    if not summaries and text.startswith(_DECISION):
        cut = text.rfind(_SUMMARY)
        if cut > 0:
            try:
                value = json.loads(text[:cut] + "}")
            except ValueError:
                pass  # not policyd's own layout: parse it whole
            else:
                if isinstance(value, dict):
                    return value
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)}:{number}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{os.fspath(path)}:{number}: expected a JSON object per line")
    return value


def read_lines(
    path: str | os.PathLike[str], *, summaries: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, parsed line) of a JSON Lines file; blank lines skipped (see
    :func:`parse_line`)."""
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            if text.strip():
                yield number, parse_line(text, path, number, summaries=summaries)
