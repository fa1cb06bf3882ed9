"""Every error policyd raises derives from PolicydError (#12)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import policyd
from policyd.errors import PolicydError

ROOT = Path(policyd.__file__).parent

# Builtin exceptions that may still be raised: each is caught inside policyd, is
# pydantic's validator protocol, a framework's own protocol, or marks unreachable code.
ALLOWED_BUILTIN_RAISES = {
    ("__init__.py", "AttributeError"),  # module __getattr__ protocol
    ("guardrails/__init__.py", "AttributeError"),  # module __getattr__ protocol
    ("budgets/__init__.py", "AttributeError"),  # module __getattr__ protocol
    ("loader.py", "OSError"),  # caught by the loader, becomes PD011
    ("cel/syntax.py", "ValueError"),  # caught by the parser, becomes PD301
    ("fields.py", "ValueError"),  # pydantic validators: become PD1xx diagnostics
    ("integrations/litellm.py", "AssertionError"),  # unreachable
    ("integrations/litellm_router.py", "AssertionError"),  # unreachable
    ("cel/grammar.py", "ImportError"),  # a missing dependency: the import protocol
    ("cel/runtime.py", "KeyError"),  # map_index: to_eval_error makes it an EvaluationError
    ("checks/prompts.py", "ValueError"),  # read_prompt_file: check_prompts makes it a PD diag
}
# Exception classes on a builtin base: the root, and classes that never leave their module.
INTERNAL_CLASSES = {
    "PolicydError",
    "Unsupported",
    "RegexError",
    "_Limit",
    "Blocked",
    "_CaseError",
    "_Worded",  # cel/fallback.py: a marker inside a cel-python error value, never raised
    "_Refused",  # request.py: scan_values' control flow, re-raised as RequestError
    "_NotInlined",  # cel/inline.py: "write this condition as a call", caught there
    "PoolBusy",  # stores/pool.py: one of the Redis store's FAILURES, caught at each call
    "EventsDiffer",  # yamlevents.py: caught by yaml12, which falls back to the pure parser
}


def _files() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_every_exported_exception_is_a_policyd_error() -> None:
    exported = [getattr(policyd, name) for name in policyd.__all__]
    exceptions = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    names = {e.__name__ for e in exceptions}
    assert {"PolicyError", "StoreError", "CelError", "PluginError", "RequestError"} <= names
    for exc in exceptions:
        assert issubclass(exc, PolicydError), exc


def test_litellm_errors_are_policyd_errors() -> None:
    pytest.importorskip("litellm")
    from policyd.integrations import litellm as integration
    from policyd.integrations.litellm_proxy import StreamBlockedError

    for exc in (
        integration.PolicyBlockedError,
        integration.OutputBlockedError,
        integration.PolicyUsageError,
        StreamBlockedError,
    ):
        assert issubclass(exc, PolicydError)


def test_no_public_exception_class_on_a_builtin_base() -> None:
    bad = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name in INTERNAL_CLASSES:
                continue
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            if bases and all(
                isinstance(getattr(builtins, b, None), type)
                and issubclass(getattr(builtins, b), BaseException)
                for b in bases
            ):
                bad.append(f"{path.relative_to(ROOT)}: class {node.name}({', '.join(bases)})")
    assert bad == []


def test_no_builtin_exception_raised_outside_the_allow_list() -> None:
    bad = []
    for path in _files():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else None
            if name is None or not isinstance(getattr(builtins, name, None), type):
                continue
            if (rel, name) not in ALLOWED_BUILTIN_RAISES:
                bad.append(f"{rel}:{node.lineno}: raise {name}")
    assert bad == []


def test_a_broken_bundle_and_a_bad_store_url_are_caught_as_policyd_errors(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("apiVersion: policyd/v1\nkind: Nope\n")
    with pytest.raises(PolicydError):
        policyd.Engine.from_path(str(tmp_path))
    from policyd.stores import open_store

    with pytest.raises(PolicydError):
        open_store("nosuch://x")


def test_bad_arguments_are_config_errors_and_still_value_errors() -> None:
    from policyd.stores.journal import Journal

    with pytest.raises(policyd.ConfigError):
        Journal(-1)
    with pytest.raises(ValueError):
        Journal(-1)
