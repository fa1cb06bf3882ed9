"""Validators that turn RE2 candidates into PII findings: Luhn, mod-97, SSN ranges, ...

Each validator takes the scanned UTF-8 bytes and a candidate's byte span and returns the
spans that really are the thing (often none, sometimes a trimmed span or several). All of
them are linear in the candidate's length; candidates are ASCII, so they decode as latin-1.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable

Span = tuple[int, int]
Validator = Callable[[bytes, int, int], list[Span]]

_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = frozenset(b"0123456789")
_ALNUM = _WORD - {ord("_")}


def _byte(data: bytes, i: int) -> int:
    return data[i] if 0 <= i < len(data) else -1


# --- credit cards -------------------------------------------------------------------------

_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum used by every payment card number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += _LUHN_DOUBLED[d] if i & 1 else d
    return total % 10 == 0


# (lowest prefix, highest prefix, lengths): issuer ranges of the major card networks.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),  # American Express
    ("6011", "6011", frozenset({16, 17, 18, 19})),  # Discover
    ("644", "649", frozenset({16, 17, 18, 19})),  # Discover
    ("65", "65", frozenset({16, 17, 18, 19})),  # Discover
    ("62", "62", frozenset({16, 17, 18, 19})),  # UnionPay
    ("3528", "3589", frozenset({16, 17, 18, 19})),  # JCB
    ("300", "305", frozenset({14, 16, 17, 18, 19})),  # Diners Club
    ("36", "36", frozenset({14, 16, 17, 18, 19})),  # Diners Club
    ("38", "39", frozenset({16, 17, 18, 19})),  # Diners Club
    ("2200", "2204", frozenset({16, 17, 18, 19})),  # Mir
    ("5018", "5018", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    ("5020", "5020", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    ("5038", "5038", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    ("6304", "6304", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    ("6759", "6763", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
)


def card_number_ok(digits: str) -> bool:
    """A plausible card number: a known issuer prefix and length, and a valid Luhn digit."""
    if len(set(digits)) == 1:
        return False
    n = len(digits)
    for low, high, lengths in _CARD_RANGES:
        if n in lengths and low <= digits[: len(low)] <= high:
            return luhn_ok(digits)
    return False


_DIGIT_GROUP = re.compile(rb"\d+")


def card_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Card numbers inside a run of digit groups (``4111 1111 1111 1111``, ``4111-...``).

    A run can hold a card next to other numbers, so every window of whole groups is tried:
    a single 13-19 digit group, or a first group of 4 followed by groups of 3-6 with one
    separator throughout (4-4-4-4, 4-6-5, 4-4-4-4-3). Windows are short, so this is linear.
    """
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(data, start, end)]
    out: list[Span] = []
    i, n = 0, len(groups)
    while i < n:
        gs, ge = groups[i]
        size = ge - gs
        found = -1
        if 13 <= size <= 19:
            if card_number_ok(data[gs:ge].decode("latin-1")):
                found = i
        elif size == 4 and i + 1 < n:
            sep = data[ge : groups[i + 1][0]]
            digits = data[gs:ge].decode("latin-1")
            j = i
            while j + 1 < n and data[groups[j][1] : groups[j + 1][0]] == sep and sep:
                nxt = groups[j + 1]
                if not 3 <= nxt[1] - nxt[0] <= 6 or len(digits) + nxt[1] - nxt[0] > 19:
                    break
                j += 1
                digits += data[nxt[0] : nxt[1]].decode("latin-1")
                if len(digits) >= 13 and card_number_ok(digits):
                    found = j
                    break
        if found >= 0:
            out.append((gs, groups[found][1]))
            i = found + 1
        else:
            i += 1
    return out


# --- IBAN ---------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry, by country code.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    """Known country, the country's length, and the ISO 13616 mod-97 check digits."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def iban_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Trim the candidate to its country's IBAN length at a group boundary, then mod-97."""
    length = IBAN_LENGTHS.get(data[start : start + 2].decode("latin-1").upper())
    if length is None:
        return []
    chars: list[str] = []
    pos = start
    while pos < end and len(chars) < length:
        if data[pos] != 0x20:
            chars.append(chr(data[pos]))
        pos += 1
    if len(chars) < length or _byte(data, pos) in _ALNUM:
        return []
    return [(start, pos)] if iban_ok("".join(chars)) else []


# --- US social security numbers -------------------------------------------------------------

_SSN_NEVER_ISSUED = frozenset({"078051120", "219099999"})  # published in ads / wallets


