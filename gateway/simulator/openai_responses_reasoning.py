"""Simulated reasoning for the Responses API: a ``reasoning`` output item, its cost, its round trip.

The simulator has no model catalogue, so it reasons whenever the request carries a ``reasoning``
object whose ``effort`` is not ``none`` (default ``medium``). Hidden reasoning costs a fixed number
of tokens per effort, reported as ``output_tokens_details.reasoning_tokens`` and counted against
``max_output_tokens`` (so a small budget can end ``incomplete`` with no visible answer, as OpenAI's
does). ``summary`` (``auto``, ``concise``, ``detailed``) adds a short summary part;
``include: ["reasoning.encrypted_content"]`` adds sealed opaque content.

Clients send reasoning items back in ``input``. Nothing is stored, so an item without its
``encrypted_content`` gets OpenAI's 404, and content that does not verify (altered on the way, or
made up) gets OpenAI's ``invalid_encrypted_content`` — what a gateway passing the item through
must never provoke.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from gateway.simulator.openai_param_errors import invalid_type, invalid_value
from gateway.simulator.wire import BadRequest

REASONING_TOKENS = {"minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
SUMMARY_WORDS = ["**Simulated", " reasoning**\n\nReading", " the", " request", " before", " answering."]
ENCRYPTED_CONTENT = "reasoning.encrypted_content"
_SUMMARIES = ("auto", "concise", "detailed")
_EFFORTS = ("none", *REASONING_TOKENS)
_SEAL_KEY = b"gateway-simulator reasoning seal"
_SEAL_PREFIX = "gAAAAA"  # what OpenAI's opaque content starts with


@dataclass(frozen=True, slots=True)
class Reasoning:
    """How one request reasons: hidden tokens spent, and what the item shows."""

    effort: str
    tokens: int
    summary: bool
    encrypted: bool


def reasoning_plan(body: dict[str, Any]) -> Reasoning | None:
    """The reasoning a request asks for, or ``None``. Raises ``BadRequest`` on values OpenAI rejects."""
    raw = body.get("reasoning")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid_type("reasoning", "an object", raw)
    effort = raw.get("effort") or "medium"
    if effort not in _EFFORTS:
        raise invalid_value("reasoning.effort", effort, _EFFORTS)
    summary = raw.get("summary", raw.get("generate_summary"))
    if summary is not None and summary not in _SUMMARIES:
        raise invalid_value("reasoning.summary", summary, _SUMMARIES)
    if effort == "none":
        return None
    include = body.get("include") or ()
    encrypted = isinstance(include, list) and ENCRYPTED_CONTENT in include
    return Reasoning(effort, REASONING_TOKENS[effort], summary is not None, encrypted)


def reasoning_item(reasoning: Reasoning, item_id: str) -> dict[str, Any]:
    """The finished ``reasoning`` output item."""
    summary = [{"type": "summary_text", "text": "".join(SUMMARY_WORDS)}] if reasoning.summary else []
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
    if reasoning.encrypted:
        item["encrypted_content"] = seal(item_id)
    return item


def seal(item_id: str) -> str:
    """Opaque content only this simulator verifies: the item id and a keyed MAC over it."""
    mac = hmac.new(_SEAL_KEY, item_id.encode(), hashlib.blake2b).digest()[:16]
    return _SEAL_PREFIX + base64.urlsafe_b64encode(item_id.encode() + b"\x00" + mac).decode()


def check_reasoning_input(item: dict[str, Any]) -> None:
    """A reasoning item sent back must carry the content this simulator sealed for it."""
    item_id = item.get("id")
    content = item.get("encrypted_content")
    if content is None:
        raise BadRequest(
            f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. "
            "Try again with `store` set to true, or remove this item from your input.",
            param="input",
            status=404,
        )
    if not isinstance(content, str) or not _verifies(content):
        raise BadRequest(
            f"The encrypted content for item {item_id} could not be verified. "
            "Reason: Encrypted content could not be decrypted or parsed.",
            code="invalid_encrypted_content",
        )


def _verifies(content: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(content.removeprefix(_SEAL_PREFIX).encode())
    except (binascii.Error, ValueError):
        return False
    item_id, _, _ = raw.partition(b"\x00")
    try:
        expected = seal(item_id.decode())
    except UnicodeDecodeError:
        return False
    return hmac.compare_digest(content.encode(), expected.encode())
