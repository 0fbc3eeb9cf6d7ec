"""Pure reshaping of litellm results into OpenAI's schema (no litellm import, no I/O)."""

from __future__ import annotations

import base64
import struct

import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.providers import litellm_wire as wire


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("SAFETY", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_finish_reason_maps_onto_openai_values(given: str | None, expected: str | None) -> None:
    assert wire.finish_reason(given) == expected


def test_forwarded_params_keep_only_openai_chat_parameters() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": None,
        "api_base": "http://attacker.example",
        "api_key": "stolen",
        "mock_response": "pwned",
        "metadata": {"a": "b"},
        "stream": True,
    }
    assert wire.forwarded_params(body, wire.CHAT_PARAMS) == {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
    }


LITELLM_RESPONSE = {
    "id": "chatcmpl-1",
    "created": 1700000000,
    "model": "claude-x",
    "object": "chat.completion",
    "system_fingerprint": None,
    "choices": [
        {
            "finish_reason": "tool_calls",
            "index": 0,
            "message": {
                "content": "hello",
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 1,
                        "function": {"arguments": '{"city": "Paris"}', "name": "f"},
                        "id": "t1",
                        "type": "function",
                    }
                ],
                "function_call": None,
                "provider_specific_fields": {"citations": None},
            },
        }
    ],
    "usage": {
        "completion_tokens": 2,
        "prompt_tokens": 5,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
        "cache_read_input_tokens": 0,
    },
}


def test_chat_completion_is_rebuilt_from_an_allow_list() -> None:
    shaped = wire.chat_completion(LITELLM_RESPONSE, "fallback")
    ChatCompletion.model_validate(shaped)
    message = shaped["choices"][0]["message"]
    assert set(message) == {"role", "content", "refusal", "tool_calls"}
    assert message["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"city": "Paris"}'}}
    ]
    assert shaped["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert wire.usage_of(shaped) is not None and wire.usage_of(shaped).total_tokens == 7  # type: ignore[union-attr]


def test_chunk_shaper_unifies_ids_and_drops_litellm_extras() -> None:
    shaper = wire.ChunkShaper("m")
    first = shaper.shape(
        {
            "id": "a",
            "created": 5,
            "model": "m1",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
        }
    )
    tool = shaper.shape(
        {
            "id": "b",  # litellm gives Gemini chunks a fresh id each time
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "content": "",
                        "provider_specific_fields": None,
                        "tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": ""}}],
                    },
                }
            ],
        }
    )
    args = shaper.shape(
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": None, "function": {"arguments": "{}"}}]},
                }
            ],
        }
    )
    assert not shaper.finished
    done = shaper.shape({"id": "d", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_use"}]})
    usage = shaper.shape({"id": "e", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    empty = shaper.shape({"id": "f", "choices": []})

    chunks = [first, tool, args, done, usage]
    for chunk in chunks:
        assert chunk is not None
        ChatCompletionChunk.model_validate(chunk)
        assert (chunk["id"], chunk["created"], chunk["model"]) == ("a", 5, "m1")
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}  # type: ignore[index]
    assert tool["choices"][0]["delta"] == {  # type: ignore[index]
        "tool_calls": [
            {"index": 0, "id": "t1", "type": "function", "function": {"arguments": "", "name": "f"}}
        ]
    }
    assert args["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}  # type: ignore[index]
    assert done["choices"][0]["finish_reason"] == "tool_calls" and shaper.finished  # type: ignore[index]
    assert usage == {
        **usage,
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    assert "usage" not in done  # type: ignore[operator]
    assert empty is None


def test_embeddings_float_and_base64() -> None:
    raw = {
        "model": "e",
        "data": [{"embedding": [0.5, -1.0, 0.25], "index": 0}],
        "usage": {"prompt_tokens": 4},
    }
    as_floats = wire.embeddings(raw, "fallback", None)
    CreateEmbeddingResponse.model_validate(as_floats)
    assert as_floats["data"][0]["embedding"] == [0.5, -1.0, 0.25]
    assert as_floats["usage"] == {"prompt_tokens": 4, "total_tokens": 4}

    as_b64 = wire.embeddings(raw, "fallback", "base64")
    decoded = struct.unpack("<3f", base64.b64decode(as_b64["data"][0]["embedding"]))
    assert decoded == (0.5, -1.0, 0.25)
