"""``POST /v1/completions`` (legacy text completions): ``text_completion`` objects and SSE chunks."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Any

import orjson

from gateway.simulator.generation import Answer, Choice, Prompt, generate, token_logprob
from gateway.simulator.openai_chat import (
    SYSTEM_FINGERPRINT,
    int_field,
    max_tokens_field,
    openai_usage,
    stop_strings,
)
from gateway.simulator.wire import DONE_EVENT, BadRequest, openai_error, sse_data


@dataclass(slots=True)
class CompletionRequest:
    prompts: list[Prompt]
    """One per prompt in the request (a string, a list of strings, or token arrays)."""
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    logprobs: int | None = None


class OpenAICompletions:
    error = staticmethod(openai_error)

    def parse(self, body: dict[str, Any], model: str) -> CompletionRequest:
        base = Prompt(
            model=model,
            text="",
            n=int_field(body, "n", 1, low=1, high=128),
            stop=stop_strings(body.get("stop")),
            max_tokens=max_tokens_field(body),
            seed=body.get("seed") if isinstance(body.get("seed"), int) else None,
        )
        texts = _prompt_texts(body.get("prompt"))
        stream_options = body.get("stream_options") or {}
        logprobs = body.get("logprobs")
        return CompletionRequest(
            prompts=[replace(base, text=text) for text in texts],
            stream=bool(body.get("stream")),
            include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
            echo=bool(body.get("echo")),
            logprobs=int_field(body, "logprobs", 0, low=0, high=5) if logprobs is not None else None,
        )

    def answer(self, request: CompletionRequest, output_tokens: int, seed: int) -> Answer:
        choices: list[Choice] = []
        prompt_tokens = 0
        for prompt in request.prompts:
            part = generate(prompt, output_tokens, seed)
            prompt_tokens += part.prompt_tokens
            for choice in part.choices:
                choice.index = len(choices)
                choices.append(choice)
        return Answer(choices, prompt_tokens)

    def render(self, answer: Answer, request: CompletionRequest) -> bytes:
        choices = [
            {
                "text": _echo(request, choice) + choice.text,
                "index": choice.index,
                "logprobs": _logprobs(choice.tokens, request.logprobs)
                if request.logprobs is not None
                else None,
                "finish_reason": choice.finish,
            }
            for choice in answer.choices
        ]
        return orjson.dumps(
            {
                "id": _completion_id(),
                "object": "text_completion",
                "created": int(time.time()),
                "model": request.prompts[0].model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices,
                "usage": _usage(answer),
            }
        )

    def events(self, answer: Answer, request: CompletionRequest) -> list[bytes]:
        head: dict[str, Any] = {
            "id": _completion_id(),
            "object": "text_completion",
            "created": int(time.time()),
            "model": request.prompts[0].model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if request.include_usage:
            head["usage"] = None
        per_choice = [_choice_chunks(choice, request) for choice in answer.choices]
        events = [
            sse_data({**head, "choices": [chunk]})
            for step in zip_longest(*per_choice)
            for chunk in step
            if chunk is not None
        ]
        if request.include_usage:
            events.append(sse_data({**head, "choices": [], "usage": _usage(answer)}))
        events.append(DONE_EVENT)
        return events


def _echo(request: CompletionRequest, choice: Choice) -> str:
    if not request.echo:
        return ""
    return request.prompts[choice.index // request.prompts[0].n].text


def _choice_chunks(choice: Choice, request: CompletionRequest) -> list[dict[str, Any]]:
    chunks = []
    if request.echo:
        chunks.append(
            {"text": _echo(request, choice), "index": choice.index, "logprobs": None, "finish_reason": None}
        )
    for token in choice.tokens:
        logprobs = _logprobs([token], request.logprobs) if request.logprobs is not None else None
        chunks.append({"text": token, "index": choice.index, "logprobs": logprobs, "finish_reason": None})
    chunks.append({"text": "", "index": choice.index, "logprobs": None, "finish_reason": choice.finish})
    return chunks


def _logprobs(tokens: list[str], top: int | None) -> dict[str, Any]:
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [token_logprob(t) for t in tokens],
        "top_logprobs": [{t: token_logprob(t)} for t in tokens] if top else None,
        "text_offset": offsets,
    }


def _usage(answer: Answer) -> dict[str, Any]:
    usage = openai_usage(answer)
    return {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _prompt_texts(prompt: Any) -> list[str]:
    """The prompt(s) as text; token arrays become a placeholder of the right estimated size."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, int) for p in prompt):
            return [_tokens_as_text(prompt)]
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return [_tokens_as_text(p) for p in prompt]
    raise BadRequest("'prompt' must be a string, an array of strings, or token arrays", param="prompt")


def _tokens_as_text(tokens: list[int]) -> str:
    # Four characters per token keeps ``estimate_tokens`` equal to the number of tokens sent.
    return " ".join(f"{t % 1000:03d}" for t in tokens)


def _completion_id() -> str:
    return "cmpl-" + uuid.uuid4().hex[:24]
