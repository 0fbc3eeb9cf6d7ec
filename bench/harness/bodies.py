"""What the clients send and what the mock upstream answers.

The request is a realistic ~1.3 KB support-chat body, deterministic (``temperature: 0``) so the
gateway's cache looks it up, with a per-request nonce so every lookup misses. The answers are an
OpenAI ``chat.completion`` with usage (~600 bytes) and a stream of 20 content chunks, a usage
chunk and ``[DONE]``.
"""

from __future__ import annotations

import orjson

NONCE = "__NONCE__"
"""Replaced in each request (by wrk's Lua script or the open-loop generator) to make it unique."""

JSON_MODEL = "bench-json"
SSE_MODEL = "bench-sse"
"""Client-facing model names. The mock cannot branch on the body, so the non-streamed and the
streamed answers live under two paths, and each system maps one model name to each path."""

_SYSTEM = (
    "You are a careful support assistant for an online electronics shop. Answer briefly and politely, "
    "quote the order number when you refer to an order, and never promise a refund you cannot grant."
)
_USER = (
    "Ticket " + NONCE + ". I ordered the 27-inch monitor (model X270, firmware v2.4.1) on 2024-09-30 "
    "together with a USB-C dock, and the invoice says the total was 412.50 USD including 19% VAT. The dock "
    "works, but the monitor flickers every 10-15 seconds at 144 Hz and only stops when I drop to 60 Hz. I "
    "already tried two different cables and updated the GPU driver to version 560.94. Could you tell me "
    "whether this is a known issue, and if not, how I can return it within the 30-day window? I would "
    "prefer an exchange for the same model if a fixed batch is available, otherwise a refund to the "
    "original payment method. Please also confirm whether the dock has to be sent back with it."
)
_ANSWER_WORDS = (
    "Thanks for the detailed report. The X270 flicker at 144 Hz is a known firmware issue fixed in "
    "v2.5.0; please update and tell us if it persists, otherwise we will arrange an exchange."
).split(" ")
_CREATED = 1732838400
_ID = "chatcmpl-bench0000000000000000000001"


def request_body(model: str, stream: bool) -> bytes:
    """The request, with ``NONCE`` still in it."""
    body: dict = {
        "model": model,
        "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}],
        "temperature": 0,
        "max_tokens": 128,
        "user": "bench-client",
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _usage() -> dict:
    return {
        "prompt_tokens": 268, "completion_tokens": 40, "total_tokens": 308,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def completion_json() -> bytes:
    """A non-streamed ``chat.completion`` answer."""
    return orjson.dumps({
        "id": _ID, "object": "chat.completion", "created": _CREATED, "model": "mock-model",
        "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0, "logprobs": None, "finish_reason": "stop",
            "message": {"role": "assistant", "content": " ".join(_ANSWER_WORDS), "refusal": None},
        }],
        "usage": _usage(),
    })


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    event: dict = {
        "id": _ID, "object": "chat.completion.chunk", "created": _CREATED, "model": "mock-model",
        "system_fingerprint": "fp_bench", "choices": choices,
    }
    if usage:
        event["usage"] = usage
    return b"data: " + orjson.dumps(event) + b"\n\n"


def completion_sse(content_chunks: int = 20) -> bytes:
    """A streamed answer: role chunk, ``content_chunks`` content chunks, finish, usage, ``[DONE]``."""
    words, n = _ANSWER_WORDS, min(content_chunks, len(_ANSWER_WORDS))
    parts = [" ".join(words[i * len(words) // n:(i + 1) * len(words) // n]) for i in range(n)]
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": (" " if i else "") + p}) for i, p in enumerate(parts)]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk({}, usage=_usage()))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)
