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
- ``push-relay``: after the first item, each upstream read is metered and written to the client from the
  upstream connection's ``data_received`` callback (the server's ``send`` coroutine driven by hand, a
  task only when the client's socket is full, which also pauses the upstream's reading), instead of
  waking the response task through the relay and the provider's async generator per event. Same
  metering, same checks, same timeouts (a watchdog per stream, as ``idle-watch``).
- ``gc-freeze``: ``gc.freeze()`` once the app is built, so the cyclic collector's full collections do not
  walk the policy, the metrics registry and the imported modules again and again (a latency, not a
  per-event, change).
- ``no-full-gc``: a diagnostic, not a candidate: the cyclic collector's oldest generation never runs, to
  see how much of the latency tail its full collections are.
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
    from gateway.providers.http1 import ConnectionClosed, MalformedResponse

    from gateway.core.errors import UpstreamProtocolError, UpstreamTimeout
    from gateway.providers import openai_compat

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


class _Push:
    """A stream in push mode: each upstream read is metered and written to the client from the upstream
    connection's ``data_received``, with no task woken, no future and no async generator per event. A
    send that has to wait (the client's socket is full) pauses the upstream's reading until it is done."""

    def __init__(self, relay, resp, name: str, send, idle: float, deadline: float) -> None:  # noqa: ANN001
        self.relay, self.resp, self.conn, self.name, self.send = relay, resp, resp._conn, name, send
        self.done = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.finished = False  # [DONE] seen: the stream ends with the response's last chunk
        self.blocked = None  # a send coroutine waiting on flow control
        self.pending: list[bytes] = []
        self.watch = _IdleWatch(self.conn, idle, deadline)

    def data(self, body: bytes) -> None:
        from gateway.core.errors import GatewayError
        from gateway.providers import openai_compat

        self.watch.last = time.monotonic()
        buffer = self.buffer + body if self.buffer else body
        end = openai_compat._last_boundary(buffer)
        if not end:
            self.buffer = buffer
            return
        batch, self.buffer = buffer[:end], buffer[end:]
        try:
            self.finished = openai_compat._inspect(batch, self.name) or self.finished
            item = self.relay._meter(batch)
        except GatewayError as exc:
            self._end(exc)
            return
        if item:
            self._send(item)

    def complete(self) -> None:
        from gateway.core.errors import UpstreamProtocolError

        if self.finished:
            self.conn.push = None
            self.resp.release()  # the response is complete: the connection goes back to the pool
            self.relay.ok = self.relay._done = True
            self._resolve()
        else:
            self._end(UpstreamProtocolError(f"deployment {self.name!r} ended the stream before [DONE]"))

    def failed(self, exc: BaseException) -> None:
        from gateway.core.errors import UpstreamProtocolError, UpstreamTimeout

        if isinstance(exc, TimeoutError):
            error = UpstreamTimeout(f"deployment {self.name!r} stalled mid-stream")
        else:
            error = UpstreamProtocolError(f"deployment {self.name!r} broke off the stream")
        self._end(error)

    def _end(self, error) -> None:  # noqa: ANN001 - a GatewayError
        from gateway.pipeline.responses import sse_error

        if self.done.done() or self.relay._done:
            return
        self.conn.push = None
        self.relay.error, self.relay._done = error, True
        self._send(sse_error(error))
        self._resolve()

    def _send(self, item: bytes) -> None:
        if self.blocked is not None:
            self.pending.append(item)
            return
        self._drive(self.send({"type": "http.response.body", "body": item, "more_body": True}))

    def _drive(self, coro) -> None:  # noqa: ANN001 - the server's send coroutine
        try:
            future = coro.send(None)
        except StopIteration:
            if self.blocked is not None:  # a send that waited has finished
                self.blocked = None
                if self.pending:
                    self._send(self.pending.pop(0))
                    return
                if self.conn.transport is not None:
                    self.conn.transport.resume_reading()
            self._resolve()
            return
        except BaseException as exc:  # noqa: BLE001 - the connection broke while writing
            if not self.done.done():
                self.done.set_exception(exc)
            return
        self.blocked = coro
        if self.conn.transport is not None:
            self.conn.transport.pause_reading()
        future.add_done_callback(lambda _: self._drive(coro))

    def _resolve(self) -> None:
        if self.relay._done and self.blocked is None and not self.pending and not self.done.done():
            self.done.set_result(None)


def _push_relay() -> None:
    import weakref

    from gateway.pipeline import responses, stream_relay
    from gateway.providers import http1, openai_compat

    conn_class = http1._Connection
    conn_class.push = None
    on_body, fail, complete = conn_class.on_body, conn_class._fail, conn_class.on_message_complete

    def push_on_body(self, body: bytes) -> None:  # noqa: ANN001
        if self.push is not None:
            self.push.data(body)
        else:
            on_body(self, body)

    def push_fail(self, exc: BaseException) -> None:  # noqa: ANN001
        fail(self, exc)
        if self.push is not None:
            self.push.failed(exc)

    def push_complete(self) -> None:  # noqa: ANN001
        complete(self)
        if self.push is not None:
            self.push.complete()

    conn_class.on_body, conn_class._fail, conn_class.on_message_complete = push_on_body, push_fail, push_complete

    streams: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    events = openai_compat._sse_events

    def sse_events(resp, t, name: str, deadline: float):  # noqa: ANN001, ANN202
        generator = events(resp, t, name, deadline)
        streams[generator] = (resp, t, name, deadline)
        return generator

    openai_compat._sse_events = sse_events
    call = responses.SSEResponse.__call__

    async def push_call(self, scope, receive, send) -> None:  # noqa: ANN001
        source = self.source
        if not isinstance(source, stream_relay.StreamRelay):
            await call(self, scope, receive, send)
            return
        sender = asyncio.current_task()
        gone = asyncio.Event()

        async def watch() -> None:
            message = await receive()
            while message["type"] != "http.disconnect":
                message = await receive()
            gone.set()
            if not source.read_on_after_client_left:
                sender.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        push = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            first = await source.__anext__()  # the first item, metered and sent as before
            await send({"type": "http.response.body", "body": first, "more_body": True})
            info = streams.get(source._upstream)
            if info is None or source._done:
                async for chunk in source:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                resp, t, name, deadline = info
                conn = resp._conn
                push = _Push(source, resp, name, send, t.idle, deadline)
                conn.push = push
                while conn.chunks and conn.push is push:  # what arrived while the first item was sent
                    push.data(conn.chunks.popleft())
                if conn.complete and conn.push is push:
                    push.complete()
                elif conn.error is not None and conn.push is push:
                    push.failed(conn.error)
                await push.done
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except StopAsyncIteration:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            sender.uncancel()
        except OSError:
            pass
        finally:
            if push is not None:
                push.conn.push = None
                push.watch.cancel()
            watcher.cancel()
            await source.close()

    responses.SSEResponse.__call__ = push_call


def _no_full_gc() -> None:
    import gc

    gc.set_threshold(700, 10, 1_000_000_000)  # a diagnostic, not a candidate: cycles would pile up


VARIANTS: dict[str, Callable[[], None]] = {
    "baseline": lambda: None,
    "no-inspect": _no_inspect,
    "lean-meter": _lean_meter,
    "idle-watch": _idle_watch,
    "gc-freeze": _gc_freeze,
    "no-full-gc": _no_full_gc,
    "push-relay": _push_relay,
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
