"""Token estimates: unit tables, request shapes, and accuracy against tiktoken's cl100k_base."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from gateway.core.types import Endpoint
from gateway.routing.tokens import (
    IMAGE_HIGH_DETAIL_TOKENS,
    IMAGE_LOW_DETAIL_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    estimate_request_tokens,
    estimate_text_tokens,
)

# --- estimate_text_tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("", 0, 0),
        (" ", 1, 1),  # never zero for a non-empty text
        ("Hello", 1, 1),
        ("The quick brown fox jumps over the lazy dog.", 8, 12),  # cl100k: 10
        ("今天天气很好", 5, 7),  # one per Hanzi
        ("東京都の天気は晴れです。", 10, 14),  # kana and kanji alike, 。 included
        ("getUserAccountSettingsById", 3, 6),  # cl100k: 4; a long identifier is not one token
        ("1234567890", 4, 10),  # cl100k: 4 (digits group in threes)
        ("🚀🔥👍", 6, 9),  # emoji are several tokens each
        ("        x = 1\n" * 10, 45, 70),  # cl100k: 60; indentation and " 1" each cost a token
        ('{"a": 1, "b": [2, 3]}', 10, 20),  # cl100k: 15
        ("a" * 400, 30, 60),  # one long run is not a single token (cl100k: 50)
    ],
)
def test_estimate_text_tokens_ranges(text: str, low: int, high: int) -> None:
    assert low <= estimate_text_tokens(text) <= high


def test_cjk_counts_about_one_token_per_character() -> None:
    chinese = "人工智能模型的推理成本正在快速下降这使得更多企业能够部署私有化的大语言模型"
    assert estimate_text_tokens(chinese) == pytest.approx(len(chinese), rel=0.1)


def test_estimate_beats_characters_over_four_for_chinese() -> None:
    chinese = "我想订一张从上海到成都的高铁票，时间是下周五下午，二等座，靠窗的位置。"
    # cl100k needs ~39 tokens here; len/4 would say 9.
    assert estimate_text_tokens(chinese) > 2 * (len(chinese) // 4)


def test_lone_surrogates_do_not_raise() -> None:
    assert estimate_text_tokens("bad \ud800 surrogate") > 0


# --- estimate_request_tokens ---------------------------------------------------------------------

_PLAIN = "Summarize the meeting notes below."
_PLAIN_TOKENS = estimate_text_tokens(_PLAIN)


def _chat(*messages: object, **extra: object) -> dict:
    return {"model": "auto", "messages": list(messages), **extra}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_chat(), REPLY_PRIMING_TOKENS),
        (
            _chat({"role": "user", "content": _PLAIN}),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + _PLAIN_TOKENS,
        ),
        (
            _chat({"role": "system", "content": _PLAIN}, {"role": "user", "content": _PLAIN}),
            REPLY_PRIMING_TOKENS + 2 * (MESSAGE_OVERHEAD_TOKENS + _PLAIN_TOKENS),
        ),
        (
            _chat(
                {
                    "role": "user",
                    "content": [{"type": "text", "text": _PLAIN}, {"type": "text", "text": _PLAIN}],
                }
            ),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + 2 * _PLAIN_TOKENS,
        ),
        (
            _chat(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "low"}}],
                }
            ),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + IMAGE_LOW_DETAIL_TOKENS,
        ),
        (
            _chat(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "high"}}],
                }
            ),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + IMAGE_HIGH_DETAIL_TOKENS,
        ),
        (
            _chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + IMAGE_HIGH_DETAIL_TOKENS,
        ),
        (
            _chat(
                {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": _PLAIN}}]}
            ),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + _PLAIN_TOKENS,
        ),
        (
            _chat({"role": "assistant", "function_call": {"arguments": _PLAIN}}),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + _PLAIN_TOKENS,
        ),
        # Malformed pieces are skipped, not raised on.
        (
            _chat("not a message", {"role": "user", "content": [None, {"type": "text", "text": 3}]}),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS,
        ),
        (
            _chat({"role": "assistant", "tool_calls": [{"function": {"arguments": {"not": "a string"}}}]}),
            REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS,
        ),
        ({"model": "auto", "messages": "not a list"}, REPLY_PRIMING_TOKENS),
    ],
)
def test_chat_request_tokens(body: dict, expected: int) -> None:
    assert estimate_request_tokens(body, Endpoint.CHAT) == expected


def test_tool_schemas_add_their_size() -> None:
    message = {"role": "user", "content": _PLAIN}
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city, in degrees Celsius.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    without_tools = estimate_request_tokens(_chat(message), Endpoint.CHAT)
    with_tools = estimate_request_tokens(_chat(message, tools=[tool]), Endpoint.CHAT)
    assert 25 <= with_tools - without_tools <= 80  # cl100k: 52 for the JSON


@pytest.mark.parametrize(
    ("endpoint", "key", "value", "expected"),
    [
        (Endpoint.COMPLETIONS, "prompt", _PLAIN, _PLAIN_TOKENS),
        (Endpoint.COMPLETIONS, "prompt", [_PLAIN, _PLAIN], 2 * _PLAIN_TOKENS),
        (Endpoint.COMPLETIONS, "prompt", [1, 2, 3, 4], 4),  # token ids count exactly
        (Endpoint.COMPLETIONS, "prompt", [[1, 2], [3, 4, 5]], 5),
        (Endpoint.COMPLETIONS, "prompt", None, 0),
        (Endpoint.EMBEDDINGS, "input", _PLAIN, _PLAIN_TOKENS),
        (Endpoint.EMBEDDINGS, "input", [_PLAIN, "", _PLAIN], 2 * _PLAIN_TOKENS),
        (Endpoint.EMBEDDINGS, "input", [[7] * 10, [8] * 6], 16),
        (Endpoint.EMBEDDINGS, "input", {"unexpected": "shape"}, 0),
    ],
)
def test_prompt_and_input_tokens(endpoint: Endpoint, key: str, value: object, expected: int) -> None:
    assert estimate_request_tokens({"model": "m", key: value}, endpoint) == expected


def test_endpoint_given_as_plain_string() -> None:
    assert estimate_request_tokens({"input": _PLAIN}, "embeddings") == _PLAIN_TOKENS  # type: ignore[arg-type]


# --- accuracy against cl100k_base ----------------------------------------------------------------

# Written for this test; the weights were fitted on a different corpus (library docs, code, JSON).
ACCURACY_CORPUS: dict[str, list[str]] = {
    "english": [
        "Our gateway routes each request to the cheapest deployment that satisfies the team's policy, "
        "falling back to a second provider when the first one returns an error or times out.",
        "Please write a short, friendly email to the customer explaining that their refund was processed "
        "on Tuesday and should appear on their statement within five to seven business days.",
        "The committee reviewed three proposals. The first was too expensive; the second lacked a clear "
        "timeline; the third, although ambitious, was approved with minor changes to its budget.",
        "Can you explain, in simple terms, why the sky appears blue during the day but red at sunset? "
        "I'd like an answer a ten-year-old could understand.",
        "Summarize the following incident report in three bullet points, then suggest two follow-up "
        "actions that would prevent the outage from happening again.",
    ],
    "code": [
        "def fibonacci(n: int) -> list[int]:\n    sequence = [0, 1]\n    while len(sequence) < n:\n"
        "        sequence.append(sequence[-1] + sequence[-2])\n    return sequence[:n]\n",
        "async function fetchUser(id) {\n  const response = await fetch(`/api/users/${id}`);\n"
        "  if (!response.ok) throw new Error(`HTTP ${response.status}`);\n  return response.json();\n}\n",
        "SELECT customer_id, SUM(amount) AS total_spent\nFROM orders\nWHERE created_at >= '2024-01-01'\n"
        "GROUP BY customer_id\nHAVING SUM(amount) > 1000\nORDER BY total_spent DESC;\n",
        "class RateLimiter:\n    def __init__(self, rate: float, burst: int) -> None:\n        self.rate = rate\n"
        "        self.tokens = float(burst)\n\n    def allow(self) -> bool:\n        if self.tokens >= 1:\n"
        "            self.tokens -= 1\n            return True\n        return False\n",
    ],
    "json": [
        '{"model": "gpt-4o", "temperature": 0.2, "messages": [{"role": "user", "content": "Hello"}], '
        '"max_tokens": 256, "stream": true}',
        '{\n  "order_id": 48213,\n  "status": "shipped",\n  "items": [\n    {"sku": "A-100", "qty": 2},\n'
        '    {"sku": "B-220", "qty": 1}\n  ],\n  "address": {"city": "Berlin", "zip": "10115"}\n}',
        '[{"name": "search_docs", "description": "Search the internal documentation", "parameters": '
        '{"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}]',
    ],
    "chinese": [
        "请根据以下会议纪要，整理出三条需要在本周内完成的工作事项，并注明负责人。",
        "上海今天多云转晴，最高气温二十八度，最低气温二十一度，东南风三到四级。",
        "我们公司计划明年在华东地区新建两个数据中心，用于部署自研的大语言模型。",
        "这款手机的电池续航表现不错，正常使用一天没有问题，但是拍照效果一般。",
        "如果你觉得这个方案可行，我们就按照这个思路继续往下推进，下周再开会讨论细节。",
    ],
    "japanese": [
        "来週の会議の資料を金曜日までに準備してください。よろしくお願いします。",
        "この料理はとても美味しいですが、少し辛すぎると思います。",
    ],
    "mixed": [
        "请用 Python 写一个函数，读取 CSV 文件并计算每一列的平均值，返回一个 dict。",
        "我们在 Kubernetes 上用 vLLM 部署了 Qwen2.5-7B，单卡 A100 的吞吐大约是 2500 tokens/s。",
        "帮我把这段 English 翻译成中文: The deployment failed because the GPU ran out of memory.",
    ],
    "european": [
        "Le serveur principal a été redémarré après une panne de courant dans le centre de données.",
        "Пожалуйста, проверьте настройки сети и перезапустите приложение.",
    ],
}


def _tokenizers_dir_bundled_with_litellm() -> Path | None:
    """litellm ships tiktoken's BPE files (tiktoken itself would download them; no internet here)."""
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it (~5 s)
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return directory if directory.is_dir() else None


