"""The shapes the OpenAPI document describes: OpenAI's request and response bodies, the error envelope.

Documentation only: the proxy routes validate bodies by hand (``protocols/openai.py``, several times
cheaper than building these models per request) and forward unknown fields, so every model here allows
extra fields. What the document says must still be true: ``tests/api/test_openapi.py`` and the
schemathesis suite check the gateway's answers against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, in words a client can act on.")
    type: str = Field(description="OpenAI's error type: invalid_request_error, permission_error, requests, tokens, "
                      "insufficient_quota, server_error, upstream_error, timeout_error.")
    param: str | None = Field(default=None, description="The request field at fault, when there is one.")
    code: str | None = Field(default=None, description="A stable code, e.g. model_not_found, invalid_api_key, no_route.")


class ErrorEnvelope(BaseModel):
    """Every error the gateway returns, in OpenAI's envelope (so the SDKs raise their usual exceptions)."""

    error: ErrorDetail


# --- requests ----------------------------------------------------------------------------------------


class ContentPart(_Open):
    type: str = Field(description="`text`, `image_url`, `input_audio`, `file`...")


class InstructionMessage(_Open):
    """A system, developer or user message: its content is required."""

    role: Literal["system", "developer", "user"]
    content: str | list[ContentPart] = Field(description="Text, or content parts.")
    name: str | None = None


class ReplyMessage(_Open):
    """An assistant, tool or (legacy) function message: content may be null."""

    role: Literal["assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


ChatMessage = InstructionMessage | ReplyMessage


class StreamOptions(_Open):
    include_usage: bool | None = None


class FunctionSpec(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="A JSON schema.")


class FunctionTool(_Open):
    type: str = "function"
    function: FunctionSpec


class JsonSchemaSpec(_Open):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(_Open):
    type: Literal["text", "json_object"]


class JsonSchemaFormat(_Open):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonSchemaFormat


class ChatCompletionRequest(_Open):
    """OpenAI's chat completion request. Unknown fields are forwarded to OpenAI-compatible upstreams."""

    model: str = Field(min_length=1, description="A model name of the policy (`GET /v1/models`).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = Field(default=None, description="A string, or at most 4.")
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None


class CompletionRequest(_Open):
    """OpenAI's legacy completion request."""

    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    seed: int | None = None


class EmbeddingRequest(_Open):
    """OpenAI's embeddings request."""

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]] = Field(description="Text(s) or token ids, never empty.")
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


# --- answers -----------------------------------------------------------------------------------------


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int


