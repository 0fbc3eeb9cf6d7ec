"""A raw-socket upstream for tests: a TCP server on loopback that runs a script per connection.

The gateway's upstream client is exercised byte by byte here, the way a misbehaving server would
talk to it: interim ``1xx`` answers, connections that die before or after a request, bodies that
never end, headers that stall. A script is a coroutine ``script(conn)`` run for every accepted
connection; ``conn.read_request()`` parses one HTTP/1.1 request (content-length bodies, which is what
the gateway sends) and ``conn.send`` writes bytes as given. The server runs its own event loop in a
background thread, so a gateway started as a subprocess and the test itself can both talk to it.

    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            await conn.send(http_response(200, b'{"ok": true}'))

    with RawUpstream(script) as upstream:
        ...  # api_base: upstream.api_base; what it saw: upstream.requests, upstream.open_connections
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

Script = Callable[["RawConnection"], Awaitable[None]]


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its values joined with ``, ``."""
    body: bytes
    connection: int
    """Number of the connection it arrived on (0 for the first accepted)."""


@dataclass
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int
    upstream: RawUpstream
    requests_seen: int = 0

    async def read_request(self) -> RawRequest | None:
        """The next request on this connection, or ``None`` when the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        length = int(headers.get("content-length", "0") or 0)
        try:
            body = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        request = RawRequest(method, path, headers, body, self.index)
        self.requests_seen += 1
        self.upstream.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_peer(self, within: float = 30.0) -> None:
        """Block until the client closes the connection (or ``within`` seconds pass): reads and discards."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass

    def close(self) -> None:
        self.writer.close()


@dataclass
class RawUpstream:
    script: Script
    requests: list[RawRequest] = field(default_factory=list)
    connections_total: int = 0
    open_connections: int = 0
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        index = self.connections_total
        self.connections_total += 1
        self.open_connections += 1
        conn = RawConnection(reader, writer, index, self)
        try:
            await self.script(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    def __enter__(self) -> RawUpstream:
        loop = self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def start() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024, limit=1 << 20)
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="raw-upstream", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the raw upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        if not loop.is_running():
            loop.close()
        self._loop = None


def http_response(status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] | dict[str, str] = (),
                  reason: str = "", content_type: str = "application/json") -> bytes:
    """One complete HTTP/1.1 response with a content-length."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    head = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
    if content_type:
        head.append(f"content-type: {content_type}")
    head += [f"{k}: {v}" for k, v in items]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def interim_response(status: int, headers: dict[str, str] | None = None) -> bytes:
    """A ``1xx`` informational response (no body): ``100 Continue``, ``103 Early Hints``."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Informational')}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked_head(status: int = 200, content_type: str = "text/event-stream") -> bytes:
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\ncontent-type: {content_type}\r\n"
            "transfer-encoding: chunked\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (``b""`` would end the body: use ``LAST_CHUNK`` for that)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"

_REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
