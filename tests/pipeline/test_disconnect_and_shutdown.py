"""A client that goes away cancels the upstream call; shutdown drains in-flight streams."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests import servers

TICKS = 40  # the slow upstream's answer: 40 events, 50 ms apart (2 s)


class SlowUpstream:
    """An OpenAI-compatible upstream that answers slowly and records whether it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.finished = 0
        self.started = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.started += 1
        try:
            if not body.get("stream"):
                await asyncio.sleep(TICKS * 0.05)
                self.finished += 1
                return web.json_response(_completion())
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(TICKS):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                         "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                await asyncio.sleep(0.05)
            await resp.write(b"data: [DONE]\n\n")
            self.finished += 1
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise


def _completion() -> dict:
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "slow",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
def slow_upstream():
    upstream = SlowUpstream()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner = web.AppRunner(app, handler_cancellation=True)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield upstream, f"http://127.0.0.1:{port}/v1"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    if not loop.is_running():
        loop.close()


def _policy(tmp_path: Path, api_base: str) -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(f"""
name: slow
deployments:
  slow: {{type: vllm, model: slow, api_base: "{api_base}", hosting: self, retry: {{attempts: 1}}}}
models:
  slow: {{deployments: [slow]}}
""")
    return path


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_disconnect_cancels_upstream(slow_upstream, tmp_path: Path) -> None:
    upstream, api_base = slow_upstream
    log = tmp_path / "gw.log"
    with servers.gateway(_policy(tmp_path, api_base), log_path=log) as url:
        body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
        # Non-streamed: the client gives up while the upstream is still working.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.3)
        assert _wait(lambda: upstream.cancelled == 1), "the upstream call was not cancelled"
        # Streamed: the client reads a few events and hangs up.
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=5) as resp:
            for i, _ in enumerate(resp.iter_lines()):
                if i >= 4:
                    break
        assert _wait(lambda: upstream.cancelled == 2), "the upstream stream was not closed"
        assert upstream.finished == 0
        assert _wait(lambda: log.read_text().count('"outcome":"cancelled"') == 2)


def test_graceful_shutdown_drains_streams(slow_upstream, tmp_path: Path) -> None:
    upstream, api_base = slow_upstream
    with servers.gateway(_policy(tmp_path, api_base), log_path=tmp_path / "gw.log") as url:
        proc = servers.process_of(url)
        lines: list[str] = []
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

        def consume() -> None:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as resp:
                lines.extend(line for line in resp.iter_lines() if line)

        reader = threading.Thread(target=consume)
        reader.start()
        assert _wait(lambda: upstream.started == 1)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=1)  # no new connections while draining
        reader.join(10)
        assert lines[-1] == "data: [DONE]" and len(lines) == TICKS + 1, "the in-flight stream finished"
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean drain
