"""Properties of the stream translators that hold for every input, checked with hypothesis:

- the bytes out do not depend on how the upstream's bytes were split into reads, nor on its line endings;
- feeding chunk dicts gives what feeding their bytes gives;
- a stream, accumulated by the official SDK's own helper, is the same answer the non-stream translation
  gives for the same completion (so a client sees one answer whichever way it asks);
- whatever the upstream sends, the client's stream ends with exactly one terminal event, and nothing after.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.errors import UpstreamTimeout
from gateway.core.sse import iter_events
from gateway.protocols.anthropic_messages_response import chat_to_message
from gateway.protocols.anthropic_messages_stream import MessagesStream
from gateway.protocols.openai_responses_response import ResponsesContext, chat_to_response
from gateway.protocols.openai_responses_stream import ResponsesStream
from tests.protocols import golden
from tests.protocols.sdk_clients import anthropic_final_message, responses_final

STREAMS = golden.cases("chat_streams")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize("case", STREAMS, ids=[c["name"] for c in STREAMS])
@FAST
@given(cuts=st.lists(st.integers(min_value=0), max_size=12), crlf=st.booleans())
def test_output_does_not_depend_on_read_boundaries_or_line_endings(case: dict[str, Any], cuts: list[int], crlf: bool) -> None:
    data = golden.upstream_bytes(case)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    pieces = split(data, cuts)
    assert golden.anthropic_stream_bytes(case, pieces) == golden.anthropic_stream_bytes(case)
    assert golden.responses_stream_bytes(case, pieces) == golden.responses_stream_bytes(case)


@pytest.mark.parametrize("case", [c for c in STREAMS if all("error" not in chunk for chunk in c["chunks"])],
                         ids=lambda c: c["name"])
def test_feeding_dicts_equals_feeding_bytes(case: dict[str, Any]) -> None:
    anthropic = MessagesStream(model=golden.MODEL, message_id=golden.MESSAGE_ID, input_tokens=golden.INPUT_TOKENS,
                               stop_sequences=case.get("request", {}).get("stop_sequences", ()))
    responses = ResponsesStream(golden.responses_context(case))
    for translator, expected in ((anthropic, golden.anthropic_stream_bytes(case)), (responses, golden.responses_stream_bytes(case))):
        out = b"".join(translator.feed(chunk) for chunk in case["chunks"])
        if case["end"] == "timeout":
            continue
        assert out + translator.close() == expected
        assert translator.feed(case["chunks"][0]) == b"" and translator.close() == b""


# Completions as upstreams send them: optional reasoning, text, tool calls with object arguments.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_NAME = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,15}", fullmatch=True)
_INT = st.integers(-(2**53), 2**53)
_ARGS = st.dictionaries(_NAME, st.one_of(_INT, _TEXT, st.booleans(), st.none()), max_size=3)
_CALL = st.tuples(st.from_regex(r"call_[a-z0-9]{4,8}", fullmatch=True), _NAME, _ARGS)


@st.composite
def completions(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    reasoning = draw(st.one_of(st.none(), _TEXT))
    text = draw(st.one_of(st.none(), _TEXT))
    calls = draw(st.lists(_CALL, max_size=3, unique_by=lambda c: c[0]))
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))
    usage = {"prompt_tokens": draw(st.integers(0, 5000)), "completion_tokens": draw(st.integers(0, 5000))}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": orjson.dumps(a).decode()}}
                                 for i, n, a in calls]
    completion = {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    for name, value in (("reasoning_content", reasoning), ("content", text)):
        for piece in _pieces(draw, value or ""):
            chunks.append({"choices": [{"index": 0, "delta": {name: piece}}]})
    for index, (call_id, name, args) in enumerate(calls):
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]})
        for piece in _pieces(draw, orjson.dumps(args).decode()):
            chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": usage})
    return completion, chunks


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=4)))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)] if text else []


@FAST
@given(completions())
def test_anthropic_stream_accumulates_to_the_non_stream_message(sample: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    completion, chunks = sample
    translator = MessagesStream(model="m", message_id="msg_1")
    raw = b"".join(translator.feed(chunk) for chunk in chunks) + translator.close()
    streamed = anthropic_final_message(raw).model_dump(mode="json", exclude_none=True)
    whole = chat_to_message(completion, model="m", message_id="msg_1")
    for block in streamed["content"]:
        block.pop("parsed_output", None)
    assert streamed["content"] == whole["content"]
    assert (streamed["stop_reason"], streamed["usage"]["output_tokens"]) == (whole["stop_reason"], whole["usage"]["output_tokens"])


@FAST
@given(completions())
def test_responses_stream_accumulates_to_the_non_stream_response(sample: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    completion, chunks = sample
    context = ResponsesContext.for_request({"model": "m", "input": "x"}, response_id="resp_1", created_at=1)
    translator = ResponsesStream(context)
    raw = b"".join(translator.feed(chunk) for chunk in chunks) + translator.close()
    whole = chat_to_response(completion, context)
    last = orjson.loads(iter_events(raw)[-1].data or b"")
    assert last["response"] == whole  # the terminal event carries exactly the non-stream response
    if whole["status"] == "completed":
        _, final = responses_final(raw)
        assert [item.id for item in final.output] == [item["id"] for item in whole["output"]]
        assert final.output_text == "".join(p["text"] for i in whole["output"] if i["type"] == "message" for p in i["content"])


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), _INT, _TEXT),
                     lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
                     max_leaves=8)
_DELTA = st.fixed_dictionaries({}, optional={
    "content": st.one_of(_TEXT, _JSON), "reasoning_content": st.one_of(_TEXT, _JSON), "refusal": _JSON,
    "tool_calls": st.one_of(_JSON, st.lists(st.fixed_dictionaries({}, optional={
        "index": st.one_of(st.integers(0, 2), _JSON), "id": _JSON,
        "function": st.one_of(_JSON, st.fixed_dictionaries({}, optional={"name": st.one_of(_NAME, _JSON), "arguments": st.one_of(_TEXT, _JSON)}))}),
        max_size=2))})
_CHUNK = st.one_of(_JSON, st.fixed_dictionaries({}, optional={
    "choices": st.one_of(_JSON, st.lists(st.fixed_dictionaries({}, optional={
        "index": st.one_of(st.just(0), _JSON), "delta": st.one_of(_DELTA, _JSON),
        "finish_reason": st.one_of(st.sampled_from(["stop", "length", "tool_calls"]), _JSON)}), max_size=2)),
    "usage": _JSON}))


@settings(max_examples=150, deadline=None)
@given(st.lists(_CHUNK, max_size=8), st.sampled_from(["close", "fail", "done"]))
def test_any_upstream_stream_ends_with_exactly_one_terminal_event(chunks: list[Any], end: str) -> None:
    context = ResponsesContext.for_request({"model": "m", "input": "x"}, response_id="resp_1", created_at=1)
    for translator, terminal in ((MessagesStream(model="m", message_id="msg_1"), {"message_stop", "error"}),
                                 (ResponsesStream(context), {"response.completed", "response.incomplete", "response.failed"})):
        data = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)
        out = translator.feed_bytes(data + (b"data: [DONE]\n\n" if end == "done" else b""))
        out += translator.fail(UpstreamTimeout("idle")) if end == "fail" else translator.close()
        names = [event.event for event in iter_events(out)]
        assert names and names[-1] in terminal
        assert sum(name in terminal for name in names) == 1
        assert translator.finished and translator.feed_bytes(data) == b"" and translator.close() == b""
