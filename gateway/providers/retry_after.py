"""The one Retry-After parser for every provider: ``retry-after-ms`` and ``retry-after``.

``retry-after`` may be delta-seconds or an HTTP date (RFC 9110 §10.2.3); ``retry-after-ms`` is the
millisecond form OpenAI and Azure send. An upstream is not trusted to send something sane: values
that are not finite numbers (``inf``, ``nan``, ``1e400``), negative or unparsable mean "unknown"
(``None``), and anything longer than ``MAX_SECONDS`` is cut to it, so no caller ever has to guard
against an overflow or a wait of centuries.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

MAX_SECONDS = 86_400.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value.strip() if isinstance(value, str) else None


def _seconds(raw: str, scale: float) -> float | None:
    try:
        value = float(raw) * scale
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, MAX_SECONDS)


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait before retrying, from the response headers, or ``None`` when they do not say."""
    if not headers:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis:
        found = _seconds(millis, 0.001)
        if found is not None:
            return found
    value = _header(headers, "retry-after")
    if not value:
        return None
    found = _seconds(value, 1.0)
    if found is not None or value[:1].isdigit() or value[:1] in "+-.":
        return found
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are always GMT; a date without a zone is not one
    return min(max(0.0, when.timestamp() - (time.time() if now is None else now)), MAX_SECONDS)
