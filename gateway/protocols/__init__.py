"""Client-facing wire protocols, sans-io: parse and validate what a client sends, translate between
protocols, render answers. No sockets, no clocks; each module is tested with tables and golden shapes
(``tests/protocols/``). Imports: ``gateway.core`` and the standard library (plus orjson) only.

``openai``                          validation of OpenAI chat, completions and embeddings bodies
``anthropic_messages_validation``   an Anthropic Messages request checked as Anthropic checks it
``anthropic_messages_request``      Messages request → OpenAI chat request
``anthropic_messages_response``     chat completion → Message; usage; count_tokens body
``anthropic_messages_stream``       chat chunk stream → Messages event stream (incremental)
``anthropic_errors``                gateway errors in Anthropic's envelope and statuses
``openai_responses_validation``     a Responses request checked as OpenAI checks it; stateful features refused
``openai_responses_request``        Responses request → OpenAI chat request
``openai_responses_tools``          Responses tools (function, custom, namespace, hosted) ↔ chat functions
``openai_responses_response``       chat completion → Response object; usage
``openai_responses_stream``         chat chunk stream → Responses event stream (incremental)
``translation``                     what a translation dropped and clamped, and the target it was made for
``chat_chunks``                     the stream translators' input: chunks as dicts, SSE events or bytes
``sse_writer``                      one named SSE event out
"""
