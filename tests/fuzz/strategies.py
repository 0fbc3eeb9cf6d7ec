"""Hypothesis strategies for hostile requests to the gateway: OpenAI request shapes, then broken.

Bodies start from the shapes of OpenAI's chat, completions and embeddings requests (every known
field, plausible values) and are then mutated: a field replaced by a wrong type, a huge or negative
number, JSON nested hundreds of levels deep, odd Unicode (format characters, fullwidth forms, NUL,
astral planes, right-to-left marks); fields removed; unknown fields added; or the whole body replaced
by bytes that are not JSON at all. Headers are drawn the same way: real keys and garbage, repeated
headers, latin-1 bytes, very long values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

APP_KEY = "sk-fuzz-app-key"
ADMIN_KEY = "sk-fuzz-admin-key"  # an admin key of the policy
SETTINGS_ADMIN_KEY = "sk-fuzz-settings-admin"  # GATEWAY_ADMIN_KEY
FRUGAL_KEY = "sk-fuzz-frugal-key"  # a team whose budget is always spent
MODELS = ["auto", "gpt-4o", "text-embedding-3-small", "faulty-503", "faulty-502", "faulty-504", "no-such-model", ""]
FAULTY_MODELS = frozenset(m for m in MODELS if m.startswith("faulty"))

_ODD_CHARACTERS = (
    "\u0000\u0007\u001f\u007f\u0085\u00a0\u00ad\u200b\u200c\u200d\u200e\u202e\u2028\u2029\u2060\ufeff\ufffd"
    "＠＃１２３ｅｘａｍｐｌｅ\U0001f600\U0001f9d1\u200d\U0001f4bb\U00010348ᄀ가各𠀀é\u0301ﬁ"
)
odd_text = st.text(st.characters(codec="utf-8") | st.sampled_from(_ODD_CHARACTERS), max_size=40)
plain_text = st.text(max_size=30)
HUGE_NUMBERS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64, 10**30, -(10**30), 1e308, -1e308, 1e-308,
                0.5, -0.0, float("inf"), float("-inf"), float("nan")]
numbers = st.sampled_from(HUGE_NUMBERS) | st.integers() | st.floats(allow_nan=True, allow_infinity=True)

json_leaf = st.none() | st.booleans() | numbers | odd_text
json_values = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4), max_leaves=12,
)


@st.composite
def deep_nesting(draw: st.DrawFn) -> Any:
    """A list or object nested 50 to 600 levels deep (past the encoders' and the recursion limits)."""
    depth = draw(st.integers(50, 600))
    leaf = draw(json_leaf)
    kind = draw(st.sampled_from(["list", "dict", "mixed"]))
    value: Any = leaf
    for level in range(depth):
        if kind == "list" or (kind == "mixed" and level % 2):
            value = [value]
        else:
            value = {"a": value}
    return value


wild_values = json_values | deep_nesting() | numbers | st.sampled_from([[], {}, "", [[]], {"type": []}])

roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]) | json_values
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "input_text", "image_url", "input_audio", "refusal"]) | plain_text},
    optional={"text": odd_text, "image_url": st.fixed_dictionaries({"url": plain_text}, optional={"detail": plain_text})},
)
contents = odd_text | st.lists(parts, max_size=3) | st.none()
tool_calls = st.lists(st.fixed_dictionaries({
    "id": plain_text, "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": plain_text, "arguments": odd_text}),
}), max_size=2)
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": contents},
                          optional={"name": odd_text, "tool_calls": tool_calls, "tool_call_id": plain_text}),
    min_size=1, max_size=3,
)
tools = st.lists(st.fixed_dictionaries({
    "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": plain_text},
                                      optional={"description": odd_text, "parameters": json_values, "strict": st.booleans()}),
}), max_size=2)
response_formats = st.sampled_from([{"type": "text"}, {"type": "json_object"}]) | st.fixed_dictionaries({
    "type": st.just("json_schema"),
    "json_schema": st.fixed_dictionaries({"name": plain_text}, optional={"schema": json_values, "strict": st.booleans()}),
})
SAMPLING = {
    "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "n": st.integers(1, 3), "seed": st.integers(0, 2**31),
    "max_tokens": st.integers(1, 64), "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2),
    "stop": st.none() | plain_text | st.lists(plain_text, max_size=4), "user": odd_text, "stream": st.booleans(),
    "metadata": st.dictionaries(plain_text, odd_text, max_size=3),
}
CHAT_FIELDS = {
    **SAMPLING, "max_completion_tokens": st.integers(1, 64), "tools": tools,
    "tool_choice": st.sampled_from(["none", "auto", "required"]) | st.just({"type": "function", "function": {"name": "f"}}),
    "response_format": response_formats, "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20),
    "parallel_tool_calls": st.booleans(), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "prediction": st.fixed_dictionaries({"type": st.just("content"), "content": odd_text}),
    "logit_bias": st.dictionaries(st.integers(0, 100000).map(str), st.integers(-100, 100), max_size=2),
}
COMPLETION_FIELDS = {**SAMPLING, "echo": st.booleans(), "logprobs": st.integers(0, 5), "best_of": st.integers(1, 3),
                     "suffix": odd_text}
