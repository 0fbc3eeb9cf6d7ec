"""Shadow evaluation: send a sample of live requests, after their primary has answered, to a second
deployment too, and compare the two answers — evidence that a self-hosted model is good enough before
traffic moves to it. The client never waits for, sees or pays for the shadow.

    routing/engine.py     decides per request (pure): sampled by a hash of the request id, held to the
                          request's hard requirements and the deployment's technical fit → Decision.shadow
    pipeline/             hands the finished primary (request shaping, answer, usage, timings) to the
                          runner where it accounts the request: ``runner.ShadowRunner.offer``
    runner.py             owns the work from there: bounded tasks and queue, drops by reason, the shadow
                          budget (``budget.py``), one non-streamed call (``call.py``), the comparison in
                          a worker thread, optional embedding similarity (``embedding.py``)
    answers.py            any API's answer (chat, completions, Messages, Responses; streamed or not) → one
                          ``Answer`` (text, tool calls, refusal)
    compare.py            pure comparison by what the request asked for: tool calls, JSON (``json_check``),
                          text (``similarity``), refusals (``refusal``)
    record.py             → ``gateway_shadow_*`` metrics, the shared tally (``state/shadow_tally.py``), one
                          access-log line (scores, never text)
    report.py             the tally → ``GET /v1/gateway/shadow`` (per pair: agreement, similarity, latency
                          and cost ratios); ``gateway policy simulate --shadow`` shows it next to savings
"""
