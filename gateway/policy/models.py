"""The policy document: deployments, client-facing models, teams and keys, rules, golden cases.

Every model rejects unknown keys. Field descriptions are the policy reference (``docs/policy-reference.md``
is generated from them by ``gateway policy schema``). Cross-references (a model naming a deployment that
does not exist, a key naming an unknown team) are checked in ``Policy._check_references``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gateway.policy.conditions import CAPABILITIES, Condition, DataClass, Requirement

ProviderType = Literal[
    "openai_compatible", "openai", "vllm", "sglang", "ollama", "llamacpp", "deepseek", "moonshot", "dashscope", "zhipu",
    "anthropic", "gemini", "litellm", "simulator",
]
"""Kept equal to ``providers.registry.PROVIDER_TYPES`` by a test (policy may not import providers)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens, or the cost of the GPUs behind a self-hosted deployment."""

    input_per_mtok: float | None = Field(default=None, ge=0, description="USD per million prompt tokens.")
    output_per_mtok: float | None = Field(default=None, ge=0, description="USD per million completion tokens.")
    gpu_hour_usd: float | None = Field(default=None, ge=0, description="Self-hosted: cost of the serving GPUs per hour.")
    tokens_per_second: float | None = Field(
        default=None, gt=0, description="Self-hosted: sustained aggregate throughput (all tokens) at that cost."
    )

    @model_validator(mode="after")
    def _complete(self) -> Price:
        per_token = self.input_per_mtok is not None or self.output_per_mtok is not None
        gpu = self.gpu_hour_usd is not None or self.tokens_per_second is not None
        if per_token and gpu:
            raise ValueError("give either input_per_mtok/output_per_mtok or gpu_hour_usd/tokens_per_second, not both")
        if gpu and (self.gpu_hour_usd is None or self.tokens_per_second is None):
            raise ValueError("gpu_hour_usd and tokens_per_second go together")
        return self

    def per_mtok(self) -> tuple[float, float]:
        """(input, output) USD per million tokens; GPU pricing spreads the hour over its throughput."""
        if self.gpu_hour_usd is not None and self.tokens_per_second:
            per_mtok = self.gpu_hour_usd / (self.tokens_per_second * 3600) * 1_000_000
            return per_mtok, per_mtok
        return self.input_per_mtok or 0.0, self.output_per_mtok or 0.0


class TimeoutSettings(_Strict):
    """Seconds."""

    connect: float = Field(default=5.0, gt=0, description="TCP/TLS connect.")
    first_byte: float = Field(default=60.0, gt=0, description="Until the response head and, for streams, the first event.")
    idle: float = Field(default=30.0, gt=0, description="Longest gap between two stream events.")
    total: float = Field(default=600.0, gt=0, description="Whole upstream call.")


class RetrySettings(_Strict):
    attempts: int = Field(default=2, ge=1, le=10, description="Tries on this deployment before falling back (1 = no retry).")
    backoff_initial_ms: float = Field(default=50, ge=0, description="First backoff; doubles each retry, with full jitter.")
    backoff_max_ms: float = Field(default=2000, ge=0, description="Cap on one backoff and on an honoured Retry-After.")


class HealthCheck(_Strict):
    """Probe the upstream in the background (OpenAI-compatible servers: ``GET <api_base>/models``)."""

    interval_seconds: float = Field(default=10, gt=0, description="Time between probes.")
    failures_to_open: int = Field(default=2, ge=1, description="Consecutive failed probes that open the breaker.")


class BreakerSettings(_Strict):
    """Closed → open after consecutive failures or a failure ratio; half-open probe after a pause."""

    consecutive_failures: int = Field(default=5, ge=1, description="Failures in a row that open the breaker.")
    failure_ratio: float = Field(default=0.5, gt=0, le=1, description="Failure share over the window that opens it.")
    window: int = Field(default=20, ge=2, description="Recent calls the ratio is computed over.")
    min_calls: int = Field(default=10, ge=1, description="Calls needed in the window before the ratio counts.")
    open_seconds: float = Field(default=10, gt=0, description="Pause before a half-open probe.")


class LatencyPrior(_Strict):
    """What the latency objective assumes before the deployment has been measured."""

    ttft_ms: float = Field(default=500, gt=0, description="Expected time to first token.")
    tokens_per_second: float = Field(default=50, gt=0, description="Expected output tokens per second.")


class Egress(_Strict):
    """How the gateway reaches an upstream: through which proxy, trusting which certificates.

    Applied the same way on both upstream paths (the OpenAI-compatible passthrough and litellm). Set
    under `defaults.egress` for every deployment; a deployment's own `egress` overrides it field by field.
    Certificate files are read when the policy loads (an unreadable one is a load error); a TLS failure
    is logged with its reason (`certificate verify failed: unable to get local issuer certificate`).
    `SSL_CERT_FILE` still works process-wide but *replaces* the system's CAs; `ca_bundle` adds to them.

    Worked example: an internal vLLM behind the company CA, vendor APIs through the egress proxy.

    ```yaml
    defaults:
      egress:
        proxy: http://egress.corp.example:3128      # every vendor call goes through the DLP proxy
    deployments:
      vllm-internal:
        type: vllm
        model: Qwen/Qwen2.5-72B-Instruct
        api_base: https://vllm.ml.corp.example/v1
        hosting: self
        egress:
          proxy: null                               # overrides the default: internal traffic goes direct
          environment_proxy: false                  # even if HTTPS_PROXY is set in the pod
          ca_bundle: /etc/gateway/company-ca.pem    # the company CA that signed vllm.ml.corp.example
          client_cert: /etc/gateway/gateway.pem     # if the vLLM ingress requires mutual TLS
          client_key: /etc/gateway/gateway-key.pem
      gpt-4o:
        type: openai
        model: gpt-4o
        api_key: ${OPENAI_API_KEY}
        hosting: vendor                             # inherits defaults.egress: through the proxy
    ```

    Without `defaults.egress`, `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment apply to both
    paths alike; `environment_proxy: false` opts a deployment out.
    """

    proxy: str | None = Field(default=None, description="Forward proxy for this upstream, e.g. `http://proxy.corp:3128` (HTTPS goes through it with CONNECT); `user:password@` in the URL is sent as Proxy-Authorization. Unset: the environment's proxy, if `environment_proxy` allows it.")
    environment_proxy: bool = Field(default=True, description="When `proxy` is unset, honour `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` from the environment (the litellm path does the same). `false`: connect directly.")
    ca_bundle: str | None = Field(default=None, description="PEM file of extra CA certificates trusted for this upstream, added to the system's store (e.g. the company CA in front of an internal vLLM).")
    client_cert: str | None = Field(default=None, description="PEM file of the client certificate for mutual TLS (may also hold the key).")
    client_key: str | None = Field(default=None, repr=False, description="PEM file of the client certificate's private key, when not in `client_cert`.")
    verify: bool = Field(default=True, description="Verify the upstream's TLS certificate. `false` is for tests only: it accepts any server.")

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Egress:
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        if self.proxy is not None and not self.proxy.startswith(("http://", "https://")):
            raise ValueError("proxy must be an http:// or https:// URL")
        return self


