"""Finding 7: an upstream's answer must not cost the gateway without bound, and a legal stream must be read right.

- A 100 MB answer ends in a clear 502, and the gateway's peak RSS (``VmHWM``) grows by much less than
  the answer: it was never held whole.
- A 100 MB stream without a single blank line (one endless SSE event) is cut with an error, and
  ``/healthz`` keeps answering for every tenant meanwhile.
- An SSE stream whose events are separated by CRLF, as the SSE specification allows, is read right:
  the usage it carries is charged (cost > 0) and the usage event the client did not ask for is dropped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import ADMIN_KEY, assert_envelope, spend, wait_for, write_policy
from tests.raw_upstream import LAST_CHUNK, RawConnection, RawUpstream, chunk, chunked_head
from tests.recording_upstream import chat_stream

ANSWER_BYTES = 100 * 1024 * 1024
PIECE = 1024 * 1024
CRLF_WORDS = ["crlf", " separated", " events"]
MODELS = ("huge-answer", "endless-event", "crlf-stream", "crlf-batched")


async def _script(conn: RawConnection) -> None:
    while (request := await conn.read_request()) is not None:
        model = json.loads(request.body).get("model", "")
        if model == "huge-answer":
            head = b'{"id": "x", "object": "chat.completion", "choices": [], "padding": "'
            tail = b'"}'
            pad = ANSWER_BYTES - len(head) - len(tail)
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % ANSWER_BYTES
                            + head)
            for _ in range(pad // PIECE):
                await conn.send(b"a" * PIECE)
            await conn.send(b"a" * (pad % PIECE) + tail)
        elif model == "endless-event":
            await conn.send(chunked_head())
            line = b"data: " + b"x" * 1018 + b"\n"  # 1 KiB lines, never a blank one
            piece = line * 64
            for _ in range(ANSWER_BYTES // len(piece)):
                await conn.send(chunk(piece))
            await conn.send(LAST_CHUNK)
        else:  # "crlf-stream" / "crlf-batched": several events per write (as a busy server flushes them), or one per write
            events = [e for e in chat_stream(CRLF_WORDS, prompt_tokens=7, sep=b"\r\n\r\n") if isinstance(e, bytes)]
            writes = [b"".join(events[:2]), b"".join(events[2:])] if model == "crlf-batched" else events
            await conn.send(chunked_head())
            for data in writes:
                await conn.send(chunk(data))
            await conn.send(LAST_CHUNK)


@dataclass
class Setup:
    url: str
    pid: int


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A gateway per test: one left chewing on a hostile stream must not slow the next test down."""
    with RawUpstream(_script) as upstream:
        deployments = "".join(
            f"  {name}:\n    type: vllm\n    model: {name}\n    api_base: {upstream.api_base}\n    hosting: self\n"
            f"    price: {{input_per_mtok: 1000, output_per_mtok: 1000}}\n    retry: {{attempts: 1}}\n"
            f"    timeouts: {{first_byte: 60, idle: 60, total: 120}}\n"
            for name in MODELS)
        models = "".join(f"  {name}: {{deployments: [{name}]}}\n" for name in MODELS)
        policy = write_policy(tmp_path, f"name: unbounded\ndeployments:\n{deployments}models:\n{models}")
        with servers.gateway(policy, env={"GATEWAY_ADMIN_KEY": ADMIN_KEY}, log_path=tmp_path / "gw.log") as url:
            yield Setup(url, servers.process_of(url).pid)


def _memory_bytes(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or since the peak was last reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, so start-up's peak does not hide ours


def _ask(model: str, stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def test_a_100mb_answer_is_a_clear_502_and_memory_stays_bounded(setup: Setup) -> None:
    _reset_peak(setup.pid)
    before = _memory_bytes(setup.pid, "VmRSS")
    resp = httpx.post(f"{setup.url}/v1/chat/completions", json=_ask("huge-answer"), timeout=120)
    growth = _memory_bytes(setup.pid, "VmHWM") - before
    assert resp.status_code == 502, (f"a {ANSWER_BYTES / 2**20:.0f} MiB answer was relayed as {resp.status_code} "
                                     f"({len(resp.content)} bytes; the gateway's peak RSS grew by {growth / 2**20:.0f} MiB)")
    error = assert_envelope(resp, status=502)
    assert any(word in error["message"].lower() for word in ("large", "size", "limit", "bytes", "exceed")), error
    assert growth < 0.8 * ANSWER_BYTES, (
        f"the gateway's peak RSS grew by {growth / 2**20:.0f} MiB for a {ANSWER_BYTES / 2**20:.0f} MiB answer")


class _HealthProbe(threading.Thread):
    """Asks /healthz every 0.2 s while the main thread waits for the hostile stream."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float | None] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.done.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started if ok else None)
                time.sleep(0.2)


def test_a_stream_without_blank_lines_is_cut_and_healthz_answers_meanwhile(setup: Setup) -> None:
    probe = _HealthProbe(setup.url)
    probe.start()
    started = time.monotonic()
    status, body = 0, b""
    try:
        with httpx.stream("POST", f"{setup.url}/v1/chat/completions", json=_ask("endless-event", True),
                          timeout=30) as resp:
            status, body = resp.status_code, resp.read()
    except httpx.TimeoutException:
        pass
    finally:
        elapsed = time.monotonic() - started
        probe.done.set()
        probe.join(10)
    failed = sum(1 for x in probe.latencies if x is None)
    slowest = max((x for x in probe.latencies if x is not None), default=0.0)
    health = f"/healthz failed {failed} of {len(probe.latencies)} probes (5 s bound), slowest answer {slowest:.2f} s"
    assert status, f"no answer within 30 s to a stream of one endless event; {health}"
    if status == 200:  # cut after the first byte reached the client: a final SSE error event
        events = [e for e in body.split(b"\n\n") if e.strip()]
        assert events and b'"error"' in events[-1], f"the stream ended without an error event: {body[-300:]!r}"
    else:
        assert_envelope(httpx.Response(status, content=body), status=502)
    assert probe.latencies and failed == 0, f"{health} while the endless event was read ({elapsed:.1f} s)"


@pytest.mark.parametrize("batched", [True, False], ids=["events-batched", "event-per-write"])
def test_crlf_separated_events_keep_their_usage_and_drop_the_unasked_usage_event(setup: Setup, batched: bool) -> None:
    model = "crlf-batched" if batched else "crlf-stream"
    lines: list[str] = []
    charged_before = spend(setup.url, "deployment").get(model, 0.0)
    with httpx.stream("POST", f"{setup.url}/v1/chat/completions", json=_ask(model, True), timeout=30) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.strip()]
    payloads = [line[len("data:"):].strip() for line in lines if line.startswith("data:")]
    assert payloads[-1] == "[DONE]", lines[-3:]
    chunks = [json.loads(p) for p in payloads[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "".join(CRLF_WORDS), f"the content arrived: {text!r}"
    leaked = [c for c in chunks if c.get("usage")]
    assert not leaked, f"the client did not ask for usage but received: {leaked}"

    expected = (7 + len(CRLF_WORDS)) * 1000 / 1_000_000
    try:
        wait_for(lambda: spend(setup.url, "deployment").get(model, 0.0) > charged_before, timeout=5,
                 what="spend of the CRLF stream")
    except AssertionError:
        raise AssertionError(f"a CRLF-separated stream was charged nothing: {spend(setup.url, 'deployment')}") from None
    cost = spend(setup.url, "deployment")[model] - charged_before
    assert cost == pytest.approx(expected, rel=0.01), "charged the upstream's usage"
