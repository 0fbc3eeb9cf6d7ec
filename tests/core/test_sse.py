"""The one SSE decoder: every line ending, any split of the bytes, bounded size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.sse import SSEDecodeError, SSEDecoder, iter_events

STREAM = (
    b'data: {"a":1}\n\n'
    b"data: x\r\n\r\n"
    b": keep-alive comment\n\n"
    b"event: error\ndata: l1\ndata: l2\r\r"
    b"data:no-space\n\r\n"
    b"id: 7\ndata: [DONE]\r\n\n"
)


def test_each_event_keeps_its_bytes_and_fields() -> None:
    events = iter_events(STREAM)
    assert b"".join(e.raw for e in events) == STREAM
    assert [(e.event, e.data, e.id) for e in events] == [
        (None, b'{"a":1}', None),
        (None, b"x", None),
        (None, None, None),
        ("error", b"l1\nl2", None),
        (None, b"no-space", None),
        (None, b"[DONE]", "7"),
    ]


def test_an_unterminated_tail_is_not_an_event() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.feed(b"data: a\n\ndata: b\n")] == [b"a"]
    assert decoder.finish() == []
    assert decoder.pending == b"data: b\n"


def test_a_crlf_split_between_reads_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n\r") == []  # the next byte may be the LF of a CRLF
    events = decoder.feed(b"\ndata: b\n\n")
    assert [e.raw for e in events] == [b"data: a\r\n\r\n", b"data: b\n\n"]


def test_a_final_cr_boundary_completes_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == []
    assert [e.raw for e in decoder.finish()] == [b"data: a\r\r"]


@pytest.mark.parametrize("chunk", [b"x" * 1000, b"x\r" * 500, b"data: y\n" * 100])
def test_an_event_over_the_bound_is_refused(chunk: bytes) -> None:
    decoder = SSEDecoder(max_event_bytes=10_000)
    with pytest.raises(SSEDecodeError):
        for _ in range(20):
            decoder.feed(chunk)


def test_events_under_the_bound_pass_whatever_came_before() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    for _ in range(1000):
        assert len(decoder.feed(b"data: " + b"z" * 80 + b"\n\n")) == 1


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    decoder = SSEDecoder()
    events = []
    last = 0
    for point in [*points, len(STREAM)]:
        events += decoder.feed(STREAM[last:point])
        last = point
    events += decoder.finish()
    assert [e.raw for e in events] == [e.raw for e in iter_events(STREAM)]


@given(st.lists(st.sampled_from([b"data: a", b"data: b", b": c", b"", b"event: e"]), max_size=20),
       st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_every_line_ending_spelling_decodes_alike(lines: list[bytes], ending: bytes) -> None:
    reference = iter_events(b"".join(line + b"\n" for line in lines))
    other = iter_events(b"".join(line + ending for line in lines))
    assert [(e.event, e.data) for e in other] == [(e.event, e.data) for e in reference]
