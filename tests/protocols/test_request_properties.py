"""Request translation under odd-but-legal and hostile inputs, checked with hypothesis:

- any value in any place of a real request is either translated or refused with a 400 — never a crash;
- a conversation keeps its texts in order, and every tool result lands right after the assistant turn
  that called the tool (what chat servers require), in both protocols.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import InvalidRequest
from gateway.protocols.anthropic_messages_request import messages_to_chat
from gateway.protocols.anthropic_messages_validation import validate_messages
from gateway.protocols.openai_responses_request import responses_to_chat
from gateway.protocols.openai_responses_validation import validate_responses
from gateway.protocols.translation import ChatTarget
from tests.protocols import golden

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), _TEXT),
                     lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
                     max_leaves=10)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*prefix, i))
    return found


def _replace(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def _mutations(corpus: str) -> st.SearchStrategy[dict[str, Any]]:
    requests = [case["request"] for case in golden.cases(corpus)]
    return st.sampled_from(requests).flatmap(
        lambda body: st.tuples(st.sampled_from(_paths(body)[1:]), _JSON).map(lambda pv: _replace(body, *pv)))


def _translate_or_refuse(validate: Any, translate: Any, body: dict[str, Any], target: ChatTarget) -> None:
    try:
        validate(body)
        out = translate(body, target)
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.message
        return
    orjson.dumps(out.body)  # a plain JSON body, ready to send


@settings(max_examples=400, deadline=None)
@given(_mutations("anthropic_requests"), st.builds(ChatTarget, st.one_of(st.none(), st.integers(1, 9000)), st.booleans(), st.booleans()))
def test_any_anthropic_request_is_translated_or_refused(body: dict[str, Any], target: ChatTarget) -> None:
    _translate_or_refuse(validate_messages, messages_to_chat, body, target)


@settings(max_examples=400, deadline=None)
@given(_mutations("responses_requests"), st.builds(ChatTarget, st.one_of(st.none(), st.integers(1, 9000)), st.booleans(), st.booleans()))
def test_any_responses_request_is_translated_or_refused(body: dict[str, Any], target: ChatTarget) -> None:
    _translate_or_refuse(validate_responses, responses_to_chat, body, target)


@pytest.mark.parametrize("body", [[], "x", 1, None])
def test_request_bodies_that_are_not_objects_do_not_crash_validation(body: Any) -> None:
    for validate in (validate_messages, validate_responses):
        with pytest.raises((InvalidRequest, AttributeError, TypeError)):
            validate(body)  # the entrance parses to a dict first (protocols.openai.parse_json_object)


_WORD = st.text("abcdefgh ", min_size=1, max_size=12)
_ID = st.from_regex(r"id_[a-z0-9]{6}", fullmatch=True)


@st.composite
def turns(draw: st.DrawFn) -> list[tuple[str, list[str], list[str]]]:
    """(user text, assistant texts, tool call ids) per round of a conversation."""
    return draw(st.lists(st.tuples(_WORD, st.lists(_WORD, max_size=2), st.lists(_ID, max_size=3, unique=True)),
                         min_size=1, max_size=4, unique_by=lambda t: tuple(t[2]) or None))


def _check_chat(messages: list[dict[str, Any]], rounds: list[tuple[str, list[str], list[str]]]) -> None:
    texts = [m["content"] for m in messages if m["role"] in ("user", "assistant") and isinstance(m.get("content"), str) and m["content"]]
    expected = []
    for user, said, _ in rounds:
        expected.append(user)
        if said:
            expected.append("".join(said))
    assert texts == expected
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            caller = next(m for m in reversed(messages[:i]) if m["role"] != "tool")
            assert caller["role"] == "assistant"
            assert message["tool_call_id"] in [c["id"] for c in caller["tool_calls"]]


@settings(max_examples=100, deadline=None)
@given(turns())
def test_anthropic_conversations_keep_order_and_tool_pairs(rounds: list[tuple[str, list[str], list[str]]]) -> None:
    messages: list[dict[str, Any]] = []
    for user, said, calls in rounds:
        if messages and messages[-1]["role"] == "assistant" and any(b["type"] == "tool_use" for b in messages[-1]["content"]):
            results = [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"} for b in messages[-1]["content"] if b["type"] == "tool_use"]
            messages.append({"role": "user", "content": [*results, {"type": "text", "text": user}]})
        else:
            messages.append({"role": "user", "content": user})
        blocks = [{"type": "text", "text": t} for t in said] + [{"type": "tool_use", "id": c, "name": "f", "input": {}} for c in calls]
        if blocks:
            messages.append({"role": "assistant", "content": blocks})
    body = {"model": "m", "max_tokens": 10, "messages": messages}
    validate_messages(body)
    _check_chat(messages_to_chat(body).body["messages"], rounds)


@settings(max_examples=100, deadline=None)
@given(turns())
def test_responses_conversations_keep_order_and_tool_pairs(rounds: list[tuple[str, list[str], list[str]]]) -> None:
    items: list[dict[str, Any]] = []
    for user, said, calls in rounds:
        items.append({"role": "user", "content": user})
        if said:
            items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t} for t in said]})
        items += [{"type": "function_call", "call_id": c, "name": "f", "arguments": "{}"} for c in calls]
        items += [{"type": "function_call_output", "call_id": c, "output": "ok"} for c in calls]
    body = {"model": "m", "input": items}
    validate_responses(body)
    _check_chat(responses_to_chat(body).body["messages"], rounds)
