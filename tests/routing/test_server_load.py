"""Reading the load pages of llama.cpp, vLLM and SGLang (routing/server_load.py), and the queue arithmetic
(routing/queueing.py): tables of real page shapes and of the odd-but-legal ones."""

from __future__ import annotations

import math

import pytest

from gateway.routing.queueing import queue_wait_ms
from gateway.routing.server_load import (
    LoadPageError,
    ServerLoad,
    kv_usage_from_slots,
    prometheus_samples,
    read_page,
    total_slots_from_props,
)

# The shape llama-server's /metrics renders (tools/server/server-task.cpp, to_metrics): HELP, TYPE, bare value.
LLAMACPP_PAGE = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1234
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 118.5
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 4
"""

VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 30.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 28.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.91
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.42
vllm:iteration_tokens_total_bucket{le="1.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.0
"""

VLLM_V0_PAGE = """\
vllm:num_requests_running{model_name="m"} 1.0
vllm:num_requests_waiting{model_name="m"} 0.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
"""

SGLANG_PAGE = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",tp_rank="0"} 12.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",tp_rank="0"} 5.0
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",tp_rank="0"} 0.28
"""


@pytest.mark.parametrize("kind, page, expected", [
    ("llamacpp", LLAMACPP_PAGE, ServerLoad(2, 4, None, None, 7.0)),
    ("vllm", VLLM_PAGE, ServerLoad(58, 3, None, 0.91, 7.0)),  # engines summed; the fullest cache counts
    ("vllm", VLLM_V0_PAGE, ServerLoad(1, 0, None, 0.25, 7.0)),
    ("sglang", SGLANG_PAGE, ServerLoad(12, 5, None, 0.28, 7.0)),
    ("llamacpp_slots", b'[{"id":0,"n_ctx":2048,"is_processing":true},{"id":1,"n_ctx":2048,"is_processing":false}]',
     ServerLoad(1, 0, 2, 0.0, 7.0)),
])
def test_each_server_page_reads_as_load(kind: str, page: str | bytes, expected: ServerLoad) -> None:
    body = page.encode() if isinstance(page, str) else page
    assert read_page(kind, body, at=7.0) == expected


# llama-server's /slots as it answers (fields trimmed): slot 1 busy with a 41-token prompt, 983 tokens generated;
# slot 0 idle though it keeps an earlier prompt cached.
SLOTS_PAGE = b"""[
 {"id":0,"n_ctx":2048,"speculative":false,"is_processing":false,"id_task":12,"n_prompt_tokens":900,
  "next_token":[{"has_next_token":false,"n_remain":-1,"n_decoded":100}]},
 {"id":1,"n_ctx":2048,"speculative":false,"is_processing":true,"id_task":43,"n_prompt_tokens":41,
  "params":{"n_predict":2000},"next_token":[{"has_next_token":true,"has_new_line":false,"n_remain":1017,"n_decoded":983}]}
]"""


@pytest.mark.parametrize("body, expected", [
    (SLOTS_PAGE, (41 + 983) / 4096),
    (b'[{"id":0,"n_ctx":2048,"is_processing":true}]', 0.0),               # just started: nothing counted yet
    (b'[{"id":0,"n_ctx":0,"is_processing":true,"n_prompt_tokens":5}]', None),  # no context size to compare with
    (b'[{"id":0,"n_ctx":10,"is_processing":true,"n_prompt_tokens":50}]', 1.0),
    (b'[{"id":0,"n_ctx":100,"is_processing":true,"n_prompt_tokens":"50","next_token":"x"}]', 0.0),
])
def test_kv_usage_from_slots(body: bytes, expected: float | None) -> None:
    usage = kv_usage_from_slots(body)
    assert usage == pytest.approx(expected) if expected is not None else usage is None


def test_slot_count_given_by_the_policy_is_kept() -> None:
    assert read_page("llamacpp", LLAMACPP_PAGE.encode(), at=0.0, slots=2).slots == 2


@pytest.mark.parametrize("kind, page", [
    ("llamacpp", "# nothing here\n"),                       # llama-server started without --metrics serves no gauges
    ("llamacpp", VLLM_PAGE),                                 # a vLLM page named as llama.cpp
    ("vllm", LLAMACPP_PAGE),
    ("sglang", VLLM_PAGE),
    ("vllm", "vllm:num_requests_running 1\n"),              # half a page: waiting is missing
    ("llamacpp_slots", '{"error": {"code": 501, "message": "This server does not support slots endpoint."}}'),
    ("llamacpp_slots", "[1, 2]"),
    ("llamacpp_slots", "not json"),
    ("ollama", LLAMACPP_PAGE),
])
def test_a_page_of_another_kind_is_an_error_not_an_idle_server(kind: str, page: str) -> None:
    with pytest.raises(LoadPageError):
        read_page(kind, page.encode(), at=0.0)


def test_odd_but_legal_exposition_lines() -> None:
    page = "\n".join([
        'vllm:num_requests_running{model_name="a b} c",engine="0"} 2 1712345678000',  # '}' inside a label, timestamp
        "vllm:num_requests_running_total 99",                    # a longer name sharing the prefix
        "vllm:num_requests_waiting NaN",                         # not a number a queue can have
        "vllm:num_requests_waiting +Inf",
        "vllm:num_requests_waiting 1e1",
        "vllm:num_requests_waiting",                             # no value
        "vllm:num_requests_waiting{broken 3",                    # unterminated labels
        "   ",
        "# TYPE vllm:num_requests_waiting gauge",
    ])
    samples = prometheus_samples(page, ["vllm:num_requests_running", "vllm:num_requests_waiting"])
    assert samples == {"vllm:num_requests_running": [2.0], "vllm:num_requests_waiting": [10.0]}


def test_kv_usage_outside_0_to_1_is_clamped() -> None:
    page = "sglang:num_running_reqs 1\nsglang:num_queue_reqs 0\nsglang:token_usage 7\n"
    assert read_page("sglang", page.encode(), at=0).kv_cache_usage == 1.0


@pytest.mark.parametrize("body, slots", [
    (b'{"total_slots": 2, "default_generation_settings": {}}', 2),
    (b'{"total_slots": 0}', None), (b'{"total_slots": true}', None), (b'{"total_slots": "2"}', None),
    (b"[]", None), (b"<html>", None),
])
def test_total_slots_from_props(body: bytes, slots: int | None) -> None:
    assert total_slots_from_props(body) == slots


@pytest.mark.parametrize("raw", [
    None, [], "x", {"running": 1}, {"running": "a", "waiting": 0, "at": 1}, {"running": -1, "waiting": 0, "at": 1},
    {"running": float("nan"), "waiting": 0, "at": 1}, {"running": 1, "waiting": 0, "at": 1, "slots": "two"},
])
def test_a_shared_reading_from_another_replica_is_checked(raw: object) -> None:
    assert ServerLoad.from_dict(raw) is None


def test_a_reading_survives_the_trip_through_shared_stats() -> None:
    load = ServerLoad(3, 1, 4, 0.5, 1712345678.25)
    assert ServerLoad.from_dict(load.to_dict()) == load


@pytest.mark.parametrize("busy, slots, running, waiting, service, expected", [
    (0, 2, 0, 0, 1000, 0.0),          # idle
    (1, 2, 1, 0, 1000, 0.0),          # a slot is free
    (2, 2, 2, 0, 1000, 500.0),        # full: the next of 2 slots frees in ~service/2
    (5, 2, 2, 3, 1000, 2000.0),       # 3 waiting + this one → 4 departures through 2 slots
    (6, None, 2, 4, 1000, 2500.0),    # slot count unknown, but a queue shows the server is full at 2
    (3, None, 3, 0, 1000, 0.0),       # unknown capacity, no queue: nothing to say
    (4, 2, 2, 2, 0, 0.0),             # no service time known
])
def test_queue_wait(busy: float, slots: int | None, running: float, waiting: float, service: float,
                    expected: float) -> None:
    assert math.isclose(queue_wait_ms(busy, slots, service, running=running, waiting=waiting), expected)
