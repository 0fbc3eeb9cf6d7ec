"""The golden corpora, as tables: every case of every direction gives exactly its expected translation, and
every translated answer is one the official SDKs accept — parsed with their strict types and accumulated
with their own stream helpers."""

from __future__ import annotations

import re
from typing import Any

import anthropic
import openai
import pytest

from gateway.core.types import Endpoint
from gateway.protocols import openai as openai_body
from tests.protocols import golden
from tests.protocols.sdk_clients import (
    ANTHROPIC_EVENT,
    RESPONSES_EVENT,
    anthropic_final_message,
    responses_final,
)


def table(direction: str) -> list[Any]:
    corpus = golden.DIRECTIONS[direction][0]
    answers = golden.expected(direction)
    return [pytest.param(case, answers.get(case["name"]), id=case["name"]) for case in golden.cases(corpus)]


@pytest.mark.parametrize("direction", list(golden.DIRECTIONS))
def test_every_case_has_an_expected_answer(direction: str) -> None:
    corpus = golden.DIRECTIONS[direction][0]
    assert sorted(golden.expected(direction)) == sorted(case["name"] for case in golden.cases(corpus))


@pytest.mark.parametrize("case, answer", table("anthropic_requests"))
def test_anthropic_requests(case: dict[str, Any], answer: Any) -> None:
    got = golden.anthropic_request(case)
    assert got == answer
    if "chat" in got:
        openai_body.validate(Endpoint.CHAT, got["chat"])  # a chat body the gateway's own entrance accepts
    else:
        assert got["error"]["type"] == "error" and got["status"] in (400, 404, 413)
        assert anthropic.types.ErrorResponse.model_validate(got["error"])


@pytest.mark.parametrize("case, answer", table("responses_requests"))
def test_responses_requests(case: dict[str, Any], answer: Any) -> None:
    got = golden.responses_request(case)
    assert got == answer
    if "chat" in got:
        openai_body.validate(Endpoint.CHAT, got["chat"])
    else:
        assert got["status"] == 400 and got["error"]["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("case, answer", table("anthropic_messages"))
def test_chat_completion_to_anthropic_message(case: dict[str, Any], answer: Any) -> None:
    got = golden.anthropic_message(case)
    assert got == answer
    anthropic.types.Message.model_validate(got)


@pytest.mark.parametrize("case, answer", table("responses_objects"))
def test_chat_completion_to_response_object(case: dict[str, Any], answer: Any) -> None:
    got = golden.responses_object(case)
    assert got == answer
    openai.types.responses.Response.model_validate(got)


@pytest.mark.parametrize("case, answer", table("anthropic_streams"))
def test_chat_stream_to_anthropic_events(case: dict[str, Any], answer: Any) -> None:
    raw = golden.anthropic_stream_bytes(case)
    assert golden.events(raw) == answer
    for name, payload in answer:
        assert payload["type"] == name
        if name == "error":
            anthropic.types.ErrorResponse.model_validate(payload)
        elif name == "ping":  # not a message event in the SDK's types: it skips pings
            assert payload == {"type": "ping"}
        else:
            ANTHROPIC_EVENT.validate_python(payload)
    if answer[-1][0] == "error":
        with pytest.raises(anthropic.APIStatusError, match=re.escape(answer[-1][1]["error"]["message"])):
            anthropic_final_message(raw)
    else:
        assert anthropic_final_message(raw).stop_reason == answer[-2][1]["delta"]["stop_reason"]


@pytest.mark.parametrize("case, answer", table("responses_streams"))
def test_chat_stream_to_responses_events(case: dict[str, Any], answer: Any) -> None:
    raw = golden.responses_stream_bytes(case)
    assert golden.events(raw) == answer
    assert [payload["sequence_number"] for _, payload in answer] == list(range(len(answer)))
    for name, payload in answer:
        assert payload["type"] == name
        RESPONSES_EVENT.validate_python(payload)
    seen, final = responses_final(raw)
    assert [event.type for event in seen] == [name for name, _ in answer]
    if answer[-1][0] == "response.completed":
        assert final is not None and final.status == "completed"
        assert final.model_dump(mode="json", exclude_none=True)["output"] == _without_none(answer[-1][1]["response"]["output"])
    else:
        assert answer[-1][0] in ("response.failed", "response.incomplete")


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
