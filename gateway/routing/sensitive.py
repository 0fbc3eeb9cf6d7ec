"""Built-in sensitive-data detection: which kinds of personal data or secrets a request carries.

The result feeds ``RequestFacts.detected`` so policy rules can say "a prompt holding a payment card
never leaves our own GPUs". It runs on every request, so it is built for the common case, a prompt
with nothing to find. Each text is mapped once to a byte "shape" (digits become ``0``, capitals
``A``, separators ``s``) and every kind first asks whether its shape occurs there with a plain
substring search, which runs in C at memory speed. Only texts that pass that gate pay for a regex
(each opening with a literal or a character class, so the engine can skip ahead), and only what a
regex finds pays for checksum validation (Luhn, mod 97, ISO 7064), which is what keeps order
numbers, timestamps and version strings from being reported.

The answer is a sorted tuple of kind names from the bounded ``SENSITIVE_KINDS`` set, so it is safe
as a metric label and as a policy condition. Nothing is redacted and no matched text is returned.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.routing.body_strings import body_units, unit_text
from gateway.routing.unicode_fold import fold

SENSITIVE_KINDS: frozenset[str] = frozenset(
    {"email", "phone", "payment_card", "us_ssn", "cn_resident_id", "iban", "api_key", "private_key"}
)


def _shape_of_byte(byte: int) -> int:
    char = chr(byte)
    if char.isdigit() or char.isupper():
        return ord("0" if char.isdigit() else "A")
    return ord("s") if char in " .-" else byte if char in "()+" else ord("x")


_KEY_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# Byte views of a text that gates search with ``in``, each a (translation table, bytes deleted).
# "shape": digits 0, capitals A, separators s; lowercase and non-ASCII bytes are dropped, which
# makes the view about a third as long, and no gated pattern contains them.
# "key_runs": [A-Za-z0-9_-] become w, so a secret (>= 16 such characters in a row) shows as w*16.
_VIEW_TABLES = {
    "shape": (
        bytes(_shape_of_byte(b) for b in range(256)),
        bytes(range(ord("a"), ord("z") + 1)) + bytes(range(0x80, 0x100)),
    ),
    "key_runs": (bytes(ord("w") if b in _KEY_CHARACTERS else ord(" ") for b in range(256)), b""),
}


@dataclass(frozen=True, slots=True)
class _Detector:
    """One kind: a cheap substring gate on a view of the text, regexes, then an optional validator."""

    kind: str
    view: str  # "text", or a key of _VIEW_TABLES
    gates: tuple[Any, ...]  # the regexes run only if one occurs: str for "text", bytes otherwise
    patterns: tuple[re.Pattern[str], ...]
    is_valid: Callable[[str], bool] | None = None

    def found_in(self, text: str, views: dict[str, Any]) -> bool:
        haystack = views.get(self.view)
        if haystack is None:  # built on first use, then shared by the other detectors
            raw = text.encode("utf-8", "surrogatepass")
            haystack = views[self.view] = raw.translate(*_VIEW_TABLES[self.view])
        for gate in self.gates:  # a loop, not any(): this runs for every detector on every text
            if gate in haystack:
                return self._matches(text)
        return False

    def _matches(self, text: str) -> bool:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                if self.is_valid is None or self.is_valid(match.group()):
                    return True
        return False


def _starting(first: str, rest: str, not_after: str = r"[\w.+-]") -> str:
    """``first`` then ``rest``, where ``first`` does not continue a word, number or version.

    The guard is a lookbehind placed after ``first``, not before it: a pattern opening with a
    literal or a character class lets the regex engine skip to candidates, while one opening with
    a lookbehind is tried at every position, 5-50x slower on a 2 KB prompt.
    """
    return f"{first}(?<!{not_after}{first}){rest}"


# Compiled ASCII-only so that \w and \d stop at CJK text: "电话13812345678" must still be found.
_NUMBER_END = r"(?![\w-]|[.,]\d)"
_PRIVATE_KEY = (r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",)
# From the "@" on; the last part is a top-level domain, not an image extension as in "icon@2x.png".
_EMAIL = (
    r"@(?<=[\w.%+-]@)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?!(?:png|jpe?g|gif|svg|webp)\b)[A-Za-z]{2,}\b",
)
_API_KEY = tuple(
    _starting(first, rest, not_after=r"[\w-]")
    for first, rest in (
        ("sk", r"(?:-[A-Za-z0-9_-]{20,}|_live_[0-9A-Za-z]{16,})"),  # OpenAI, Anthropic, Stripe
        ("rk_live_", r"[0-9A-Za-z]{16,}"),  # Stripe restricted
        ("A[KS]IA", r"[0-9A-Z]{16}(?![A-Za-z0-9])"),  # AWS access key id
        ("gh[pousr]_", r"[A-Za-z0-9]{36,}"),  # GitHub
        ("github_pat_", r"[A-Za-z0-9_]{22,}"),
        ("xox[baprs]-", r"[A-Za-z0-9-]{15,}"),  # Slack
        ("AIza", r"[0-9A-Za-z_-]{35}"),  # Google
        ("eyJ", r"[A-Za-z0-9_-]{13,}\.eyJ[A-Za-z0-9_-]{13,}\.[A-Za-z0-9_-]{8,}"),  # JWT
        ("Bearer", r"\s+[A-Za-z0-9._~+/-]{20,}=*"),
    )
)
_US_SSN = (_starting(r"\d", r"\d\d(?<!000)(?<!666)(?<!9\d\d)-\d\d(?<!00)-\d{4}(?<!0000)" + _NUMBER_END),)
_PAYMENT_CARD = (  # unbroken or in groups of four, then Amex's 4-6-5
    _starting(r"\d", r"(?:\d{12,18}|\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?)" + _NUMBER_END),
    _starting(r"\d", r"\d{3}([ -])\d{6}\1\d{4,5}" + _NUMBER_END),
)
_CN_RESIDENT_ID = (
    _starting("[1-9]", r"\d{5}(?:18|19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\w-])"),
)
_IBAN = (_starting("[A-Z]", r"[A-Z]\d\d(?: ?[A-Z0-9]){11,30}(?![\w-])", not_after=r"[\w-]"),)
# Phones in three forms: international "+CC ...", North American with separators, Chinese mobile.
# A bare run of digits is not taken for a phone (too many ids look alike) except the CN mobile.
_INTERNATIONAL_PHONE = (_starting(r"\+", r"[1-9][\d ().-]{6,22}\d(?!\d)", not_after=r"[\w+]"),)
_NANP_PHONE = (
    _starting(r"\(", r"[2-9]\d\d\) ?[2-9]\d\d[ .-]\d{4}" + _NUMBER_END, not_after=r"[\w.+]"),
    _starting("[2-9]", r"\d\d[ .-][2-9]\d\d[ .-]\d{4}" + _NUMBER_END, not_after=r"[\w.+]"),
)
_CN_MOBILE_PHONE = (_starting("1", r"[3-9]\d([ -]?)\d{4}\1\d{4}" + _NUMBER_END),)


def _build_detectors(latest_birth_date: date) -> tuple[_Detector, ...]:
    def is_cn_resident_id(candidate: str) -> bool:
        return _is_cn_resident_id(candidate, latest_birth_date)

    rows: tuple[tuple[str, str, tuple[Any, ...], tuple[str, ...], Callable[[str], bool] | None], ...] = (
        ("private_key", "text", ("-----BEGIN",), _PRIVATE_KEY, None),
        ("email", "text", ("@",), _EMAIL, None),
        ("api_key", "key_runs", (b"w" * 16,), _API_KEY, _is_api_key),
        ("us_ssn", "shape", (b"000s00s0000",), _US_SSN, None),
        ("payment_card", "shape", (b"0" * 13, b"0000s000"), _PAYMENT_CARD, _is_payment_card),
        ("cn_resident_id", "shape", (b"0" * 17,), _CN_RESIDENT_ID, is_cn_resident_id),
        ("iban", "shape", (b"AA00",), _IBAN, _is_iban),
        ("phone", "text", ("+",), _INTERNATIONAL_PHONE, _is_international_phone),
        ("phone", "shape", (b"000s0000",), _NANP_PHONE, None),
        ("phone", "shape", (b"0" * 11, b"000s0000s0000"), _CN_MOBILE_PHONE, None),
    )
    return tuple(
        _Detector(kind, view, gates, tuple(re.compile(p, re.ASCII) for p in patterns), is_valid)
        for kind, view, gates, patterns, is_valid in rows
    )


_CN_PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 83 91".split()
)
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK_CHARS = "10X98765432"
_IBAN_LENGTHS = {
    entry[:2]: int(entry[2:])
    for entry in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 "
        "ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 "
        "LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 "
        "QA29 RO24 RS22 SA24 SC31 SD18 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
    ).split()
}
_PHONE_SEPARATOR_RUN = re.compile(r"[ .-]{2,}")


def _is_api_key(candidate: str) -> bool:
    """Real keys are random and hold digits; placeholders like ``sk-your-key-here...`` do not."""
    return any(char.isdigit() for char in candidate)


def _is_payment_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    # Issuer prefixes: 3 Amex/Diners/JCB, 4 Visa, 5 and 2221-2720 Mastercard, 6 Discover/UnionPay.
    # This drops most ids and millisecond timestamps (which start with 1) before the Luhn check.
    # 18 digits is left to cn_resident_id: such cards are rare, such ids common.
    if len(digits) == 18 or digits[0] not in "3456" and not 222100 <= int(digits[:6]) <= 272099:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _is_cn_resident_id(candidate: str, latest_birth_date: date) -> bool:
    """GB 11643: region code, a real birth date, then the ISO 7064 MOD 11-2 check character."""
    if candidate[:2] not in _CN_PROVINCE_CODES:
        return False
    try:
        birth_date = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:  # 30 February and friends
        return False
    if not date(1900, 1, 1) <= birth_date <= latest_birth_date:
        return False
    checksum = sum(int(digit) * weight for digit, weight in zip(candidate, _CN_ID_WEIGHTS, strict=False)) % 11
    return candidate[17].upper() == _CN_ID_CHECK_CHARS[checksum]


def _is_iban(candidate: str) -> bool:
    """ISO 13616: a known country, that country's length, and mod 97 of the rearranged number is 1."""
    compact = candidate.replace(" ", "")
    length = _IBAN_LENGTHS.get(compact[:2])
    if length is None or len(compact) < length:
        return False
    if len(compact) > length:
        # The pattern may have run on into a following word ("... 0130 00 THEN"): cut at a space.
        cut, seen = 0, 0
        while seen < length:
            seen += candidate[cut] != " "
            cut += 1
        if candidate[cut] != " ":
            return False
        compact = compact[:length]
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _is_international_phone(candidate: str) -> bool:
    """E.164 allows 8-15 digits; a country code has at most 3 unless the number is unseparated."""
    digit_count = sum(char.isdigit() for char in candidate)
    if not 8 <= digit_count <= 15 or _PHONE_SEPARATOR_RUN.search(candidate):
        return False
    after_plus = candidate[1:]
    country_code_length = len(after_plus) - len(after_plus.lstrip("0123456789"))
    return country_code_length in (1, 2, 3, digit_count)


