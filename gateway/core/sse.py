"""The one Server-Sent Events decoder: bytes in, events out. Sans-io: no sockets, no clocks.

Every place that reads an event stream uses it (the OpenAI-compatible provider, the stream relay,
the cache's stream fold, the protocol translators), so CRLF, bare CR and LF line endings, comments,
multi-line ``data`` and oversized events are handled one way everywhere.

- **Byte-exact**: each event keeps the bytes it arrived as (``SSEEvent.raw``, its terminating blank
  line included), so a relay can pass events on without re-encoding them.
- **Linear time**: the search for the next event boundary resumes where the last one stopped; a
  stream that never sends a blank line costs O(bytes), not O(bytes²).
- **Bounded**: an event (or an unterminated tail) larger than ``max_event_bytes`` raises
  ``SSEDecodeError`` instead of growing without limit.

Line endings follow the SSE specification: ``\\r\\n``, ``\\n`` or ``\\r``; an event ends at an empty
line. A trailing ``\\r`` at the end of a chunk is held back until the next byte says whether a
``\\n`` follows, so a ``\\r\\n`` split across reads is never taken for two line endings.
"""

from __future__ import annotations

import re

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024

# A line ending followed by an empty line, for each pair of the spec's three spellings (a CR followed
# by LF is one CRLF ending, never two). At each position the longer spelling is tried first.
_BOUNDARY = re.compile(rb"\r\n\r\n|\r\n\n|\r\n\r|\r\r\n|\r\r|\n\r\n|\n\n|\n\r")
_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEDecodeError(ValueError):
    """The byte stream cannot be a well-formed event stream (an event over the size bound)."""


class SSEEvent:
    """One event: its raw bytes and, parsed on first use, its fields."""

    __slots__ = ("raw", "_fields")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._fields: tuple[str | None, bytes | None, str | None] | None = None

    def _parse(self) -> tuple[str | None, bytes | None, str | None]:
        if self._fields is None:
            raw = self.raw
            # The common event, one ``data: ...`` line: read without splitting lines (per event, this counts).
            if raw.startswith(b"data: ") and raw.endswith(b"\n\n") and raw.count(b"\n") == 2 and b"\r" not in raw:
                self._fields = (None, raw[6:-2], None)
                return self._fields
            event: str | None = None
            data: list[bytes] = []
            ident: str | None = None
            for line in _LINE_END.split(self.raw):
                if not line or line.startswith(b":"):
                    continue
                name, sep, value = line.partition(b":")
                if sep and value.startswith(b" "):
                    value = value[1:]
                if name == b"data":
                    data.append(value)
                elif name == b"event":
                    event = value.decode("utf-8", "replace")
                elif name == b"id":
                    ident = value.decode("utf-8", "replace")
            self._fields = (event, b"\n".join(data) if data else None, ident)
        return self._fields

    @property
    def event(self) -> str | None:
        """The ``event:`` field (``None`` means the default type, ``message``)."""
        return self._parse()[0]

    @property
    def data(self) -> bytes | None:
        """The ``data:`` lines joined with ``\\n``; ``None`` for an event without data (comments, keep-alives)."""
        return self._parse()[1]

    @property
    def id(self) -> str | None:
        return self._parse()[2]

    def __repr__(self) -> str:
        return f"SSEEvent({self.raw!r})"


class SSEDecoder:
    """Incremental decoder: ``feed`` each read, get the events it completed; ``finish`` at the end."""

    __slots__ = ("_pending", "_scan_from", "_pending_cr", "max_event_bytes")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending = bytearray()
        self._scan_from = 0
        self._pending_cr = False  # whether the pending bytes hold a CR (never rescanned: linear time)
        self.max_event_bytes = max_event_bytes

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet form a complete event."""
        return bytes(self._pending)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """The events completed by ``data``, in order, each with its exact bytes."""
        has_cr = b"\r" in data
        if self._pending:
            self._pending += data  # amortised: a large event arriving in many reads is copied once
            buffer: bytes | bytearray = self._pending
            has_cr = has_cr or self._pending_cr
        else:
            buffer = data
        events: list[SSEEvent] = []
        start = 0
        position = self._scan_from
        if not has_cr:
            while (end := buffer.find(b"\n\n", position)) >= 0:
                events.append(SSEEvent(bytes(buffer[start : end + 2])))
                start = position = end + 2
        else:
            while (match := _BOUNDARY.search(buffer, position)) is not None:
                end = match.end()
                if end == len(buffer) and buffer[end - 1] == 13:  # ends in CR: an LF may follow
                    break
                events.append(SSEEvent(bytes(buffer[start:end])))
                start = position = end
        rest = len(buffer) - start
        if rest > self.max_event_bytes:
            raise SSEDecodeError(f"an event stream event exceeded {self.max_event_bytes} bytes")
        if buffer is self._pending:
            del self._pending[:start]
        else:
            self._pending = bytearray(buffer[start:]) if rest else bytearray()
        self._pending_cr = has_cr and rest > 0  # conservative: the regex path is linear too
        # Resume the next search just before the end: a boundary may straddle two reads.
        self._scan_from = max(0, rest - 3)
        return events

    def finish(self) -> list[SSEEvent]:
        """At the end of the stream: an event whose boundary ended in a held-back CR is complete now.
        An unterminated tail is discarded, as the specification says; ``pending`` still shows it."""
        tail = bytes(self._pending)
        match = _BOUNDARY.search(tail, max(0, self._scan_from - 1)) if tail.endswith(b"\r") else None
        if match is None or match.end() != len(tail):
            return []
        self._pending = bytearray()
        self._scan_from = 0
        return [SSEEvent(tail)]


def iter_events(data: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> list[SSEEvent]:
    """Every complete event of a whole byte string (an unterminated tail is ignored, as the spec says)."""
    decoder = SSEDecoder(max_event_bytes)
    return decoder.feed(data) + decoder.finish()
