"""The comparison of a primary's answer with its shadow's, pure: tables of cases with hand-computed scores."""

from __future__ import annotations

import json
import time

import orjson
import pytest

from gateway.core.types import Endpoint
from gateway.shadow.answers import Answer, ToolCall, answer_of, answer_of_stream
from gateway.shadow.compare import Expectation, compare, same_calls
from gateway.shadow.json_check import canonical_json, check_json
from gateway.shadow.refusal import refused
from gateway.shadow.similarity import cosine, length_ratio, token_f1, tokens

# ---------------------------------------------------------------- text similarity, by hand


@pytest.mark.parametrize("a, b, expected", [
    ("the cat sat", "the cat sat", 1.0),
    ("the cat sat", "the cat ran", 2 / 3),                      # P = R = 2/3
    ("the cat sat on the mat", "the cat", 2 * (1 * 2 / 6) / (1 + 2 / 6)),  # P = 2/2, R = 2/6 → 0.5
    ("The Cat, sat!", "the cat sat", 1.0),                       # case and punctuation aside
    ("a a a b", "a b b b", 0.5),                                 # multisets: 2 shared of 4 each
    ("", "", 1.0),
    ("something", "", 0.0),
    ("alpha", "beta", 0.0),
    ("巴黎是法国的首都", "巴黎是首都", 2 * (5 / 5) * (5 / 8) / (5 / 5 + 5 / 8)),  # one token per Han character
])
def test_token_f1(a: str, b: str, expected: float) -> None:
    assert token_f1(a, b) == pytest.approx(expected)
    assert token_f1(b, a) == pytest.approx(expected), "F1 is symmetric"


def test_tokens_split_words_and_han_characters() -> None:
    assert tokens("Hello, World 42 — 你好!") == ["hello", "world", "42", "你", "好"]


@pytest.mark.parametrize("primary, shadow, expected", [
    ("one two three four", "one two", 0.5), ("one two", "one two three four", 2.0), ("", "words", None),
])
def test_length_ratio(primary: str, shadow: str, expected: float | None) -> None:
    assert length_ratio(primary, shadow) == expected


@pytest.mark.parametrize("a, b, expected", [
    ([1.0, 0.0], [1.0, 0.0], 1.0), ([1.0, 0.0], [0.0, 1.0], 0.0), ([1.0, 1.0], [1.0, 0.0], 2 ** -0.5),
    ([1.0, 0.0], [-1.0, 0.0], -1.0), ([0.0, 0.0], [1.0, 0.0], None), ([1.0], [1.0, 0.0], None), ([], [], None),
])
def test_cosine(a: list[float], b: list[float], expected: float | None) -> None:
    result = cosine(a, b)
    assert result == (pytest.approx(expected) if expected is not None else None)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I am sorry, I cannot provide instructions for that.",
    "Sorry, but I won't do that.",
    "I can't assist with this request.",
    "I cannot comply with that request.",
    "As an AI language model, I cannot share personal opinions.",
    "I must decline to answer.",
    "  Unfortunately, I'm unable to help — I cannot share that.",
    "抱歉，我无法回答这个问题。",
    "我不能提供这些信息。",
])
def test_refusals_are_flagged(text: str) -> None:
    assert refused(Answer(text))


@pytest.mark.parametrize("text", [
    "Paris is the capital of France.",
    "I can help with that: here are the steps.",
    "The function can't be called with a negative number, so check it first.",
    "Sorry for the wait! Here is your answer.",
    "",
    "Here is the story. Later, the hero said: I'm sorry, but I can't let you do that.",  # not the opening
])
def test_answers_that_help_are_not_flagged(text: str) -> None:
    assert not refused(Answer(text))


def test_an_explicit_refusal_counts_whatever_the_words() -> None:
    assert refused(Answer("Here is something", refused=True))


# ---------------------------------------------------------------- JSON


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer", "maximum": 50}},
          "required": ["city", "temp"], "additionalProperties": False}