_MEMO_MIN_BYTES = 200  # shorter units scan faster than they hash
_MEMO_BUDGET_BYTES = 16 * 1024 * 1024


class SensitiveDataDetector:
    """Finds which sensitive kinds occur in a request's texts. Build once; ``scan`` is pure."""

    def __init__(self, kinds: Iterable[str] | None = None, *, today: date | None = None) -> None:
        enabled = SENSITIVE_KINDS if kinds is None else frozenset(kinds)
        unknown = enabled - SENSITIVE_KINDS
        if unknown:
            raise ValueError(f"unknown sensitive kinds {sorted(unknown)}; known: {sorted(SENSITIVE_KINDS)}")
        # Birth dates after the build date are implausible. Fixing "today" at construction keeps
        # scan pure; a detector rebuilt on policy reload is at most one reload behind.
        self.kinds = enabled
        self._detectors = tuple(d for d in _build_detectors(today or date.today()) if d.kind in enabled)
        # System prompts, conversation history and tool lists come back request after request: what a
        # unit of a body holds is remembered by its bytes (least recently used first out, bounded by the
        # bytes kept), so it is scanned once, not every time.
        self._seen: OrderedDict[bytes, frozenset[str]] = OrderedDict()
        self._seen_bytes = 0

    def scan_body(self, body: dict[str, Any]) -> tuple[str, ...]:
        """The kinds found in every string ``body`` carries (``body_strings``), folded first."""
        found: set[str] = set()
        for unit in body_units(body):
            found |= self._unit_kinds(unit)
        return tuple(sorted(found))

    def scan(self, texts: Iterable[str]) -> tuple[str, ...]:
        """The sorted distinct kinds found in ``texts``; stops early once every kind is found."""
        found: set[str] = set()
        pending = self._detectors
        for text in texts:
            if not text:
                continue
            text = fold(text)
            views: dict[str, Any] = {"text": text}
            found_before = len(found)
            for detector in pending:
                if detector.kind not in found and detector.found_in(text, views):
                    found.add(detector.kind)
            if len(found) > found_before:
                pending = tuple(d for d in pending if d.kind not in found)
                if not pending:
                    break
        return tuple(sorted(found))

    def _unit_kinds(self, unit: bytes) -> frozenset[str]:
        if len(unit) < _MEMO_MIN_BYTES:
            return frozenset(self.scan((unit_text(unit),)))
        seen = self._seen
        kinds = seen.get(unit)
        if kinds is not None:
            seen.move_to_end(unit)
            return kinds
        kinds = frozenset(self.scan((unit_text(unit),)))
        if len(unit) <= _MEMO_BUDGET_BYTES // 16:
            # A copy of exact size: orjson's output keeps the capacity of its growing buffer (often ten times
            # the bytes it holds), and the budget counts bytes held, not bytes allocated.
            unit = bytes(memoryview(unit))
            seen[unit] = kinds
            self._seen_bytes += len(unit)
            while self._seen_bytes > _MEMO_BUDGET_BYTES:
                old, _ = seen.popitem(last=False)
                self._seen_bytes -= len(old)
        return kinds
