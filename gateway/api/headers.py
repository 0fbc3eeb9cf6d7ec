"""The one view of a request's headers, shared by the proxy entrance and every route.

Names are lower-cased; a header sent more than once has its values joined with ", ", the way
RFC 9110 combines repeated fields. Nothing silently picks the first or the last copy: a repeated
``x-data-class`` counts its most sensitive value, and a repeated ``authorization`` no longer parses
as one key (401), so no reading of an ambiguous request can be talked into the weaker outcome.
"""

from __future__ import annotations

from collections.abc import Iterable


def header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
