"""Finding 3: input that used to crash the gateway (500 and a traceback) is a 4xx in OpenAI's envelope.

Each case is sent to a real gateway process over HTTP; the answer must be the given 4xx with the error
envelope, and the gateway's log must gain no traceback. Bodies are raw bytes where JSON nesting is too
deep for the client library to encode. An upstream ``Retry-After`` that is not a finite number must not
crash the retry loop either: the request falls back to the next deployment and is served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import ADMIN_KEY, assert_envelope, key_hash, write_policy
from tests.raw_upstream import RawRequest
from tests.recording_upstream import RecordingUpstream, Reply, default_reply

KEY = "sk-hostile-caller"
AUTH = {"authorization": f"Bearer {KEY}"}
INT64_MAX = 9223372036854775807


def _answer(request: RawRequest) -> Reply:
    try:
        model = json.loads(request.body).get("model", "")
    except ValueError:
        model = ""
    error = json.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}}).encode()
    if model == "retry-after-inf":
        return Reply(429, error, {"retry-after": "inf"})
    if model == "retry-after-1e400":
        return Reply(429, error, {"retry-after": "1e400"})
    if model == "retry-after-ms-nan":
        return Reply(429, error, {"retry-after-ms": "nan", "retry-after": "-1"})
    return default_reply(request)


@dataclass
class Gateway:
    url: str
    log: Path
    offset: int = field(default=0)

    def new_log(self) -> str:
        text = self.log.read_text(errors="replace")
        fresh, self.offset = text[self.offset:], len(text)
        return fresh


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("hostile")
    with RecordingUpstream(_answer) as upstream:
        def deployment(name: str, model: str, hosting: str = "self") -> str:
            price = "{input_per_mtok: 1, output_per_mtok: 2}"
            return (f"  {name}:\n    type: vllm\n    model: {model}\n    api_base: {upstream.api_base}\n"
                    f"    hosting: {hosting}\n    price: {price}\n    context_window: 128000\n"
                    f"    capabilities: [tools, json_schema, json_mode, logprobs]\n"
                    f"    endpoints: [chat, completions, embeddings]\n"
                    f"    retry: {{attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 50}}\n")
        policy = write_policy(tmp, "name: hostile\ndefaults: {objective: order}\ndeployments:\n"
                              + deployment("good", "good-model")
                              + deployment("ra-inf", "retry-after-inf")
                              + deployment("ra-big", "retry-after-1e400")
                              + deployment("ra-nan", "retry-after-ms-nan")
                              + f"""models:
  auto: {{deployments: [good]}}
  text-embedding-3-small: {{deployments: [good]}}
  after-inf: {{deployments: [ra-inf, good]}}
  after-1e400: {{deployments: [ra-big, good]}}
  after-nan: {{deployments: [ra-nan, good]}}
teams:
  apps: {{}}
keys:
  - {{name: app-key, team: apps, sha256: {key_hash(KEY)}}}