@pytest.mark.parametrize("text, schema, parsed, valid", [
    ('{"city": "Paris", "temp": 21}', SCHEMA, True, True),
    ('{"city": "Paris", "temp": 51}', SCHEMA, True, False),              # above maximum
    ('{"city": "Paris"}', SCHEMA, True, False),                          # required missing
    ('{"city": "Paris", "temp": 21, "x": 1}', SCHEMA, True, False),      # additionalProperties
    ('{"city": "Paris", "temp": "21"}', SCHEMA, True, False),            # wrong type
    ('```json\n{"city": "Paris", "temp": 21}\n```', SCHEMA, False, False),  # a fence is not JSON
    ('{"city": "Paris", "temp": 21', SCHEMA, False, False),              # cut short
    ("", SCHEMA, False, False),
    ('{"anything": [1, 2]}', None, True, True),                          # json_object: parsing is all
    ("[1, 2]", None, True, True),
    ("NaN", None, False, False),                                         # not JSON, though Python reads it
    ('{"n": 123456789012345678901234567890}', None, True, True),         # beyond 64 bits: still JSON
])
def test_json_verdicts(text: str, schema: dict | None, parsed: bool, valid: bool) -> None:
    verdict = check_json(text, schema)
    assert (verdict.parsed, verdict.valid) == (parsed, valid)


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"^a": {"type": "string"}}},  # matched with re by jsonschema
    {"type": "object", "properties": {"a": {"$ref": "https://example.com/remote.json"}}},  # never fetched
    {"type": "object", "properties": {"a": {"type": "no-such-type"}}},  # not a valid schema
    {"type": "string", "pattern": "(?<bad"},  # a pattern the engine cannot compile
])
def test_schemas_that_cannot_be_checked_give_no_verdict(schema: dict) -> None:
    assert check_json('{"a": "x"}' if schema.get("type") == "object" else '"x"', schema).valid is None


@pytest.mark.parametrize("pattern, verdict", [
    ("^(a|a)*$", None),  # backtracks in any engine: cut off at its time limit, no verdict
    ("^(a+)+$", False),  # would hold Python's re for hours; the regex engine decides it at once
])
def test_a_backtracking_pattern_never_holds_the_process(pattern: str, verdict: bool | None) -> None:
    started = time.perf_counter()
    result = check_json(json.dumps("a" * 40 + "!"), {"type": "string", "pattern": pattern})
    assert result.valid is verdict
    assert time.perf_counter() - started < 5, "the pattern ran past its time limit"


def test_patterns_are_checked_when_they_behave() -> None:
    schema = {"type": "string", "pattern": "^[A-Z]{2}$"}
    assert check_json('"FR"', schema).valid is True
    assert check_json('"France"', schema).valid is False


@pytest.mark.parametrize("a, b, equal", [
    ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True),   # key order
    ({"a": 1}, {"a": 1.0}, True),                           # the same JSON number
    ({"a": True}, {"a": 1}, False),                         # Python says True == 1; JSON does not
    ([1, 2], [2, 1], False),                                # arrays are ordered
    ({"a": "é"}, {"a": "\u00e9"}, True),
])
def test_canonical_json(a: object, b: object, equal: bool) -> None:
    assert (canonical_json(a) == canonical_json(b)) is equal


# ---------------------------------------------------------------- tool calls


def call(name: str, arguments: str) -> ToolCall:
    return ToolCall(name, arguments)


@pytest.mark.parametrize("a, b, agree", [
    ((call("f", '{"x": 1, "y": "z"}'),), (call("f", '{"y":"z","x":1}'),), True),   # spacing and order
    ((call("f", '{"x": 1}'),), (call("f", '{"x": 2}'),), False),
    ((call("f", '{}'),), (call("g", '{}'),), False),
    ((call("f", "{}"), call("g", "{}")), (call("g", "{}"), call("f", "{}")), True),  # parallel calls, any order
    ((call("f", "{}"), call("f", "{}")), (call("f", "{}"),), False),                 # as many times each
    ((call("f", "not json"),), (call("f", "not json"),), True),                      # as written
    ((call("f", "not json"),), (call("f", "not  json"),), False),
    ((call("f", ""),), (call("f", "{}"),), True),                                     # no arguments
    ((), (), True),
])
def test_same_calls(a: tuple[ToolCall, ...], b: tuple[ToolCall, ...], agree: bool) -> None:
    assert same_calls(a, b) is agree


# ---------------------------------------------------------------- what is compared, by what was asked