class ConnectionPool(_Strict):
    """Connections the passthrough path keeps to one upstream."""

    max_connections: int = Field(default=10_000, ge=1, description="Connections to this upstream at once, per worker (each request in flight, streams included, holds one); beyond it a request waits up to `timeouts.connect` for one to free, then falls back. A safety cap, as high as a worker's own client connections by default: to limit what an upstream is sent, set the deployment's `max_concurrency`, which spills at once instead of waiting.")
    idle_seconds: float = Field(default=60, gt=0, description="An idle kept-alive connection is closed after this long (keep it below the upstream's or a load balancer's own idle timeout).")


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class LoadSource(_Strict):
    """Where a self-hosted server publishes its own load. The gateway polls it and counts the server's
    queue into a deployment's expected latency, so it spills to the next target before a request would
    wait past its latency SLO (instead of learning of the queue from timeouts)."""

    type: Literal["llamacpp", "llamacpp_slots", "vllm", "sglang"] = Field(
        description="`llamacpp`: llama-server `/metrics` (start it with `--metrics`; slots come from `/props`); "
        "`llamacpp_slots`: llama-server `/slots` (busy slots only, no queue); `vllm`: vLLM `/metrics`; "
        "`sglang`: SGLang `/metrics` (start it with `--enable-metrics`)."
    )
    url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+", description="Full URL to poll; default: `api_base` without `/v1`, then `/metrics` (or `/slots`).")
    interval_seconds: float = Field(default=1.0, ge=0.05, le=60, description="Time between polls (one replica polls for all, through the shared state).")
    max_age_seconds: float = Field(default=10.0, gt=0, description="Readings older than this are ignored (the server is then assumed idle).")
    slots: int | None = Field(default=None, ge=1, description="Requests the server runs at once, when it does not say (vLLM `max_num_seqs`, SGLang `max_running_requests`).")


