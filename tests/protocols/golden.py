"""Run the golden corpora (``corpus/*.json``) through the translators; ``expected/*.json`` holds the answers.

Each corpus file is a list of cases written from the official API references and SDK types: real
request shapes of each client protocol, and real chat completions and chunk streams of OpenAI, vLLM and
SGLang upstreams. ``python -m tests.protocols.golden`` rewrites ``expected/`` from the current code —
review the diff before committing it: the tests compare against these files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.core.errors import GatewayError, UpstreamTimeout
from gateway.core.sse import iter_events
from gateway.protocols.anthropic_errors import anthropic_error_body
from gateway.protocols.anthropic_messages_request import messages_to_chat
from gateway.protocols.anthropic_messages_response import chat_to_message
from gateway.protocols.anthropic_messages_stream import MessagesStream
from gateway.protocols.anthropic_messages_validation import validate_messages
from gateway.protocols.openai_responses_request import responses_to_chat
from gateway.protocols.openai_responses_response import ResponsesContext, chat_to_response
from gateway.protocols.openai_responses_stream import ResponsesStream
from gateway.protocols.openai_responses_validation import validate_responses
from gateway.protocols.translation import ChatTarget

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
EXPECTED = HERE / "expected"
MESSAGE_ID = "msg_gw1"
RESPONSE_ID = "resp_gw1"
CREATED_AT = 1730000000
INPUT_TOKENS = 11
MODEL = "client-model"


def cases(name: str) -> list[dict[str, Any]]:
    return json.loads((CORPUS / f"{name}.json").read_text())


def target(case: dict[str, Any]) -> ChatTarget:
    return ChatTarget(**case.get("target", {}))


def anthropic_request(case: dict[str, Any]) -> dict[str, Any]:
    body = case["request"]
    try:
        validate_messages(body, counting=bool(case.get("counting")))
        out = messages_to_chat(body, target(case))
    except GatewayError as exc:
        status, raw = anthropic_error_body(exc)
        return {"status": status, "error": orjson.loads(raw)}
    return {"chat": out.body, "dropped": out.dropped, "clamped": out.clamped, "note": out.note()}


def responses_request(case: dict[str, Any]) -> dict[str, Any]:
    body = case["request"]
    try:
        validate_responses(body)
        out = responses_to_chat(body, target(case))
    except GatewayError as exc:
        return {"status": exc.status, "error": exc.to_dict()}
    return {"chat": out.body, "dropped": out.dropped, "clamped": out.clamped, "note": out.note()}


def responses_context(case: dict[str, Any]) -> ResponsesContext:
    request = {"model": MODEL, "input": "", **case.get("request", {})}
    return ResponsesContext.for_request(request, response_id=RESPONSE_ID, created_at=CREATED_AT)


def anthropic_message(case: dict[str, Any]) -> dict[str, Any]:
    stops = case.get("request", {}).get("stop_sequences", ())
    return chat_to_message(case["completion"], model=MODEL, message_id=MESSAGE_ID, stop_sequences=stops)


def responses_object(case: dict[str, Any]) -> dict[str, Any]:
    return chat_to_response(case["completion"], responses_context(case))


def upstream_bytes(case: dict[str, Any]) -> bytes:
    """The chunks as an upstream sends them on the wire, ``[DONE]`` included when the case ends so."""
    raw = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in case["chunks"])
    return raw + (b"data: [DONE]\n\n" if case["end"] == "done" else b"")


def run_stream(translator: MessagesStream | ResponsesStream, case: dict[str, Any], pieces: list[bytes]) -> bytes:
    """Feed the upstream bytes in the given pieces, then end the way the case says."""
    out = b"".join(translator.feed_bytes(piece) for piece in pieces)
    if case["end"] == "timeout":
        return out + translator.fail(UpstreamTimeout("The upstream stopped sending (idle timeout)."))
    return out + translator.close()


def anthropic_stream_bytes(case: dict[str, Any], pieces: list[bytes] | None = None) -> bytes:
    stops = case.get("request", {}).get("stop_sequences", ())
    translator = MessagesStream(model=MODEL, message_id=MESSAGE_ID, input_tokens=INPUT_TOKENS, stop_sequences=stops)
    return run_stream(translator, case, pieces if pieces is not None else [upstream_bytes(case)])


def responses_stream_bytes(case: dict[str, Any], pieces: list[bytes] | None = None) -> bytes:
    return run_stream(ResponsesStream(responses_context(case)), case, pieces if pieces is not None else [upstream_bytes(case)])


def events(raw: bytes) -> list[list[Any]]:
    """A client stream as ``[event name, payload]`` pairs (readable goldens)."""
    return [[event.event, orjson.loads(event.data or b"null")] for event in iter_events(raw)]


DIRECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "anthropic_requests": ("anthropic_requests", anthropic_request),
    "responses_requests": ("responses_requests", responses_request),
    "anthropic_messages": ("chat_completions", anthropic_message),
    "responses_objects": ("chat_completions", responses_object),
    "anthropic_streams": ("chat_streams", lambda case: events(anthropic_stream_bytes(case))),
    "responses_streams": ("chat_streams", lambda case: events(responses_stream_bytes(case))),
}


def expected(direction: str) -> dict[str, Any]:
    return json.loads((EXPECTED / f"{direction}.json").read_text())


def main() -> None:
    EXPECTED.mkdir(exist_ok=True)
    for direction, (corpus, run) in DIRECTIONS.items():
        answers = {case["name"]: run(case) for case in cases(corpus)}
        (EXPECTED / f"{direction}.json").write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
