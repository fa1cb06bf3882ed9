"""Validators that turn RE2 candidates into PII findings: Luhn, mod-97, SSN ranges, ...

Each validator takes the scanned UTF-8 bytes and a candidate's byte span and returns the
spans that really are the thing (often none, sometimes a trimmed span or several). All of
them are linear in the candidate's length; candidates are ASCII, so they decode as latin-1.

Scanning resumes after a candidate, so where values can be written back to back (cards,
IBANs, national phone numbers: ``DE89 3704 ... 00 GB82 WEST ...``) the candidate regex
takes the whole run and the validator finds every value in it; a validator that trimmed
the first value and dropped the rest would let every other value through unredacted.
A value's verdict looks only a few characters past it (at most ~16, the stream
scanner's ``settle``), so a stream finds what one scan finds; a card split can in
principle hinge on a later group, but only through chance Luhn coincidences.
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
_CARD_FIRST_DIGITS = frozenset(
    digit for low, high, _ in _CARD_RANGES for digit in range(ord(low[0]), ord(high[0]) + 1)
)


def card_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Card numbers inside a run of digit groups (``4111 1111 1111 1111``, ``4111-...``).

    A run can hold several cards back to back, or a card next to other numbers. A card is
    a single 13-19 digit group, or a first group of 4 followed by groups of 3-6 with one
    separator throughout (4-4-4-4, 4-6-5, 4-4-4-4-3). Every such window that is a card is
    a candidate, and the run is split into the cards covering the most digits, so a 19-digit
    card is not cut after 16 and a 14-digit card does not take the next card's first group.
    Windows span at most 6 groups, so this is linear in the run.
    """
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(data, start, end)]
    n = len(groups)
    digits_before = [0]
    for gs, ge in groups:
        digits_before.append(digits_before[-1] + ge - gs)
    best = [0] * (n + 1)  # most card digits coverable in groups[i:]
    take = [-1] * n  # last group of the card starting at group i in that cover, or -1
    for i in range(n - 1, -1, -1):
        best[i] = best[i + 1]
        for j in _card_windows(data, groups, i):
            covered = digits_before[j + 1] - digits_before[i] + best[j + 1]
            if covered > best[i] or (covered == best[i] and take[i] < 0):
                best[i], take[i] = covered, j
    out: list[Span] = []
    i = 0
    while i < n:
        if take[i] >= 0:
            out.append((groups[i][0], groups[take[i]][1]))
            i = take[i] + 1
        else:
            i += 1
    return out


def _card_windows(data: bytes, groups: list[Span], i: int) -> list[int]:
    """Last-group indices ``j`` (ascending) such that groups ``i..j`` are a card number."""
    gs, ge = groups[i]
    if data[gs] not in _CARD_FIRST_DIGITS:
        return []
    size = ge - gs
    if 13 <= size <= 19:
        return [i] if card_number_ok(data[gs:ge].decode("latin-1")) else []
    out: list[int] = []
    if size != 4 or i + 1 >= len(groups):
        return out
    sep = data[ge : groups[i + 1][0]]
    digits = data[gs:ge].decode("latin-1")
    j = i
    while j + 1 < len(groups) and data[groups[j][1] : groups[j + 1][0]] == sep:
        nxt_start, nxt_end = groups[j + 1]
        if not 3 <= nxt_end - nxt_start <= 6 or len(digits) + nxt_end - nxt_start > 19:
            break
        j += 1
        digits += data[nxt_start:nxt_end].decode("latin-1")
        if len(digits) >= 13 and card_number_ok(digits):
            out.append(j)
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


