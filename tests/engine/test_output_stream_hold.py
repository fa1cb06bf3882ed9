"""A guardrail that needs the whole answer (allow_patterns, json_schema, a plugin) holds a
streamed answer back until the end: holding must stay linear in the answer's length.

Each chunk used to be added to one string of everything held (``pending += chunk``), a copy
of all the text so far per chunk: 1,000,000 characters in 16-character chunks took 1.9 s of
CPU, x3 to x8 per doubling. Counted, not timed: chunks are a ``str`` subclass that counts
the characters ``held + chunk`` copies (Python asks the right operand first when it is a
subclass of the left one). The released text and findings stay what one check of the whole
answer gives, for any chunking.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy, small_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine

GUARDS = """\
    - {name: plain, allow_patterns: ['^[a-z0-9 @.]+$'], action: block}
    - {name: pii, pii: [email], action: redact}
    - {name: cap, max_chars: 3000, action: redact}
"""


class Counted(str):
    """A chunk that counts the characters copied when it is added to the text held."""

    copied = 0

    def __radd__(self, held: str) -> str:
        Counted.copied += len(held) + len(self)
        return str.__add__(held, self)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    tmp: Path = tmp_path_factory.mktemp("hold")
    (tmp / "models.yaml").write_text(textwrap.dedent(CATALOG))
    body = "routing: {default: t}\ntiers: {t: {targets: [{model: small}]}}\n"
    (tmp / "policy.yaml").write_text(policy(body + "guardrails:\n  output:\n" + GUARDS))
    return Engine.from_path(tmp)


def _stream(engine: Engine, chunks: list[str]) -> tuple[Any, str]:
    checker = engine.output_checker(engine.decide(small_request()))
    out = [checker.feed(chunk).text for chunk in chunks]
    out.append(checker.finish().text)
    return checker, "".join(out)


def test_holding_a_long_answer_copies_each_chunk_a_bounded_number_of_times(
    engine: Engine,
) -> None:
    n, size = 4000, 16  # 64,000 characters held by the first guardrail, then released
    chunks = [Counted("abc def@x.io " + "x" * (size - 13)) for _ in range(n)]
    Counted.copied = 0
    checker, released = _stream(engine, chunks)
    # each chunk copied into the held text a bounded number of times, not once per later chunk
    assert Counted.copied <= 4 * n * size
    whole = engine.check_output(engine.decide(small_request()), "".join(chunks))
    assert checker.allowed and whole.allowed
    assert released == whole.text
    assert released.count("[EMAIL]") == 3000 // 15  # a chunk is 15 characters once redacted
    assert released.endswith("[MAX_CHARS]")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet="ab @.xy\n1", max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=20),
)
def test_a_held_stream_releases_what_one_check_of_the_whole_answer_gives(
    engine: Engine, text: str, cuts: list[int]
) -> None:
    text = text.replace("@", "q@b.io ")  # some e-mail addresses to redact
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    whole = engine.check_output(engine.decide(small_request()), text)
    checker, released = _stream(engine, chunks)
    assert checker.allowed == whole.allowed
    assert checker.blocked_by == whole.blocked_by
    if whole.allowed:
        assert released == whole.text