EMBEDDING_FIELDS = {"encoding_format": st.sampled_from(["float", "base64"]), "dimensions": st.integers(1, 64),
                    "user": odd_text}

models = st.sampled_from(MODELS) | odd_text
prompts = odd_text | st.lists(odd_text, max_size=3) | st.lists(st.integers(0, 100000), max_size=5) | \
    st.lists(st.lists(st.integers(0, 100000), max_size=3), max_size=2)


def _shape(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"model": models, **required}, optional=optional)


BODY_SHAPES = {
    "chat": _shape({"messages": messages}, CHAT_FIELDS),
    "completions": _shape({"prompt": prompts}, COMPLETION_FIELDS),
    "embeddings": _shape({"input": prompts}, EMBEDDING_FIELDS),
    "explain": _shape({"messages": messages}, CHAT_FIELDS),
}


@st.composite
def mutated(draw: st.DrawFn, shape: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A body of the shape, then zero to three mutations: replace, delete, add an unknown field, go deep."""
    body = dict(draw(shape))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add", "replace-inside"]))
        keys = sorted(body)
        if action == "replace" and keys:
            body[draw(st.sampled_from(keys))] = draw(wild_values)
        elif action == "delete" and keys:
            body.pop(draw(st.sampled_from(keys)))
        elif action == "add":
            body[draw(odd_text)] = draw(wild_values)
        elif action == "replace-inside" and isinstance(body.get("messages"), list) and body["messages"]:
            message = body["messages"][0]
            if isinstance(message, dict):
                message = dict(message)
                message[draw(st.sampled_from(["role", "content", "name", "tool_calls", draw(plain_text)]))] = draw(wild_values)
                body["messages"] = [message, *body["messages"][1:]]
    return body


latin1_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=60)
# Half the requests carry the team's key, so most examples get past authentication into the pipeline.
_other_authorizations = st.sampled_from([
    None, f"Bearer {ADMIN_KEY}", f"Bearer {SETTINGS_ADMIN_KEY}", f"Bearer {FRUGAL_KEY}", "Bearer", "Bearer ", "bearer " + APP_KEY, "Basic Zm9vOmJhcg==",
    "Bearer café", "Bearer " + "k" * 5000,
]) | latin1_values.map(lambda v: "Bearer " + v)
authorizations = st.booleans().flatmap(lambda valid: st.just(f"Bearer {APP_KEY}") if valid else _other_authorizations)
data_classes = st.sampled_from(["public", "internal", "confidential", "restricted", "PUBLIC", " restricted ", "secret", "",
                                "public, restricted"]) | latin1_values


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Request headers as raw (name, value) byte pairs: repeats allowed, values in latin-1."""
    out: list[tuple[bytes, bytes]] = []

    def add(name: str, value: str) -> None:
        out.append((name.encode(), value.encode("latin-1", "replace")))

    auth = draw(authorizations)
    if auth is not None:
        add("authorization", auth)
    for _ in range(draw(st.integers(0, 2))):
        add("x-data-class", draw(data_classes))
    if draw(st.booleans()):
        add("x-request-id", draw(latin1_values | st.integers(1, 9000).map(lambda n: "r" * n)))
    if draw(st.booleans()):
        add("cache-control", draw(st.sampled_from(["no-cache", "no-store", "max-age=0", "no-cache, no-store"]) | latin1_values))
    if draw(st.booleans()):
        add("x-gateway-cache", draw(st.sampled_from(["bypass", "refresh"]) | latin1_values))
    if draw(st.booleans()):
        add("content-type", draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                                   "multipart/form-data; boundary=x"]) | latin1_values))
    for _ in range(draw(st.integers(0, 2))):
        add(draw(st.from_regex(r"x-[a-z0-9-]{1,20}", fullmatch=True)), draw(latin1_values))
    return out


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    params: dict[str, str] | None = None
    json_body: Any = None

    @property
    def operation(self) -> str:
        """Method and route, model ids folded, for the figures."""
        return f"{self.method} {'/v1/models/{id}' if self.path.startswith('/v1/models/') else self.path}"

    def describe(self) -> str:
        """The request as a reader wants it in a failure report (long parts cut)."""
        body = self.body if self.body is None or len(self.body) <= 600 else self.body[:600] + b"..."
        heads = [(n, v if len(v) <= 80 else v[:80] + b"...") for n, v in self.headers]
        return f"{self.method} {self.path} params={self.params!r} headers={heads!r} body={body!r}"

    @property
    def fault_injected(self) -> bool:
        """The request names a deployment whose upstream fails on purpose: 502/503/504 are its right answer."""
        body = self.json_body
        model = body.get("model") if isinstance(body, dict) else None
        return isinstance(model, str) and model in FAULTY_MODELS