_IBAN_DIGITS = {ord(ch): str(int(ch, 36)) for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
# where an IBAN can start inside a run: a group opening with a country code and check digits
_IBAN_START = re.compile(rb"(?<![A-Za-z0-9_])[A-Za-z]{2}[0-9]{2}")


def iban_ok(iban: str) -> bool:
    """Known country, the country's length, and the ISO 13616 mod-97 check digits."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1


def iban_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Every IBAN in a run of alphanumeric groups (``DE89 3704 ... 00 GB82 WEST ...``).

    IBANs written one after another form one candidate. Each group that opens with a
    country code and two digits is tried with that country's fixed length (ending at a
    group boundary, mod-97); after an IBAN the search goes on right behind it, and after a
    failed try at the next group, so an invalid IBAN does not hide a valid one after it.
    """
    out: list[Span] = []
    resume = start
    for m in _IBAN_START.finditer(data, start, end):
        at = m.start()
        if at < resume:
            continue
        iban_end = _iban_end(data, at, end)
        if iban_end is not None:
            out.append((at, iban_end))
            resume = iban_end
    return out


def _iban_end(data: bytes, start: int, end: int) -> int | None:
    """End of the IBAN starting at ``start`` (groups split by single spaces), or None."""
    length = IBAN_LENGTHS.get(data[start : start + 2].decode("latin-1").upper())
    if length is None:
        return None
    window = data[start : min(end, start + 2 * length)]
    compact = window.replace(b" ", b"")
    if len(compact) < length:
        return None
    span = length  # bytes up to the length-th character: that many plus the spaces in between
    while (grown := length + window[:span].count(b" ")) != span:
        span = grown
    if _byte(data, start + span) in _ALNUM:  # the IBAN would end inside a group
        return None
    return start + span if iban_ok(compact[:length].decode("latin-1")) else None


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


_SSN_SHAPE = re.compile(rb"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}")


def _ssn_shape(data: bytes, at: int) -> bool:
    """Is ``data[at:at + 11]`` a whole SSN-shaped number (``123-45-6789``, ``123 45 6789``)?

    A negative ``at`` needs no test: the match is cut at ``at + 11``, too short for one.
    """
    return (
        _SSN_SHAPE.fullmatch(data, at, at + 11) is not None
        and _byte(data, at - 1) not in _WORD
        and _byte(data, at + 11) not in _WORD
    )


def ssn_spans(data: bytes, start: int, end: int) -> list[Span]:
    text = data[start:end].decode("latin-1")
    sep = text[3]
    if text[6] != sep:  # mixed separators: 123-45 6789
        return []
    # part of a longer separated number (a phone or an account number)? Another SSN-shaped
    # number right next to it is not that: it is a list (123 45 6789 987 65 4320).
    sep_byte = ord(sep)
    if (
        _byte(data, start - 1) == sep_byte
        and _byte(data, start - 2) in _DIGITS
        and not _ssn_shape(data, start - 12)
    ):
        return []
    if (
        _byte(data, end) == sep_byte
        and _byte(data, end + 1) in _DIGITS
        and not _ssn_shape(data, end + 1)
    ):
        return []
    return [(start, end)] if ssn_ok(text[:3] + text[4:6] + text[7:]) else []


# --- phone numbers ------------------------------------------------------------------------

_DATE_PREFIX = re.compile(rb"[0-9]{1,2}[./-][0-9]{1,2}[./-](?:19|20)[0-9]{2}")
_NANP_SHAPE = re.compile(
    rb"(?:1[ .\-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}(?![0-9])"
)
# at most 6 groups: enough for 11 digits, and bounded so a check never reads a whole run
_NATIONAL_RUN = re.compile(rb"0[0-9]{1,4}(?![0-9])(?:[ .\-/][0-9]{2,8}(?![0-9])){0,5}")


def _phone_at(data: bytes, at: int) -> bool:
    """Does a North American or trunk-prefixed national number start at ``at``?

    Used to tell a number that goes on (an extension, an account number: not a phone)
    from the next phone number in a list written with the same separators.
    """
    if _NANP_SHAPE.match(data, at):
        return True
    run = _NATIONAL_RUN.match(data, at)
    if run is None:
        return False
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(data, at, run.end())]
    return _national_number(data, groups, 0) is not None


def phone_international_spans(data: bytes, start: int, end: int) -> list[Span]:
    """``+<country> <groups>``: 8-15 digits (E.164), a ``(0)`` trunk digit not counted.

    The candidate may run on into a following number (``+44 20 7946 0958 4111...``), so
    the longest prefix of whole groups with at most 15 digits is taken; it stops before a
    North American number (``+1 415 555 2671 415 555 0199``). A national number after it
    (``+44 20 7946 0958 020 7946 0958``) is ambiguous within a few characters: the two
    findings may overlap, and redaction merges them.
    """
    if _byte(data, start - 1) in _WORD:
        return []
    text = data[start:end].decode("latin-1")
    digits = 0
    best = 0  # end of the longest number so far (0: none yet)
    i = 1  # after the +
    while i < len(text):
        if best and text[i - 1] in " .-" and _NANP_SHAPE.match(data, start + i):
            break
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
    if not best:
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
    # goes on with the same separator and more digits: longer than a phone number, unless
    # what follows is the next phone number of a list (415 555 2671 415 555 0199)
    sep = _byte(data, end - 5)  # the one before the last 4 digits
    if _byte(data, end) == sep and _byte(data, end + 1) in _DIGITS and not _phone_at(data, end + 1):
        return []
    if _byte(data, start - 1) in _DIGITS or _byte(data, start - 1) == ord("+"):
        return []
    return [(start, end)]


def phone_national_spans(data: bytes, start: int, end: int) -> list[Span]:
    """Trunk-prefixed national numbers (``020 7946 0958``, ``01 23 45 67 89``): 10-11 digits.

    The candidate is a whole run of digit groups, which can hold several numbers written
    back to back, or a number after a reference. A number is taken where it is followed by
    the end of the run or by another phone number; a run that cannot be read that way (a
    number that goes on: ``020 7946 0958 12``) is not a phone number.
    """
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(data, start, end)]
    out: list[Span] = []
    # glued to a + . - / before it: the run starts inside something else (+44 0..., 1.0...)
    i = 1 if _byte(data, start - 1) in (ord("+"), ord("."), ord("-"), ord("/")) else 0
    while i < len(groups):
        last = _national_number(data, groups, i)
        if last is not None and (last + 1 == len(groups) or _phone_at(data, groups[last + 1][0])):
            out.append((groups[i][0], groups[last][1]))
            i = last + 1
        else:
            i += 1
    return out


def _national_number(data: bytes, groups: list[Span], i: int) -> int | None:
    """Index of the last group of a national number starting at group ``i``, or None.

    It starts with a trunk ``0`` group of 2-5 digits and ends at the first group that
    brings it to 10 digits; 12 or more there means it is something longer.
    """
    gs, ge = groups[i]
    if data[gs] != 0x30 or not 2 <= ge - gs <= 5:
        return None
    digits = 0
    for j in range(i, len(groups)):
        digits += groups[j][1] - groups[j][0]
        if digits >= 10:
            if digits > 11 or _DATE_PREFIX.match(data, gs, groups[j][1]):
                return None
            return j
    return None


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
