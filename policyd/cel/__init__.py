"""CEL for policyd: a static type-checker and a CEL-to-Python compiler.

Every ``when``, ``key`` and ``sticky_by`` in a policy is a CEL expression. It is
parsed with cel-python's grammar, type-checked against the policy's declared
request attributes at load time, and compiled to one Python function that runs
over plain Python values on every request::

    from policyd import cel

    expr = cel.compile('request.tenant.tier == "enterprise" && "code" in request.tags',
                       {"request": {"tenant": {"tier": "string"}, "tags": "list<string>"}})
    expr.evaluate({"request": {"tenant": {"tier": "enterprise"}, "tags": ["code"]}})  # True

See docs/cel.md for the supported language, the semantics and the limits.
"""

from policyd.cel.errors import CelError, CompileError, CostLimitExceeded, EvaluationError
from policyd.cel.expression import Expression, compile
from policyd.cel.types import CelType, TypeDecl, TypeValue, parse_type

__all__ = [
    "CelError",
    "CelType",
    "CompileError",
    "CostLimitExceeded",
    "EvaluationError",
    "Expression",
    "TypeDecl",
    "TypeValue",
    "compile",
    "parse_type",
]
