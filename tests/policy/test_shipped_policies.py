"""Every shipped policy passes its golden cases — in the pure engine, and end to end through the SDK,
where the route is read from the response headers and must agree with the explain endpoint."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.policy.loader import load_policy
from gateway.routing.golden import run_golden
from tests import servers

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
ALL = sorted(POLICY_DIR.glob("*.yaml"))
ROUTING = ["default.yaml", "cost-tiers.yaml", "sensitive-data.yaml", "latency-slo.yaml", "origin-restricted.yaml",
           "long-context-vision.yaml"]
_ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-[^}]*)?\}")


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_golden_cases_pass(path: Path) -> None:
    loaded = load_policy(path)
    assert loaded.policy.tests, f"{path.name} ships no golden cases"
    failures = [(r.case.name, r.problems) for r in run_golden(loaded.policy) if not r.passed]
    assert not failures


def _prepare(path: Path, sim_url: str, tmp: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A copy of the policy with a key per team, and env pointing every upstream at the simulator."""
    data = yaml.safe_load(path.read_text())
    env: dict[str, str] = {}
    for dep in data["deployments"].values():
        for var in _ENV_REF.findall(str(dep.get("api_base", ""))):
            env[var] = {"anthropic": sim_url, "gemini": f"{sim_url}/v1beta"}.get(dep["type"], f"{sim_url}/v1")
        for var in _ENV_REF.findall(str(dep.get("api_key", ""))):
            env[var] = "sk-upstream-test"
    secrets = {team: f"sk-test-{team}" for team in (data.get("teams") or {})}
    data["keys"] = [{"name": f"{team}-key", "team": team, "sha256": hashlib.sha256(s.encode()).hexdigest()}
                    for team, s in secrets.items()]
    if not secrets:
        secrets["default"] = "sk-test-default"
        data["keys"] = [{"name": "default-key", "team": "default", "sha256": hashlib.sha256(b"sk-test-default").hexdigest()}]
    out = tmp / path.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out, env, secrets


@pytest.mark.parametrize("name", ROUTING)
def test_routes_end_to_end_as_golden_cases_say(name: str, sim_url: str, tmp_path: Path) -> None:
    policy_path, env, secrets = _prepare(POLICY_DIR / name, sim_url, tmp_path)
    cases = [c for c in load_policy(POLICY_DIR / name).policy.tests if c.assume_prompt_tokens is None]
    assert cases
    with servers.gateway(policy_path, env=env, log_path=tmp_path / "gw.log") as url:
        for case in cases:
            key = secrets.get(case.team or "default") or next(iter(secrets.values()))
            headers = {"authorization": f"Bearer {key}", **case.headers}
            explained = httpx.post(f"{url}/v1/gateway/explain", json=case.request, headers=headers, timeout=30).json()
            expected = list(case.expect_targets) if case.expect_targets is not None else None
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, default_headers=case.headers)
            body = dict(case.request)
            model, messages = body.pop("model"), body.pop("messages")
            if expected == []:
                # The request itself cannot be served: a 400 (or a rule's 403) the SDK does not retry, never a 503.
                with pytest.raises((openai.BadRequestError, openai.PermissionDeniedError)) as refused:
                    client.chat.completions.create(model=model, messages=messages, extra_body=body)
                if isinstance(refused.value, openai.BadRequestError):
                    assert refused.value.code in ("no_compliant_deployment", "no_route_for_request",
                                                  "unsupported_capability"), case.name
                assert explained["decision"]["targets"] == [], case.name
                continue
            raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, extra_body=body)
            served = raw.headers["x-gateway-deployment"]
            primary = explained["decision"]["targets"][0]["deployment"]
            assert served == primary, f"{name} / {case.name}: explain said {primary}, served by {served}"
            want = case.expect_deployment or (expected[0] if expected else None)
            if want is not None:
                assert served == want, f"{name} / {case.name}"
            if case.expect_rule is not None:
                assert raw.headers["x-gateway-rule"] == case.expect_rule
            assert raw.parse().choices
