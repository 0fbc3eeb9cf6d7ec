"""What a translation from a client protocol to an OpenAI chat request produced, besides the body.

A translation maps what has a chat equivalent, drops what is only advisory, clamps ``max_tokens`` to
what the target accepts, and refuses (``InvalidRequest``, 400) only what would change the answer's
meaning. What it dropped and clamped is reported, never silent: the pipeline puts
``Translation.note()`` in a response header and the access log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_MAX_NAME = 64
_MAX_DROPPED = 24
_MORE = "more"


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """What the chat upstream a request is translated for can take."""

    max_output_tokens: int | None = None
    """Clamp the requested output length to this (the deployment's ``max_output_tokens``)."""
    reasoning: bool = False
    """The upstream takes ``reasoning_effort``; otherwise thinking/reasoning settings are dropped."""
    top_k: bool = True
    """The upstream takes ``top_k`` (vLLM, SGLang, llama.cpp and Ollama do; OpenAI does not)."""


ANY_CHAT_TARGET = ChatTarget()
"""No output cap, no reasoning, takes ``top_k``: a typical self-hosted server."""


@dataclass(slots=True)
class Translation:
    """A chat request body, and what the translation dropped or clamped to get it."""

    body: dict[str, Any]
    dropped: list[str] = field(default_factory=list)
    """Advisory fields and hosted tools removed, by name (``thinking``, ``tools.web_search``, …)."""
    clamped: list[str] = field(default_factory=list)
    """Limits lowered to the target's, as ``name:asked>given``."""

    def drop(self, name: str) -> None:
        """Note a dropped field. Names may come from the client (unknown keys), and the note goes into a
        response header: only header-safe characters are kept, and the list is bounded."""
        name = _UNSAFE.sub("_", name[:_MAX_NAME])
        if name in self.dropped:
            return
        if len(self.dropped) < _MAX_DROPPED:
            self.dropped.append(name)
        elif self.dropped[-1] != _MORE:
            self.dropped.append(_MORE)

    def note(self) -> str:
        """One line for a response header and the access log; empty when nothing was lost."""
        parts = []
        if self.dropped:
            parts.append("dropped=" + ",".join(self.dropped))
        if self.clamped:
            parts.append("clamped=" + ",".join(self.clamped))
        return "; ".join(parts)

    def clamp_max_tokens(self, name: str, asked: int | None, target: ChatTarget) -> None:
        """Set the chat ``max_tokens`` from the client's ``name``, lowered to the target's cap."""
        if asked is None:
            return  # the upstream's own default applies, as it would have for the client's vendor
        cap = target.max_output_tokens
        if cap is not None and asked > cap:
            self.clamped.append(f"{name}:{asked}>{cap}")
            asked = cap
        self.body["max_tokens"] = asked