class Deployment(_Strict):
    """One upstream that can serve requests: where it is, what it costs, what it can do."""

    name: str = Field(default="", description="Filled in from the key under `deployments`.")
    type: ProviderType = Field(description="Provider: OpenAI-compatible passthrough (vllm, sglang, ollama, llamacpp, openai, deepseek, moonshot, dashscope, zhipu, openai_compatible), litellm (anthropic, gemini, litellm) or the in-process simulator.")
    model: str = Field(description="The model id the upstream expects.")
    api_base: str | None = Field(default=None, description="Base URL including `/v1` for OpenAI-compatible servers; defaults per type.")
    api_key: str | None = Field(default=None, repr=False, description="Upstream key, normally `${ENV_VAR}`. Never logged.")
    headers: dict[str, str] = Field(default_factory=dict, repr=False, description="Extra headers sent upstream.")
    params: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings: litellm kwargs (litellm types), simulator knobs, and for OpenAI-compatible types default body fields sent upstream (e.g. `{top_k: 20}`); a field the client sends itself wins.")
    hosting: Literal["self", "vendor"] = Field(description="`self`: runs on your infrastructure; `vendor`: a third-party API.")
    origin: str = Field(default="unknown", description="Where the model comes from (e.g. CN, US, EU).")
    region: str = Field(default="unknown", description="Where it is served (e.g. eu-west-1, on-prem).")
    price: Price = Field(default_factory=Price, description="Cost. A vendor deployment without one takes the price map's (`gateway/policy/price_map.json`); one that is in neither is a load error.")
    context_window: int = Field(default=8192, ge=1, description="Prompt plus output tokens the model accepts.")
    max_output_tokens: int | None = Field(default=None, ge=1, description="Cap on output tokens, if lower than the context window.")
    capabilities: tuple[Literal[CAPABILITIES], ...] = Field(  # type: ignore[valid-type]
        default=(), description="What it can do: tools, vision, json_schema, json_mode, logprobs, reasoning, embeddings."
    )
    endpoints: tuple[Literal["chat", "completions", "embeddings", "messages", "responses"], ...] = Field(
        default=("chat", "completions"), description="APIs it serves natively. `messages` (Anthropic Messages) and "
        "`responses` (OpenAI Responses) requests go through untouched to a deployment that lists them; any other "
        "deployment serving `chat` gets them translated to chat completions and back."
    )
    max_concurrency: int | None = Field(default=None, ge=1, description="In-flight requests allowed; beyond it requests spill to the next target.")
    queue_timeout_ms: float = Field(default=0, ge=0, description="When at max_concurrency, wait up to this long for a free slot before spilling.")
    health_check: HealthCheck | None = Field(default=None, description="Active health checks; failures open the circuit breaker.")
    load_source: LoadSource | None = Field(default=None, description="Self-hosted: where the server publishes its queue and KV-cache use, for load-aware routing.")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description="Circuit breaker thresholds.")
    latency_prior: LatencyPrior = Field(default_factory=LatencyPrior, description="Assumed latency until measured.")
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings, description="Upstream timeouts.")
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Retries on this deployment before falling back.")
    egress: Egress = Field(default_factory=Egress, description="Proxy and TLS settings; unset fields come from `defaults.egress`.")
    connections: ConnectionPool = Field(default_factory=ConnectionPool, description="Connection cap and idle expiry (OpenAI-compatible types).")
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024, description="Largest answer accepted from the upstream (a non-streamed body, or a stream's bytes in total); a larger one ends in a 502 and is never buffered whole. One stream event is also bounded by it (at most 4 MiB).")

    @field_validator("api_base", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `${VAR:-}` interpolates to "": treat it as "not configured", so defaults apply.
        return None if value == "" else value


class ShadowTarget(_Strict):
    """A deployment that also answers a sample of requests, after the primary and off the request path, so
    the two answers can be compared (`GET /v1/gateway/shadow`, the `gateway_shadow_*` metrics). The client
    never waits for, sees or pays for the shadow's answer; see docs/operations.md, "Shadow evaluation"."""

    deployment: str = Field(description="The deployment that answers in the shadow. It must serve every API the "
                            "model's deployments serve (natively, or `messages` and `responses` through `chat`); "
                            "a request's hard requirements (`require`) apply to it as to any target.")
    sample: float = Field(gt=0, le=1, description="Share of requests shadowed, 0 < sample ≤ 1. Chosen by a hash "
                          "of the request id: the same id is always shadowed or never (a client that sets "
                          "`x-request-id` chooses; the shadow budget bounds what that can cost).")


class ModelRoute(_Strict):
    """A model name clients may ask for, and the deployments that may serve it."""

    deployments: tuple[str, ...] = Field(min_length=1, description="Candidate deployments, in preference order for ties.")
    description: str = Field(default="", description="Free text shown to platform engineers.")
    objective: Literal["cost", "latency", "order"] | dict[str, float] | None = Field(
        default=None, description="Overrides the default objective for this model name."
    )
    owned_by: str = Field(default="gateway", description="Shown in `/v1/models`.")
    aliases: tuple[str, ...] = Field(
        default=(),
        description="Other names clients send for this model, such as dated variants (`claude-sonnet-4-20250514`) or the "
        "small model a coding client uses for background calls. A name with `*`, `?` or `[...]` is a glob pattern "
        "(`claude-sonnet-4-*`, `*haiku*`). Exact names (model names and exact aliases) are matched first, then "
        "patterns in the order the models are listed; rules, team model lists and metrics see the model's own name. "
        "Exact aliases are listed in `/v1/models`.",
    )
    shadow: ShadowTarget | None = Field(
        default=None, description="Shadow a sample of this model's requests to another deployment and compare the "
        "answers (a rule's `shadow` wins over this).",
    )


class RateLimit(_Strict):
    requests_per_minute: int | None = Field(default=None, ge=1, description="Requests admitted per minute.")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="Prompt plus output tokens per minute (estimated up front, corrected after).")


