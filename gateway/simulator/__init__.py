"""A fake LLM upstream that speaks real wire protocols, for tests, demos and benchmarks.

No GPUs, no API keys, no network: the simulator answers deterministically, as fast or as slowly as
asked, and fails on demand. Two ways to use it, both producing the same bytes:

- ``server.py``: a real aiohttp HTTP server (``run_simulator``, ``start_simulator``,
  ``SimulatorServer``); point any OpenAI / Anthropic / Gemini client or the gateway at it.
  From a shell: ``gateway simulate --port 9000`` or ``python -m gateway.simulator --port 9000``.
- ``providers/simulated.py``: the ``simulator`` provider type, calling the core in-process.

Architecture: ``behaviour.Simulator.handle(method, path, headers, body) -> SimResponse`` routes a
request to a wire *dialect* (``openai_chat``, ``openai_completions``, ``openai_responses``,
``anthropic``, ``gemini``; ``embeddings`` apart), which parses it into a neutral
``generation.Prompt``; ``generation`` builds the deterministic ``Answer``; the dialect renders it
as a body or a list of SSE events;
``streaming.play`` paces the events and applies mid-stream faults. ``config`` resolves per-request
knobs, ``faults`` parses the fault grammar, ``ledger`` counts what was received.

Endpoints
---------
OpenAI (with or without the ``/v1`` prefix):
    POST /v1/chat/completions   chat.completion or chat.completion.chunk SSE + ``data: [DONE]``;
                                n, tools/tool_choice/parallel_tool_calls, response_format
                                (json_object, json_schema), stop, max_tokens /
                                max_completion_tokens, logprobs/top_logprobs, seed,
                                stream_options.include_usage
    POST /v1/completions        text_completion (streaming too; echo, logprobs, prompt arrays)
    POST /v1/embeddings         string / strings / token arrays; encoding_format float|base64;
                                dimensions; deterministic unit vectors
    POST /v1/responses          Responses API: ``response`` object, or its named SSE events
                                (response.created … response.completed / response.incomplete,
                                each with a sequence_number); input as a string or items
                                (messages, function_call, function_call_output), instructions,
                                function tools (hosted tools echoed, never run), tool_choice,
                                parallel_tool_calls, text.format json_schema / json_object,
                                max_output_tokens (status ``incomplete``), store; ``reasoning``
                                (effort not none) adds a reasoning item first, with a summary
                                and sealed encrypted_content when asked, and reasoning tokens.
                                Stateless: previous_response_id, conversation and background are
                                400s, item_reference and reasoning items without their
                                encrypted_content 404s. Checked as OpenAI checks: chat-shaped
                                messages or tools, a call without its output or an output
                                without its call, max_output_tokens < 16, altered
                                encrypted_content (invalid_encrypted_content)
    GET  /v1/models, /v1/models/{id}
Anthropic:  POST /v1/messages   Messages API incl. streaming event sequence and tool_use blocks
Gemini:     POST /v1beta/models/{model}:generateContent
            POST /v1beta/models/{model}:streamGenerateContent?alt=sse
            (also without ``/v1beta``, for ``api_base`` values that already carry it)
Simulator:  GET /health, /healthz · GET /sim/stats (counts by model and path, faults fired, each
            model's last request) · POST /sim/reset (clears stats and fail_first/flaky counters)
Load:       GET /metrics (llama.cpp, vLLM and SGLang load gauges), /slots, /props — see
            ``serving_slots``; with ``slots`` set, generations beyond it wait in line

Errors use each protocol's own shape: OpenAI ``{"error": {"message", "type", "param", "code"}}``
(with OpenAI's codes, e.g. ``previous_response_not_found``, ``integer_below_min_value``),
Anthropic ``{"type": "error", "error": {"type", "message"}}``, Gemini ``{"error": {"code",
"message", "status"}}``.

The answer
----------
Text is ``"Simulated answer from <model>: "`` followed by words drawn deterministically from the
model, the prompt text and ``seed``: same request, same answer. One token = one word; prompt tokens
are ``len(prompt text) / 4``. With tools (and tool_choice not "none", and the last message not
already a tool result / ``function_call_output``) the answer calls every tool (only the first when ``parallel_tool_calls`` is
false) with arguments generated from its JSON schema. ``response_format`` (Responses:
``text.format``) json_schema yields a document valid for the schema.

Knobs (server-wide keyword settings, see ``config.SimConfig``)
---------------------------------------------------------------
``ttft_ms`` (20), ``tokens_per_second`` (None: unpaced), ``output_tokens`` (16),
``embedding_dim`` (256), ``models`` (ids listed by /v1/models; any id is accepted), ``fault``
(default fault spec), ``seed``, ``api_key`` (require this key), ``max_hang_s`` (3600), ``slots``
(generations at once, None: unlimited),
``model_overrides`` ({model id: {ttft_ms, tokens_per_second, output_tokens, fault, variant}}),
``variant`` (0; N answers as another model would: text words drawn again, every number in tool
arguments and JSON documents N higher — see ``variants``).

Per request, by header: ``x-sim-ttft-ms``, ``x-sim-tps``, ``x-sim-output-tokens``, ``x-sim-fault``,
``x-sim-variant``.
Precedence: header > ``model_overrides[model]`` > fault keywords in the model name > server default.

Fault grammar (``x-sim-fault`` header, ``fault=`` settings; clauses joined by ``;``)
-----------------------------------------------------------------------------------
    status=<4xx|5xx>     answer with that error status (protocol's error shape)
    retry_after=<s>      add a Retry-After header to the error (e.g. ``status=429;retry_after=2``)
    message=<text>       error message text
    flaky[=<p>]          fail with ``status`` (default 503) with probability p (0.5); seeded per model
    fail_first=<n>       the first n requests per model fail with ``status`` (default 503), then
                         succeed; counted since start or the last POST /sim/reset
    hang                 never answer: hold the connection (up to max_hang_s, then drop it)
    hang_after=<n>       stream: send n events, then stall
    truncate_after=<n>   stream: send n events, then end the body cleanly without [DONE]
    reset                drop the connection without answering
    reset_after=<n>      stream: send n events, then drop the connection
    malformed            non-stream: body cut in half (invalid JSON); stream: first event's JSON cut
    malformed_after=<n>  stream: event number n (from 0) has its JSON cut, the rest are fine
    slow[=<tps>]         drip tokens at tps tokens/s (default 5)
    none                 no fault (overrides a default or model-name fault)
Unknown clauses are answered with 400, never ignored.

Through the ``simulator`` provider these surface as gateway errors: 429 → UpstreamRateLimited
(with retry_after), 503 and ``reset`` → UpstreamUnavailable, 504/408 and ``hang`` past the
first_byte timeout → UpstreamTimeout, other 5xx → UpstreamError, other 4xx → UpstreamStatusError,
``malformed`` and broken streams (truncate/reset/malformed_after) → UpstreamProtocolError, stalls
past the idle or total timeout → UpstreamTimeout.

Fault keywords in the model name (whole words between ``-`` ``_`` ``/`` ``:`` ``.``):
``error-503`` / ``fail-503`` / ``status-503`` (status=503), ``ratelimit`` (status=429;
retry_after=1), ``flaky`` (flaky=0.5), ``fail-first-2`` (fail_first=2), ``hang``, ``slow``,
``reset``, ``malformed``, ``truncate`` (truncate_after=3). E.g. model ``sim-fail-first-1``.
"""

from gateway.simulator.behaviour import Simulator
from gateway.simulator.config import SimConfig
from gateway.simulator.faults import Fault, parse_fault
from gateway.simulator.wire import CUT_CONNECTION, SimResponse

__all__ = ["CUT_CONNECTION", "Fault", "SimConfig", "SimResponse", "Simulator", "parse_fault"]
