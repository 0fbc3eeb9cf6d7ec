"""Sensitive-data detection: positives and near misses for every kind, and request text extraction.

Secrets below are assembled from pieces so that secret scanners on the repository do not flag this
file; none of them is a real credential.
"""

from __future__ import annotations

from datetime import date

import pytest

from gateway.routing.sensitive import SENSITIVE_KINDS, SensitiveDataDetector, iter_request_texts

DETECTOR = SensitiveDataDetector(today=date(2025, 6, 1))

PEM = "-----"  # PEM armour, split from the label below

POSITIVES = [
    # email
    ("email", "Reach me at john.doe@example.com tomorrow."),
    ("email", "cc: a+alerts@sub.example.co.uk"),
    ("email", "邮箱：zhang.san@example.cn，谢谢"),
    # phone
    ("phone", "Call +1 (212) 555-0123 after nine."),
    ("phone", "London office: +44 20 7946 0958"),
    ("phone", "+86 138 1234 5678"),
    ("phone", "whatsapp +4930123456"),
    ("phone", "(212) 555-0123"),
    ("phone", "phone: 212-555-0123."),
    ("phone", "212.555.0123"),
    ("phone", "1-800-555-0199"),
    ("phone", "手机13812345678"),
    ("phone", "call 138-1234-5678"),
    ("phone", "call 139 1234 5678"),
    # payment_card (Luhn-valid test numbers of the card networks)
    ("payment_card", "card 4111 1111 1111 1111 exp 12/27"),
    ("payment_card", "4012888888881881"),
    ("payment_card", "5555-5555-5555-4444"),
    ("payment_card", "2223003122003222"),
    ("payment_card", "amex 3782 822463 10005"),
    ("payment_card", "6011111111111117"),
    ("payment_card", "30569309025904"),
    ("payment_card", "银联卡号6200000000000005"),
    # us_ssn
    ("us_ssn", "SSN: 123-45-6789"),
    ("us_ssn", "ssn 536-22-1234."),
    # cn_resident_id
    ("cn_resident_id", "身份证号：11010519491231002X。"),
    ("cn_resident_id", "id 11010519491231002x"),
    ("cn_resident_id", "440304199003072312"),
    # iban
    ("iban", "IBAN DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "pay NL91ABNA0417164300 today"),
    ("iban", "BE68 5390 0754 7034 THEN"),  # the pattern runs on into "THEN"; cut back at the space
    # api_key
    ("api_key", "key: " + "sk-" + "proj-" + "Ab3De5Gh7Jk9Mn1Pq3Rs5Tu7Vw9Xy1Za3Bc5"),
    ("api_key", "sk-" + "ant-api03-" + "Xy9Wv8Ut7Sr6Qp5On4Ml3Kj2Ih1Gf0Ed"),
    ("api_key", "sk-" + "T3BlbkFJ9aZx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Ji"),
    ("api_key", "aws_access_key_id = " + "AKIA" + "Z7Q4M2N8P5R3T6V1"),
    ("api_key", "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ("api_key", "github" + "_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"),
    ("api_key", "xoxb" + "-123456789012-1234567890123-AbCdEfGhIjKlMnOp"),
    ("api_key", "AIza" + "SyD3f8Hk2Lm9Np4Qr7St1Uv6Wx0Yz5Ab3Cd"),
    ("api_key", "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "api_key",
        "token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    ("api_key", "Authorization: Bearer " + "d7f3a9c1e5b24f6890ab12cd34ef56aa"),
    # private_key
    ("private_key", PEM + "BEGIN RSA " + "PRIVATE KEY" + PEM + "\nMIIEow..."),
    ("private_key", PEM + "BEGIN OPENSSH " + "PRIVATE KEY" + PEM),
    ("private_key", PEM + "BEGIN " + "PRIVATE KEY" + PEM),
    ("private_key", PEM + "BEGIN ENCRYPTED " + "PRIVATE KEY" + PEM),
    ("private_key", PEM + "BEGIN PGP " + "PRIVATE KEY BLOCK" + PEM),
]


@pytest.mark.parametrize(("kind", "text"), POSITIVES)
def test_detects(kind: str, text: str) -> None:
    assert DETECTOR.scan([text]) == (kind,)


NEAR_MISSES = [
    # ordinary numbers: ids, timestamps, versions, dates, addresses
    "order 1234567890123452 shipped",  # Luhn-valid, but no card network starts with 1
    "ticket 9000123456789016",  # Luhn-valid, issuer prefix 9
    "epoch 1700000000 and 1700000000000 ms",
    "released v1.2.3 on 2024-05-12 at 10:30:00",
    "served from 192.168.100.254:8080",
    "tracking number 12345678901234567890",
    "version 10.200.300.4000",
    "ISBN 978-3-16-148410-0",
    "total: $1,234,567.89",
    # email near misses
    "icon@2x.png",
    "user@localhost",
    "ping @channel and @here",
    "email at example dot com",
    # phone near misses
    "room 12345",
    "+1 555",
    "dial 555-0123",  # no area code
    "ref 212-555-01234",  # the last group is too long
    "12345678901",  # 11 digits, but 12 is no Chinese mobile prefix
    "138123456789",  # 12 digits
    "score +2024-01-15",
    "1+1=2, 3+4=7",
    # payment card near misses
    "4111111111111112",  # fails Luhn
    "4111 1111 1111 1112",
    # us_ssn near misses
    "000-12-3456",
    "666-12-3456",
    "912-34-5678",
    "123-00-4567",
    "123-45-0000",
    "123456789",
    "12-345-6789",
    # cn_resident_id near misses
    "440304199003072313",  # wrong check character
    "110101200002301231",  # valid check character, but 30 February
    "32010620990101123X",  # born in 2099
    "990105194912310023",  # no province 99
    "1440304199003072312",  # part of a longer number
    # iban near misses
    "DE88 3704 0044 0532 0130 00",  # check digits do not validate
    "XX89 3704 0044 0532 0130 00",  # no such country
    "DE89 3704 0044 0532 0130",  # too short for Germany
    "GB82WEST123456987654321",  # too long for Britain
    "ID AB12 is not an account",
    # api key near misses
    "pip install scikit-learn; sk-learn",
    "sk-your-api-key-goes-here-please",  # a placeholder: no digits
    "AKIA123",
    "ghp_short",
    "Authorization: Bearer YOUR_ACCESS_TOKEN_HERE_PLEASE",
    "risk-assessment-2024-quarterly-report",
    "sk" + "_test_" + "4eC39HqLyjWDarjtT1zdp7dc",  # Stripe test keys are not secrets
    "eyJ alone",
    # private key near misses
    PEM + "BEGIN PUBLIC KEY" + PEM,
    PEM + "BEGIN CERTIFICATE" + PEM,
    "",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_does_not_flag(text: str) -> None:
    assert DETECTOR.scan([text]) == ()


def test_a_typical_prompt_without_personal_data_is_clean() -> None:
    prompt = (
        "You are a helpful assistant. Summarize the quarterly report below in five bullet points. "
        "Revenue grew 12.5% to $4,310,000 in Q3 2024 (see table 3, rows 10-24). The new API v2.3.1 "
        "shipped on 2024-09-30 and handled 1,200,000 requests per day at p99 latency of 180 ms. "
    ) * 8
    assert DETECTOR.scan([prompt]) == ()


def test_scan_returns_sorted_distinct_kinds_across_texts() -> None:
    texts = ["mail bob@example.com", "call 212-555-0123", "again bob@example.com", "SSN 123-45-6789"]
    assert DETECTOR.scan(texts) == ("email", "phone", "us_ssn")
    assert set(DETECTOR.scan(texts)) <= SENSITIVE_KINDS


def test_scan_accepts_a_generator_and_stops_once_everything_is_found() -> None:
    detector = SensitiveDataDetector({"email"})
    consumed = []

    def texts():
        for text in ["nothing", "x@example.com", "never read"]:
            consumed.append(text)
            yield text

    assert detector.scan(texts()) == ("email",)
    assert consumed == ["nothing", "x@example.com"]


def test_only_enabled_kinds_are_reported() -> None:
    detector = SensitiveDataDetector({"phone"})
    assert detector.scan(["bob@example.com, 212-555-0123"]) == ("phone",)
    assert detector.kinds == frozenset({"phone"})


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="passport"):
        SensitiveDataDetector({"email", "passport"})


def test_birth_dates_after_today_are_implausible() -> None:
    resident_id = "110101202401011230"  # born 2024-01-01, valid check character
    assert SensitiveDataDetector(today=date(2023, 12, 31)).scan([resident_id]) == ()
    assert SensitiveDataDetector(today=date(2024, 1, 1)).scan([resident_id]) == ("cn_resident_id",)


# --- iter_request_texts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, ["hi"]),
        (
            {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
            ["be brief", "hi"],
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                            {"type": "text", "text": "be precise"},
                        ],
                    }
                ]
            },
            ["what is this?", "be precise"],
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a": 1}'},
                            },
                            {
                                "id": "2",
                                "type": "function",
                                "function": {"name": "g", "arguments": '{"b": 2}'},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": "1", "content": "result"},
                ]
            },
            ['{"a": 1}', '{"b": 2}', "result"],
        ),
        ({"messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}, ["{}"]),
        ({"prompt": "once upon a time"}, ["once upon a time"]),
        ({"prompt": ["first", "second"]}, ["first", "second"]),
        ({"prompt": [1, 2, 3]}, []),  # token ids
        ({"prompt": [[1, 2], [3]]}, []),
        ({"input": "embed me"}, ["embed me"]),
        ({"input": ["a", "b"]}, ["a", "b"]),
        ({"input": [[101, 102]]}, []),
        # malformed shapes are skipped rather than raised on
        ({"messages": "hi"}, []),
        ({"messages": [None, "hi", {"content": 5}, {"content": [None, {"type": "text", "text": 7}]}]}, []),
        ({"messages": [{"tool_calls": "nope", "function_call": "nope"}]}, []),
        ({"messages": [{"tool_calls": [None, {"function": None}, {"function": {"arguments": {}}}]}]}, []),
        ({}, []),
    ],
)
def test_iter_request_texts(body: dict, expected: list[str]) -> None:
    assert list(iter_request_texts(body)) == expected


def test_scan_of_a_whole_chat_request() -> None:
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": [{"type": "text", "text": "My card is 4111-1111-1111-1111"}]},
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "lookup", "arguments": '{"email": "ann@example.org"}'}}],
            },
        ],
    }
    assert DETECTOR.scan(iter_request_texts(body)) == ("email", "payment_card")


def test_long_texts_are_remembered_and_give_the_same_answer() -> None:
    detector = SensitiveDataDetector()
    system = "You are a support assistant. " * 20 + "Escalate to ops@example.com when unsure."
    clean = "Please summarise the attached report in five bullet points. " * 10
    first = detector.scan([system, clean, "short card 4111 1111 1111 1111"])
    assert first == ("email", "payment_card")
    assert system in detector._seen and clean in detector._seen
    assert detector.scan([system, clean, "short card 4111 1111 1111 1111"]) == first
    assert detector.scan([clean]) == ()
