"""The request pipeline, the same for every entrance: authenticate → facts → budget → decide →
rate limit and cache → execute → respond → account.

``service.ProxyService`` orders the steps; ``call.Call`` is one request's working state;
``admission`` holds budgets, rate limits and the cache lookup; ``stream_relay`` relays an upstream
stream to the client; ``accounting`` records metrics, the access log, spend and cache fills after the
answer, where ``shadow_handoff`` passes a request sampled for shadow evaluation to ``gateway.shadow``;
``responses`` are the response objects that always account, whatever the client does.
"""
