"""``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` (Gemini API).

Accepts both the REST API's camelCase field names and the snake_case ones SDKs (and litellm) send.
Streams are ``data: <GenerateContentResponse>`` events with no terminator event, as Google sends them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.simulator.generation import Answer, Choice, Prompt, Tool, generate
from gateway.simulator.wire import BadRequest, gemini_error, sse_data

_FINISH = {"length": "MAX_TOKENS"}


@dataclass(slots=True)
class GenerateRequest:
    prompt: Prompt
    stream: bool = False


class GeminiGenerate:
    error = staticmethod(gemini_error)

    def parse(self, body: dict[str, Any], model: str) -> GenerateRequest:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
            raise BadRequest("contents must be a non-empty list of Content objects", param="contents")
        system = _field(body, "system_instruction", "systemInstruction") or {}
        texts = [_parts_text(system.get("parts") if isinstance(system, dict) else None)]
        texts += [_parts_text(c.get("parts")) for c in contents]
        config = _field(body, "generation_config", "generationConfig") or {}
        stops = _field(config, "stop_sequences", "stopSequences") or []
        seed = config.get("seed")
        prompt = Prompt(
            model=model,
            text="\n".join(t for t in texts if t),
            n=_positive(_field(config, "candidate_count", "candidateCount"), default=1) or 1,
            call_tools=_tools_to_call(body, contents[-1]),
            stop=tuple(s for s in stops if isinstance(s, str) and s),
            max_tokens=_positive(_field(config, "max_output_tokens", "maxOutputTokens"), default=None),
            seed=seed if isinstance(seed, int) else None,
        )
        schema = _field(config, "response_json_schema", "responseJsonSchema") or _field(
            config, "response_schema", "responseSchema"
        )
        if isinstance(schema, dict):
            prompt.json_schema = schema
        elif _field(config, "response_mime_type", "responseMimeType") == "application/json":
            prompt.json_mode = True
        return GenerateRequest(prompt)

    def answer(self, request: GenerateRequest, output_tokens: int, seed: int) -> Answer:
        return generate(request.prompt, output_tokens, seed)

    def render(self, answer: Answer, request: GenerateRequest) -> bytes:
        candidates = [_candidate(c, _parts(c), finished=True) for c in answer.choices]
        return orjson.dumps(_response(candidates, answer, request, answer.completion_tokens))

    def events(self, answer: Answer, request: GenerateRequest) -> list[bytes]:
        events = []
        sent = 0
        for choice in answer.choices:
            if choice.tool_calls or not choice.tokens:
                steps: list[list[dict[str, Any]]] = [_parts(choice)]
            else:
                steps = [[{"text": token}] for token in choice.tokens]
            for step, parts in enumerate(steps, start=1):
                sent += 1 if not choice.tool_calls else choice.completion_tokens
                last = step == len(steps)
                candidate = _candidate(choice, parts, finished=last)
                events.append(sse_data(_response([candidate], answer, request, sent)))
        return events


def _response(
    candidates: list[dict[str, Any]], answer: Answer, request: GenerateRequest, output: int
) -> dict[str, Any]:
    return {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": answer.prompt_tokens,
            "candidatesTokenCount": output,
            "totalTokenCount": answer.prompt_tokens + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}],
        },
        "modelVersion": request.prompt.model,
        "responseId": uuid.uuid4().hex[:22],
    }


def _candidate(choice: Choice, parts: list[dict[str, Any]], *, finished: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": choice.index}
    if finished:
        candidate["finishReason"] = _FINISH.get(choice.finish, "STOP")
    return candidate


def _parts(choice: Choice) -> list[dict[str, Any]]:
    if choice.tool_calls:
        return [
            {"functionCall": {"name": c.name, "args": orjson.loads(c.arguments)}} for c in choice.tool_calls
        ]
    return [{"text": choice.text}]


def _field(obj: Any, snake: str, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _positive(value: Any, *, default: int | None) -> int | None:
    if value is None:
        return default
    if not isinstance(value, int) or value < 1:
        raise BadRequest(f"generationConfig values must be positive integers, got {value!r}")
    return value


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        for key in ("functionCall", "function_call", "functionResponse", "function_response"):
            if key in part:
                texts.append(orjson.dumps(part[key]).decode())
    return "\n".join(texts)


def _tools_to_call(body: dict[str, Any], last: dict[str, Any]) -> tuple[Tool, ...]:
    tools = []
    for entry in body.get("tools") or []:
        for decl in _field(entry, "function_declarations", "functionDeclarations") or []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                schema = _field(decl, "parameters_json_schema", "parametersJsonSchema") or decl.get(
                    "parameters"
                )
                tools.append(Tool(decl["name"], schema or {}))
    calling = _field(
        _field(body, "tool_config", "toolConfig"), "function_calling_config", "functionCallingConfig"
    )
    mode = str(_field(calling, "mode", "mode") or "AUTO").upper()
    if not tools or mode == "NONE":
        return ()
    allowed = _field(calling, "allowed_function_names", "allowedFunctionNames")
    if mode == "ANY":
        return tuple(t for t in tools if not allowed or t.name in allowed) or tuple(tools)
    parts = last.get("parts") or []
    if any(isinstance(p, dict) and ("functionResponse" in p or "function_response" in p) for p in parts):
        return ()  # the function already answered: reply in text, so agent loops terminate
    return tuple(tools)
