"""Open-loop load at a fixed rate: latency and time to first token, free of coordinated omission.

Run as its own process (so it can sit on its own core): ``python openloop.py CONFIG_JSON``; it prints
one JSON object. Request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones: it
takes an idle keep-alive connection or opens a new one, so a slow server never slows the schedule
down. Latency is measured from the due time, not from the moment the request went out, so any delay
of the sender itself is charged too (it is reported apart as ``send_lag``; the event loop's timers
have about 1 ms granularity, which is the same for every system and cancels against the floor).

Time to first token is the time until the first body bytes holding an SSE ``data:`` line arrive.
Plain HTTP/1.1 on asyncio protocols with httptools' parser: a few tens of microseconds per request.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

import httptools


@dataclass
class _Request:
    due: float
    sent: float = 0.0
    first_data: float = 0.0
    done: float = 0.0
    status: int = 0
    error: str = ""
    future: asyncio.Future | None = None


class _Connection(asyncio.Protocol):
    def __init__(self, idle: list[_Connection]) -> None:
        self._idle = idle
        self.transport: asyncio.Transport | None = None
        self.request: _Request | None = None
        self.closed = False
        self._parser = None
        self._tail = b""
        self._keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, payload: bytes, request: _Request) -> None:
        self.request, self._tail, self._keep_alive = request, b"", True
        self._parser = httptools.HttpResponseParser(self)
        request.sent = time.perf_counter()
        self.transport.write(payload)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"parse: {exc}")
            self.transport.close()  # type: ignore[union-attr]

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.request.status = self._parser.get_status_code()  # type: ignore[union-attr]
        self._keep_alive = self._parser.should_keep_alive()  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        req = self.request
        if req is not None and not req.first_data:
            if b"data:" in self._tail + body:
                req.first_data = time.perf_counter()
            self._tail = body[-5:]

    def on_message_complete(self) -> None:
        req, self.request, self._parser = self.request, None, None
        if req is None:
            return
        req.done = time.perf_counter()
        if self._keep_alive and not self.closed:
            self._idle.append(self)
        else:
            self.transport.close()  # type: ignore[union-attr]
        if req.future and not req.future.done():
            req.future.set_result(None)

    def _fail(self, why: str) -> None:
        req, self.request = self.request, None
        if req is not None:
            req.error = why
            if req.future and not req.future.done():
                req.future.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self in self._idle:
            self._idle.remove(self)
        self._fail(f"connection lost: {exc}" if exc else "connection closed")


@dataclass
class _Load:
    host: str
    port: int
    path: str
    rate: float
    duration: float
    body_template: str
    headers: dict[str, str] = field(default_factory=dict)
    nonce_marker: str = "__NONCE__"
    run_nonce: str = "run"
    warmup_requests: int = 20
    prewarm_connections: int = 8
    timeout: float = 30.0

    def payload(self, i: int) -> bytes:
        body = self.body_template.replace(self.nonce_marker, f"{self.run_nonce}-{i}").encode()
        head = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Generator:
    def __init__(self, load: _Load) -> None:
        self.load = load
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Connection] = []
        self.opened = 0

    async def _connection(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return await self._open()

    async def _open(self) -> _Connection:
        _, conn = await self.loop.create_connection(lambda: _Connection(self.idle), self.load.host, self.load.port)
        self.opened += 1
        return conn

    async def one(self, i: int, due: float) -> _Request:
        req = _Request(due=due, future=self.loop.create_future())
        try:
            conn = await self._connection()
            conn.send(self.load.payload(i), req)
            await asyncio.wait_for(asyncio.shield(req.future), self.load.timeout)
        except TimeoutError:
            req.error = "timeout"
        except OSError as exc:
            req.error = f"connect: {exc}"
        return req

    async def run(self) -> dict:
        load = self.load
        for _ in range(load.prewarm_connections):
            self.idle.append(await self._open())
        for i in range(load.warmup_requests):  # sequential, to warm the server's pools and caches
            await self.one(-1 - i, time.perf_counter())
        total = max(1, int(load.rate * load.duration))
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / load.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(self.loop.create_task(self.one(i, due)))
        results = await asyncio.gather(*tasks)
        elapsed = max(r.done for r in results) - start if any(r.done for r in results) else load.duration
        for conn in self.idle:
            conn.transport.close()  # type: ignore[union-attr]
        return _summary(results, load, elapsed, self.opened)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)
    n = len(values)

    def at(q: float) -> float:
        return round(values[min(n - 1, int(q * n))], 4)

    return {"n": n, "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(values[-1], 4), "mean": round(sum(values) / n, 4)}


def _summary(results: list[_Request], load: _Load, elapsed: float, opened: int) -> dict:
    ok = [r for r in results if not r.error and 200 <= r.status < 300]
    errors: dict[str, int] = {}
    for r in results:
        if r.error or not 200 <= r.status < 300:
            why = r.error.split(":")[0] if r.error else f"status {r.status}"
            errors[why] = errors.get(why, 0) + 1
    ms = 1000.0
    return {
        "rate": load.rate, "duration_s": load.duration, "sent": len(results), "ok": len(ok),
        "errors": errors, "achieved_rps": round(len(ok) / elapsed, 2) if elapsed > 0 else 0.0,
        "connections_opened": opened,
        "latency_ms": _percentiles([(r.done - r.due) * ms for r in ok]),
        "service_ms": _percentiles([(r.done - r.sent) * ms for r in ok]),
        "ttft_ms": _percentiles([(r.first_data - r.due) * ms for r in ok if r.first_data]),
        "send_lag_ms": _percentiles([(r.sent - r.due) * ms for r in results if r.sent]),
    }


async def _main(load: _Load) -> dict:
    return await _Generator(load).run()


def main() -> None:
    load = _Load(**json.loads(sys.argv[1]))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(_main(load))))


if __name__ == "__main__":
    main()
