"""Every string a request body carries to the upstream, for the sensitive-data scan.

Not just message contents: names, content parts of any type, tool descriptions and parameter schemas,
response-format schemas, predictions, metadata, dict keys, unknown top-level fields the passthrough
forwards — whatever the upstream will receive, in any protocol's body (OpenAI, Anthropic, Responses).
The one thing left out is binary payloads (base64 data URIs of images, audio and files): they are not
text, no pattern can match inside them, and scanning megabytes of them would cost every request.

The body is cut into *units* — each element of a top-level list (a message, a tool, an input item)
and each other top-level value — and each unit is serialised by orjson, in C: walking a 40 KB agent
request node by node in Python cost ~200 µs, serialising it ~30 µs. A conversation or an agent's tool
list comes back request after request with its units unchanged, so the scan can remember what a unit
holds by its serialised bytes, and only what is new is read again (``unit_text``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

_DATA_URI = re.compile(r"data:[\w./+-]{1,100};base64,[A-Za-z0-9+/=]*")
_RAW_BASE64 = re.compile(r'"(?:data|file_data|b64_json|image_data|audio)":"[A-Za-z0-9+/=]{1024,}"')


def body_units(body: dict[str, Any]) -> Iterator[bytes]:
    """The serialised units of ``body``: list elements one by one, the rest (keys, scalars) together."""
    loose: list[Any] = []
    for key, value in body.items():
        loose.append(key)
        if isinstance(value, list):
            for unit in value:
                if isinstance(unit, dict | list):
                    yield orjson.dumps(unit)
                else:
                    loose.append(unit)
        elif isinstance(value, dict):
            yield orjson.dumps(value)
        else:
            loose.append(value)
    yield orjson.dumps(loose)


def unit_text(raw: bytes) -> str:
    """A serialised unit as the patterns should read it: binary payloads removed, JSON escapes undone.

    Undoing escapes matters: a card number after a line break would otherwise follow the letter ``n``
    of ``\\n`` and look like the tail of a word. Escaped backslashes are set aside first (orjson never
    writes a raw control character, so ``\\x00`` is free as a placeholder), so ``\\\\n`` stays a
    backslash and an ``n``."""
    text = raw.decode("utf-8", "surrogatepass")
    if "base64," in text:
        text = _DATA_URI.sub("", text)
    if '":"' in text and len(text) > 1024:
        text = _RAW_BASE64.sub('""', text)
    # Twice: tool-call arguments are JSON inside JSON, so their own escapes arrive escaped again.
    for _ in range(2):
        if "\\" not in text:
            break
        text = (text.replace("\\\\", "\x00").replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
                .replace('\\"', '"').replace("\\/", "/").replace("\\b", " ").replace("\\f", " ").replace("\x00", "\\"))
    return text
