"""Sensitive-data detection: positives and near misses for every kind, and request text extraction.

Secrets below are assembled from pieces so that secret scanners on the repository do not flag this
file; none of them is a real credential.
"""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from gateway.routing.sensitive import SENSITIVE_KINDS, SensitiveDataDetector

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


# --- every string of the body ----------------------------------------------------------------------

MARKER = "Reach me at ann.lee@example.org, card 4111 1111 1111 1111"
BASE64 = "QUJD" * 600  # 2.4 KB of base64, as an image or audio payload would be


def _placed(where: str, text: str) -> dict:
    user = {"role": "user", "content": "hello"}
    bodies = {
        "content": {"messages": [{"role": "user", "content": text}]},
        "message name": {"messages": [{**user, "name": text}]},
        "input_text part": {"messages": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]},
        "unknown part": {"messages": [{"role": "user", "content": [{"type": "mystery", "body": {"x": text}}]}]},
        "tool description": {"messages": [user], "tools": [{"type": "function", "function": {"name": "f", "description": text}}]},
        "tool parameters": {"messages": [user], "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "object", "properties": {"a": {"description": text}}}}}]},
        "json schema": {"messages": [user], "response_format": {"type": "json_schema", "json_schema": {
            "name": "s", "schema": {"type": "object", "description": text}}}},
        "prediction": {"messages": [user], "prediction": {"type": "content", "content": text}},
        "metadata": {"messages": [user], "metadata": {"note": text}},
        "metadata key": {"messages": [user], "metadata": {text: "1"}},
        "unknown field": {"messages": [user], "x_vendor_extra": [{"deep": [text]}]},
        "tool result": {"messages": [user, {"role": "tool", "tool_call_id": "1", "content": [{"type": "text", "text": text}]}]},
        "completions prompt": {"prompt": ["a", text]},
        "embeddings input": {"input": [text]},
        "anthropic system block": {"system": [{"type": "text", "text": text}], "messages": [user]},
    }
    return bodies[where]


PLACES = ["content", "message name", "input_text part", "unknown part", "tool description", "tool parameters",
          "json schema", "prediction", "metadata", "metadata key", "unknown field", "tool result",
          "completions prompt", "embeddings input", "anthropic system block"]


@pytest.mark.parametrize("where", PLACES)
def test_sensitive_data_is_found_wherever_the_body_carries_it(where: str) -> None:
    assert DETECTOR.scan_body(_placed(where, MARKER)) == ("email", "payment_card")
    assert DETECTOR.scan_body(_placed(where, MARKER + " " * 300)) == ("email", "payment_card"), "as a long text"


@pytest.mark.parametrize(("disguised", "kinds"), [
    ("ann.lee＠example.org", ("email",)),  # fullwidth commercial at
    ("ann.lee﹫example.org", ("email",)),  # small commercial at
    ("card ４１１１ １１１１ １１１１ １１１１", ("payment_card",)),  # fullwidth digits
    ("card 4111\u200b1111\u200b1111\u200b1111", ("payment_card",)),  # zero-width spaces
    ("card 4\u200d111111111111111", ("payment_card",)),  # zero-width joiner
    ("ann.lee@\u2060example.org", ("email",)),  # word joiner
    ("ssn 078\u00ad-05-1120", ("us_ssn",)),  # soft hyphen
])
def test_unicode_disguises_do_not_hide_sensitive_data(disguised: str, kinds: tuple[str, ...]) -> None:
    assert not disguised.isascii()
    assert DETECTOR.scan_body({"messages": [{"role": "user", "content": disguised}]}) == kinds
    assert DETECTOR.scan_body({"messages": [{"role": "user", "content": disguised + " padding" * 40}]}) == kinds


