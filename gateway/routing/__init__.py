"""Routing: request facts (``facts``), the pure engine (``engine``), live statistics (``stats``),
circuit breakers (``breaker``) and the executor that calls upstreams (``executor``)."""
