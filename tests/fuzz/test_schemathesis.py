"""Schemathesis against the gateway's own OpenAPI document (``/openapi.json``), in-process over ASGI.

The document is read from the app when the module is collected (schemathesis' lazy fixture loader does
not run under this pytest), so every operation, parameter and request-body schema the document gains is
fuzzed from then on without touching this file. Each
generated call is checked against the same property as the hypothesis suite (``properties.py``):
no 5xx but injected upstream faults, every error in OpenAI's envelope. Calls carry a team's key
(the admin endpoints the policy's admin key; unauthenticated traffic is the hypothesis suite's business); the document itself is fetched with
the admin key, which an installation that protects its docs requires and an open one ignores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from prometheus_client import CollectorRegistry
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.app import create_app
from gateway.settings import Settings
from tests.fuzz.properties import fuzz_settings, record, violation
from tests.fuzz.strategies import ADMIN_KEY, APP_KEY, FAULTY_MODELS, SETTINGS_ADMIN_KEY

POLICY = Path(__file__).with_name("policy.yaml")
SUITE = "schemathesis"
OPS_ROUTES = ("/healthz", "/readyz", "/metrics")


def _schema() -> Any:
    settings = Settings(policy=str(POLICY), admin_key=SETTINGS_ADMIN_KEY, access_log=False, policy_reload=False,
                        max_body_bytes=256 * 1024)
    app = create_app(settings, registry=CollectorRegistry())
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"authorization": f"Bearer {SETTINGS_ADMIN_KEY}"})


schema = _schema()


@schema.parametrize()
@fuzz_settings(0.3)
def test_the_openapi_document_operations_keep_the_property(case: schemathesis.Case) -> None:
    key = ADMIN_KEY if case.path.startswith(("/v1/gateway/spend", "/v1/gateway/reload")) else APP_KEY
    case.headers = {**(case.headers or {}), "authorization": f"Bearer {key}"}
    response = case.call()
    # Schemathesis's own checks: the status is one the document lists, the body matches its schema, the
    # content type is the documented one. Left out: "positive data acceptance" (a schema-valid request may
    # still be a 400 for what no schema can say: a model whose deployments cannot take it, for instance), and
    # "not a server error" on /readyz, whose 503 is documented (not ready, or draining).
    excluded = [positive_data_acceptance] + ([not_a_server_error] if case.path == "/readyz" else [])
    case.validate_response(response, excluded_checks=excluded)
    if case.path in OPS_ROUTES:
        return  # documented answers of their own (readiness may be 503 by design), not OpenAI's envelope
    headers = {name.lower(): value[0] if isinstance(value, list) else value for name, value in response.headers.items()}
    model = case.body.get("model") if isinstance(case.body, dict) else None
    fault = isinstance(model, str) and model in FAULTY_MODELS
    problem = violation(response.status_code, headers, response.content, fault_injected=fault,
                        anthropic=case.path.startswith("/v1/messages"))
    record(SUITE, response.status_code, problem, f"{case.method} {case.path}")
    assert problem is None, f"{case.method} {case.formatted_path} body={case.body!r:.600}\n  → {problem}"