def test_binary_payloads_are_not_scanned_but_text_beside_them_is() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + BASE64 + "4111111111111111"}},
        {"type": "input_audio", "input_audio": {"data": BASE64 + "4111111111111111", "format": "wav"}},
        {"type": "text", "text": "what is on the picture?"},
    ]}]}
    assert DETECTOR.scan_body(body) == ()
    body["messages"][0]["content"][2]["text"] = MARKER
    assert DETECTOR.scan_body(body) == ("email", "payment_card")


def test_strings_joined_for_the_scan_never_form_a_match_across_two_strings() -> None:
    body = {"messages": [{"role": "user", "content": "call 4111 1111"}, {"role": "user", "content": "1111 1111"}],
            "metadata": {"a": "ann.lee", "b": "@example.org"}}
    assert DETECTOR.scan_body(body) == ()


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
    assert DETECTOR.scan_body(body) == ("email", "payment_card")


def test_malformed_shapes_are_scanned_not_raised_on() -> None:
    for body in ({"messages": "hi"}, {"messages": [None, 5, {"content": 5}]}, {}, {"prompt": [[1, 2], [3]]}):
        assert DETECTOR.scan_body(body) == ()


def test_units_are_remembered_and_give_the_same_answer() -> None:
    detector = SensitiveDataDetector()
    system = {"role": "system", "content": "You are a support assistant. " * 20 + "Escalate to ops@example.com."}
    clean = {"role": "user", "content": "Please summarise the attached report in five bullet points. " * 10}
    card = {"role": "user", "content": "short card 4111 1111 1111 1111"}
    first = detector.scan_body({"messages": [system, clean, card]})
    assert first == ("email", "payment_card")
    assert len(detector._seen) == 2, "the two long messages are remembered, the short one is not"
    assert detector.scan_body({"messages": [system, clean, card]}) == first
    assert detector.scan_body({"messages": [clean]}) == ()


@pytest.mark.parametrize("text", ["line\n4111 1111 1111 1111", 'quote"4111111111111111', "tab\t4111111111111111",
                                  "slash\\4111111111111111"])
def test_json_escapes_beside_sensitive_data_do_not_hide_it(text: str) -> None:
    call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": orjson.dumps({"note": text}).decode()}}
    assert DETECTOR.scan_body({"messages": [{"role": "assistant", "tool_calls": [call]}]}) == ("payment_card",)
    assert DETECTOR.scan_body({"messages": [{"role": "user", "content": text}]}) == ("payment_card",)
    assert DETECTOR.scan_body({"messages": [{"role": "user", "content": text + " pad" * 80}]}) == ("payment_card",)


def test_the_foldable_table_covers_this_interpreters_unicode_database() -> None:
    from gateway.routing.unicode_fold import FOLDABLE, foldable_now

    missing = [code for code in foldable_now() if chr(code) not in FOLDABLE]
    assert not missing, f"regenerate FOLDABLE (python -m gateway.routing.unicode_fold): {[hex(c) for c in missing[:20]]}"


@pytest.mark.parametrize("text", ["card ٤١١١ ١١١١ ١١١١ ١١١١", "card 𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏", "ａｎｎ＠ｅｘａｍｐｌｅ．ｏｒｇ"])
def test_other_digit_scripts_and_styled_letters_fold_too(text: str) -> None:
    assert DETECTOR.scan_body({"messages": [{"role": "user", "content": text}]}) != ()


def test_the_memory_of_units_seen_stays_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import tracemalloc

    from gateway.routing import sensitive

    monkeypatch.setattr(sensitive, "_MEMO_BUDGET_BYTES", 1024 * 1024)
    detector = SensitiveDataDetector()
    text = "The monitor flickers every ten seconds at full refresh and only stops at half. " * 60
    tracemalloc.start()
    try:
        for i in range(2000):  # ~10 MB of unique units through a 1 MB budget
            detector.scan_body({"messages": [{"role": "user", "content": f"{i} {text}"}]})
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert detector._seen_bytes <= 1024 * 1024
    assert held < 3 * 1024 * 1024, f"{held} bytes held for a 1 MB budget (what is kept must be what is counted)"
