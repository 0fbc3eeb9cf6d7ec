"""Time sensitive-data scanning (and the token estimate) for one typical 2 KB chat request.

Run: ``.venv/bin/python bench/sensitive_scan.py``. Figures are CPU time per request (so time spent
waiting for a busy machine's CPU is left out), the median of interleaved rounds, and are set against
``str.lower()`` over the same text: a floor for "touching every character once".
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from functools import partial

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


def _lowercase_all(texts: list[str]) -> list[str]:
    return [text.lower() for text in texts]


def _scan_request(detector: SensitiveDataDetector, body: dict) -> tuple[str, ...]:
    return detector.scan(iter_request_texts(body))


def _interleaved_microseconds(
    functions: dict[str, Callable[[], object]], number: int = 2_000, rounds: int = 21
) -> dict[str, float]:
    """Median per-call CPU time of each function, timed in alternation so that a busy machine
    slows them alike; the ratios between them are the figure to compare across machines."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            samples[name].append(
                timeit.timeit(function, timer=time.process_time, number=number) / number * 1e6
            )
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    detector = SensitiveDataDetector()
    bodies = {
        "without personal data": _chat_body(_two_kilobytes()),
        "with personal data": _chat_body(_two_kilobytes(_PERSONAL_DATA)),
    }
    for label, body in bodies.items():
        texts = list(iter_request_texts(body))
        chars = sum(len(text) for text in texts)
        timings = _interleaved_microseconds(
            {
                "str.lower() baseline": partial(_lowercase_all, texts),
                "scan(iter_request_texts())": partial(_scan_request, detector, body),
                "estimate_request_tokens()": partial(estimate_request_tokens, body, Endpoint.CHAT),
            }
        )
        baseline = timings["str.lower() baseline"]
        print(f"{label}: {chars} chars, found {detector.scan(texts) or 'nothing'}")
        for name, microseconds in timings.items():
            print(f"  {name:28s} {microseconds:7.2f} us  ({microseconds / baseline:5.1f}x baseline)")


if __name__ == "__main__":
    main()
