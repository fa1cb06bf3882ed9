"""PII and secret detection: RE2 candidates found in one pass, confirmed by Python validators.

Every detector has a stable ``kind`` id (``email``, ``credit_card``, ``secret:openai``, ...)
and a placeholder ``label``. :func:`pii_check` compiles the detectors a guardrail asks for
into one RE2 set; a scan is a single pass over the text plus validation of the candidates.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from policyd.guardrails import _validators as v
from policyd.guardrails._core import GuardrailConfigError
from policyd.guardrails._regex import compile_pattern
from policyd.guardrails._rules import Rule, RuleSetCheck


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of PII: RE2 candidate patterns, validators, a placeholder label.

    ``validate`` is one validator for every pattern, or a tuple with one per pattern.
    """

    kind: str
    label: str
    patterns: tuple[str, ...]
    validate: v.Validator | tuple[v.Validator, ...] | None = None
    group: int = 0  # the capture group that holds the value (0 = the whole match)
    window: int = 256  # the longest candidate, in UTF-8 bytes (runs are split by it)
    pem: bool = False  # a private-key header that extends over its block
    trigger: str | None = None  # what every match starts with (see Rule.trigger)
    lookahead: int = 4  # bytes its validator reads past a candidate (see Rule.lookahead)

    def validators(self) -> tuple[v.Validator | None, ...]:
        if isinstance(self.validate, tuple):
            return self.validate
        return (self.validate,) * len(self.patterns)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email",
        "EMAIL",
        (
            r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,63}\b",
        ),
        v.email_spans,
        window=320,
    ),
    Detector(
        "phone",
        "PHONE",
        (
            r"\+[1-9]\d{0,2}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,7}",
            r"(?:\b1[ .\-]?)?(?:\(\d{3}\) ?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b",
            r"\b0\d{1,4}(?:[ .\-/]\d{2,8})+\b",  # a whole run: the validator splits it
        ),
        (v.phone_international_spans, v.phone_nanp_spans, v.phone_national_spans),
        window=128,
        lookahead=64,  # is the next number in a list another phone?
    ),
    Detector("credit_card", "CREDIT_CARD", (r"\b\d(?:[ \-]?\d){12,}\b",), v.card_spans),
    # a whole run of groups, so IBANs written back to back are one candidate the validator splits
    Detector(
        "iban",
        "IBAN",
        (r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,}",),
        v.iban_spans,
        trigger=r"[A-Za-z]{2}\d{2}",
    ),
    Detector(
        "us_ssn",
        "US_SSN",
        (r"\b\d{3}[\- ]\d{2}[\- ]\d{4}\b",),
        v.ssn_spans,
        window=32,
        lookahead=16,  # is it part of a longer number?
    ),
    Detector(
        "ip_address",
        "IP_ADDRESS",
        (
            rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b",
            r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{1,4})?",
        ),
        (v.ipv4_spans, v.ipv6_spans),
        window=64,
    ),
)

SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "secret:openai",
        "SECRET",
        (
            r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}",
            r"\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b",
            r"\bsk-[A-Za-z0-9]{48}\b",
        ),
    ),
    Detector("secret:anthropic", "SECRET", (r"\bsk-ant-[a-z]{3,6}\d{2}-[A-Za-z0-9_\-]{32,}",)),
    Detector(
        "secret:aws_access_key",
        "SECRET",
        (r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b",),
    ),
    Detector(
        "secret:aws_secret_key",
        "SECRET",
        (
            r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?"
            r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        ),
        group=1,
    ),
    Detector(
        "secret:github",
        "SECRET",
        (
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
            r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b",
        ),
    ),
    Detector(
        "secret:slack",
        "SECRET",
        (
            r"\bxox[abeoprs]-\d+-[A-Za-z0-9\-]{8,}",
            r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{16,}",
        ),
    ),
    Detector(
        "secret:slack_webhook",
        "SECRET",
        (r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{20,}",),
    ),
    Detector("secret:google_api_key", "SECRET", (r"\bAIza[0-9A-Za-z_\-]{35}",), v.token_end_spans),
    Detector(
        "secret:stripe",
        "SECRET",
        (r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}\b",),
        # no literal prefix (two): without a trigger a stream holds back every letter run
        trigger=r"(?:sk|rk)_(?:live|test)_",
    ),
    # the header only: the scanner extends it to the END marker, or over its base64 body
    # (a truncated key), holding a stream back from the header until it knows which
    Detector(
        "secret:private_key",
        "SECRET",
        (r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----",),
        pem=True,
    ),
    Detector(
        "secret:jwt",
        "SECRET",
        (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",),
        v.jwt_spans,
        window=8192,
    ),
)

PII_KINDS: tuple[str, ...] = (*(d.kind for d in PII_DETECTORS), "secret")
SECRET_KINDS: tuple[str, ...] = tuple(d.kind for d in SECRET_DETECTORS)
LABELS: dict[str, str] = {d.kind: d.label for d in (*PII_DETECTORS, *SECRET_DETECTORS)}

# When one finding lies inside another of the same position and length, this order wins.
_PRIORITY = {kind: i for i, kind in enumerate((*SECRET_KINDS, "credit_card", "iban", "us_ssn",
                                                "email", "phone", "ip_address"))}  # fmt: skip
_BY_KIND = {d.kind: d for d in (*PII_DETECTORS, *SECRET_DETECTORS)}


def _rules(detector: Detector) -> list[Rule]:
    return [
        Rule(
            detector.kind,
            detector.label,
            None,
            compile_pattern(pattern, what=f"pii {detector.kind}", index=None),
            validate,
            detector.group,
            exclusive=True,
            priority=_PRIORITY[detector.kind],
            window=detector.window,
            pem=detector.pem,
            trigger=detector.trigger,
            lookahead=detector.lookahead,
        )
        for pattern, validate in zip(detector.patterns, detector.validators(), strict=True)
    ]


def resolve_kinds(kinds: Sequence[str]) -> list[str]:
    """Expand ``secret`` into every secret kind; unknown kinds raise with a suggestion."""
    if isinstance(kinds, str):
        kinds = [kinds]
    if not kinds:
        raise GuardrailConfigError(
            "pii needs at least one kind", hint=f"choose from {', '.join(PII_KINDS)}"
        )
    resolved: list[str] = []
    known = (*PII_KINDS, *SECRET_KINDS)
    for i, kind in enumerate(kinds):
        if kind == "secret":
            new = list(SECRET_KINDS)
        elif kind in _BY_KIND:
            new = [kind]
        else:
            close = difflib.get_close_matches(str(kind), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(known)}"
            raise GuardrailConfigError(f"unknown pii kind {kind!r}", index=i, hint=hint)
        resolved.extend(k for k in new if k not in resolved)
    return resolved


class PiiCheck(RuleSetCheck):
    """Finds the requested PII kinds; see :data:`PII_KINDS` and :data:`SECRET_KINDS`."""

    __slots__ = ("kinds",)

    def __init__(self, kinds: Sequence[str]):
        self.kinds = tuple(resolve_kinds(kinds))
        super().__init__([rule for kind in self.kinds for rule in _rules(_BY_KIND[kind])])


def pii_check(kinds: Sequence[str]) -> PiiCheck:
    """A check for PII/secret ``kinds``; an unknown kind raises :class:`GuardrailConfigError`."""
    return PiiCheck(kinds)
