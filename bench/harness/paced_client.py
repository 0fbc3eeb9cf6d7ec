"""The client side of the paced-stream phase: N streams open at once, every event timed on arrival.

Run as its own process: ``python paced_client.py CONFIG_JSON``; it prints one JSON object. Each of
``streams`` slots opens a keep-alive connection at its own moment within ``ramp`` seconds (so the
streams' tokens interleave as independent users' do, instead of arriving in lock-step), then asks for
one streamed chat completion after the other until ``duration`` has passed: N streams stay open the
whole time.

The pacing upstream (``paced_upstream.py``) writes ``t<index>@<ns>`` into each token's text (and
``r<ns>``, when the request arrived, into the first): with the arrival time of the read that
completed the event, on the same monotonic clock, the client knows per event

- **transit**: arrival minus departure (what the path between the upstream and the client adds);
- **added inter-token latency**: the gap between consecutive tokens at the client minus the same gap at
  the upstream (a proxy that holds an event back, or batches events, shows here);
- **added time to first token**: the client's time to first token minus the upstream's own (request
  arrival to first token), i.e. the request's way in plus the first token's way out.

Latency figures count events that arrive after the ramp (the steady state). A stream counts as failed
on a non-200 answer, a broken connection, a timeout, a missing ``[DONE]`` or a token missing or out of
order. One process, asyncio on uvloop, httptools' parser: a few µs per read (its own CPU time is
reported, to show the load side kept up).
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from array import array
from dataclasses import dataclass, field

import httptools

_STAMP = re.compile(rb"t(\d+)@(\d+)")
_ARRIVED = re.compile(rb" r(\d+) ")


@dataclass
class _Load:
    host: str
    port: int
    path: str
    body_template: str
    streams: int
    duration: float
    ramp: float
    headers: dict[str, str] = field(default_factory=dict)
    nonce_marker: str = "__NONCE__"
    run_nonce: str = "paced"
    stream_timeout: float = 120.0

    def payload(self, i: int) -> bytes:
        body = self.body_template.replace(self.nonce_marker, f"{self.run_nonce}-{i}").encode()
        head = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Totals:
    """What every stream adds to, kept compact (hundreds of thousands of events per run)."""

    def __init__(self, measure_from: int) -> None:
        self.measure_from = measure_from
        self.transit = array("q")
        self.itl = array("q")
        self.ttft_added = array("q")
        self.ttft_client = array("q")
        self.ok = self.events = self.reads = self.data_reads = 0
        self.errors: dict[str, int] = {}

    def fail(self, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one stream at a time."""

    def __init__(self, totals: _Totals) -> None:
        self.totals = totals
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.done: asyncio.Future[str] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._now = 0
        self._new_read = False

    def start(self, payload: bytes) -> asyncio.Future[str]:
        """Send one request; the future resolves to "" when the stream ended well, else why it did not."""
        self.done = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._carry = b""
        self._stamps: list[tuple[int, int, int]] = []  # (token index, sent ns, received ns)
        self._arrived = 0
        self._saw_done = False
        self.keep_alive = True
        self.sent = time.monotonic_ns()
        assert self.transport is not None
        self.transport.write(payload)
        return self.done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            return
        self.totals.reads += 1
        self._now = time.monotonic_ns()  # every event this read completes arrived now
        self._new_read = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._end("malformed HTTP")
            self.transport.close()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end("connection lost")

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()  # type: ignore[union-attr]
        if self._parser.get_status_code() != 200:  # type: ignore[union-attr]
            self._end(f"status {self._parser.get_status_code()}")  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        # Called per HTTP chunk: one socket read may hold several (a relay that coalesced events).
        now = self._now
        buf = self._carry + body if self._carry else body
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._carry = buf
            return
        chunk, self._carry = buf[: end + 2], buf[end + 2:]
        totals = self.totals
        if self._new_read:
            totals.data_reads += 1
            self._new_read = False
        totals.events += chunk.count(b"data:")
        stamps = self._stamps
        for m in _STAMP.finditer(chunk):
            stamps.append((int(m[1]), int(m[2]), now))
        if not self._arrived and (m := _ARRIVED.search(chunk)):
            self._arrived = int(m[1])
        if b"[DONE]" in chunk:
            self._saw_done = True

    def on_message_complete(self) -> None:
        if not self._saw_done:
            self._end("no [DONE]")
            return
        why = self._record()
        self._end(why)

    def _record(self) -> str:
        stamps, totals = self._stamps, self.totals
        if not stamps or not self._arrived:
            return "no stamped tokens"
        if any(index != i for i, (index, _, _) in enumerate(stamps)):
            return "tokens missing or out of order"
        first_sent, first_received = stamps[0][1], stamps[0][2]
        if first_received >= totals.measure_from:
            totals.ttft_client.append(first_received - self.sent)
            totals.ttft_added.append((first_received - self.sent) - (first_sent - self._arrived))
        previous = None
        for _, sent, received in stamps:
            if received >= totals.measure_from:
                totals.transit.append(received - sent)
                if previous is not None:
                    totals.itl.append((received - previous[1]) - (sent - previous[0]))
            previous = (sent, received)
        return ""

    def _end(self, why: str) -> None:
        self._parser = None
        if self.done is not None and not self.done.done():
            self.done.set_result(why)


