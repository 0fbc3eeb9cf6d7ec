"""Finding 1: a client that reads every content event of a stream and hangs up before the usage event
must pay no less than one that stays — in spend, against budgets, and against token rate limits.

The upstream streams twenty content events, the finish event, then holds the usage-only event back
for a while (as a busy server may): the early leaver is gone by the time usage would arrive. It
reports one token per content event and a prompt smaller than the gateway's own estimate, so a
gateway that counts what it relayed plus its prompt estimate charges at least what usage says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import ADMIN_KEY, assert_envelope, key_hash, spend, wait_for, write_policy
from tests.raw_upstream import RawRequest
from tests.recording_upstream import RecordingUpstream, Reply, chat_stream, default_reply

WORDS = [f" word{i}" for i in range(20)]
PROMPT_TOKENS = 5
PRICE_PER_TOKEN = 0.10
FULL_COST = (PROMPT_TOKENS + len(WORDS)) * PRICE_PER_TOKEN  # what the upstream bills for one answer
TOKENS_PER_MINUTE = 100_000
FIGURES = Path(__file__).resolve().parents[1] / "out" / "early-leave-figures.json"
BODY = {"model": "metered", "stream": True, "max_tokens": 400,
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]}


def _answer(request: RawRequest) -> Reply:
    body = json.loads(request.body)
    if not body.get("stream"):
        return default_reply(request)
    return Reply(events=chat_stream(WORDS, PROMPT_TOKENS, pause_before_usage=2.0), content_type="text/event-stream")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("early-leave")
    per_mtok = PRICE_PER_TOKEN * 1_000_000
    with RecordingUpstream(_answer) as upstream:
        policy = write_policy(tmp, f"""
name: early-leave
deployments:
  metered:
    type: openai
    model: metered-model
    api_base: {upstream.api_base}
    api_key: sk-upstream-metered
    hosting: vendor
    price: {{input_per_mtok: {per_mtok}, output_per_mtok: {per_mtok}}}
    retry: {{attempts: 1}}
models:
  metered: {{deployments: [metered]}}
teams:
  leavers: {{}}
  stayers: {{}}
  budgeted: {{budget: {{daily_usd: 5}}}}
keys:
  - {{name: leaver-key, team: leavers, sha256: {key_hash("sk-leaver")}, rate_limit: {{tokens_per_minute: {TOKENS_PER_MINUTE}}}}}
  - {{name: stayer-key, team: stayers, sha256: {key_hash("sk-stayer")}, rate_limit: {{tokens_per_minute: {TOKENS_PER_MINUTE}}}}}
  - {{name: budget-key, team: budgeted, sha256: {key_hash("sk-budget")}}}
""")
        env = {"GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_ACCESS_LOG": "true"}
        with servers.gateway(policy, env=env, log_path=tmp / "gateway.log") as url:
            yield url


def _leave_early(url: str, key: str) -> tuple[int, list[str]]:
    """Read every content event up to the finish event, then hang up. Returns (status, contents read)."""
    contents: list[str] = []
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}) as resp:
        if resp.status_code != 200:
            resp.read()
            return resp.status_code, contents
        for line in resp.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                contents.append(choice["delta"].get("content") or "")
                if choice.get("finish_reason"):
                    return 200, contents  # leaving the block closes the connection: the client is gone
    raise AssertionError("the stream ended without a finish event")


def _stay(url: str, key: str) -> list[str]:
    lines = []
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return lines


def _remaining_tokens(url: str, key: str) -> int:
    probe = {**BODY, "stream": False, "max_tokens": 1}
    resp = httpx.post(f"{url}/v1/chat/completions", json=probe, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return int(resp.headers["x-ratelimit-remaining-tokens"])


def test_a_client_that_leaves_before_usage_pays_no_less_than_one_that_stays(gateway: str) -> None:
    status, contents = _leave_early(gateway, "sk-leaver")
    assert status == 200 and "".join(contents) == "".join(WORDS), "the leaver read every content event"
    _stay(gateway, "sk-stayer")

    def both_charged() -> dict[str, float] | None:
        by_key = spend(gateway)
        return by_key if by_key.get("stayer-key") and by_key.get("leaver-key") else None

    try:
        by_key = wait_for(both_charged, timeout=15, what="spend recorded for both streams")
    except AssertionError:
        by_key = spend(gateway)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({"upstream_billed_usd": FULL_COST, "early_leaver_charged_usd": by_key.get("leaver-key", 0.0),
                                   "staying_client_charged_usd": by_key.get("stayer-key", 0.0)}, indent=2) + "\n")
    assert by_key.get("leaver-key"), f"spend after one full answer each: {by_key} (the leaver was charged nothing)"
    assert by_key["stayer-key"] == pytest.approx(FULL_COST, rel=0.01), "the staying client pays the upstream's usage"
    assert by_key["leaver-key"] >= by_key["stayer-key"] * 0.999, (
        f"an early leaver paid ${by_key['leaver-key']:.2f} for the same answer a staying client paid "
        f"${by_key['stayer-key']:.2f} for")

    # Token limits: the reservation for what was generated is not given back to the leaver.
    time.sleep(0.5)  # rate corrections are written behind
    leaver_left, stayer_left = _remaining_tokens(gateway, "sk-leaver"), _remaining_tokens(gateway, "sk-stayer")
    assert stayer_left < TOKENS_PER_MINUTE - len(WORDS), "the staying client's tokens were counted"
    assert leaver_left <= stayer_left, (
        f"after one identical answer each, the leaver has {leaver_left} tokens left this minute, the staying client "
        f"{stayer_left}: the leaver's generated tokens were given back")


def test_early_leavers_are_denied_once_their_budget_is_spent(gateway: str) -> None:
    """Eight early leavers against a $5/day budget at $0.10 a token (~$2.50 an answer)."""
    statuses: list[int] = []
    spent = 0.0
    for _ in range(8):
        before = spent
        status, _ = _leave_early(gateway, "sk-budget")
        statuses.append(status)
        if status == 429:
            break
        # Let the charge land (written behind) and the budget's one-second read cache expire.
        try:
            spent = wait_for(lambda b=before: (s := spend(gateway, "team").get("budgeted", 0.0)) > b and s,
                             timeout=4, what="the leaver's charge")
        except AssertionError:
            spent = spend(gateway, "team").get("budgeted", 0.0)
        time.sleep(1.2)
    assert spent >= 5.0 or 429 in statuses, (
        f"{len(statuses)} early-leaving streams of a $5/day team were all admitted and spend shows ${spent:.2f}: "
        "streams the upstream billed in full were not charged")
    assert statuses[-1] == 429, f"a team past its $5 budget (spent ${spent:.2f}) is still served: {statuses}"
    resp = httpx.post(f"{gateway}/v1/chat/completions", json=BODY, headers={"authorization": "Bearer sk-budget"}, timeout=30)
    assert assert_envelope(resp, status=429)["code"] == "insufficient_quota"
    assert statuses.count(200) <= 3, f"more answers than the budget pays for were served: {statuses}"
