"""Time sensitive-data scanning (and the token estimate) for one typical 2 KB chat request.

Run: ``.venv/bin/python bench/sensitive_scan.py``. Figures are per request, best of several rounds,
and are set against ``str.lower()`` over the same text: a floor for "touching every character once".
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from gateway.core.types import Endpoint
from gateway.routing.sensitive import SensitiveDataDetector, iter_request_texts
from gateway.routing.tokens import estimate_request_tokens

_SYSTEM = "You are a careful support assistant for an online electronics shop. Answer briefly and politely."
_CLEAN_PARAGRAPH = (
    "I ordered the 27-inch monitor (model X270, firmware v2.4.1) on 2024-09-30 together with a USB-C "
    "dock, and the invoice says the total was $412.50 including 19% VAT. The dock works, but the "
    "monitor flickers every 10-15 seconds at 144 Hz and only stops when I drop to 60 Hz. I already "
    "tried two different cables and updated the GPU driver to version 560.94. Could you tell me "
    "whether this is a known issue, and if not, how I can return it within the 30-day window? "
)
_PERSONAL_DATA = (
    "You can reach me at jane.miller@example.com or +1 (415) 555-0172, and the refund should go to "
    "the card I paid with, 4111 1111 1111 1111. "
)


def _chat_body(user_text: str) -> dict:
    return {
        "model": "auto",
        "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user_text}],
    }


def _two_kilobytes(extra: str = "") -> str:
    text = extra + _CLEAN_PARAGRAPH * 5
    return text[:2048]


def _per_call_microseconds(function: Callable[[], object], number: int = 20_000, rounds: int = 5) -> float:
    return min(timeit.repeat(function, number=number, repeat=rounds)) / number * 1e6


def main() -> None:
    detector = SensitiveDataDetector()
    bodies = {
        "without personal data": _chat_body(_two_kilobytes()),
        "with personal data": _chat_body(_two_kilobytes(_PERSONAL_DATA)),
    }
    for label, body in bodies.items():
        texts = list(iter_request_texts(body))
        chars = sum(len(text) for text in texts)
        found = detector.scan(texts)
        baseline = _per_call_microseconds(lambda texts=texts: [text.lower() for text in texts])
        scan = _per_call_microseconds(lambda body=body: detector.scan(iter_request_texts(body)))
        tokens = _per_call_microseconds(lambda body=body: estimate_request_tokens(body, Endpoint.CHAT))
        print(f"{label}: {chars} chars, found {found or 'nothing'}")
        print(f"  str.lower() baseline        {baseline:7.2f} us")
        print(f"  scan(iter_request_texts())  {scan:7.2f} us  ({scan / baseline:5.1f}x baseline)")
        print(f"  estimate_request_tokens()   {tokens:7.2f} us  ({tokens / baseline:5.1f}x baseline)")


if __name__ == "__main__":
    main()
