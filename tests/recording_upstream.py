"""An OpenAI-compatible upstream that records every request it receives, on the raw-socket server.

Tests put it behind a deployment (``api_base: upstream.api_base``) and then inspect exactly what the
gateway sent upstream (``upstream.requests``: method, path, headers, body bytes), e.g. to prove that a
vendor never received a marker, or that a body was sent once. What it answers is a ``responder``:
a function from the request to a ``Reply`` (a body, or stream events with pauses between them). The
default answers chat, completions, embeddings and models like a small real server, usage included.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.raw_upstream import (
    LAST_CHUNK,
    RawConnection,
    RawRequest,
    RawUpstream,
    chunk,
    chunked_head,
    http_response,
)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes | float] | None = None
    """A streamed answer: bytes are sent as they are (one chunk each), a float pauses that many seconds."""
    content_type: str = "application/json"


Responder = Callable[[RawRequest], Reply | Awaitable[Reply]]


def chat_completion(text: str = "Hello there.", prompt_tokens: int = 10, completion_tokens: int = 3,
                    model: str = "upstream-model") -> bytes:
    return json.dumps({
        "id": "chatcmpl-rec", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None, usage: dict[str, int] | None = None,
               choices: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": "chatcmpl-rec", "object": "chat.completion.chunk", "created": 1,
                               "model": "upstream-model",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if choices else []}
    if usage is not None:
        payload["usage"] = usage
    return payload


def sse(payload: dict[str, Any] | str, sep: bytes = b"\n\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return b"data: " + data.encode() + sep


def chat_stream(words: list[str], prompt_tokens: int = 10, *, include_usage: bool = True, pause_before_usage: float = 0.0,
                sep: bytes = b"\n\n") -> list[bytes | float]:
    """A streamed chat answer: a role event, one event per word, the finish event, then (after an optional
    pause) the usage-only event and ``[DONE]``. ``completion_tokens`` is the number of words."""
    events: list[bytes | float] = [sse(chat_chunk({"role": "assistant", "content": ""}), sep)]
    events += [sse(chat_chunk({"content": word}), sep) for word in words]
    events.append(sse(chat_chunk({}, finish_reason="stop"), sep))
    if pause_before_usage:
        events.append(pause_before_usage)
    if include_usage:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        events.append(sse(chat_chunk({}, usage=usage, choices=False), sep))
    events.append(sse("[DONE]", sep))
    return events


def default_reply(request: RawRequest) -> Reply:
    """A small real server: chat (streamed or not), completions, embeddings, models."""
    path = request.path
    if request.method == "GET":
        return Reply(body=json.dumps({"object": "list", "data": [{"id": "upstream-model", "object": "model"}]}).encode())
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return Reply(400, json.dumps({"error": {"message": "not JSON", "type": "invalid_request_error"}}).encode())
    if path.endswith("/chat/completions"):
        if body.get("stream"):
            wants_usage = (body.get("stream_options") or {}).get("include_usage") is True
            return Reply(events=chat_stream(["Hello", " there", "."], include_usage=wants_usage),
                         content_type="text/event-stream")
        return Reply(body=chat_completion())
    if path.endswith("/completions"):
        return Reply(body=json.dumps({
            "id": "cmpl-rec", "object": "text_completion", "created": 1, "model": "upstream-model",
            "choices": [{"index": 0, "text": "Hello there.", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }).encode())
    if path.endswith("/embeddings"):
        return Reply(body=json.dumps({
            "object": "list", "model": "upstream-model",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }).encode())
    return Reply(404, json.dumps({"error": {"message": f"no route {path}", "type": "invalid_request_error"}}).encode())


class RecordingUpstream(RawUpstream):
    """Answers every request with ``responder(request)`` (default: ``default_reply``), keep-alive."""

    def __init__(self, responder: Responder = default_reply) -> None:
        super().__init__(self._script)
        self.responder = responder

    async def _script(self, conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            reply = self.responder(request)
            if inspect.isawaitable(reply):
                reply = await reply
            assert isinstance(reply, Reply)
            if reply.events is None:
                await conn.send(http_response(reply.status, reply.body, reply.headers, content_type=reply.content_type))
                continue
            head = chunked_head(reply.status, reply.content_type)
            if reply.headers:
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items()).encode("latin-1")
                head = head[:-2] + extra + b"\r\n"
            await conn.send(head)
            for item in reply.events:
                if isinstance(item, float | int) and not isinstance(item, bool):
                    await asyncio.sleep(float(item))
                else:
                    assert isinstance(item, bytes)
                    await conn.send(chunk(item))
            await conn.send(LAST_CHUNK)

