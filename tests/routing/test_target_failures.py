"""How the executor reports failed targets, and which upstream errors let it try the next one."""

from __future__ import annotations

import time

import pytest

from gateway.core.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.types import Decision, Endpoint, Target, Usage
from gateway.policy.models import Deployment
from gateway.providers.base import UpstreamCall, UpstreamReply
from gateway.providers.upstream_errors import context_length_exceeded, error_for_status
from gateway.routing.executor import Executor, passthrough
from gateway.routing.stats import LiveStats

VLLM = (b'{"object":"error","message":"This model\'s maximum context length is 32768 tokens. However, you requested '
        b'40125 tokens (39869 in the messages, 256 in the completion).","type":"BadRequestError","param":null,"code":400}')


@pytest.mark.parametrize("error, expected", [
    ({"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}, True),  # OpenAI
    ({"code": 400, "message": "the request exceeds the available context size", "type": "exceed_context_size_error"},
     True),  # llama.cpp
    ({"message": "This model's maximum context length is 4096 tokens.", "type": "BadRequestError", "code": 400}, True),
    ({"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "code": None}, False),
    ("maximum context length", False),
    (None, False),
])
def test_context_length_errors_are_recognised(error: object, expected: bool) -> None:
    assert context_length_exceeded(error) is expected


def test_an_upstream_context_error_may_try_the_next_target_and_others_may_not() -> None:
    context = error_for_status("small", 400, VLLM, {})
    assert isinstance(context, UpstreamStatusError) and context.code == "context_length_exceeded"
    assert context.tries_next_target and not context.retryable
    other = error_for_status("small", 400, b'{"error": {"message": "bad temperature"}}', {})
    assert not other.tries_next_target
    assert error_for_status("small", 503, b"", {}).tries_next_target


@pytest.mark.parametrize("error, words", [
    (UpstreamUnavailable("cannot connect: <ssl.SSLContext object at 0x7f00>"), "unavailable"),
    (UpstreamTimeout("x"), "timed out"),
    (UpstreamProtocolError("x"), "sent a malformed or truncated answer"),
    (UpstreamRateLimited("x", retry_after=2), "rate limited (retry after 2 s)"),
    (UpstreamError("litellm.InternalServerError: boom"), "failed"),
    (UpstreamError("x", code="upstream_auth_failed"), "refused the gateway's credentials"),
    (UpstreamStatusError("x", status=422), "rejected the request (HTTP 422)"),
    (UpstreamStatusError("x", status=400, code="context_length_exceeded"), "the prompt is longer than its context window"),
])
def test_failures_are_summarised_in_the_gateways_words(error: UpstreamError, words: str) -> None:
    assert error.summary() == words


class Scripted:
    """A provider that fails with the given error, or answers."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return UpstreamReply(body=b"{}", parsed={}, usage=Usage(1, 1))

    async def open_stream(self, call: UpstreamCall):  # pragma: no cover - not used here
        raise NotImplementedError


def _deployment(name: str) -> Deployment:
    return Deployment(name=name, type="simulator", model=name, hosting="self", retry={"attempts": 1})


async def _execute(providers: dict[str, Scripted]):
    deployments = {name: _deployment(name) for name in providers}
    decision = Decision("d", "m", tuple(Target(name) for name in providers))
    return await Executor(LiveStats(), {}).execute(
        decision, deployments, providers, request_for=passthrough(Endpoint.CHAT, {"messages": []}), stream=False,
        request_id="r", deadline=time.monotonic() + 5)


async def test_a_context_error_moves_on_and_is_recorded() -> None:
    providers = {"small": Scripted(error_for_status("small", 400, VLLM, {})), "big": Scripted()}
    execution = await _execute(providers)
    assert execution.deployment.name == "big" and providers["small"].calls == 1  # not retried on the same target
    assert [str(f) for f in execution.failures] == ["small:ContextLengthExceeded"]


async def test_a_request_error_stops_but_names_the_targets_tried_before() -> None:
    providers = {"down": Scripted(UpstreamUnavailable("x")), "strict": Scripted(UpstreamStatusError("bad", status=400)),
                 "never": Scripted()}
    with pytest.raises(UpstreamStatusError) as err:
        await _execute(providers)
    assert err.value.message == "bad" and err.value.failures == ("down:UpstreamUnavailable",)
    assert providers["never"].calls == 0


async def test_every_target_failing_is_one_message_listing_each() -> None:
    providers = {"a": Scripted(UpstreamUnavailable("litellm.APIConnectionError: <ssl.SSLContext object at 0x7f>")),
                 "b": Scripted(UpstreamTimeout("aiohttp.ServerTimeoutError()"))}
    with pytest.raises(UpstreamTimeout) as err:
        await _execute(providers)
    assert err.value.status == 504  # the last failure's status stands
    assert err.value.message == "All 2 targets tried failed: a: unavailable; b: timed out."
    assert err.value.failures == ("a:UpstreamUnavailable", "b:UpstreamTimeout")
    assert str(err.value) == err.value.message


async def test_a_single_failed_target_is_said_so() -> None:
    with pytest.raises(UpstreamRateLimited) as err:
        await _execute({"only": Scripted(UpstreamRateLimited("vendor text", retry_after=3))})
    assert err.value.message == "The only target failed: only: rate limited (retry after 3 s)."
    assert err.value.headers["retry-after"] == "3"