def ssn_ok(digits: str) -> bool:
    """Area 001-899 except 666, group 01-99, serial 0001-9999; famous fakes excluded."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and digits not in _SSN_NEVER_ISSUED
    )


def ssn_spans(data: bytes, start: int, end: int) -> list[Span]:
    text = data[start:end].decode("latin-1")
    sep = text[3]
    if text[6] != sep:  # mixed separators: 123-45 6789
        return []
    # part of a longer separated number (a phone or an account number)?
    if _byte(data, start - 1) == ord(sep) and _byte(data, start - 2) in _DIGITS:
        return []
    if _byte(data, end) == ord(sep) and _byte(data, end + 1) in _DIGITS:
        return []
    return [(start, end)] if ssn_ok(text[:3] + text[4:6] + text[7:]) else []


# --- phone numbers ------------------------------------------------------------------------

_DATE_PREFIX = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d")


def phone_international_spans(data: bytes, start: int, end: int) -> list[Span]:
    """``+<country> <groups>``: 8-15 digits (E.164), a ``(0)`` trunk digit not counted.

    The candidate may run on into a following number (``+44 20 7946 0958 4111...``), so
    the longest prefix of whole groups with at most 15 digits is taken.
    """
    if _byte(data, start - 1) in _WORD:
        return []
    text = data[start:end].decode("latin-1")
    digits = 0
    best = -1
    i = 0
    while i < len(text):
        if text.startswith("(0)", i):
            i += 3
            continue
        if text[i].isdigit():
            digits += 1
            if digits > 15:
                break
            at_group_end = i + 1 == len(text) or not text[i + 1].isdigit()
            if digits >= 8 and at_group_end:
                best = i + 1
        i += 1
    if best < 0:
        return []
    if best == len(text) and _byte(data, end) in _DIGITS:  # cut off mid-number
        return []
    return [(start, start + best)]


def phone_nanp_spans(data: bytes, start: int, end: int) -> list[Span]:
    """North American ``(415) 555-2671`` / ``415-555-2671``: area and exchange start 2-9."""
    text = data[start:end].decode("latin-1")
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11:
        digits = digits[1:]
    if digits[0] in "01" or digits[3] in "01":
        return []
    if "(" not in text:
        seps = [ch for ch in text[-12:] if not ch.isdigit()]
        if len(set(seps)) != 1:
            return []
    last = data[end - 5 : end - 4]
    if _byte(data, end) == last[0] and _byte(data, end + 1) in _DIGITS:
        return []
    if _byte(data, start - 1) in _DIGITS or _byte(data, start - 1) == ord("+"):
        return []
    return [(start, end)]


def phone_national_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Trunk-prefixed national numbers (``020 7946 0958``, ``01 23 45 67 89``): 10-11 digits."""
    text = data[start:end].decode("latin-1")
    digits = sum(ch.isdigit() for ch in text)
    if not 10 <= digits <= 11 or _DATE_PREFIX.match(text):
        return []
    if _byte(data, start - 1) in (ord("+"), ord("."), ord("-"), ord("/")):
        return []
    return [(start, end)]


# --- network addresses --------------------------------------------------------------------


def ipv4_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Reject dotted quads that are part of a longer dotted number (versions, OIDs)."""
    if _byte(data, start - 1) == ord(".") and _byte(data, start - 2) in _DIGITS:
        return []
    if _byte(data, end) == ord(".") and _byte(data, end + 1) in _DIGITS:
        return []
    return [(start, end)]


def ipv6_spans(data: bytes, start: int, end: int) -> list[Span]:
    """A real IPv6 address with at least one decimal digit (so ``dead::beef`` is not one)."""
    text = data[start:end].decode("latin-1")
    if not any(ch.isdigit() for ch in text) or _byte(data, start - 1) in _WORD:
        return []
    if _byte(data, end) in _WORD or _byte(data, end) == ord(":"):
        return []
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return []
    return [(start, end)]


# --- email --------------------------------------------------------------------------------

_RETINA_ASSET = re.compile(r"^\d+(?:\.\d+)?x\.(?:png|jpe?g|gif|svg|webp|avif)$", re.IGNORECASE)


def email_spans(data: bytes, start: int, end: int) -> list[Span]:
    text = data[start:end].decode("latin-1")
    local, _, domain = text.rpartition("@")
    while local.startswith("."):
        local = local[1:]
        start += 1
    if not local or local.endswith(".") or ".." in local or len(local) > 64:
        return []
    if _RETINA_ASSET.match(domain):  # icon@2x.png
        return []
    return [(start, end)]


# --- secrets ------------------------------------------------------------------------------


def _b64url_json(part: bytes) -> object:
    padded = part + b"=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def jwt_spans(data: bytes, start: int, end: int) -> list[Span]:
    """A JWT whose header decodes to a JSON object with ``alg`` and whose payload is JSON."""
    parts = data[start:end].split(b".")
    try:
        header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return []
    if isinstance(header, dict) and "alg" in header and isinstance(payload, dict):
        return [(start, end)]
    return []


def token_end_spans(data: bytes, start: int, end: int) -> list[Span]:
    """A fixed-length token must not run on into more token characters."""
    nxt = _byte(data, end)
    if nxt in _WORD or nxt == ord("-"):
        return []
    return [(start, end)]
