"""Finding 5: the upstream connection pool must never hand one caller's answer to another, nor send a
request body twice.

A raw-socket upstream answers every request with one or more interim responses (``100 Continue``,
``103 Early Hints``, which HTTP/1.1 clients must accept before any final answer) and, a moment later,
the final answer, which quotes the request it answers. Four callers of four different teams ask in a
row and must each get the answer to their own request; with the response cache on, asking again must
give each the same own answer (nothing was stored under another request's key).

A second upstream reads a request on a reused connection in full and then drops the connection
without a byte of reply: the upstream has seen that body, so the gateway must not send it again behind
the policy's back (the deployment allows one attempt).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import assert_envelope, key_hash, metric, write_policy
from tests.raw_upstream import RawConnection, RawUpstream, http_response, interim_response
from tests.recording_upstream import chat_completion

TEAMS = ["red", "green", "blue", "gold"]


def _quoting_answer(body: bytes) -> bytes:
    request = json.loads(body)
    question = request["messages"][-1]["content"]
    return chat_completion(f"answer to: {question}")


def _interim_script(interims: list[int]):
    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            for status in interims:
                await conn.send(interim_response(status, {"link": "</style.css>; rel=preload"} if status == 103 else {}))
                await asyncio.sleep(0.05)  # the final answer comes later, as it does from a real server
            await conn.send(http_response(200, _quoting_answer(request.body)))
    return script


def _policy(tmp: Path, api_base: str, *, cache: bool, attempts: int = 2) -> Path:
    keys = "\n".join(f"  - {{name: {t}-key, team: {t}, sha256: {key_hash(f'sk-{t}')}}}" for t in TEAMS)
    teams = "\n".join(f"  {t}: {{}}" for t in TEAMS)
    return write_policy(tmp, f"""
name: interim
defaults:
  cache: {{enabled: {str(cache).lower()}, ttl_seconds: 60}}
deployments:
  upstream:
    type: vllm
    model: upstream-model
    api_base: {api_base}
    hosting: self
    retry: {{attempts: {attempts}, backoff_initial_ms: 1}}
    breaker: {{consecutive_failures: 1000, min_calls: 1000}}
models:
  auto: {{deployments: [upstream]}}
teams:
{teams}
keys:
{keys}
""", name=f"policy-{cache}-{attempts}.yaml")


def _ask(url: str, team: str, question: str) -> httpx.Response:
    body = {"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": question}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer sk-{team}"}, timeout=30)


def _answer_text(resp: httpx.Response) -> str:
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:300]}"
    return resp.json()["choices"][0]["message"]["content"]


@pytest.fixture(params=[[103], [100], [100, 103]], ids=["103", "100", "100+103"])
def interim_upstream(request: pytest.FixtureRequest) -> Iterator[RawUpstream]:
    with RawUpstream(_interim_script(request.param)) as upstream:
        yield upstream


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_each_caller_gets_the_answer_to_its_own_request(interim_upstream: RawUpstream, tmp_path: Path, cache: bool) -> None:
    with servers.gateway(_policy(tmp_path, interim_upstream.api_base, cache=cache), log_path=tmp_path / "gw.log") as url:
        for round_ in ("first", "again"):
            for team in TEAMS:
                question = f"what is the secret of team {team}?"
                resp = _ask(url, team, question)
                got = _answer_text(resp)
                assert got == f"answer to: {question}", (
                    f"{round_} round: team {team} asked {question!r} and got {got!r} "
                    f"(cache: {resp.headers.get('x-gateway-cache')})")


async def _dies_after_reading_on_reuse(conn: RawConnection) -> None:
    """Connection 0: answer the first request, read the second one in full, then drop the connection."""
    request = await conn.read_request()
    if request is None:
        return
    await conn.send(http_response(200, _quoting_answer(request.body)))
    if conn.index != 0:
        while (request := await conn.read_request()) is not None:
            await conn.send(http_response(200, _quoting_answer(request.body)))
        return
    if await conn.read_request() is not None:
        conn.close()  # the whole body arrived; no reply byte is ever sent


@pytest.mark.parametrize("attempts", [1, 2], ids=["one-attempt", "two-attempts"])
def test_a_body_the_upstream_has_read_is_not_sent_again_silently(tmp_path: Path, attempts: int) -> None:
    with RawUpstream(_dies_after_reading_on_reuse) as upstream, servers.gateway(
            _policy(tmp_path, upstream.api_base, cache=False, attempts=attempts), log_path=tmp_path / "gw.log") as url:
        assert _answer_text(_ask(url, "red", "first question")) == "answer to: first question"
        second = _ask(url, "green", "second question")
        third = _ask(url, "blue", "third question")
        seen = [json.loads(r.body)["messages"][-1]["content"] for r in upstream.requests]
        if attempts == 1:
            assert seen.count("second question") == 1, (
                f"the upstream received the second body {seen.count('second question')} times with one attempt "
                f"allowed (requests seen: {seen}); the client got {second.status_code}")
            assert_envelope(second)
            assert second.status_code in (502, 503, 504)
        else:
            # A retry the policy allows is an attempt the metrics count; nothing is sent behind their back.
            retries = metric(url, "gateway_retries_total", deployment="upstream")
            assert seen.count("second question") == 1 + retries, (
                f"the upstream received the second body {seen.count('second question')} times, the gateway counted "
                f"{retries:g} retries (requests seen: {seen})")
            if second.status_code == 200:
                assert _answer_text(second) == "answer to: second question"
        assert _answer_text(third) == "answer to: third question", "the next request is served on a fresh connection"
