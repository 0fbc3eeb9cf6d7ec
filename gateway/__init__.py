"""An OpenAI-compatible model-routing gateway.

Application teams point the official ``openai`` SDK at the gateway; for each request it decides, by
policy, whether a self-hosted open model or a proprietary API serves it, by cost, measured latency
and rules, and says why.

Layers (imports point one way: app → api → routing → providers/state/metrics → policy → core):

- ``core``: plain types (RequestFacts, Decision, Usage) and the one error hierarchy.
- ``policy``: the policy document (pydantic, strict), its loader with file:line errors, hot reload.
- ``providers``: one small ``Provider`` protocol; OpenAI-compatible byte passthrough, the litellm
  adapter for other protocols, the in-process simulator; chosen by ``type`` in a lazy registry.
- ``routing``: request facts, the pure engine, live stats, breakers, the executor with retries and
  fallbacks, and the runtime that holds the active policy snapshot.
- ``metrics``: every Prometheus metric, defined once on a registry passed in.
- ``api``: the HTTP surface (FastAPI): validation, auth, SSE relay, error rendering.
- ``app``: ``create_app(settings)``, the composition root. ``cli``: the ``gateway`` command.
- ``simulator``: an OpenAI/Anthropic/Gemini-compatible upstream for tests, demos and benchmarks.
"""

__version__ = "0.1.0"
