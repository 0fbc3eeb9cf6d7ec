"""The one Retry-After parser: every form an upstream may send, sane or not."""

from __future__ import annotations

import pytest

from gateway.core.errors import UpstreamRateLimited
from gateway.providers.retry_after import MAX_SECONDS, retry_after_seconds

NOW = 1445412480.0  # ten seconds before "Wed, 21 Oct 2015 07:28:10 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": " 0.5 "}, 0.5),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: retry now
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10"}, None),  # no zone: not an HTTP date
        ({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}, MAX_SECONDS),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "99999999999999"}, MAX_SECONDS),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


@pytest.mark.parametrize("value", [None, 0.0, 3.4, MAX_SECONDS])
def test_rate_limited_error_renders_a_whole_retry_after(value: float | None) -> None:
    error = UpstreamRateLimited("slow down", retry_after=value)
    header = error.headers.get("retry-after")
    assert header is None if value is None else header == str(round(value))