TOOLS_BODY = {"tools": [{"type": "function", "function": {"name": "f"}}]}
SCHEMA_BODY = {"response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}}


@pytest.mark.parametrize("body, expected", [
    ({}, Expectation()),
    (TOOLS_BODY, Expectation(tools=True)),
    ({**TOOLS_BODY, "tool_choice": "none"}, Expectation()),
    ({"functions": [{"name": "f"}]}, Expectation(tools=True)),
    (SCHEMA_BODY, Expectation(json_schema=SCHEMA)),
    ({"response_format": {"type": "json_object"}}, Expectation(json_mode=True)),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "w"}}}, Expectation(json_schema={})),
    ({"response_format": {"type": "text"}}, Expectation()),
])
def test_expectation_of_a_chat_body(body: dict, expected: Expectation) -> None:
    assert Expectation.of(body) == expected


def test_tool_calls_are_compared_and_text_is_not() -> None:
    scores = compare(Answer("", (call("f", '{"x": 1}'),)), Answer("sure", (call("f", '{"x":1}'),)), Expectation(tools=True))
    assert scores.tool_calls_agree is True
    assert scores.text_similarity is None and scores.json_agree is None


def test_a_call_against_a_text_answer_disagrees() -> None:
    scores = compare(Answer("", (call("f", "{}"),)), Answer("I would call f."), Expectation(tools=True))
    assert scores.tool_calls_agree is False and scores.text_similarity is None


def test_both_answering_without_a_call_agree_on_tools_and_are_compared_as_text() -> None:
    scores = compare(Answer("the cat sat"), Answer("the cat ran"), Expectation(tools=True))
    assert scores.tool_calls_agree is True
    assert scores.text_similarity == pytest.approx(2 / 3)


@pytest.mark.parametrize("primary, shadow, valid_p, valid_s, agree", [
    ('{"city": "Paris", "temp": 21}', '{"temp": 21, "city": "Paris"}', True, True, True),
    ('{"city": "Paris", "temp": 21}', '{"city": "Paris", "temp": 22}', True, True, False),   # valid, not equal
    ('{"city": "Paris", "temp": 21}', '{"city": "Paris", "temp": 99}', True, False, False),  # invalid shadow
    ('{"city": "Paris", "temp": 99}', '{"city": "Paris", "temp": 99}', False, False, False),  # equal but invalid
    ('not json', '{"city": "Paris", "temp": 21}', False, True, False),                       # nothing to agree with
])
def test_json_schema_answers(primary: str, shadow: str, valid_p: bool, valid_s: bool, agree: bool) -> None:
    scores = compare(Answer(primary), Answer(shadow), Expectation(json_schema=SCHEMA))
    assert (scores.json_valid_primary, scores.json_valid_shadow, scores.json_agree) == (valid_p, valid_s, agree)
    assert scores.text_similarity is None, "a JSON answer is compared as JSON, not as prose"


def test_json_that_cannot_be_checked_has_no_agreement_verdict() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {}}}
    scores = compare(Answer('{"a": 1}'), Answer('{"a": 1}'), Expectation(json_schema=schema))
    assert scores.json_agree is None and scores.json_valid_shadow is None


def test_refusals_are_flagged_on_each_side() -> None:
    scores = compare(Answer("Paris is the capital."), Answer("I'm sorry, but I can't help with that."), Expectation())
    assert (scores.refusal_primary, scores.refusal_shadow) == (False, True)


def test_scores_for_the_log_are_numbers_and_flags_never_text() -> None:
    scores = compare(Answer("a secret answer"), Answer("another secret answer"), Expectation())
    logged = orjson.dumps(scores.to_log()).decode()
    assert "secret" not in logged
    assert scores.to_log()["text_similarity"] == 0.6667  # 2 shared tokens of 3 on each side


# ---------------------------------------------------------------- answers of every API


def test_chat_answer() -> None:
    body = {"choices": [{"message": {"content": "hi", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}, "finish_reason": "tool_calls"}]}
    assert answer_of(Endpoint.CHAT, body) == Answer("hi", (call("f", '{"a":1}'),))


