"""Finding 6: slow clients must not starve everyone: ``/healthz`` answers while thousands of connections
dribble their request headers (or bodies) a line at a time.

The gateway runs with a file-descriptor limit of ``GATEWAY_FDS`` (set on its process with ``prlimit``:
the scenario of the finding, scaled down so that a test can reach the limit), and the attacker holds
more connections than that: whatever the gateway does, it cannot simply keep them all. Each attacking
connection sends a request head one header line every few seconds and never finishes it (or, in the
body variant, a complete head announcing a large body that then arrives a byte at a time); when the
gateway drops one, the attacker opens another, as a real slowloris does. Meanwhile a fresh connection
asks ``GET /healthz`` every quarter second, from a process of its own (``healthz_probe.py``).

Promise checked: every probe is answered 200 within a generous bound. Latencies, connection counts and
how many connections the gateway dropped are written to ``tests/out/slowloris-figures.json``; they are
figures for the note, never timed assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import servers

GATEWAY_FDS = 4096
ATTACKERS = 6000
LINE_EVERY_S = 4.0
HOLD_S = 20.0
PROBE_EVERY_S = 0.25
PROBE_BOUND_S = 5.0  # "answers": generous, not a latency target
OUT = Path(__file__).resolve().parents[1] / "out" / "slowloris-figures.json"
POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


@dataclass
class Attack:
    port: int
    mode: str
    open_now: int = 0
    opened: int = 0
    dropped_by_gateway: int = 0
    connect_failures: int = 0
    samples: list[int] = field(default_factory=list)
    stop: bool = False

    def first_bytes(self, i: int) -> bytes:
        if self.mode == "headers":
            return f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow-{i}: 0\r\n".encode()
        return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"content-length: 100000\r\n\r\n{\"model\": \"auto\", ")

    def next_bytes(self, i: int, n: int) -> bytes:
        return f"x-slow-{i}-{n}: {n}\r\n".encode() if self.mode == "headers" else b" "

    async def one(self, i: int) -> None:
        await asyncio.sleep(random.uniform(0, 2.0))  # spread the opening over two seconds
        while not self.stop:
            try:
                async with asyncio.timeout(3):
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except (OSError, TimeoutError):
                self.connect_failures += 1
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            self.open_now += 1
            try:
                writer.write(self.first_bytes(i))
                n = 0
                while not self.stop:
                    # Reading doubles as the wait: it returns early when the gateway hangs up on us.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LINE_EVERY_S * random.uniform(0.75, 1.25)):
                            if not await reader.read(4096):
                                raise ConnectionResetError("closed by the gateway")
                            raise ConnectionResetError("the gateway answered")
                    n += 1
                    writer.write(self.next_bytes(i, n))
                    await writer.drain()
            except (OSError, ConnectionError):
                if not self.stop:
                    self.dropped_by_gateway += 1
                await asyncio.sleep(0.5)
            finally:
                self.open_now -= 1
                writer.close()


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def _run(port: int, pid: int, mode: str) -> dict[str, object]:
    attack = Attack(port, mode)
    tasks = [asyncio.create_task(attack.one(i)) for i in range(ATTACKERS)]
    gateway_fds: list[int] = []
    await asyncio.sleep(3.0)  # let the attack build up
    # The probes run in a process of their own: from this loop they would time its backlog, not the gateway.
    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.adversarial.healthz_probe", str(port), str(HOLD_S), str(PROBE_EVERY_S),
        str(PROBE_BOUND_S), cwd=servers.ROOT, stdout=asyncio.subprocess.PIPE)
    deadline = time.monotonic() + HOLD_S
    while time.monotonic() < deadline:
        attack.samples.append(attack.open_now)
        gateway_fds.append(_open_fds(pid))
        await asyncio.sleep(PROBE_EVERY_S)
    output, _ = await prober.communicate()
    latencies: list[float | None] = json.loads(output)
    attack.stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    answered = sorted(x for x in latencies if x is not None)
    ms = [x * 1000 for x in answered]
    return {
        "mode": mode, "attacking_connections_target": ATTACKERS, "gateway_fd_limit": GATEWAY_FDS,
        "line_every_s": LINE_EVERY_S, "hold_s": HOLD_S,
        "attacker_open_median": int(statistics.median(attack.samples)) if attack.samples else 0,
        "attacker_open_max": max(attack.samples, default=0),
        "attacker_connections_opened": attack.opened, "dropped_by_gateway": attack.dropped_by_gateway,
        "attacker_connect_failures": attack.connect_failures,
        "gateway_open_fds_max": max(gateway_fds, default=0),
        "healthz": {
            "probes": len(latencies), "answered": len(answered), "failed": len(latencies) - len(answered),
            "p50_ms": round(statistics.median(ms), 2) if ms else None,
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2) if ms else None,
            "max_ms": round(max(ms), 2) if ms else None,
            "under_100ms": sum(1 for x in ms if x < 100),
        },
    }


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_healthz_answers_while_thousands_of_slow_clients_hold_connections(tmp_path: Path, mode: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs its thousands of sockets
    assert hard >= ATTACKERS + 1000, f"the test process may open only {hard} files; it needs {ATTACKERS + 1000}"
    try:
        with servers.gateway(POLICY, env={"GATEWAY_ACCESS_LOG": "false"}, log_path=tmp_path / "gw.log") as url:
            proc = servers.process_of(url)
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (GATEWAY_FDS, GATEWAY_FDS))
            port = int(url.rsplit(":", 1)[1])
            figures = asyncio.run(_run(port, proc.pid, mode))
            assert proc.poll() is None, "the gateway process died under the attack"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    existing[mode] = figures
    OUT.write_text(json.dumps(existing, indent=2) + "\n")
    health = figures["healthz"]
    assert isinstance(health, dict)
    assert health["failed"] == 0, (
        f"/healthz went unanswered {health['failed']} of {health['probes']} times (bound {PROBE_BOUND_S:g}s) while "
        f"{figures['attacker_open_median']} slow connections were held: {json.dumps(figures)}")