class ChatChoice(_Open):
    index: int
    message: dict[str, Any] = Field(description="`role: assistant`, `content`, `tool_calls`, `refusal`.")
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Open):
    """A chat completion (with `stream: true`: `text/event-stream` of `chat.completion.chunk` events)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class Completion(_Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32 with "
                                         "`encoding_format: base64`.")


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class ExplainAnswer(BaseModel):
    """The routing decision the gateway would take, and the request facts it was taken on."""

    decision: dict[str, Any] = Field(description="Targets in order, every dropped candidate with its reason, "
                                     "the rules that fired, the objective, cache directive, requirements.")
    facts: dict[str, Any] = Field(description="Model, team, key name, data class, detected kinds of sensitive "
                                  "data, prompt tokens (estimated), features, stream.")


class ReloadAnswer(BaseModel):
    reloaded: bool
    message: str = Field(description="The active version, or the file's errors at file:line:column.")


class SpendAnswer(BaseModel):
    """USD spent in one UTC day or month, per key name, team and deployment."""

    period: Literal["day", "month"]
    date: str = Field(description="YYYYMMDD or YYYYMM.")
    key: dict[str, float]
    team: dict[str, float]
    deployment: dict[str, float]
    shadow: dict[str, float] = Field(description="Shadow evaluation, per deployment (shadow calls, similarity "
                                     "embeddings): never charged to a key or team.")


class ShadowPair(BaseModel):
    """One (model, primary, shadow) pair's evidence. A rate with nothing to count is null (no evidence)."""

    model: str
    primary: str
    shadow: str
    requests: int = Field(description="Sampled requests whose primary answered: compared + failed + dropped.")
    compared: int
    failed: int = Field(description="The shadow call failed (`failures` by error kind).")
    dropped: int = Field(description="Never sent (`drops` by reason: saturated, breaker_open, budget, queue_full, "
                         "same_deployment, rule_requirement, ...).")
    drops: dict[str, int]
    failures: dict[str, int]
    tool_call_requests: int
    tool_call_agreement: float | None = Field(description="Share of compared requests with tools whose answers "
                                              "called the same functions with equal (as JSON) arguments.")
    json_requests: int
    json_agreement: float | None = Field(description="Share of compared JSON requests where the shadow's answer "
                                         "was valid (against the request's schema) and equal as JSON.")
    json_valid_primary: float | None
    json_valid_shadow: float | None
    text_requests: int
    text_similarity_mean: float | None = Field(description="Mean token-F1 (or embedding cosine) of text answers.")
    length_ratio_mean: float | None = Field(description="Mean tokens of the shadow's text per token of the primary's.")
    refusal_rate_primary: float | None
    refusal_rate_shadow: float | None
    latency_ratio: float | None = Field(description="The shadow's total time over the primary's (ratio of sums).")
    primary_latency_ms_mean: float | None
    shadow_latency_ms_mean: float | None
    primary_ttft_ms_mean: float | None = Field(description="Streams only; shadows are called non-streamed.")
    cost_ratio: float | None = Field(description="What the shadow's answers cost over what the primary's cost.")
    primary_cost_usd: float
    shadow_cost_usd: float


class ShadowAnswer(BaseModel):
    """Shadow evaluation for a UTC day or month, every replica together."""

    period: Literal["day", "month"]
    date: str = Field(description="YYYYMMDD or YYYYMM.")
    model: str | None = Field(description="The model asked for (all models when absent).")
    pairs: list[ShadowPair]
    spend_usd: dict[str, float] = Field(description="What shadow work cost, per deployment.")
    spend_total_usd: float
    daily_budget_usd: float | None


class ReadyAnswer(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="`policy`, `redis` (`ok` or `degraded …`: still ready), `shutdown`.")


# --- Anthropic Messages and OpenAI Responses -----------------------------------------------------------


class AnthropicErrorDetail(BaseModel):
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, not_found_error, "
                      "request_too_large, rate_limit_error, api_error, timeout_error, overloaded_error.")
    message: str


class AnthropicErrorEnvelope(BaseModel):
    """Errors of `/v1/messages` come in Anthropic's envelope, so Anthropic's SDKs raise their usual exceptions."""

    type: Literal["error"]
    error: AnthropicErrorDetail
    request_id: str | None = None


class AnthropicMessage(_Open):
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]] = Field(description="Text, or blocks: text, image, document, tool_use, "
                                                "tool_result, thinking.")


class MessagesRequest(_Open):
    """Anthropic's Messages request."""

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage]
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class CountTokensRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[AnthropicMessage]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


class CountTokensAnswer(BaseModel):
    input_tokens: int = Field(description="The gateway's estimate of the prompt's tokens.")


class AnthropicUsage(_Open):
    input_tokens: int
    output_tokens: int


class MessagesAnswer(_Open):
    """A Message (with `stream: true`: `text/event-stream` of Anthropic's events, message_start … message_stop)."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: AnthropicUsage


class ResponsesRequest(_Open):
    """OpenAI's Responses request; stateless (`previous_response_id`, `conversation`, `background` refused)."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    store: bool | None = None


class ResponsesAnswer(_Open):
    """A Response (with `stream: true`: `text/event-stream` of response.* events)."""

    id: str
    object: Literal["response"]
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