class Budget(_Strict):
    daily_usd: float | None = Field(default=None, gt=0, description="USD per UTC day.")
    monthly_usd: float | None = Field(default=None, gt=0, description="USD per UTC calendar month.")
    on_exceed: Literal["deny", "pace"] = Field(
        default="deny", description="`deny`: 429 once spent; `pace`: steer onto cheaper deployments from `pace_from` of the budget."
    )
    pace_from: float = Field(default=0.8, gt=0, le=1, description="Share of the budget from which pacing starts.")


class Team(_Strict):
    name: str = ""
    data_class: DataClass = Field(default="internal", description="Default data class of the team's requests.")
    models: tuple[str, ...] | None = Field(default=None, description="Model names the team may use (all when absent).")
    rate_limit: RateLimit | None = Field(default=None, description="Limits for the whole team.")
    budget: Budget | None = Field(default=None, description="Spend limits for the whole team.")


class ApiKey(_Strict):
    """A client API key. Only its SHA-256 is stored: `gateway keys hash` prints it."""

    name: str = Field(description="Shown in logs and metrics instead of the key.")
    team: str = Field(default="default", description="The team the key belongs to.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False, description="SHA-256 (hex) of the key.")
    rate_limit: RateLimit | None = Field(default=None, description="Limits for this key alone.")
    admin: bool = Field(default=False, description="May call the admin endpoints (spend, reload).")

    @staticmethod
    def hash(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()


class CacheSettings(_Strict):
    enabled: bool = Field(default=False, description="Serve repeated requests from the response cache.")
    ttl_seconds: int = Field(default=300, ge=1, description="How long an answer stays cached.")
    allow_nondeterministic: bool = Field(default=False, description="Also cache requests without temperature 0 or a seed.")


Objective = Literal["cost", "latency", "order"] | dict[str, float]


class Rule(_Strict):
    """When `when` matches, the effects apply. Requirements of every matching rule add up; for the other
    effects the first matching rule that sets one wins. `deny` stops routing at once."""

    name: str = Field(description="Shown in `x-gateway-rule`, logs and metrics.")
    description: str = Field(default="", description="Why the rule exists.")
    when: Condition = Field(default_factory=Condition, description="Conditions; empty matches every request.")
    require: Requirement | None = Field(default=None, description="Hard constraints on deployments (fail-closed on every hop).")
    deny: str | None = Field(default=None, description="Refuse the request with this reason (403).")
    objective: Objective | None = Field(default=None, description="`cost`, `latency`, `order`, or weights like {cost: 0.7, latency: 0.3}.")
    latency_slo_ms: float | None = Field(default=None, gt=0, description="Prefer deployments expected to finish within this; the cheapest of them first.")
    max_price_usd: float | None = Field(default=None, gt=0, description="Drop deployments whose expected request cost is above this.")
    fallback_outside_required: bool | None = Field(default=None, description="Fallbacks may leave the required set (never by default).")
    cache: CacheSettings | None = Field(default=None, description="Cache settings for matching requests.")
    expected_output_tokens: int | None = Field(default=None, ge=1, description="Assumed output length for cost and latency estimates.")
    shadow: ShadowTarget | Literal[False] | None = Field(
        default=None, description="Shadow matching requests to this deployment instead of the model's own shadow; "
        "`false`: never shadow them.",
    )


class ShadowSettings(_Strict):
    """Policy-wide settings of shadow evaluation (the shadows themselves are set per model or rule)."""

    daily_budget_usd: float | None = Field(
        default=None, gt=0, description="USD per UTC day that shadow calls (and the similarity embeddings) may cost "
        "together, across every replica; once spent, shadows are dropped (reason `budget`) until the next day.",
    )
    embedding_deployment: str | None = Field(
        default=None, description="A deployment serving `embeddings`: text answers are then compared by the cosine "
        "of their embeddings instead of token F1. Its cost counts as shadow spend.",
    )
    max_in_flight: int = Field(default=4, ge=1, description="Shadow calls under way at once, per process.")
    max_queued: int = Field(
        default=64, ge=0, description="Shadows waiting for a free place, per process; beyond it they are dropped "
        "(reason `queue_full`).",
    )


class Defaults(_Strict):
    objective: Objective = Field(default="cost", description="How candidates are ranked: `cost`, `latency`, `order` (as listed) or weights {cost: w, latency: w}.")
    expected_output_tokens: int = Field(default=256, ge=1, description="Assumed output length when a request sets no max.")
    cache: CacheSettings = Field(default_factory=CacheSettings, description="Response cache, unless a rule says otherwise.")
    max_fallbacks: int = Field(default=3, ge=0, description="Targets after the primary the executor may try.")
    token_estimate_margin: float = Field(
        default=0.25, ge=0, lt=1,
        description="How far the prompt-token estimate may be off, as a fraction. A deployment is dropped as "
        "`context_too_small` only when even the estimate less this margin does not fit its window; nearer the window "
        "it keeps its place and, should the upstream answer that the prompt is too long, the next target is tried. "
        "This errs towards the smaller-windowed, cheaper self-hosted models (the estimate follows OpenAI's tokenizer, "
        "within ~10% on English and code; Qwen and DeepSeek need about half as many tokens for Chinese).",
    )
    detect_sensitive_data: bool = Field(default=True, description="Scan prompts for personal data and secrets (raises the data class).")
    sensitive_data_class: DataClass = Field(default="confidential", description="Data class a request is raised to when sensitive data is found.")
    data_class_header: str = Field(default="x-data-class", description="Request header declaring the data class (it can raise the team's default, never lower it).")
    rate_limit_failure: Literal["open", "closed"] = Field(default="open", description="When shared state is unreachable: admit (open) or refuse (closed).")
    egress: Egress = Field(default_factory=Egress, description="Proxy and TLS settings of every deployment that does not set its own.")
    shadow: ShadowSettings = Field(default_factory=ShadowSettings, description="Shadow evaluation: its daily budget, similarity embeddings, bounds.")


class GoldenCase(_Strict):
    """A request and the routing the policy must produce for it (`gateway policy test`)."""

    name: str = Field(description="What the case shows.")
    request: dict[str, Any] = Field(description="Body of a chat completion request (model, messages, tools...).")
    team: str | None = Field(default=None, description="The caller's team.")
    key: str | None = Field(default=None, description="The caller's key name (implies its team).")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers, e.g. x-data-class.")
    expect_deployment: str | None = Field(default=None, description="The primary target.")
    expect_targets: tuple[str, ...] | None = Field(default=None, description="All targets in order (`[]`: no route).")
    expect_denied: bool = Field(default=False, description="A rule denies the request.")
    expect_rule: str | None = Field(default=None, description="The rule reported in x-gateway-rule.")
    assume_prompt_tokens: int | None = Field(
        default=None, ge=0, description="Use this prompt size instead of estimating it from the request (long-context cases)."
    )


class Policy(_Strict):
    """A whole routing policy, as loaded from one YAML file."""

    version: int = Field(default=1, description="Schema version of this document.")
    name: str = Field(default="policy", description="Shown in metrics (`gateway_policy_info`) and logs.")
    description: str = Field(default="", description="Free text: whom this policy serves.")
    reference_model: str | None = Field(default=None, description="Vendor deployment whose prices give the 'all-vendor' baseline for savings.")
    defaults: Defaults = Field(default_factory=Defaults, description="Policy-wide settings.")
    deployments: dict[str, Deployment] = Field(min_length=1, description="The catalog of upstreams, by name.")
    models: dict[str, ModelRoute] = Field(min_length=1, description="The model names clients may ask for.")
    teams: dict[str, Team] = Field(default_factory=dict, description="Teams, by name (`default` exists implicitly).")
    keys: tuple[ApiKey, ...] = Field(default=(), description="Client API keys; with none, the gateway is open (loopback only unless allowed).")
    rules: tuple[Rule, ...] = Field(default=(), description="Routing rules, in order.")
    tests: tuple[GoldenCase, ...] = Field(default=(), description="Golden cases: requests and the routing they must get.")
    _exact_names: dict[str, str] = PrivateAttr(default_factory=dict)
    _name_patterns: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    def resolve_model(self, name: str) -> str | None:
        """The key under `models` that serves the name a client sent, or None (see `ModelRoute.aliases`)."""
        found = self._exact_names.get(name)
        if found is not None:
            return found
        for pattern, model in self._name_patterns:
            if fnmatch.fnmatchcase(name, pattern):
                return model
        return None

    def exact_aliases(self, model: str) -> tuple[str, ...]:
        return tuple(a for a in self.models[model].aliases if not is_name_pattern(a))

    @field_validator("deployments", "teams", mode="before")
    @classmethod
    def _name_entries(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({**v, "name": k} if isinstance(v, dict) else v) for k, v in value.items()}
        return value

    @model_validator(mode="before")
    @classmethod
    def _inherit_egress(cls, data: Any) -> Any:
        """Each deployment's `egress` starts from `defaults.egress`; the fields it sets win."""
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults")
        inherited = defaults.get("egress") if isinstance(defaults, dict) else None
        deployments = data.get("deployments")
        if not isinstance(inherited, dict) or not inherited or not isinstance(deployments, dict):
            return data
        merged = {}
        for name, dep in deployments.items():
            own = dep.get("egress") if isinstance(dep, dict) else None
            if isinstance(dep, dict) and (own is None or isinstance(own, dict)):
                dep = {**dep, "egress": {**inherited, **(own or {})}}
            merged[name] = dep
        return {**data, "deployments": merged}

    @model_validator(mode="after")
    def _check_references(self) -> Policy:
        errors: list[str] = []
        for alias, route in self.models.items():
            for i, dep in enumerate(route.deployments):
                if dep not in self.deployments:
                    errors.append(f"models.{alias}.deployments.{i}: unknown deployment {dep!r}")
        known_teams = set(self.teams) | {"default"}
        for i, key in enumerate(self.keys):
            if key.team not in known_teams:
                errors.append(f"keys.{i}.team: unknown team {key.team!r}")
        for name, team in self.teams.items():
            for model in team.models or ():
                if model not in self.models:
                    errors.append(f"teams.{name}.models: unknown model {model!r}")
        if self.reference_model and self.reference_model not in self.deployments:
            errors.append(f"reference_model: unknown deployment {self.reference_model!r}")
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                errors.append(f"rules.{i}.name: duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        errors += self._check_shadows()
        errors += self._index_model_names()
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _check_shadows(self) -> list[str]:
        """Shadow deployments exist and can take what the model's deployments take."""
        errors: list[str] = []
        for name, route in self.models.items():
            shadow = route.shadow
            if shadow is None or shadow.deployment not in self.deployments:
                if shadow is not None:
                    errors.append(f"models.{name}.shadow.deployment: unknown deployment {shadow.deployment!r}")
                continue
            target = self.deployments[shadow.deployment]
            apis = {api for dep in route.deployments if dep in self.deployments for api in self.deployments[dep].endpoints}
            compared = apis - {"embeddings"}
            if not compared:
                errors.append(f"models.{name}.shadow: the model only serves embeddings, and embeddings of two models "
                              "cannot be compared")
            missing = sorted(api for api in compared if not serves_api(target, api))
            if missing:
                errors.append(f"models.{name}.shadow.deployment: {shadow.deployment!r} does not serve "
                              f"{', '.join(missing)}, which the model's deployments serve")
        for i, rule in enumerate(self.rules):
            if isinstance(rule.shadow, ShadowTarget) and rule.shadow.deployment not in self.deployments:
                errors.append(f"rules.{i}.shadow.deployment: unknown deployment {rule.shadow.deployment!r}")
        embedder = self.defaults.shadow.embedding_deployment
        if embedder is not None:
            if embedder not in self.deployments:
                errors.append(f"defaults.shadow.embedding_deployment: unknown deployment {embedder!r}")
            elif "embeddings" not in self.deployments[embedder].endpoints:
                errors.append(f"defaults.shadow.embedding_deployment: {embedder!r} does not serve embeddings "
                              "(add `embeddings` to its `endpoints`)")
        return errors

    def _index_model_names(self) -> list[str]:
        errors: list[str] = []
        exact = {name: name for name in self.models}
        patterns: list[tuple[str, str]] = []
        for model, route in self.models.items():
            for i, alias in enumerate(route.aliases):
                if not alias:
                    errors.append(f"models.{model}.aliases.{i}: empty name")
                elif is_name_pattern(alias):
                    patterns.append((alias, model))
                elif exact.setdefault(alias, model) != model:
                    errors.append(f"models.{model}.aliases.{i}: {alias!r} already names the model {exact[alias]!r}")
        self._exact_names = exact
        self._name_patterns = tuple(patterns)
        return errors


def serves_api(dep: Deployment, api: str) -> bool:
    """Whether ``dep`` takes requests of ``api``: natively, or Messages and Responses translated to chat."""
    return api in dep.endpoints or (api in ("messages", "responses") and "chat" in dep.endpoints)


def is_name_pattern(name: str) -> bool:
    """A model alias with glob syntax (matched with `fnmatch`, case-sensitive)."""
    return any(c in name for c in "*?[")
