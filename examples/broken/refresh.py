"""Rewrite the comment at the top of each broken example with what ``policyd check`` says now.

Each ``examples/broken/*.yaml`` starts with ``# PDxxx what is wrong``, then quotes the check
output; ``tests/test_cli.py`` fails when the quote and the real output differ. After changing
a message on purpose, run from the repository root and review the diff::

    python examples/broken/refresh.py            # every example
    python examples/broken/refresh.py FILE...    # some of them
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from policyd import load_bundle

HERE = Path(__file__).resolve().parent


def header(path: Path) -> list[bytes]:
    """The description lines, then the quoted output of checking ``path`` as it is now."""
    lines = path.read_bytes().split(b"\n")
    description = []
    for line in lines:
        if not line.startswith(b"#") or line == b"#":
            break
        description.append(line)
    diagnostics = load_bundle(path).diagnostics
    strict = "" if any(d.is_error for d in diagnostics) else " --strict"
    quoted = [b"#", f"# $ policyd check{strict} {path}".encode()]
    for d in diagnostics:
        quoted.append(
            f"# {d.file}:{d.line}:{d.column}: {d.severity} {d.code}: {d.message}".encode()
        )
        if d.hint:
            quoted.append(f"#   hint: {d.hint}".encode())
    return description + quoted


def refresh(path: Path) -> bool:
    """Rewrite ``path``'s header until its quoted positions agree with itself; True if changed."""
    original = path.read_bytes()
    for _ in range(5):  # the header's length moves the lines it quotes; settles in two rounds
        lines = path.read_bytes().split(b"\n")
        body = lines[
            next((i for i, ln in enumerate(lines) if not ln.startswith(b"#")), len(lines)) :
        ]
        updated = b"\n".join(header(path) + body)
        if updated == path.read_bytes():
            break
        path.write_bytes(updated)
    return path.read_bytes() != original


def main(argv: list[str]) -> int:
    targets = argv or [str(p) for p in sorted(HERE.glob("*.yaml"))]
    for path in [Path(os.path.relpath(t)) for t in targets]:  # quoted as the user types it
        if refresh(path):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