@pytest.fixture(scope="module")
def cl100k():
    import tiktoken  # a dependency of litellm, which the gateway depends on

    directory = _tokenizers_dir_bundled_with_litellm()
    assert directory is not None, "litellm's bundled tokenizer files are missing: pip install -e '.[test]'"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(os.environ, "TIKTOKEN_CACHE_DIR", str(directory))
        return tiktoken.get_encoding("cl100k_base")  # from litellm's bundled file: no network


@pytest.mark.parametrize("category", sorted(ACCURACY_CORPUS))
def test_estimate_tracks_cl100k_per_category(cl100k, category: str) -> None:
    samples = ACCURACY_CORPUS[category]
    actual = sum(len(cl100k.encode(text)) for text in samples)
    estimated = sum(estimate_text_tokens(text) for text in samples)
    assert estimated == pytest.approx(actual, rel=0.25), f"{category}: estimated {estimated}, cl100k {actual}"


def test_estimate_tracks_cl100k_in_aggregate_and_per_sample(cl100k) -> None:
    samples = [text for texts in ACCURACY_CORPUS.values() for text in texts]
    actual = [len(cl100k.encode(text)) for text in samples]
    estimated = [estimate_text_tokens(text) for text in samples]
    assert sum(estimated) == pytest.approx(sum(actual), rel=0.15)
    for text, real, guess in zip(samples, actual, estimated, strict=True):
        assert guess == pytest.approx(real, rel=0.4), f"estimated {guess}, cl100k {real}: {text[:40]!r}"
