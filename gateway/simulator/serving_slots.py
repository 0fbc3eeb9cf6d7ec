"""Serving slots: how many generations the simulated server runs at once, the queue behind them, and
the pages real model servers publish about it.

With ``slots`` set, a generation holds a slot from its first token to its last; further requests wait
in FIFO order, the way llama-server (``-np``), vLLM (``max_num_seqs``) and SGLang
(``max_running_requests``) defer them. The same counts are published under each server's own names, so
a load source of any type can be pointed at the simulator:

    GET /metrics   llamacpp:requests_processing, llamacpp:requests_deferred, llamacpp:kv_cache_usage_ratio,
                   vllm:num_requests_running, vllm:num_requests_waiting, vllm:kv_cache_usage_perc,
                   sglang:num_running_reqs, sglang:num_queue_reqs, sglang:token_usage
    GET /slots     llama-server's slot list (``id``, ``n_ctx``, ``is_processing``)
    GET /props     llama-server's ``total_slots``

KV-cache use is simulated as the share of busy slots. Without ``slots`` nothing waits, and the pages
report the generations under way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

import orjson

_N_CTX = 4096


class ServingSlots:
    def __init__(self, slots: int | None) -> None:
        self.slots = slots
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """A slot for the duration of the block (waiting for one first, if all are busy)."""
        if self.slots is not None and (self.running >= self.slots or self._waiters):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the releaser hands its slot over: ``running`` stays counted
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._release()  # handed a slot while being cancelled: pass it on
                raise
        else:
            self.running += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running = max(0, self.running - 1)

    def kv_usage(self) -> float:
        return min(1.0, self.running / self.slots) if self.slots else 0.0

    def metrics_page(self) -> bytes:
        running, waiting, kv = self.running, self.waiting, self.kv_usage()
        lines = []
        for name, value, help_ in (
            ("llamacpp:requests_processing", running, "Number of requests processing"),
            ("llamacpp:requests_deferred", waiting, "Number of requests deferred"),
            ("llamacpp:kv_cache_usage_ratio", kv, "KV-cache usage. 1 means 100 percent usage"),
            ('vllm:num_requests_running{model_name="simulator"}', running, "Number of requests in model execution batches"),
            ('vllm:num_requests_waiting{model_name="simulator"}', waiting, "Number of requests waiting to be processed"),
            ('vllm:kv_cache_usage_perc{model_name="simulator"}', kv, "KV-cache usage. 1 means 100 percent usage"),
            ('sglang:num_running_reqs{model_name="simulator"}', running, "The number of running requests"),
            ('sglang:num_queue_reqs{model_name="simulator"}', waiting, "The number of requests in the waiting queue"),
            ('sglang:token_usage{model_name="simulator"}', kv, "The token usage"),
        ):
            bare = name.partition("{")[0]
            lines += [f"# HELP {bare} {help_}", f"# TYPE {bare} gauge", f"{name} {float(value)}"]
        return ("\n".join(lines) + "\n").encode()

    def slots_page(self) -> bytes:
        """Busy slots hold a full context each, so the page agrees with ``kv_usage``."""
        count = self.slots or max(1, self.running)
        return orjson.dumps([
            {"id": i, "n_ctx": _N_CTX, "is_processing": i < self.running, "n_prompt_tokens": _N_CTX // 2,
             "next_token": [{"has_next_token": i < self.running, "n_decoded": _N_CTX // 2}]}
            for i in range(count)
        ])

    def props_page(self) -> bytes:
        return orjson.dumps({"total_slots": self.slots or 1, "default_generation_settings": {"n_ctx": _N_CTX}})