""")
        log = tmp / "gateway.log"
        with servers.gateway(policy, env={"GATEWAY_ADMIN_KEY": ADMIN_KEY}, log_path=log) as url:
            yield Gateway(url, log)


def nested(depth: int, leaf: object = "x", kind: str = "list") -> str:
    """JSON text nested ``depth`` levels deep (built as text: no encoder accepts that depth)."""
    inner = json.dumps(leaf)
    if kind == "list":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


def splice(template: str, raw_value: str) -> bytes:
    """``template`` with its ``@`` replaced by raw JSON text."""
    return template.replace("@", raw_value).encode()


def _chat_with(field: str, raw_value: str) -> bytes:
    return splice('{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "' + field + '": @}', raw_value)


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes | None
    status: int
    param: str | None = None
    headers: dict[str, str | bytes] | None = None
    method: str = "POST"


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


CHAT = "/v1/chat/completions"
DEEP = 300  # past orjson's encoder limit (254) and the nesting a token estimate may recurse through
VERY_DEEP = 1000  # under orjson's parser limit (1024), past Python's default recursion limit

CASES = [
    Case("role-array", CHAT, _json({"model": "auto", "messages": [{"role": [], "content": "hi"}]}), 400, "messages[0].role"),
    Case("role-object", CHAT, _json({"model": "auto", "messages": [{"role": {}, "content": "hi"}]}), 400, "messages[0].role"),
    Case("tool-choice-array", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                           "tool_choice": []}), 400, "tool_choice"),
    Case("response-format-type-array", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                                    "response_format": {"type": []}}), 400),
    Case("response-format-type-object", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                                     "response_format": {"type": {}}}), 400),
    Case("max-tokens-int64", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                          "max_tokens": INT64_MAX}), 400, "max_tokens"),
    Case("max-completion-tokens-int64", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                                     "max_completion_tokens": INT64_MAX}), 400, "max_completion_tokens"),
    Case("completions-max-tokens-int64", "/v1/completions", _json({"model": "auto", "prompt": "hi", "max_tokens": INT64_MAX}),
         400, "max_tokens"),
    Case("n-times-max-tokens-overflow", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                                     "max_tokens": 2**62, "n": 128}), 400),
    Case("deep-metadata", CHAT, _chat_with("metadata", nested(DEEP, kind="dict")), 400),
    Case("deep-unknown-field", CHAT, _chat_with("x_extension", nested(DEEP)), 400),
    Case("deep-tool-parameters", CHAT, splice('{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "tools": '
                                        '[{"type": "function", "function": {"name": "f", "parameters": @}}]}', nested(DEEP, kind="dict")), 400),
    Case("deep-message-content", CHAT, splice('{"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", '
                                        '"text": "hi", "extra": @}]}]}', nested(DEEP)), 400),
    Case("deep-message-field", CHAT, splice('{"model": "auto", "messages": [{"role": "user", "content": "hi", "name": @}]}', nested(DEEP)), 400),
    Case("deep-json-schema", CHAT, splice('{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "response_format": '
                                    '{"type": "json_schema", "json_schema": {"name": "s", "schema": @}}}', nested(DEEP, kind="dict")), 400),
    Case("very-deep-unknown-field", CHAT, _chat_with("x_extension", nested(VERY_DEEP)), 400),
    Case("beyond-parser-limit", CHAT, _chat_with("x_extension", nested(5000)), 400),
    Case("completions-deep-prompt", "/v1/completions", splice('{"model": "auto", "prompt": @}', nested(DEEP)), 400),
    Case("completions-very-deep-prompt", "/v1/completions", splice('{"model": "auto", "prompt": @}', nested(VERY_DEEP)), 400),
    Case("completions-deep-unknown-field", "/v1/completions", splice('{"model": "auto", "prompt": "hi", "suffix_x": @}', nested(DEEP, kind="dict")), 400),
    Case("embeddings-deep-input", "/v1/embeddings", splice('{"model": "text-embedding-3-small", "input": @}', nested(DEEP)), 400),
    Case("embeddings-deep-unknown-field", "/v1/embeddings", splice('{"model": "text-embedding-3-small", "input": "hi", "x": @}', nested(DEEP, kind="dict")), 400),
    Case("explain-deep-metadata", "/v1/gateway/explain", _chat_with("metadata", nested(DEEP, kind="dict")), 400),
    Case("explain-role-array", "/v1/gateway/explain", _json({"model": "auto", "messages": [{"role": [], "content": "hi"}]}),
         400),
]
NON_ASCII_BEARER = "Bearer café".encode()
AUTH_CASES = [
    Case(f"non-ascii-bearer-{name}", path, body, 401, headers={"authorization": NON_ASCII_BEARER}, method=method)
    for name, method, path, body in (
        ("chat", "POST", CHAT, _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})),
        ("completions", "POST", "/v1/completions", _json({"model": "auto", "prompt": "hi"})),
        ("embeddings", "POST", "/v1/embeddings", _json({"model": "text-embedding-3-small", "input": "hi"})),
        ("explain", "POST", "/v1/gateway/explain", _json({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})),
        ("models", "GET", "/v1/models", None),
        ("model", "GET", "/v1/models/auto", None),
        ("reload", "POST", "/v1/gateway/reload", None),
        ("spend", "GET", "/v1/gateway/spend", None),
    )
]


@pytest.mark.parametrize("case", CASES + AUTH_CASES, ids=lambda c: c.name)
def test_hostile_input_is_a_client_error_not_a_crash(gateway: Gateway, case: Case) -> None:
    gateway.new_log()
    headers: dict[str, str | bytes] = {"content-type": "application/json", **AUTH, **(case.headers or {})}
    resp = httpx.request(case.method, gateway.url + case.path, content=case.body, headers=headers, timeout=30)
    error = assert_envelope(resp, status=case.status)
    if case.param is not None:
        assert error["param"] == case.param, error
    fresh = gateway.new_log()
    assert "Traceback" not in fresh, f"the gateway logged a traceback for {case.name}:\n{fresh[-4000:]}"


@pytest.mark.parametrize("model", ["after-inf", "after-1e400", "after-nan"])
def test_a_non_finite_retry_after_falls_back_to_the_next_deployment(gateway: Gateway, model: str) -> None:
    gateway.new_log()
    resp = httpx.post(f"{gateway.url}{CHAT}", json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                      headers=AUTH, timeout=30)
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    assert resp.headers["x-gateway-deployment"] == "good"
    assert "UpstreamRateLimited" in resp.headers.get("x-gateway-fallbacks", ""), resp.headers
    fresh = gateway.new_log()
    assert "Traceback" not in fresh, fresh[-4000:]


LEGAL = {
    "named-tool-choice": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                          "tool_choice": {"type": "function", "function": {"name": "f"}}},
    "named-tool-choice-stream": {"stream": True,
                                 "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                                 "tool_choice": {"type": "function", "function": {"name": "f"}}},
}


@pytest.mark.parametrize("name", list(LEGAL))
def test_legal_request_shapes_found_by_the_fuzz_suite_are_served(gateway: Gateway, name: str) -> None:
    """Found by tests/fuzz: the same unhashable-value crash hit a request OpenAI documents (a named tool choice)."""
    gateway.new_log()
    body = {"model": "auto", "messages": [{"role": "user", "content": "call f"}], **LEGAL[name]}
    resp = httpx.post(f"{gateway.url}{CHAT}", json=body, headers=AUTH, timeout=30)
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:300]}"
    fresh = gateway.new_log()
    assert "Traceback" not in fresh, fresh[-4000:]
