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
from gateway.routing.body_strings import body_units, unit_text
from gateway.routing.sensitive import SensitiveDataDetector
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


def _agent_body(tools: int = 24, turns: int = 12) -> dict:
    """A coding agent's request: two dozen tool schemas and a long history (about 40 KB)."""
    schema = {"type": "object", "properties": {
        name: {"type": "string", "description": f"The {name} to use; see the project's conventions."}
        for name in ("path", "pattern", "content", "mode", "limit", "offset")}, "required": ["path"]}
    messages = [{"role": "system", "content": _SYSTEM * 20}]
    for turn in range(turns):
        messages.append({"role": "user", "content": _CLEAN_PARAGRAPH * 2 + f" (turn {turn})"})
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{turn}", "type": "function",
                         "function": {"name": "read_file", "arguments": '{"path": "src/app.py", "limit": 200}'}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{turn}", "content": _CLEAN_PARAGRAPH * 3})
    return {"model": "auto", "messages": messages, "metadata": {"session": "s-1", "repo": "shop"},
            "tools": [{"type": "function", "function": {"name": f"tool_{i}", "description": "A tool. " * 8,
                                                        "parameters": schema}} for i in range(tools)]}


class _FreshText:
    """Each call scans a body whose user text was never seen (no memo hits)."""

    def __init__(self, detector: SensitiveDataDetector, text: str) -> None:
        self.detector, self.text, self.n = detector, text, 0

    def __call__(self) -> tuple[str, ...]:
        self.n += 1
        return self.detector.scan_body(_chat_body(f"{self.n} {self.text}"))


def main() -> None:
    detector = SensitiveDataDetector()
    chinese = "我在九月三十日订购了一台二十七英寸的显示器，它每隔十到十五秒闪烁一次。请问这是已知问题吗？" * 20
    bodies = {
        "2 KB chat, without personal data": _chat_body(_two_kilobytes()),
        "2 KB chat, with personal data": _chat_body(_two_kilobytes(_PERSONAL_DATA)),
        "2 KB Chinese chat": _chat_body(chinese[:700]),
        "agent request, 24 tools, 40 KB": _agent_body(),
    }
    for label, body in bodies.items():
        texts = [unit_text(unit) for unit in body_units(body)]
        chars = sum(len(text) for text in texts)
        user = body["messages"][-1]["content"] or ""
        timings = _interleaved_microseconds(
            {
                "str.lower() baseline": partial(_lowercase_all, texts),
                "scan_body() (memo warm)": partial(detector.scan_body, body),
                "scan_body() (fresh text)": _FreshText(detector, user),
                "estimate_request_tokens()": partial(estimate_request_tokens, body, Endpoint.CHAT),
            },
            number=500,
        )
        baseline = timings["str.lower() baseline"]
        print(f"{label}: {chars} chars, found {detector.scan_body(body) or 'nothing'}")
        for name, microseconds in timings.items():
            print(f"  {name:28s} {microseconds:7.2f} us  ({microseconds / baseline:5.1f}x baseline)")


if __name__ == "__main__":
    main()