def test_chat_refusal_field_and_content_filter() -> None:
    refusal = {"choices": [{"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}]}
    filtered = {"choices": [{"message": {"content": "partial"}, "finish_reason": "content_filter"}]}
    assert answer_of(Endpoint.CHAT, refusal) == Answer("", (), True)
    assert answer_of(Endpoint.CHAT, filtered) == Answer("partial", (), True)


def test_completion_answer() -> None:
    assert answer_of(Endpoint.COMPLETIONS, {"choices": [{"text": "once upon", "finish_reason": "length"}]}) == Answer("once upon")


def test_messages_answer() -> None:
    body = {"content": [{"type": "text", "text": "Let me check. "}, {"type": "tool_use", "id": "t", "name": "f",
                                                                       "input": {"b": 2, "a": 1}}],
            "stop_reason": "tool_use"}
    answer = answer_of(Endpoint.MESSAGES, body)
    assert answer is not None and answer.text == "Let me check. "
    assert same_calls(answer.tool_calls, (call("f", '{"a": 1, "b": 2}'),))
    assert answer_of(Endpoint.MESSAGES, {"content": [], "stop_reason": "refusal"}) == Answer("", (), True)


def test_responses_answer() -> None:
    body = {"output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "Hello"}, {"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"},
    ]}
    assert answer_of(Endpoint.RESPONSES, body) == Answer("Hello", (call("f", "{}"),), True)


@pytest.mark.parametrize("endpoint, body", [
    (Endpoint.CHAT, {"choices": []}), (Endpoint.CHAT, {"error": {}}), (Endpoint.MESSAGES, {"type": "error"}),
    (Endpoint.RESPONSES, {"status": "failed"}), (Endpoint.EMBEDDINGS, {"data": []}),
])
def test_bodies_without_an_answer(endpoint: Endpoint, body: dict) -> None:
    assert answer_of(endpoint, body) is None


def sse(*payloads: object, done: bool = False, named: bool = False) -> list[bytes]:
    events = []
    for p in payloads:
        name = f"event: {p['type']}\n".encode() if named and isinstance(p, dict) else b""
        events.append(name + b"data: " + orjson.dumps(p) + b"\n\n")
    if done:
        events.append(b"data: [DONE]\n\n")
    return events


def test_chat_stream_answer() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
                 {**chunk, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}, done=True)
    assert answer_of_stream(Endpoint.CHAT, events) == Answer("Hello")
    assert answer_of_stream(Endpoint.CHAT, events[:-1]) is None, "a stream without [DONE] is incomplete"


def test_chat_stream_tool_calls_are_assembled_by_index() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def delta(d: dict, finish: str | None = None) -> dict:
        return {**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    events = sse(delta({"role": "assistant", "tool_calls": [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x"'}}]}),
        delta({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        delta({}, "tool_calls"),
        {**chunk, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}, done=True)
    assert answer_of_stream(Endpoint.CHAT, events) == Answer("", (call("f", '{"x": 1}'), call("g", "{}")))


@pytest.mark.parametrize("events", [
    sse({"choices": [{"index": 0, "delta": {"content": "cut"}, "finish_reason": None}]}, done=True),  # never finished
    sse({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}),  # no [DONE]
    sse({"error": {"message": "boom"}}, done=True),
    [b"data: " + b"x" * 70000],  # not a stream at all
])
def test_incomplete_chat_streams_have_no_answer(events: list[bytes]) -> None:
    assert answer_of_stream(Endpoint.CHAT, events) is None


def test_a_streamed_refusal_is_explicit() -> None:
    events = sse({"choices": [{"index": 0, "delta": {"refusal": "I can't."}, "finish_reason": None}]},
                 {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, done=True)
    assert answer_of_stream(Endpoint.CHAT, events) == Answer("", (), True)


def test_messages_stream_answer() -> None:
    events = sse(
        {"type": "message_start", "message": {"id": "m", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "On it. "}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " 1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        {"type": "message_stop"}, named=True)
    assert answer_of_stream(Endpoint.MESSAGES, events) == Answer("On it. ", (call("f", '{"a": 1}'),))
    assert answer_of_stream(Endpoint.MESSAGES, events[:-1]) is None, "no message_stop: incomplete"


def test_responses_stream_answer() -> None:
    done = {"type": "response.completed", "response": {"output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}]}}
    events = sse({"type": "response.created", "response": {}},
                 {"type": "response.output_text.delta", "delta": "Hi"}, done, named=True)
    assert answer_of_stream(Endpoint.RESPONSES, events) == Answer("Hi")
    assert answer_of_stream(Endpoint.RESPONSES, events[:-1]) is None