def _encode(body: Any) -> bytes:
    try:
        return json.dumps(body).encode()
    except (RecursionError, ValueError):
        return b"{"  # not encodable by the client either: send broken JSON instead


POSTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "embeddings": "/v1/embeddings",
         "explain": "/v1/gateway/explain"}


@st.composite
def post_requests(draw: st.DrawFn, kind: str) -> FuzzRequest:
    choice = draw(st.sampled_from(["shape", "mutated", "mutated", "raw"]))
    json_body: Any = None
    if choice == "raw":
        body = draw(st.binary(max_size=200) | st.sampled_from([b"", b"null", b"[]", b"{}", b'{"model": "auto"}',
                                                                b"\xff\xfe", b'{"model": "auto", "messages": [}']))
    else:
        json_body = draw(BODY_SHAPES[kind] if choice == "shape" else mutated(BODY_SHAPES[kind]))
        body = _encode(json_body)
    return FuzzRequest("POST", POSTS[kind], draw(headers()), body, json_body=json_body)


@st.composite
def get_requests(draw: st.DrawFn) -> FuzzRequest:
    path = draw(st.sampled_from(["/v1/models", "/healthz", "/readyz", "/metrics", "/v1/gateway/spend"])
                | st.sampled_from(["/v1/models/", "/v1/models/auto", "/v1/models/%2F..%2F"])
                | plain_text.map(lambda s: "/v1/models/" + "".join(c for c in s if c.isprintable() and c not in "?#")))
    params = draw(st.none() | st.dictionaries(st.sampled_from(["period", "date", "x"]) | plain_text,
                                              st.sampled_from(["day", "month", "20240101", "209912", "", "-1"]) | plain_text,
                                              max_size=2))
    return FuzzRequest("GET", path, draw(headers()), None, params)


@st.composite
def other_requests(draw: st.DrawFn) -> FuzzRequest:
    """Reload (admin or not), and methods a path does not allow."""
    method, path = draw(st.sampled_from([
        ("POST", "/v1/gateway/reload"), ("GET", "/v1/gateway/reload"), ("PUT", "/v1/chat/completions"),
        ("DELETE", "/v1/models"), ("PATCH", "/v1/embeddings"), ("GET", "/v1/chat/completions"), ("POST", "/healthz"),
        ("POST", "/metrics"), ("OPTIONS", "/v1/chat/completions"), ("POST", "/v1/nowhere"),
    ]))
    body = draw(st.none() | st.binary(max_size=50))
    return FuzzRequest(method, path, draw(headers()), body)


def any_request() -> st.SearchStrategy[FuzzRequest]:
    return st.one_of(*(post_requests(kind) for kind in POSTS), get_requests(), other_requests())
