"""Where PD214 points for many placeholders: one pass over the template or prompt file.

Each unknown placeholder used to map its whole template again (``scalar_offset``) or count
the lines of its prompt file up to it (``text.count``/``rfind``): 2,500 placeholders in one
inline template took 53.6 s to check, 40,000 in a prompt file 8.3 s. Counted, not timed:
how many characters of the text are scanned to place the reports. The positions are the
ones the per-placeholder computation gives.
"""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import one

import policyd.checks.prompts as prompts
import policyd.checks.templates as templates
import policyd.sourcemap as sourcemap
from policyd.bundle import load_bundle
from policyd.sourcemap import ScalarNode

HEAD = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: p}
context: {tenant: {id: string, name: string}}
models: {m: {litellm: openai/gpt-4o-mini}}
tiers: {t: {targets: [{model: m}]}}
routing: {default: t}
"""


def _old_index(src: str, node: ScalarNode, offset: int) -> int:
    """The per-offset resolution as it was written (one map of the scalar per call)."""
    offset = max(0, min(offset, len(node.value)))
    mapping = sourcemap._scalar_mapping(src, node)
    if mapping[offset] >= 0:
        return mapping[offset]
    for before in range(offset - 1, -1, -1):
        if mapping[before] >= 0:
            return mapping[before] + 1
    return next((i for i in mapping if i >= 0), 0)


SCALARS = [
    "a: plain text {{ x }} here\n",
    'a: "dq \\t\\u00e9 \\"q\\" {{ x }}\\n end"\n',
    "a: 'sq ''q'' {{ x }}'\n",
    'a: "folded\n  over  lines\n\n  and {{ x }}\\\n  joined"\n',
    "a: |\n  lit {{ x }}\n    more\n\n  end\n",
    "a: >-\n  folded {{ x }}\n  text\n\n    kept\n  end\n",
    "a: plain\n  multi {{ x }}\n\n  line\n",
    "a: ''\n",
]


@pytest.mark.parametrize("text", SCALARS, ids=range(len(SCALARS)))
def test_every_offset_maps_where_the_per_offset_mapping_put_it(text: str) -> None:
    doc = one(text)
    node, _, found = doc.source_map._walk(("a",))
    assert found and isinstance(node, ScalarNode)
    src = doc.source_map._lines.text[node.text_start : node.end]
    offsets = list(range(-2, len(node.value) + 3))
    got = doc.source_map.scalar_offsets(("a",), offsets)
    lines = doc.source_map._lines
    assert got == [lines.position(node.text_start + _old_index(src, node, o)) for o in offsets]
    assert [doc.source_map.scalar_offset(("a",), o) for o in offsets] == got


class _CountingLines:
    """``_scalar_lines`` counting the characters of scalar it maps."""

    def __init__(self) -> None:
        self.chars = 0
        self.real = sourcemap._scalar_lines

    def __call__(self, src: str, style: str | None, value: str) -> Any:
        self.chars += len(src)
        return self.real(src, style, value)


def test_an_inline_template_is_mapped_once_for_all_its_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 300
    template = "".join(f"x{i} {{{{ tenant.nmae }}}} \\t " for i in range(n))
    (tmp_path / "p.yaml").write_text(
        HEAD + f'prompts: {{s: {{versions: {{v1: {{template: "{template}"}}}}}}}}\n'
    )
    counting = _CountingLines()
    monkeypatch.setattr(sourcemap, "_scalar_lines", counting)
    found = [d for d in load_bundle(tmp_path).diagnostics if d.code == "PD214"]
    assert counting.chars <= 2 * len(template)
    line = (tmp_path / "p.yaml").read_text().splitlines()[found[0].line - 1]
    assert len(found) == n
    assert {line[d.column - 1 : d.column + 10] for d in found} == {"tenant.nmae"}
    assert found[0].hint == "did you mean 'name'?"


class _Text(str):
    """A prompt file's text that counts the characters its searches scan."""

    scanned = 0

    def count(self, sub: str, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        _Text.scanned += (len(self) if end is None else end) - (start or 0)
        return str.count(self, sub, start, end)

    def rfind(self, sub: str, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        _Text.scanned += (len(self) if end is None else end) - (start or 0)
        return str.rfind(self, sub, start, end)


class _CountingNewline:
    """The newline pattern the check finds a file's lines with, counting what it scans."""

    def __init__(self) -> None:
        self.pattern = getattr(templates, "_NEWLINE", re.compile("\n"))

    def finditer(self, text: str) -> Any:
        _Text.scanned += len(text)
        return self.pattern.finditer(text)


def test_a_prompt_file_is_scanned_once_for_all_its_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    lines = [
        rng.choice(["", "text ", "{{ tenant.id }} "]) + "{{ tenant.nmae }}" * rng.randint(0, 3)
        for _ in range(2000)
    ]
    body = "\n".join(lines) + "\n"
    (tmp_path / "s.md").write_text(body)
    (tmp_path / "p.yaml").write_text(HEAD + "prompts: {s: {versions: {v1: {file: s.md}}}}\n")
    read = prompts.read_prompt_file
    monkeypatch.setattr(prompts, "read_prompt_file", lambda file: _Text(read(file)))
    monkeypatch.setattr(templates, "_NEWLINE", _CountingNewline(), raising=False)
    _Text.scanned = 0
    found = [d for d in load_bundle(tmp_path).diagnostics if d.code == "PD214"]
    assert _Text.scanned <= 2 * len(body)
    expected = []
    for i, line in enumerate(lines):
        at = line.find("{{ tenant.nmae }}")
        while at >= 0:
            expected.append((i + 1, at + 4))
            at = line.find("{{ tenant.nmae }}", at + 1)
    assert expected and [(d.line, d.column) for d in found] == expected


def test_positions_in_a_small_template_and_file_are_unchanged(tmp_path: Path) -> None:
    (tmp_path / "s.md").write_text("Hello\n  {{ tenant.nmae }}\n")
    (tmp_path / "p.yaml").write_text(
        HEAD
        + textwrap.dedent("""\
            prompts:
              f: {versions: {v1: {file: s.md}}}
              t: {versions: {v1: {template: "Hi {{ tenant.nmae }} {{ tenant.idd }}"}}}
            """)
    )
    found = [(Path(d.file).name, d.line, d.column) for d in load_bundle(tmp_path).diagnostics]
    assert found == [("p.yaml", 10, 40), ("p.yaml", 10, 58), ("s.md", 2, 6)]
