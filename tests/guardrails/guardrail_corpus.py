"""Detection corpus shared by the guardrail tests: PII and secrets, hits and near misses.

Keys are assembled from pieces at run time so that no complete key-shaped string sits in
the repository (secret scanners would rightly complain); none of them is a real credential.
"""

from __future__ import annotations

import base64
import json


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# (kind, value): each value, embedded in a sentence, must be found exactly.
PII_POSITIVES = [
    ("email", "jane.doe@example.com"),
    ("email", "j+tag@sub.example.co.uk"),
    ("email", "x_y-z%1@mail-server.example.org"),
    ("email", "UPPER.CASE@EXAMPLE.COM"),
    ("phone", "+1 415 555 2671"),
    ("phone", "+14155552671"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+49 (0)30 1234567"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "+81 3-1234-5678"),
    ("phone", "+91 98765 43210"),
    ("phone", "(415) 555-2671"),
    ("phone", "415-555-2671"),
    ("phone", "415.555.2671"),
    ("phone", "1-800-555-0199"),
    ("phone", "020 7946 0958"),
    ("phone", "01 23 45 67 89"),
    ("phone", "030 1234567"),
    ("credit_card", "4111111111111111"),  # Visa
    ("credit_card", "4111 1111 1111 1111"),
    ("credit_card", "4111-1111-1111-1111"),
    ("credit_card", "4222222222222"),  # 13-digit Visa
    ("credit_card", "5555555555554444"),  # Mastercard
    ("credit_card", "2223003122003222"),  # Mastercard 2-series
    ("credit_card", "378282246310005"),  # Amex
    ("credit_card", "3782 822463 10005"),  # Amex 4-6-5
    ("credit_card", "6011111111111117"),  # Discover
    ("credit_card", "3530111333300000"),  # JCB
    ("credit_card", "30569309025904"),  # Diners, 14 digits
    ("credit_card", "6200000000000005"),  # UnionPay
    ("iban", "DE89370400440532013000"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB29 NWBK 6016 1331 9268 19"),
    ("iban", "FR1420041010050500013M02606"),
    ("iban", "NL91ABNA0417164300"),
    ("iban", "ES9121000418450200051332"),
    ("iban", "IT60X0542811101000000123456"),
    ("iban", "BE68539007547034"),
    ("iban", "CH9300762011623852957"),
    ("iban", "PL61109010140000071219812874"),
    ("iban", "NO9386011117947"),
    ("iban", "gb29nwbk60161331926819"),
    ("us_ssn", "123-45-6789"),
    ("us_ssn", "212-67-8901"),
    ("us_ssn", "536 22 1234"),
    ("us_ssn", "899-99-9999"),
    ("ip_address", "192.168.1.10"),
    ("ip_address", "8.8.8.8"),
    ("ip_address", "10.0.0.255"),
    ("ip_address", "2001:db8::8a2e:370:7334"),
    ("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ip_address", "::1"),
    ("ip_address", "fe80::1"),
    ("ip_address", "::ffff:192.168.1.1"),
]

# (kind, text): the kind must NOT be found anywhere in the text.
PII_NEGATIVES = [
    ("email", "write to user@localhost today"),
    ("email", "ping foo@bar now"),
    ("email", "follow @handle on the site"),
    ("email", "a@b.c is too short"),
    ("email", "the asset icon@2x.png is missing"),
    ("email", "john..doe@example.com is malformed"),
    ("email", "user@@example.com"),
    ("phone", "on 2024-01-15 at 12:30:45"),
    ("phone", "server 192.168.1.1"),
    ("phone", "costs $1,234,567.89 or $1,299.00"),
    ("phone", "version 1.2.3 and 10.4.22"),
    ("phone", "order 123456789 shipped"),
    ("phone", "+5 points"),
    ("phone", "call 415-555-267"),
    ("phone", "call 115-555-2671"),
    ("phone", "call 415-155-2671"),
    ("phone", "call 415-555.2671"),
    ("phone", "on 01.02.2024 12 people"),
    ("phone", "ISBN 978-3-16-148410-0"),
    ("phone", "page 12 of 30"),
    ("credit_card", "4111111111111112"),  # Luhn fails
    ("credit_card", "4111 1111 1111 1112"),
    ("credit_card", "1234567812345670"),  # Luhn passes, no issuer starts with 1
    ("credit_card", "0000 0000 0000 0000"),
    ("credit_card", "41111111111111111111"),  # 20 digits: an id, not a card
    ("credit_card", "4111 1111-1111 1111"),  # mixed separators
    ("credit_card", "41 11 11 11 11 11 11 11"),  # not a card grouping
    ("credit_card", "ISBN 978-3-16-148410-0"),
    ("credit_card", "tracking 1Z999AA10123456784"),
    ("iban", "DE89370400440532013001"),  # check digits wrong
    ("iban", "XX89370400440532013000"),  # no such country
    ("iban", "DE8937040044053201300"),  # too short for DE
    ("iban", "DE89 3704 0044 0532 0130 00X"),  # runs on
    ("iban", "GB29NWBK6016133192681"),
    ("iban", "ABCD1234 is a product code"),
    ("us_ssn", "000-12-3456"),
    ("us_ssn", "666-12-3456"),
    ("us_ssn", "900-12-3456"),
    ("us_ssn", "987-65-4321"),
    ("us_ssn", "123-00-4567"),
    ("us_ssn", "123-45-0000"),
    ("us_ssn", "078-05-1120"),
    ("us_ssn", "219-09-9999"),
    ("us_ssn", "123-45-67890"),
    ("us_ssn", "123-456-7890"),
    ("us_ssn", "123-45 6789"),
    ("us_ssn", "call 555-123-45-6789-0"),
    ("ip_address", "256.1.1.1"),
    ("ip_address", "1.2.3"),
    ("ip_address", "release 1.2.3.4.5"),
    ("ip_address", "v1.2.3.4"),
    ("ip_address", "12:30:45"),
    ("ip_address", "std::vector<int>"),
    ("ip_address", "dead::beef"),
    ("ip_address", "01.02.03.04"),
]


A36 = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
assert len(A36) == 36


JWT = ".".join(
    [
        b64url({"alg": "HS256", "typ": "JWT"}),
        b64url({"sub": "1234567890", "name": "Jane", "iat": 1516239022}),
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ]
)
PEM_BODY = "MIIEowIBAAKCAQEA" + "x" * 60 + "\n" + "y" * 64 + "\nzz=="

SECRET_POSITIVES = [
    ("secret:openai", "sk-" + "proj-" + A36 + "Xy_Z-12345"),
    ("secret:openai", "sk-" + "svcacct-" + A36),
    ("secret:openai", "sk-" + A36[:20] + "T3Blbk" + "FJ" + A36[:20]),
    ("secret:openai", "sk-" + A36 + A36[:12]),
    ("secret:anthropic", "sk-" + "ant-api03-" + (A36 * 3)[:93] + "AA"),
    ("secret:aws_access_key", "AKIA" + "IOSFODNN7EXAMPLE"),
    ("secret:aws_access_key", "ASIA" + "Y34FZKBOKMUTVV7A"),
    ("secret:github", "ghp_" + A36),
    ("secret:github", "gho_" + A36),
    ("secret:github", "github_pat_" + A36[:22] + "_" + (A36 * 2)[:59]),
    ("secret:slack", "xoxb-" + "123456789012-1234567890123-" + A36[:24]),
    ("secret:slack", "xoxp-" + "4956863471-4956863472-49568634733-" + "2c1c2f" * 5),
    (
        "secret:slack_webhook",
        "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24,
    ),
    ("secret:google_api_key", "AIza" + "SyD-" + A36[:31]),
    ("secret:stripe", "sk_" + "live_" + A36[:24]),
    ("secret:stripe", "rk_" + "test_" + A36[:30]),
    ("secret:jwt", JWT),
    (
        "secret:private_key",
        "-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA PRIVATE KEY-----",
    ),
    (
        "secret:private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n-----END OPENSSH PRIVATE KEY-----",
    ),
    (
        "secret:private_key",
        "-----BEGIN PRIVATE KEY-----\n" + PEM_BODY + "\n-----END PRIVATE KEY-----",
    ),
    (
        "secret:private_key",
        "-----BEGIN EC PRIVATE KEY-----\n" + PEM_BODY + "\n-----END EC PRIVATE KEY-----",
    ),
]

SECRET_NEGATIVES = [
    "sk-test and sk-1234 are placeholders",
    "sk-" + "proj-short",
    "the task-" + A36 + " is done",
    "sk-" + "ant-api03-short",
    "AKIA1234 is too short",
    "AKIA" + "IOSFODNN7EXAMPL is 19 characters",
    "akia" + "iosfodnn7example is lowercase",
    "AKIA" + "IOSFODNN7EXAMPLE1 runs on",
    "ghp_" + A36[:35] + " is one short",
    "ghp_" + A36 + "x is one long",
    "gh_" + A36 + " has no kind letter",
    "xoxb-not-a-token and xoxb-example",
    "AIza" + A36[:34] + " is one short",
    "sk_" + "live_short",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n-----END CERTIFICATE-----",
    "eyJzzzzzzzzzzzz.eyJzzzzzzzzzzzzz.abc is not a JWT",
    b64url({"alg": "none"}) + "." + "eyJub3Rqc29u" + "fQ.sig",
    "aws_secret_access_key = short",
]
