"""Chaos suite: every fault the simulator can inject, under concurrent load, through the real gateway.

Assertions: every request is answered (nothing lost), either by a target the policy allowed or with
the correct OpenAI-shaped error; restricted requests are never answered by a vendor; streams end with
[DONE] or a final error event; no request, upstream call or socket is left behind; the burst
deployment's breaker opens and closes again. The run's figures are printed (pytest -s) and written
to tests/out/chaos-figures.json.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.conftest import POLICIES

FAULTY = ["m-5xx", "m-429", "m-refused", "m-hang", "m-stall", "m-truncate", "m-malformed", "m-drip", "m-burst"]
MID_STREAM_FAULTS = {"m-stall", "m-truncate"}  # fail after the first byte: an SSE error event is correct
REPEAT = 6
CONCURRENCY = 24


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _one(client: httpx.AsyncClient, model: str, stream: bool, restricted: bool) -> dict:
    headers = {"x-data-class": "restricted"} if restricted else {}
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": f"chaos {model}"}]}
    result = {"model": model, "stream": stream, "restricted": restricted}
    if not stream:
        resp = await client.post("/v1/chat/completions", json=body, headers=headers)
        result.update(status=resp.status_code, deployment=resp.headers.get("x-gateway-deployment"),
                      hosting=resp.headers.get("x-gateway-hosting"), fallbacks=resp.headers.get("x-gateway-fallbacks"))
        result["body"] = resp.json()
        return result
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
        result.update(status=resp.status_code, deployment=resp.headers.get("x-gateway-deployment"),
                      hosting=resp.headers.get("x-gateway-hosting"), fallbacks=resp.headers.get("x-gateway-fallbacks"))
        if resp.status_code != 200:
            result["body"] = json.loads(await resp.aread())
            return result
        result["events"] = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
    return result


async def _round(url: str) -> list[dict]:
    jobs = [(m, s, r) for m in FAULTY + ["m-allbad"] for s in (False, True) for r in (False, True)] * REPEAT
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async def guarded(job):
            async with sem:
                return await _one(client, *job)
        return await asyncio.gather(*(guarded(j) for j in jobs))


def _check(results: list[dict]) -> dict:
    figures = collections.Counter()
    errors = collections.Counter()
    for r in results:
        figures["sent"] += 1
        where = f"{r['model']} stream={r['stream']} restricted={r['restricted']}"
        if r["status"] == 200:
            figures["answered"] += 1
            assert r["deployment"] in ("good-self", "vendor") or r["deployment"].startswith("f-"), where
            if r["restricted"]:
                assert r["hosting"] == "self" and r["deployment"] != "vendor", f"misrouted: {where}"
            if r["fallbacks"]:
                figures["fallbacks"] += r["fallbacks"].count(",") + 1
            if r["stream"]:
                events = r["events"]
                assert events, where
                for e in events[:-1]:
                    json.loads(e[6:])
                last = events[-1]
                if last != "data: [DONE]":
                    error = json.loads(last[6:])["error"]
                    assert set(error) == {"message", "type", "param", "code"}, where
                    assert r["model"] in MID_STREAM_FAULTS or r["deployment"].startswith("f-"), where
                    errors[f"stream:{error['code']}"] += 1
                    figures["stream_errors"] += 1
            else:
                assert r["body"]["object"] == "chat.completion", where
        else:
            error = r["body"]["error"]
            assert set(error) == {"message", "type", "param", "code"}, where
            assert r["status"] in (429, 502, 503, 504), where
            assert r["model"] == "m-allbad", f"a fallback target was healthy, yet: {where} -> {r['status']}"
            errors[f"{r['status']}:{error['code']}"] += 1
            figures["http_errors"] += 1
    figures["lost"] = figures["sent"] - figures["answered"] - figures["http_errors"]
    return {"figures": dict(figures), "errors": dict(errors)}


@pytest.mark.slow
def test_chaos(sim_url: str, tmp_path: Path) -> None:
    env = {"SIM_URL": sim_url, "CLOSED_PORT": str(servers.free_port()), "GATEWAY_ACCESS_LOG": "false"}
    with servers.gateway(POLICIES / "chaos.yaml", env=env, log_path=tmp_path / "gw.log") as url:
        httpx.post(f"{sim_url}/sim/reset")
        pid = servers.process_of(url).pid
        breaker_states: list[float] = []
        stop = False

        async def watch_breaker() -> None:
            async with httpx.AsyncClient() as client:
                while not stop:
                    text = (await client.get(f"{url}/metrics")).text
                    breaker_states.append(_metric(text, "gateway_breaker_state", deployment="f-burst"))
                    await asyncio.sleep(0.05)

        async def run() -> tuple[list[dict], list[dict]]:
            nonlocal stop
            watcher = asyncio.ensure_future(watch_breaker())
            first = await _round(url)
            fds_after_first = _open_fds(pid)
            second = await _round(url)
            stop = True
            await watcher
            return first, second, fds_after_first

        started = time.monotonic()
        first, second, fds_after_first = asyncio.run(run())
        elapsed = time.monotonic() - started
        report = _check(first + second)

        # The burst deployment fails its first 12 calls: its breaker must have opened; once the
        # failures are spent, a half-open probe succeeds and it closes again.
        assert 2.0 in breaker_states, "breaker never opened"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            httpx.post(f"{url}/v1/chat/completions", json={"model": "m-burst", "messages": [{"role": "user", "content": "x"}]})
            if _metric(httpx.get(f"{url}/metrics").text, "gateway_breaker_state", deployment="f-burst") == 0.0:
                break
            time.sleep(0.1)
        metrics = httpx.get(f"{url}/metrics").text
        assert _metric(metrics, "gateway_breaker_state", deployment="f-burst") == 0.0, "breaker never closed"

        # Nothing left behind: no request or upstream call in flight, sockets not growing.
        time.sleep(0.5)
        metrics = httpx.get(f"{url}/metrics").text
        assert _metric(metrics, "gateway_in_flight_requests") == 0
        assert _metric(metrics, "gateway_upstream_in_flight_requests") == 0
        fds_end = _open_fds(pid)
        assert fds_end <= fds_after_first + 8, f"file descriptors grew from {fds_after_first} to {fds_end}"

        faults = httpx.get(f"{sim_url}/sim/stats").json()["faults"]
        report["figures"].update(
            faults_injected=sum(faults.values()), seconds=round(elapsed, 1),
            retries=_metric(metrics, "gateway_retries_total"), fallbacks_metric=_metric(metrics, "gateway_fallbacks_total"),
            misrouted=0, fds_after_round1=fds_after_first, fds_after_round2=fds_end,
        )
        report["faults_by_kind"] = faults
        out = Path(__file__).resolve().parents[1] / "out"
        out.mkdir(exist_ok=True)
        (out / "chaos-figures.json").write_text(json.dumps(report, indent=2))
        print("\nchaos figures:", json.dumps(report, indent=2))
        assert report["figures"]["lost"] == 0
        assert re.search(r"gateway_errors_total\{", metrics)
