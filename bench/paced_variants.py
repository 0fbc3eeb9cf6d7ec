"""Prototypes of cheaper per-event relaying, applied to the gateway at start, to measure what each saves.

    python bench/paced_variants.py no-inspect,lean-meter serve --policy bench/policies/everything.yaml ...

The first argument names the variants (comma-separated, ``baseline`` for none); the rest is the
``gateway`` command line. Nothing here is part of the gateway: each variant replaces one function of
the stream path in this process only, so ``bench/paced_profile.py`` can measure the gain of a change
before anyone makes it. Each prototype keeps what the relay must guarantee for money and the client
(usage read, cost exact, early leavers charged from counted text, every event forwarded as it arrives)
and says what it gives up:

- ``no-inspect``: the provider stops JSON-parsing every event to validate it (the relay parses again);
  only ``[DONE]`` is looked for. Gives up: a malformed content event reaches the client as is instead
  of ending the stream with an error.
- ``lean-meter``: the relay parses only events whose bytes can carry usage, a finish reason, an error or
  tool calls; text of the others is taken from the raw bytes (the JSON string, escapes left in: within
  the estimate's margin). Gives up nothing the relay reports; a content event that is not JSON is
  forwarded uncounted (as today).
- ``idle-watch``: the provider's stream reader arms no ``asyncio.timeout`` per read; one watchdog timer
  per stream checks the time of the last read and re-arms itself (the same idle and total timeouts).
- ``gc-freeze``: ``gc.freeze()`` once the app is built, so the cyclic collector's full collections do not
  walk the policy, the metrics registry and the imported modules again and again (a latency, not a
  per-event, change).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncGenerator, Callable


def _no_inspect() -> None:
    from gateway.providers import openai_compat

    def inspect_done_only(batch: bytes, name: str) -> bool:
        return b"[DONE]" in batch

    openai_compat._inspect = inspect_done_only


_PARSE_NEEDED = re.compile(rb'"usage":\s*\{|"finish_reason":\s*"|"error"|"tool_calls"|"function_call"|"text":')
_TEXT = re.compile(rb'"(?:content|reasoning_content|reasoning|refusal)":\s*"((?:[^"\\]|\\.)+)"')


def _lean_meter() -> None:
    from gateway.pipeline import stream_relay

    original = stream_relay.StreamRelay._meter

    def meter(self: stream_relay.StreamRelay, item: bytes) -> bytes:
        decoder = self._decoder
        if decoder._pending or not item.endswith(b"\n\n") or _PARSE_NEEDED.search(item) is not None:
            return original(self, item)
        if self.capture is not None:
            self.capture.add(item)
        texts = _TEXT.findall(item)
        if texts:
            self._pieces.extend(t.decode("utf-8", "replace") for t in texts)
            self._text_events += 1
        return item

    stream_relay.StreamRelay._meter = meter  # type: ignore[method-assign]


class _IdleWatch:
    """One timer per stream: fires at ``last read + idle`` (or the total deadline), re-arming itself while
    reads keep coming, and fails the connection's pending read with ``TimeoutError`` when it expires."""

    def __init__(self, conn, idle: float, deadline: float) -> None:  # noqa: ANN001 - http1._Connection
        self.loop = asyncio.get_running_loop()
        self.conn, self.idle, self.deadline = conn, idle, deadline
        self.last = time.monotonic()
        self.expired: str | None = None
        self.handle = self.loop.call_later(min(idle, max(0.001, deadline - self.last)), self.check)

    def check(self) -> None:
        now = time.monotonic()
        due = min(self.last + self.idle, self.deadline)
        if now < due:
            self.handle = self.loop.call_later(due - now, self.check)
            return
        self.expired = "total" if now >= self.deadline else "idle"
        self.conn._fail(TimeoutError())

    def cancel(self) -> None:
        self.handle.cancel()


def _idle_watch() -> None:
    from gateway.core.errors import UpstreamProtocolError, UpstreamTimeout
    from gateway.providers import openai_compat
    from gateway.providers.http1 import ConnectionClosed, MalformedResponse

    async def sse_events(resp, t, name: str, deadline: float) -> AsyncGenerator[bytes, None]:  # noqa: ANN001
        buffer = b""
        done = False
        watch = _IdleWatch(resp._conn, t.idle, deadline)
        try:
            while not done:
                try:
                    chunk = await resp.readany()
                except TimeoutError as exc:
                    if watch.expired == "total":
                        raise UpstreamTimeout(f"deployment {name!r} exceeded {t.total:g}s") from exc
                    raise UpstreamTimeout(f"deployment {name!r} stalled for {t.idle:g}s mid-stream") from exc
                except (ConnectionClosed, MalformedResponse) as exc:
                    raise UpstreamProtocolError(f"deployment {name!r} broke off the stream") from exc
                watch.last = time.monotonic()
                if not chunk:
                    break
                buffer += chunk
                end = openai_compat._last_boundary(buffer)
                if not end:
                    continue
                batch, buffer = buffer[:end], buffer[end:]
                done = openai_compat._inspect(batch, name)
                yield batch
            if not done:
                raise UpstreamProtocolError(f"deployment {name!r} ended the stream before [DONE]")
        finally:
            watch.cancel()
            if done:
                resp.release_when_complete()
            else:
                resp.close()

    openai_compat._sse_events = sse_events


def _gc_freeze() -> None:
    import gc

    from gateway import server

    build = server.app_from_env

    def app_from_env():  # noqa: ANN202 - an ASGI app
        app = build()
        gc.collect()
        gc.freeze()  # what exists after start-up is never scanned again by the cyclic collector
        return app

    server.app_from_env = app_from_env


VARIANTS: dict[str, Callable[[], None]] = {
    "baseline": lambda: None,
    "no-inspect": _no_inspect,
    "lean-meter": _lean_meter,
    "idle-watch": _idle_watch,
    "gc-freeze": _gc_freeze,
}


def apply(names: str) -> None:
    for name in names.split(","):
        VARIANTS[name.strip()]()


def app():  # noqa: ANN201 - an ASGI app
    """The gateway with ``$BENCH_VARIANTS`` applied: the factory granian imports in its worker."""
    import os

    apply(os.environ.get("BENCH_VARIANTS", "baseline"))
    from gateway.server import app_from_env

    return app_from_env()


def main() -> None:
    apply(sys.argv[1])
    from gateway.cli import main as gateway_main

    sys.exit(gateway_main(sys.argv[2:]))


if __name__ == "__main__":
    main()
