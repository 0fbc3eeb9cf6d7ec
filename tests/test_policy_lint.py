from gateway.policy.loader import parse_policy
from gateway.routing.lint import unsatisfiable

POLICY = """
deployments:
  v: {type: openai, model: gpt-4o, hosting: vendor}
  s: {type: vllm, model: q, api_base: "http://127.0.0.1:1/v1", hosting: self}
models:
  vendor-only: {deployments: [v]}
  mixed: {deployments: [v, s]}
rules:
  - name: self-only
    when: {data_class: [restricted]}
    require: {hosting: self}
  - name: mixed-only-rule
    when: {model: [mixed]}
    require: {hosting: vendor}
"""


def test_unsatisfiable_models_are_reported() -> None:
    warnings = unsatisfiable(parse_policy(POLICY).policy)
    assert warnings == ["models.vendor-only: when rule 'self-only' applies, no deployment of this model complies (503 no_route)"]
