"""The committed JSON Schema: fresh, valid, and in agreement with the typed model.

``schemas/policyd-v1.schema.json`` is what editors (yaml-language-server) and other tools
validate policy files with, so it must say what ``policyd check`` says about structure.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policyd import document, loader
from policyd.cli import main

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "policyd-v1.schema.json"
REGENERATE = "run `policyd schema -o schemas/policyd-v1.schema.json` and commit the result"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(committed: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(committed)
    return cls(committed, format_checker=cls.FORMAT_CHECKER)


def test_committed_schema_is_what_the_model_generates(committed: dict[str, Any]) -> None:
    assert committed == document.json_schema(), (
        f"schemas/policyd-v1.schema.json is stale: {REGENERATE}"
    )


def test_policyd_schema_prints_the_committed_file_byte_for_byte() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.output == SCHEMA_FILE.read_text(encoding="utf-8"), REGENERATE


def test_policyd_schema_output_option_writes_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(main, ["schema", "-o", str(out)])
    assert (result.exit_code, result.output) == (0, "")
    assert out.read_text(encoding="utf-8") == SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_is_a_valid_draft_2020_12_schema(committed: dict[str, Any]) -> None:
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(committed)


def _shipped_documents() -> list[loader.Document]:
    result = loader.load_path(REPO / "policies")
    assert result.diagnostics == []
    return result.documents


@pytest.mark.parametrize(
    "doc", _shipped_documents(), ids=lambda d: f"{Path(d.file).name}#{d.index}"
)
def test_every_shipped_document_validates_against_the_schema(
    doc: loader.Document, validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc.data)]
    assert errors == []


@pytest.mark.parametrize(
    "doc", _shipped_documents(), ids=lambda d: f"{Path(d.file).name}#{d.index}"
)
def test_typed_documents_round_trip_through_json(
    doc: loader.Document, validator: jsonschema.protocols.Validator
) -> None:
    """Typed -> JSON (with every default filled in) -> schema-valid -> the same typed object."""
    cls = document.KINDS[doc.data["kind"]]
    typed = cls.model_validate(doc.data)
    dumped = json.loads(typed.model_dump_json(by_alias=True))
    assert [e.message for e in validator.iter_errors(dumped)] == []
    assert cls.model_validate(dumped) == typed
    assert json.loads(cls.model_validate(dumped).model_dump_json(by_alias=True)) == dumped


def _yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_format_documents_examples_are_valid(
    shared_dir: Path, validator: jsonschema.protocols.Validator
) -> None:
    """The complete Policy and PolicyTest in policy-format.md: the users' contract."""
    blocks = _yaml_blocks((shared_dir / "design" / "policy-format.md").read_text())
    documents = [d for b in blocks for d in loader.load_text(b, "policy-format.md").documents]
    assert {d.data["kind"] for d in documents} == {"Policy", "PolicyTest"}
    for doc in documents:
        assert [e.message for e in validator.iter_errors(doc.data)] == []
        document.KINDS[doc.data["kind"]].model_validate(doc.data)


# --- the schema and the model agree on what is valid ------------------------------------------

BASE: dict[str, Any] = {
    "apiVersion": "policyd/v1",
    "kind": "Policy",
    "metadata": {"name": "demo"},
    "models": {"small": {"litellm": "openai/gpt-4o-mini"}},
    "tiers": {"economy": {"strategy": "weighted", "targets": [{"model": "small", "weight": 1}]}},
    "routing": {"default": "economy", "timeout": "30s"},
    "budgets": [
        {
            "name": "b",
            "key": "request.user.id",
            "window": "calendar_day",
            "limit": {"usd": 1},
            "alerts": [0.5],
        }
    ],
}

texts = st.text(alphabet="aZ09 ._-:/\t", max_size=8)
EDITS: list[tuple[tuple[str | int, ...], st.SearchStrategy[Any]]] = [
    (("metadata", "name"), texts),
    (("routing", "timeout"), st.one_of(texts, st.from_regex(r"\d{1,3}(\.\d)?(ms|s|m|h|d|x)?"))),
    (("tiers", "economy", "strategy"), st.sampled_from(["weighted", "ordered", "cheapest", "x"])),
    (("tiers", "economy", "targets", 0, "weight"), st.integers(-3, 3)),
    (("budgets", 0, "window"), st.sampled_from(["calendar_day", "daily", {"rolling": "1h"}])),
    (("budgets", 0, "limit"), st.sampled_from([{}, {"usd": -1}, {"tokens": 5}, {"usd": 1.5}])),
    (("budgets", 0, "on_store_error"), st.sampled_from(["allow", "block", "deny"])),
    (("routing", "retry"), st.fixed_dictionaries({"attempts": st.integers(0, 25)})),
    (("models", "small", "context_window"), st.one_of(st.none(), st.integers(-1, 2))),
    (("metadata", "colour"), st.just("blue")),
    (
        ("budgets", 0, "on_exceed"),
        st.sampled_from(
            [
                {"action": "block"},
                {"action": "downgrade"},
                {"action": "downgrade", "tier": "economy"},
                {"action": "block", "tier": "economy"},
                {"action": "warn", "tier": None},
            ]
        ),
    ),
    (
        ("prompts",),
        st.sampled_from(
            [
                {},
                {"file": "a.md"},
                {"template": "t"},
                {"file": "a", "template": "b"},
                {"file": None, "template": "t"},
                {"file": None},
            ]
        ).map(lambda version: {"p": {"versions": {"v1": version}}}),
    ),
]


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(EDITS))), max_size=3, unique=True), st.data())
def test_schema_and_model_accept_and_reject_the_same_documents(
    picks: list[int], data: st.DataObject
) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    doc = copy.deepcopy(BASE)
    for i in picks:
        path, values = EDITS[i]
        _set(doc, path, data.draw(values, label=".".join(map(str, path))))
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(doc)
    try:
        document.Policy.model_validate(doc)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert schema_ok == model_ok, doc
