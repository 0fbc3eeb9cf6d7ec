"""The request corpora are shapes the official SDKs send: each request is sent through the SDK (offline,
to a transport that records the body) and must arrive unchanged. Fields a coding client sends beyond the
SDK's signature go in ``extra_body``, as such clients send them."""

from __future__ import annotations

import inspect
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from tests.protocols import golden


class _Sent(Exception):
    """Raised by the recording transport once it has the body: nothing needs answering."""


def _recorder(sent: list[dict[str, Any]], make: Any) -> Any:
    def handle(request: Any) -> Any:
        sent.append(orjson.loads(request.content))
        raise _Sent
    return make(handle)


def _split(method: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    known = set(inspect.signature(method).parameters)
    return {k: v for k, v in body.items() if k in known}, {k: v for k, v in body.items() if k not in known}


def _ok(corpus: str) -> list[Any]:
    return [pytest.param(case["request"], id=case["name"]) for case in golden.cases(corpus) if not case["name"].startswith("error:")]


@pytest.mark.parametrize("body", _ok("anthropic_requests"))
def test_anthropic_corpus_requests_are_what_the_sdk_sends(body: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []
    client = anthropic.Anthropic(api_key="k", base_url="http://gateway.test", max_retries=0,
                                 http_client=httpx2.Client(transport=_recorder(sent, httpx2.MockTransport)))
    kwargs, extra = _split(client.messages.create, body)
    with pytest.raises((anthropic.APIConnectionError, _Sent)):
        client.messages.create(**kwargs, extra_body=extra or None)
    assert sent == [body]


@pytest.mark.parametrize("body", _ok("responses_requests"))
def test_responses_corpus_requests_are_what_the_sdk_sends(body: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []
    client = openai.OpenAI(api_key="k", base_url="http://gateway.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=_recorder(sent, httpx.MockTransport)))
    kwargs, extra = _split(client.responses.create, body)
    with pytest.raises((openai.APIConnectionError, _Sent)):
        client.responses.create(**kwargs, extra_body=extra or None)
    assert sent == [body]
