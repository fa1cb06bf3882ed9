"""Worst-case guardrail scans stay linear: time per MB at 0.25, 1 and 4 MB per scan family.

Run: ``python benchmarks/bench_scan_linear.py [--quick] [--stream-only]``. Each family
is the worst input found for one scan: repeated prefixes of a detector (so every position starts a
candidate), and patterns whose every match used to rescan the rest of the text
(``x(?:.*y)?`` took 50 s on 256 KB, ``(?i)password(?:.*=)?`` 5.6 s, 390 KB of private-key
headers 4.5 s). Target: the 4 MB time is under 5x the 1 MB time (linear, with room for a
busy machine). ``--quick`` stops at 1 MB and reports the 1 MB / 0.25 MB ratio instead.
The last column is the work in bytes handed to RE2 per text byte at each size (without
the one set pass every scan starts with): flat means linear, whatever the clock says.

The second table is streaming release (#13): a 1,000-character answer whose first token
comes at 100 ms, then 5-character chunks at 500 characters/s (one every 10 ms), through
the output checker of a policy; time to first released text against the 100 ms an
unchecked stream shows it at (target: at most 2x), the most characters ever held back,
and the CPU cost per chunk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from policyd import Engine
from policyd.guardrails import (
    PII_KINDS,
    Check,
    RuleSetCheck,
    injection_check,
    pattern_check,
    pii_check,
    terms_check,
)

HEADER = "-----BEGIN PRIVATE KEY-----"
MB = 1 << 20

FAMILIES: list[tuple[str, Callable[[], Check], str]] = [
    ("deny_patterns `x(?:.*y)?` on x…", lambda: pattern_check([r"x(?:.*y)?"]), "x"),
    (
        "deny_patterns `(?i)password(?:.*=)?` on password…",
        lambda: pattern_check([r"(?i)password(?:.*=)?"]),
        "password",
    ),
    ("deny_patterns `a[^b]*b` on a… (no b)", lambda: pattern_check([r"a[^b]*b"]), "a"),
    ("secret:private_key headers", lambda: pii_check(["secret:private_key"]), HEADER),
    ("all secrets, header + body", lambda: pii_check(["secret"]), HEADER + "\nQUJD"),
    ("email `a.a@`", lambda: pii_check(["email"]), "a.a@"),
    ("phone `+1 2`", lambda: pii_check(["phone"]), "+1 2"),
    ("credit_card `4444 `", lambda: pii_check(["credit_card"]), "4444 "),
    ("iban `DE00 `", lambda: pii_check(["iban"]), "DE00 "),
    ("us_ssn `123-45-`", lambda: pii_check(["us_ssn"]), "123-45-"),
    ("ip_address `a1:`", lambda: pii_check(["ip_address"]), "a1:"),
    ("secret:jwt `eyJ…`", lambda: pii_check(["secret:jwt"]), "eyJaaaaaaaaa.eyJ"),
    ("secret:openai `sk-proj-`", lambda: pii_check(["secret:openai"]), "sk-proj-"),
    ("all pii on `1.2.`", lambda: pii_check(PII_KINDS), "1.2."),
    ("injection v1 `ignore all `", lambda: injection_check(), "ignore all "),
    ("deny_terms `new york` on `new  `", lambda: terms_check(["new york", "new"]), "new  "),
]


def timed(check: Check, text: str, reps: int = 2) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        check.scan(text)
        best = min(best, time.perf_counter() - t0)
    return best


REPO = Path(__file__).resolve().parents[1]
ANSWER = (
    "Your loop never updates i, so it runs forever; add i += 1 at the end of the body. "
    "If you meant to walk the list, use for item in items: instead. "
) * 7
STRICT = """\
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: models}
models:
  small: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}
---
apiVersion: policyd/v1
kind: Policy
metadata: {name: strict, version: "1"}
tiers: {t: {targets: [{model: small}]}}
routing: {default: t}
guardrails:
  output:
    - {name: pii, pii: [email, phone, credit_card, iban, us_ssn, ip_address, secret],
       action: redact}
    - {name: words, deny_patterns: ['(?i)password\\s*=\\s*\\S+'], deny_terms: [acme],
       action: redact}
    - {name: inj, injection: true}
"""


def bench_stream() -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "strict.yaml").write_text(STRICT)
    cases = [
        ("shipped support-bot (pii [credit_card, secret], redact)", REPO / "policies",
         "support-bot"),
        ("strict: all PII + patterns/terms redact + injection block", tmp, "strict"),
    ]  # fmt: skip
    print("\n| output guardrails | first text at | vs unchecked 100 ms (target <= 2x) |"
          " most chars held | us per chunk |")  # fmt: skip
    print("|---|---|---|---|---|")
    request = {"messages": [{"role": "user", "content": "hi"}], "feature": "chat",
               "tenant": {"id": "t", "tier": "free"}, "user": {"id": "u"}}  # fmt: skip
    for name, path, policy in cases:
        engine = Engine.from_path(path)
        decision = engine.decide(request, policy=policy)
        checker = engine.output_checker(decision)
        first, held, sent, out, cpu = None, 0, 0, 0, 0.0
        chunks = [ANSWER[i : i + 5] for i in range(0, len(ANSWER), 5)]
        for i, chunk in enumerate(chunks):
            t0 = time.perf_counter()
            text = checker.feed(chunk).text
            cpu += time.perf_counter() - t0
            sent += len(chunk)
            out += len(text)
            held = max(held, sent - out)
            if text and first is None:
                first = 100.0 + i * 10.0 + cpu * 1e3
        checker.finish()
        first_ms = first if first is not None else 100.0 + len(chunks) * 10.0
        ratio = first_ms / 100.0
        met = "met" if ratio <= 2 else "not met"
        print(f"| {name} | {first_ms:.0f} ms | {ratio:.1f}x, {met} | {held} |"
              f" {cpu / len(chunks) * 1e6:.0f} |")  # fmt: skip


def searched(check: Check, text: str) -> int:
    """Bytes the scan hands to RE2 (deterministic; the Set pre-pass not counted)."""
    if not isinstance(check, RuleSetCheck):
        return 0
    cursor = check.open_cursor()
    cursor.feed(text)
    cursor.advance(final=True)
    return cursor.work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.25 and 1 MB only")
    parser.add_argument("--stream-only", action="store_true", help="the streaming table only")
    args = parser.parse_args()
    if args.stream_only:
        bench_stream()
        return
    sizes = (0.25, 1.0) if args.quick else (0.25, 1.0, 4.0)
    head = " | ".join(f"{s:g} MB s/MB" for s in sizes)
    ratio_name = "1 MB / 0.25 MB" if args.quick else "4 MB / 1 MB"
    print(f"| scan family | {head} | {ratio_name} | target < 5 | bytes searched per byte |")
    print("|---|" + "---|" * len(sizes) + "---|---|---|")
    for name, build, unit in FAMILIES:
        check = build()
        check.scan(unit * 1000)  # warm RE2's DFA cache
        times, work = [], []
        for size in sizes:
            text = unit * int(size * MB // len(unit))
            times.append(timed(check, text))
            work.append(searched(check, text) / len(text.encode()))
        ratio = times[-1] / max(times[-2], 1e-9)
        per_mb = " | ".join(f"{t / s:.3f}" for t, s in zip(times, sizes, strict=True))
        met = "met" if ratio < 5 else "not met"
        per_byte = " / ".join(f"{w:.1f}" for w in work)
        print(f"| {name} | {per_mb} | {ratio:.2f} | {met} | {per_byte} |", flush=True)
    bench_stream()


if __name__ == "__main__":
    main()
