"""The generated decide function's text as it is written (:mod:`policyd.fused`): its lines,
their indentation, the constants they name, and each condition's code; compiled once per text.

A condition is written as ``v = <value>`` or an :class:`~policyd.fused_runtime.Err`, as
``stages.base.matches`` would judge it: the CEL compiler's own code inlined where it
allows (:mod:`policyd.cel.inline`), else its function called.
"""

from __future__ import annotations

import builtins
import warnings
from types import CodeType
from typing import Any

from policyd import cel
from policyd.cel.inline import absorbing_lines, inline
from policyd.decision import TraceEntry

_CODE: dict[str, CodeType] = {}  # generated source -> its code object


class Source:
    """Lines of the generated function and the constants they name."""

    def __init__(self, ns: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.ns = ns
        self.depth = 1
        self.count = 0
        self.called = False  # a condition's function is called (it needs the activation)

    def emit(self, *lines: str) -> None:
        self.lines.extend("    " * self.depth + line for line in lines)

    def const(self, value: Any) -> str:
        self.count += 1
        name = f"_c{self.count}"
        self.ns[name] = value
        return name

    def entry(self, stage: str, rule: str | None, outcome: str, detail: str) -> str:
        return self.const(TraceEntry(stage, rule, outcome, detail))

    def later(self, stage: str, rule: str | None, outcome: str, before: str, after: str) -> str:
        """Code appending the :class:`Later` of the failed condition in ``v``."""
        spec = self.const((stage, rule, outcome, before, after))
        return f"trace.append(_new_tuple(_Later, ({spec}, v))); lazy = 1"

    def condition(self, expr: cel.Expression) -> None:
        """``v`` = the value, or an :class:`Err` (as ``matches``/``evaluate`` would say)."""
        inlined = inline(expr, self.ns)
        if inlined is None:
            self.called = True
            self.emit("try:", f"    v = {self.const(expr.evaluate)}(a)")
            self.emit("except _CAUGHT as exc:")
            self.emit("    v = _new_tuple(_Err, (_detach(exc), None))")
            return
        self.called = self.called or inlined.activation
        names = f"{inlined.prefix}_names"
        self.emit("try:", f"    v = {inlined.fast}", "except _E as exc:")
        if not inlined.absorbs:  # the error is the answer
            self.emit(f"    v = _new_tuple(_Err, (_detach(exc), {names}))")
        elif inlined.absorbing is None:  # its absorbing function decides
            slow = expr.evaluate.__globals__["_slow"]
            self.emit(f"    v = _rerun({self.const(slow)}, exc, r, now)")
        else:  # ... written out as statements, a function of its own (the error path)
            body = "".join(f"    {line}\n" for line in absorbing_lines(inlined.absorbing, "_o"))
            text = (
                f"def absorbing(r, now):\n{body}    if _o_e is None:\n        return _o_v\n"
                f"    return _new_tuple(_Err, (_o_e, {names}))\n"
            )
            made: dict[str, Any] = {}
            exec(compiled(text, "<policyd.fused absorbing>"), self.ns, made)
            self.emit(f"    v = {self.const(made['absorbing'])}(r, now)")


def compiled(text: str, filename: str) -> CodeType:
    """``text`` compiled, from a cache: compiling is most of :func:`fuse`'s time, and
    compiling a policy again (a reload, the policy test runner) repeats the same text."""
    code = _CODE.get(text)
    if code is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # as cel.expression compiles CEL
            code = builtins.compile(text, filename, "exec")
        if len(_CODE) >= 1024:
            _CODE.clear()
        _CODE[text] = code
    return code
