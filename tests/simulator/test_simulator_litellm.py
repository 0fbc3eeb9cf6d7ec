"""litellm talks to the simulator's Anthropic and Gemini endpoints with a custom ``api_base``.

These pin down the model strings and ``api_base`` values that work, which policies for the litellm
adapter rely on:

    anthropic/<model>   api_base = http://HOST:PORT           (litellm appends /v1/messages)
    gemini/<model>      api_base = http://HOST:PORT/v1beta    (litellm appends /models/<model>:<action>)
    openai/<model>      api_base = http://HOST:PORT/v1
"""

from __future__ import annotations

import json
import os

import pytest

from gateway.simulator.server import SimulatorServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import
import litellm  # noqa: E402 - after the environment default above

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's own pydantic warnings

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


@pytest.fixture
async def sim():
    async with SimulatorServer(ttft_ms=0) as server:
        yield server


def targets(sim: SimulatorServer) -> dict[str, tuple[str, str]]:
    return {
        "anthropic": ("anthropic/claude-3-5-sonnet-20240620", sim.url),
        "gemini": ("gemini/gemini-1.5-flash", f"{sim.url}/v1beta"),
        "openai": ("openai/sim-small", sim.openai_base_url),
    }


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
async def test_litellm_completion(sim, provider):
    model, api_base = targets(sim)[provider]
    reply = await litellm.acompletion(
        model=model, api_base=api_base, api_key="k", messages=HELLO, max_tokens=50
    )
    upstream_model = model.split("/", 1)[1]
    assert reply.choices[0].message.content.startswith(f"Simulated answer from {upstream_model}:")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 16
    assert reply.usage.prompt_tokens > 0


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
async def test_litellm_stream(sim, provider):
    model, api_base = targets(sim)[provider]
    full = await litellm.acompletion(
        model=model, api_base=api_base, api_key="k", messages=HELLO, max_tokens=50
    )
    stream = await litellm.acompletion(
        model=model,
        api_base=api_base,
        api_key="k",
        messages=HELLO,
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = getattr(chunk, "usage", None) or usage
    assert text == full.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 16


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_litellm_tool_calls(sim, provider):
    model, api_base = targets(sim)[provider]
    reply = await litellm.acompletion(
        model=model, api_base=api_base, api_key="k", messages=HELLO, tools=TOOLS
    )
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert reply.choices[0].finish_reason == "tool_calls"


async def test_litellm_hits_the_expected_paths(sim):
    for provider in ("anthropic", "gemini"):
        model, api_base = targets(sim)[provider]
        await litellm.acompletion(model=model, api_base=api_base, api_key="k", messages=HELLO)
    stats = sim.simulator.ledger.snapshot()
    assert stats["by_path"] == {"/v1/messages": 1, "/v1beta/models/gemini-1.5-flash:generateContent": 1}
    assert stats["last_request"]["claude-3-5-sonnet-20240620"]["headers"]["x-api-key"] == "k"
    assert stats["last_request"]["gemini-1.5-flash"]["headers"]["x-goog-api-key"] == "k"


async def test_litellm_maps_simulated_faults_to_its_exceptions(sim):
    model, api_base = targets(sim)["anthropic"]
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model=model,
            api_base=api_base,
            api_key="k",
            messages=HELLO,
            extra_headers={"x-sim-fault": "status=429"},
            num_retries=0,
        )