class _Clients:
    def __init__(self, load: _Load) -> None:
        self.load = load
        self.loop = asyncio.get_running_loop()
        self.started = time.monotonic_ns()
        self.totals = _Totals(self.started + int(load.ramp * 1e9))
        self.count = 0

    async def _open(self) -> _Connection:
        _, conn = await self.loop.create_connection(lambda: _Connection(self.totals), self.load.host, self.load.port)
        return conn

    async def slot(self, k: int) -> None:
        load, totals = self.load, self.totals
        await asyncio.sleep(load.ramp * k / load.streams)
        end = self.started + int(load.duration * 1e9)
        conn: _Connection | None = None
        while time.monotonic_ns() < end:
            try:
                if conn is None or conn.closed or not conn.keep_alive:
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    conn = await self._open()
                self.count += 1
                why = await asyncio.wait_for(asyncio.shield(conn.start(load.payload(self.count))), load.stream_timeout)
            except TimeoutError:
                why = "timeout"
            except OSError as exc:
                why = f"connect: {exc.strerror or exc}"
                await asyncio.sleep(0.1)
            if why:
                totals.fail(why)
                if conn is not None and conn.transport is not None:
                    conn.transport.abort()
                conn = None
                await asyncio.sleep(0.2)  # a failing system is not stormed with retries
            else:
                totals.ok += 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    async def run(self) -> dict:
        await asyncio.gather(*(self.slot(k) for k in range(self.load.streams)))
        return _summary(self.totals, self.load, (time.monotonic_ns() - self.started) / 1e9)


def _percentiles(values: array, scale: float) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / scale, 3)

    return {"n": n, "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999),
            "max": round(ordered[-1] / scale, 3), "min": round(ordered[0] / scale, 3)}


def _summary(totals: _Totals, load: _Load, elapsed: float) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "streams": load.streams, "duration_s": load.duration, "ramp_s": load.ramp, "elapsed_s": round(elapsed, 3),
        "ok": totals.ok, "failed": sum(totals.errors.values()), "errors": totals.errors,
        "events": totals.events, "reads": totals.reads,
        "events_per_read": round(totals.events / totals.data_reads, 3) if totals.data_reads else None,
        "transit_us": _percentiles(totals.transit, 1e3),
        "added_itl_us": _percentiles(totals.itl, 1e3),
        "ttft_added_ms": _percentiles(totals.ttft_added, 1e6),
        "ttft_ms": _percentiles(totals.ttft_client, 1e6),
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
    }


def main() -> None:
    load = _Load(**json.loads(sys.argv[1]))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run() -> dict:
        return await _Clients(load).run()

    try:
        import uvloop

        result = uvloop.run(run())
    except ImportError:
        result = asyncio.run(run())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
