"""CPU per request of the protocol translators, ours against litellm's, and litellm's correctness on our corpus.

Run: .venv/bin/python bench/protocol_translators.py [--iterations N]

For every case of the golden corpora (tests/protocols/corpus/) that is not an error case, in one process:
  request   raw client body → validated, translated chat body → bytes
  answer    raw chat completion → the client protocol's answer → bytes
  stream    raw chat chunk stream → the client protocol's event stream (bytes)
timed with ``time.process_time`` over N repetitions, for ours and for litellm's translators
(``LiteLLMAnthropicMessagesAdapter``, ``AnthropicStreamWrapper``, ``LiteLLMCompletionResponsesConfig``),
which are handed what they need (``ModelResponse`` objects built from the same dicts, counted in their
time, since a gateway holding bytes would have to build them). The yardstick is the chat passthrough:
``orjson.loads`` + ``orjson.dumps`` of the same bytes here, and the whole passthrough request measured by
``bench/run.sh`` (bench/RESULTS.md: 0.252 ms CPU plain, 0.418 ms streamed, minimal policy, one worker).

Correctness: litellm's outputs for the same cases are compared with ours after normalising what may
legitimately differ (ids, key order, text-part packing), parsed with the official SDKs' types, and
litellm's Anthropic stream is accumulated with the anthropic SDK's own helper.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")
# litellm downloads its price map at import unless told not to; nothing here may leave the machine.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from gateway.core.sse import iter_events  # noqa: E402
from gateway.protocols.anthropic_messages_request import messages_to_chat  # noqa: E402
from gateway.protocols.anthropic_messages_response import chat_to_message  # noqa: E402
from gateway.protocols.anthropic_messages_stream import MessagesStream  # noqa: E402
from gateway.protocols.anthropic_messages_validation import validate_messages  # noqa: E402
from gateway.protocols.openai_responses_request import responses_to_chat  # noqa: E402
from gateway.protocols.openai_responses_response import ResponsesContext, chat_to_response  # noqa: E402
from gateway.protocols.openai_responses_stream import ResponsesStream  # noqa: E402
from gateway.protocols.openai_responses_validation import validate_responses  # noqa: E402
from tests.protocols import golden  # noqa: E402
from tests.protocols.sdk_clients import anthropic_final_message  # noqa: E402


def cpu_us(fn: Callable[[], Any], iterations: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(iterations):
        fn()
    return (time.process_time() - start) / iterations * 1e6


def ok_cases(corpus: str) -> list[dict[str, Any]]:
    return [c for c in golden.cases(corpus) if not c["name"].startswith("error:")]


# ---- ours -------------------------------------------------------------------------------------------

def ours_anthropic_request(raw: bytes) -> bytes:
    body = orjson.loads(raw)
    validate_messages(body)
    return orjson.dumps(messages_to_chat(body).body)


def ours_responses_request(raw: bytes) -> bytes:
    body = orjson.loads(raw)
    validate_responses(body)
    return orjson.dumps(responses_to_chat(body).body)


def ours_anthropic_answer(raw: bytes) -> bytes:
    return orjson.dumps(chat_to_message(orjson.loads(raw), model="m", message_id="msg_1"))


def ours_responses_answer(raw: bytes, context: ResponsesContext) -> bytes:
    return orjson.dumps(chat_to_response(orjson.loads(raw), context))


def ours_anthropic_stream(raw: bytes) -> bytes:
    translator = MessagesStream(model="m", message_id="msg_1")
    return translator.feed_bytes(raw) + translator.close()


# ---- litellm ----------------------------------------------------------------------------------------

def litellm_parts() -> dict[str, Any]:
    from litellm.llms.anthropic.messages.adapters.streaming_iterator import AnthropicStreamWrapper
    from litellm.llms.anthropic.messages.adapters.transformation import LiteLLMAnthropicMessagesAdapter
    from litellm.responses.litellm_completion_transformation.transformation import (
        LiteLLMCompletionResponsesConfig,
    )
    from litellm.types.utils import ModelResponse, ModelResponseStream

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)  # it warns on every hosted tool it drops
    return {"adapter": LiteLLMAnthropicMessagesAdapter(), "wrapper": AnthropicStreamWrapper,
            "responses": LiteLLMCompletionResponsesConfig, "ModelResponse": ModelResponse,
            "ModelResponseStream": ModelResponseStream}


def _plain(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else dict(o)))


def litellm_anthropic_request(lt: dict[str, Any], raw: bytes) -> bytes:
    chat, _names = lt["adapter"].translate_anthropic_to_openai(orjson.loads(raw))
    return orjson.dumps(_plain(chat))


def litellm_responses_request(lt: dict[str, Any], raw: bytes) -> bytes:
    body = orjson.loads(raw)
    params = {k: v for k, v in body.items() if k not in ("model", "input")}
    chat = lt["responses"].transform_responses_api_request_to_chat_completion_request(
        model=body["model"], input=body["input"], responses_api_request=params, custom_llm_provider="openai")
    return orjson.dumps(_plain(chat))


def litellm_anthropic_answer(lt: dict[str, Any], raw: bytes) -> bytes:
    return orjson.dumps(_plain(lt["adapter"].translate_openai_response_to_anthropic(lt["ModelResponse"](**orjson.loads(raw)))))


def litellm_responses_answer(lt: dict[str, Any], raw: bytes, request: dict[str, Any]) -> bytes:
    params = {k: v for k, v in request.items() if k not in ("model", "input")}
    out = lt["responses"].transform_chat_completion_response_to_responses_api_response(
        request_input=request.get("input", ""), responses_api_request=params, chat_completion_response=orjson.loads(raw))
    return orjson.dumps(_plain(out))


def litellm_anthropic_stream(lt: dict[str, Any], chunks: list[dict[str, Any]]) -> bytes:
    stream = iter([lt["ModelResponseStream"](**chunk) for chunk in chunks if "choices" in chunk and chunk["choices"]])
    return b"".join(lt["wrapper"](completion_stream=stream, model="m").anthropic_sse_wrapper())


# ---- correctness ------------------------------------------------------------------------------------

def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def normal_chat(body: dict[str, Any]) -> dict[str, Any]:
    """What a chat upstream acts on, with text-part packing and key order set aside."""
    messages = []
    for m in body.get("messages", []):
        calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"] or "{}")) for c in m.get("tool_calls") or []]
        parts = sorted({p.get("type") for p in m.get("content") or [] if isinstance(p, dict)} - {"text"}) if isinstance(m.get("content"), list) else []
        messages.append((m["role"], " ".join(_text(m.get("content")).split()), calls, m.get("tool_call_id"), parts))
    tools = sorted(t["function"]["name"] for t in body.get("tools") or [])
    keep = {k: body.get(k) for k in ("max_tokens", "temperature", "top_p", "stop", "tool_choice", "response_format",
                                     "parallel_tool_calls", "reasoning_effort") if body.get(k) is not None}
    return {"messages": messages, "tools": tools, **keep}


def first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: ours {json.dumps(a, default=str)[:90]} / litellm {json.dumps(b, default=str)[:90]}"


def compare(label: str, cases: list[dict[str, Any]], ours: Callable[[dict[str, Any]], Any],
            theirs: Callable[[dict[str, Any]], Any]) -> list[str]:
    findings = []
    for case in cases:
        try:
            mine, other = ours(case), theirs(case)
        except Exception as exc:  # litellm's failure on a legal input is a finding, not a crash of the bench
            findings.append(f"{label} · {case['name']}: litellm raised {type(exc).__name__}: {str(exc)[:100]}")
            continue
        if mine != other:
            findings.append(f"{label} · {case['name']}: {first_difference(mine, other)}")
    return findings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    n = args.iterations
    lt = litellm_parts()
    rows: list[tuple[str, float, float, float]] = []

    def row(label: str, cases: list[bytes], ours: Callable[[bytes], Any], theirs: Callable[[bytes], Any] | None,
            baseline: Callable[[bytes], Any] = lambda r: orjson.dumps(orjson.loads(r))) -> None:
        """Means over the cases both translate (a case litellm raises on is a correctness finding below)."""
        timed = [r for r in cases if theirs is None or _succeeds(theirs, r)]
        base = sum(cpu_us(lambda r=r: baseline(r), n) for r in timed) / len(timed)
        mine = sum(cpu_us(lambda r=r: ours(r), n) for r in timed) / len(timed)
        other = sum(cpu_us(lambda r=r: theirs(r), max(20, n // 10)) for r in timed) / len(timed) if theirs else float("nan")
        rows.append((f"{label} ({len(timed)}/{len(cases)})", base, mine, other))

    a_req = [orjson.dumps(c["request"]) for c in ok_cases("anthropic_requests")]
    r_cases = ok_cases("responses_requests")
    r_req = [orjson.dumps(c["request"]) for c in r_cases]
    completions = [orjson.dumps(c["completion"]) for c in golden.cases("chat_completions")]
    streams = [c for c in golden.cases("chat_streams") if c["end"] == "done" and all("error" not in k for k in c["chunks"])]
    context = ResponsesContext.for_request({"model": "m", "input": "x"}, response_id="resp_1", created_at=1)

    row("Messages request → chat", a_req, ours_anthropic_request, lambda r: litellm_anthropic_request(lt, r))
    row("chat completion → Message", completions, ours_anthropic_answer, lambda r: litellm_anthropic_answer(lt, r))
    stream_bytes = [golden.upstream_bytes(c) for c in streams]
    by_bytes = {golden.upstream_bytes(c): c["chunks"] for c in streams}
    row("chat stream → Messages events", stream_bytes, ours_anthropic_stream,
        lambda r: litellm_anthropic_stream(lt, by_bytes[r]), read_stream)
    row("Responses request → chat", r_req, ours_responses_request, lambda r: litellm_responses_request(lt, r))
    row("chat completion → Response", completions, lambda r: ours_responses_answer(r, context),
        lambda r: litellm_responses_answer(lt, r, {"model": "m", "input": "x"}))
    row("chat stream → Responses events", stream_bytes,
        lambda r: (lambda t: t.feed_bytes(r) + t.close())(ResponsesStream(context)), None, read_stream)

    print(f"{'direction (cases timed/all)':<40}{'yardstick µs':>15}{'ours µs':>10}{'litellm µs':>12}{'litellm/ours':>14}")
    for label, base, mine, other in rows:
        ratio = f"{other / mine:>13.1f}×" if other == other else f"{'—':>14}"
        lit = f"{other:>12.1f}" if other == other else f"{'—':>12}"
        print(f"{label:<40}{base:>15.1f}{mine:>10.1f}{lit}{ratio}")

    findings: list[str] = []
    findings += compare("Messages request", ok_cases("anthropic_requests"),
                        lambda c: normal_chat(orjson.loads(ours_anthropic_request(orjson.dumps(c["request"])))),
                        lambda c: normal_chat(orjson.loads(litellm_anthropic_request(lt, orjson.dumps(c["request"])))))
    findings += compare("Responses request", r_cases,
                        lambda c: normal_chat(orjson.loads(ours_responses_request(orjson.dumps(c["request"])))),
                        lambda c: normal_chat(orjson.loads(litellm_responses_request(lt, orjson.dumps(c["request"])))))
    findings += compare("Message", golden.cases("chat_completions"), lambda c: _message_view(orjson.loads(ours_anthropic_answer(orjson.dumps(c["completion"])))),
                        lambda c: _message_view(orjson.loads(litellm_anthropic_answer(lt, orjson.dumps(c["completion"])))))
    findings += compare("Messages stream (accumulated by the anthropic SDK)", streams,
                        lambda c: _message_view(anthropic_final_message(ours_anthropic_stream(golden.upstream_bytes(c))).model_dump(mode="json")),
                        lambda c: _message_view(anthropic_final_message(litellm_anthropic_stream(lt, c["chunks"])).model_dump(mode="json")))
    findings += compare("Response", golden.cases("chat_completions"),
                        lambda c: _response_view(chat_to_response(c["completion"], golden.responses_context(c))),
                        lambda c: _response_view(orjson.loads(litellm_responses_answer(lt, orjson.dumps(c["completion"]), {"model": "m", "input": "x", **c.get("request", {})}))))
    print(f"\nlitellm differs from our translation (or fails) on {len(findings)} checks:")
    for finding in findings:
        print(" -", finding)


def read_stream(raw: bytes) -> list[Any]:
    """The stream yardstick: decode every event and parse its JSON (more than the chat relay does)."""
    return [orjson.loads(e.data) for e in iter_events(raw) if e.data and e.data != b"[DONE]"]


def _succeeds(fn: Callable[[bytes], Any], raw: bytes) -> bool:
    try:
        fn(raw)
    except Exception:
        return False
    return True


def _message_view(message: dict[str, Any]) -> dict[str, Any]:
    blocks = [{k: v for k, v in b.items() if k in ("type", "text", "thinking", "name", "input")} for b in message["content"]]
    usage = {k: message["usage"].get(k) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")}
    return {"content": blocks, "stop_reason": message["stop_reason"], "stop_sequence": message.get("stop_sequence"), "usage": usage}


def _response_view(response: dict[str, Any]) -> dict[str, Any]:
    items = []
    for item in response["output"]:
        view = {k: item.get(k) for k in ("type", "name", "arguments", "call_id", "input", "namespace") if item.get(k) is not None}
        if item["type"] == "message":
            view["content"] = [{k: p.get(k) for k in ("type", "text", "refusal") if p.get(k) is not None} for p in item["content"]]
        if item["type"] == "reasoning":
            view["text"] = "".join(p.get("text", "") for p in item.get("content") or []) or \
                "".join(p.get("text", "") for p in item.get("summary") or [])
        items.append(view)
    usage = response.get("usage") or {}
    return {"status": response["status"], "output": items, "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens")}


if __name__ == "__main__":
    main()
