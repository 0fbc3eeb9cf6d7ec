"""Finding 4: an e-mail address or a card number must not reach a vendor, whichever field carries it.

The policy keeps sensitive requests on self-hosted deployments. Each case puts a marker into one field
the upstream will receive — message names, ``input_text`` parts, tool descriptions and parameters,
``response_format.json_schema``, ``prediction.content``, ``metadata`` (values and keys), ``user``,
``stop``, an unknown top-level field — in plain, fullwidth and zero-width-joined spellings. Both
deployments are recording upstreams: the vendor's received bodies are read back, normalised the way
a reader would see them (NFKC, format characters dropped), and must never hold the marker.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests import servers
from tests.adversarial.support import write_policy
from tests.recording_upstream import RecordingUpstream

EMAIL = "jane.doe@example.com"
CARD_DIGITS = "4111111111111111"  # Luhn-valid
SPELLINGS = {
    "email": "Please write to jane.doe@example.com about it.",
    "card": "The card is 4111 1111 1111 1111, thanks.",
    "email-and-card": "jane.doe@example.com pays with 4111-1111-1111-1111.",
    "fullwidth-at": "Please write to jane.doe＠example.com about it.",
    "fullwidth-card": "The card is ４１１１ １１１１ １１１１ １１１１, thanks.",
    "zero-width-email": "Please write to jane\u200d.doe\u200b@\u200bexample\u200c.com about it.",
    "zero-width-card": "The card is 4111\u200b1111\u200b1111\u200d1111, thanks.",
}


def _base(extra: dict[str, Any] | None = None, content: Any = "Summarise the attached note.") -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **(extra or {})}


def _tool(description: str = "Send a message.", parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "send", "description": description,
                                             "parameters": parameters or {"type": "object", "properties": {}}}}


FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "content": lambda m: _base(content=m),
    "message-name": lambda m: {"model": "gpt-4o", "messages": [{"role": "user", "name": m, "content": "Hello."}]},
    "system-content-part": lambda m: {"model": "gpt-4o", "messages": [
        {"role": "system", "content": [{"type": "text", "text": m}]}, {"role": "user", "content": "Hello."}]},
    "input-text-part": lambda m: _base(content=[{"type": "input_text", "text": m}]),
    "tool-description": lambda m: _base({"tools": [_tool(description=m)]}),
    "tool-parameters": lambda m: _base({"tools": [_tool(parameters={
        "type": "object", "properties": {"to": {"type": "string", "description": m}}})]}),
    "tool-parameter-enum": lambda m: _base({"tools": [_tool(parameters={
        "type": "object", "properties": {"to": {"type": "string", "enum": [m]}}})]}),
    "json-schema": lambda m: _base({"response_format": {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": {"type": "object", "description": m, "properties": {}}}}}),
    "prediction": lambda m: _base({"prediction": {"type": "content", "content": m}}),
    "prediction-parts": lambda m: _base({"prediction": {"type": "content", "content": [{"type": "text", "text": m}]}}),
    "metadata-value": lambda m: _base({"metadata": {"note": m}}),
    "metadata-key": lambda m: _base({"metadata": {m: "note"}}),
    "user": lambda m: _base({"user": m}),
    "stop": lambda m: _base({"stop": [m]}),
    "unknown-field": lambda m: _base({"x_context": {"notes": [m]}}),
}


def _visible_text(body: bytes) -> str:
    """Every string (keys too) of a JSON body, as a reader would see it: NFKC, no format characters."""
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                strings.append(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    try:
        walk(json.loads(body))
    except ValueError:
        strings.append(body.decode("utf-8", "replace"))
    text = unicodedata.normalize("NFKC", "\n".join(strings))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _leaks(body: bytes) -> list[str]:
    text = _visible_text(body)
    found = []
    if EMAIL in text:
        found.append("email")
    if CARD_DIGITS in re.sub(r"[ -]", "", text):
        found.append("card")
    return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RecordingUpstream, RecordingUpstream]]:
    tmp = tmp_path_factory.mktemp("sensitive")
    caps = "[tools, json_schema, json_mode, logprobs, vision]"
    with RecordingUpstream() as vendor, RecordingUpstream() as own:
        policy = write_policy(tmp, f"""
name: sensitive-fields
defaults: {{objective: order}}
deployments:
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor.api_base}
    api_key: sk-vendor-key-for-tests
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    context_window: 128000
    capabilities: {caps}
  own:
    type: vllm
    model: qwen
    api_base: {own.api_base}
    hosting: self
    price: {{gpu_hour_usd: 2, tokens_per_second: 2000}}
    context_window: 128000
    capabilities: {caps}
models:
  gpt-4o: {{deployments: [vendor, own]}}
rules:
  - name: sensitive-stays-self-hosted
    when: {{data_class_at_least: confidential}}
    require: {{hosting: self}}
""")
        with servers.gateway(policy, log_path=tmp / "gateway.log") as url:
            yield url, vendor, own


def test_requests_without_sensitive_data_do_reach_the_vendor(setup) -> None:
    url, vendor, _ = setup
    for field, build in FIELDS.items():
        resp = httpx.post(f"{url}/v1/chat/completions", json=build("A harmless sentence about routers."), timeout=30)
        assert resp.status_code == 200, f"{field}: {resp.status_code} {resp.text[:300]}"
        assert resp.headers["x-gateway-hosting"] == "vendor", f"{field}: the control request stays with the vendor"
    assert len(vendor.requests) >= len(FIELDS)


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("field", list(FIELDS))
def test_sensitive_data_in_any_field_never_reaches_the_vendor(setup, field: str, spelling: str) -> None:
    url, vendor, own = setup
    before_vendor, before_own = len(vendor.requests), len(own.requests)
    resp = httpx.post(f"{url}/v1/chat/completions", json=FIELDS[field](SPELLINGS[spelling]), timeout=30)
    sent_to_vendor = [r.body for r in vendor.requests[before_vendor:]]
    leaked = [kind for body in sent_to_vendor for kind in _leaks(body)]
    assert not leaked, (f"the vendor received the {'/'.join(sorted(set(leaked)))} from `{field}` ({spelling}); "
                        f"routed as {resp.headers.get('x-gateway-hosting')!r}")
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:300]}"
    assert resp.headers["x-gateway-hosting"] == "self"
    assert len(own.requests) == before_own + 1, "the self-hosted deployment served it"
