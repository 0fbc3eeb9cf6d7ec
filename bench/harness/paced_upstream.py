"""The pacing upstream of the paced-stream phase: chat-completion streams at a model's pace, every
token event stamped with the moment it was written.

Run as its own process (so it can sit on its own core): ``python paced_upstream.py PORT``. It answers

- ``POST …/chat/completions``: a ``chat.completion.chunk`` stream, chunked, keep-alive: after
  ``ttft_ms`` a role event, then ``tokens`` content events ``1/tps`` apart (scheduled from the first,
  so the pace does not drift), then the finish event, the usage event and ``[DONE]``. Each write is one
  event, so a proxy reads each event on its own, as from a model server generating token by token;
- ``POST /pace`` with ``{"tokens", "tps", "ttft_ms"}``: the pace of the streams that start after it;
- ``GET /stats`` (``?reset=1`` to clear): streams served and aborted, events written, streams open now
  and at most at once, and the timer lag (how late events went out against their schedule: the
  upstream's own health under load);
- ``GET /healthz``.

The request body is not parsed (a proxy's work is what is measured, not ours). Each content event
carries ``t<index>@<monotonic ns when written>`` in its text, and the first one also
``r<monotonic ns when the request arrived>``: the clock is the machine's ``CLOCK_MONOTONIC``, the same
in every process, so the client compares each event's arrival with its departure, per event, whatever
a proxy in between re-encodes (only the text has to survive, which every OpenAI-compatible proxy
keeps). One asyncio protocol on uvloop with httptools' parser and one timer per event: a few µs per
event, measured by the harness (the floor row) so it is known never to be the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from array import array

import httptools

_PREFIX = (b'data: {"id":"chatcmpl-paced0000000000000000000001","object":"chat.completion.chunk",'
           b'"created":1732838400,"model":"paced-model","system_fingerprint":"fp_paced","choices":[')
_CONTENT_OPEN = _PREFIX + b'{"index":0,"delta":{"content":"'
_CONTENT_CLOSE = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
_ROLE = _PREFIX + b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
_FINISH = _PREFIX + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
_DONE = b"data: [DONE]\n\n"
_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
         b"transfer-encoding: chunked\r\n\r\n")
_LAG_SAMPLES = 1_000_000


def _usage(tokens: int) -> bytes:
    usage = {"prompt_tokens": 268, "completion_tokens": tokens, "total_tokens": 268 + tokens}
    return _PREFIX + b"]," + b'"usage":' + json.dumps(usage, separators=(",", ":")).encode() + b"}\n\n"


def _chunk(event: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(event), event)


class _State:
    """The pace of new streams and what was served; one per process."""

    def __init__(self) -> None:
        self.tokens, self.tps, self.ttft_s = 60, 20.0, 0.02
        self.usage = _usage(self.tokens)
        self.streams = self.aborted = self.events = self.open = self.max_open = 0
        self.lag_ns = array("q")

    def opened(self) -> None:
        self.open += 1
        self.max_open = max(self.max_open, self.open)

    def pace(self, tokens: int, tps: float, ttft_ms: float) -> None:
        if tokens < 1 or tps <= 0 or ttft_ms < 0:
            raise ValueError("tokens ≥ 1, tps > 0, ttft_ms ≥ 0")
        self.tokens, self.tps, self.ttft_s = tokens, tps, ttft_ms / 1000
        self.usage = _usage(tokens)

    def stats(self, reset: bool) -> dict:
        lag = sorted(self.lag_ns)
        n = len(lag)

        def at(q: float) -> float | None:
            return round(lag[min(n - 1, int(q * n))] / 1000, 1) if n else None

        out = {"streams": self.streams, "aborted": self.aborted, "events": self.events, "open": self.open,
               "max_open": self.max_open,
               "pace": {"tokens": self.tokens, "tps": self.tps, "ttft_ms": self.ttft_s * 1000},
               "lag_us": {"n": n, "p50": at(0.5), "p99": at(0.99), "p999": at(0.999),
                          "max": round(lag[-1] / 1000, 1) if n else None}}
        if reset:
            self.streams = self.aborted = self.events = 0
            self.max_open = self.open
            self.lag_ns = array("q")
        return out


class _Stream:
    """One paced answer on one connection: each event is written by its own timer callback."""

    __slots__ = ("conn", "arrived", "tokens", "interval", "start", "index", "handle", "usage")

    def __init__(self, conn: _Connection, state: _State, arrived: int) -> None:
        self.conn, self.arrived = conn, arrived
        self.tokens, self.interval, self.usage = state.tokens, 1.0 / state.tps, state.usage
        self.index = -1  # -1: the role event (with the first token right behind it)
        state.opened()
        loop = conn.loop
        self.start = loop.time() + state.ttft_s
        self.handle: asyncio.TimerHandle | None = loop.call_at(self.start, self.step)

    def step(self) -> None:
        conn, state = self.conn, self.conn.state
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        now = time.monotonic_ns()
        if len(state.lag_ns) < _LAG_SAMPLES:  # uvloop's clock has 1 ms steps: a lag under 1 ms reads as 0
            state.lag_ns.append(max(0, now - int((self.start + max(0, self.index) * self.interval) * 1e9)))
        if self.index < 0:
            transport.write(_HEAD + _chunk(_ROLE))
            text = b" r%d t0@%d" % (self.arrived, now)
            state.events += 1
            self.index = 0
        elif self.index < self.tokens:
            text = b" t%d@%d" % (self.index, now)
        else:
            transport.write(_chunk(_FINISH))
            transport.write(_chunk(self.usage))
            transport.write(_chunk(_DONE) + b"0\r\n\r\n")
            state.events += 3
            state.streams += 1
            state.open -= 1
            self.handle = None
            conn.stream = None
            return
        transport.write(_chunk(_CONTENT_OPEN + text + _CONTENT_CLOSE))
        state.events += 1
        self.index += 1
        self.handle = conn.loop.call_at(self.start + self.index * self.interval, self.step)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
            self.conn.state.aborted += 1
            self.conn.state.open -= 1


class _Connection(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.stream: _Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._reply(400, b"bad request\n", close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.transport = None

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        arrived = time.monotonic_ns()
        url, body = httptools.parse_url(self.url), b"".join(self.body)
        self.url, self.body = b"", []
        method, path = self.parser.get_method(), url.path
        if method == b"POST" and path.endswith(b"/chat/completions"):
            if self.stream is not None:  # a pipelined request while streaming: not something clients do
                self._reply(400, b"one stream at a time\n", close=True)
                return
            self.stream = _Stream(self, self.state, arrived)
        elif path == b"/healthz":
            self._reply(200, b"ok")
        elif path == b"/stats":
            self._reply(200, json.dumps(self.state.stats(reset=b"reset=1" in (url.query or b""))).encode())
        elif method == b"POST" and path == b"/pace":
            try:
                pace = json.loads(body)
                self.state.pace(int(pace["tokens"]), float(pace["tps"]), float(pace.get("ttft_ms", 20)))
            except (ValueError, KeyError, TypeError) as exc:
                self._reply(400, str(exc).encode())
                return
            self._reply(200, json.dumps(self.state.stats(reset=False)["pace"]).encode())
        else:
            self._reply(404, b"not found\n")

    def _reply(self, status: int, body: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        head = b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n%b\r\n" % (status, len(body), b"connection: close\r\n" if close else b"")
        self.transport.write(head + body)
        if close:
            self.transport.close()


def _raise_file_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(port: int) -> None:
    state = _State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(state), "127.0.0.1", port, backlog=16384)
    print(f"paced upstream on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    _raise_file_limit()
    try:
        import uvloop

        uvloop.run(_serve(int(sys.argv[1])))
    except ImportError:
        asyncio.run(_serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
