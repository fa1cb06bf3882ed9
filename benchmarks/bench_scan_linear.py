"""Worst-case guardrail scans stay linear: time per MB at 0.25, 1 and 4 MB per scan family.

Run: ``python benchmarks/bench_scan_linear.py [--quick]``. Each family is the worst input
found for one scan: repeated prefixes of a detector (so every position starts a
candidate), and patterns whose every match used to rescan the rest of the text
(``x(?:.*y)?`` took 50 s on 256 KB, ``(?i)password(?:.*=)?`` 5.6 s, 390 KB of private-key
headers 4.5 s). Target: the 4 MB time is under 5x the 1 MB time (linear, with room for a
busy machine). ``--quick`` stops at 1 MB and reports the 1 MB / 0.25 MB ratio instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from policyd.guardrails import (
    PII_KINDS,
    Check,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.25 and 1 MB only")
    args = parser.parse_args()
    sizes = (0.25, 1.0) if args.quick else (0.25, 1.0, 4.0)
    head = " | ".join(f"{s:g} MB s/MB" for s in sizes)
    ratio_name = "1 MB / 0.25 MB" if args.quick else "4 MB / 1 MB"
    print(f"| scan family | {head} | {ratio_name} | target < 5 |")
    print("|---|" + "---|" * len(sizes) + "---|---|")
    for name, build, unit in FAMILIES:
        check = build()
        check.scan(unit * 1000)  # warm RE2's DFA cache
        times = []
        for size in sizes:
            text = unit * int(size * MB // len(unit))
            times.append(timed(check, text))
        ratio = times[-1] / max(times[-2], 1e-9)
        per_mb = " | ".join(f"{t / s:.3f}" for t, s in zip(times, sizes, strict=True))
        met = "met" if ratio < 5 else "not met"
        print(f"| {name} | {per_mb} | {ratio:.2f} | {met} |", flush=True)


if __name__ == "__main__":
    main()
