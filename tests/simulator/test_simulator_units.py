"""Pure parts of the simulator, as tables: fault grammar, model-name keywords, schema values, answers."""

from __future__ import annotations

import jsonschema
import pytest

from gateway.simulator.config import KnobResolver, SimConfig
from gateway.simulator.faults import Fault, FaultSpecError, fault_from_model_name, parse_fault
from gateway.simulator.generation import Prompt, Tool, generate
from gateway.simulator.schema import example_value


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, Fault()),
        ("none", Fault()),
        ("status=503", Fault(status=503)),
        (" status = 429 ; retry_after = 2.5 ", Fault(status=429, retry_after=2.5)),
        ("status=500;message=boom; it broke", None),  # "it broke" is not a clause
        ("message=upstream on fire", Fault(message="upstream on fire")),
        ("hang", Fault(hang=True)),
        ("hang_after=3", Fault(hang_after=3)),
        ("truncate_after=0", Fault(truncate_after=0)),
        ("reset", Fault(reset=True)),
        ("reset_after=2", Fault(reset_after=2)),
        ("malformed", Fault(malformed=True)),
        ("malformed_after=4", Fault(malformed_after=4)),
        ("slow", Fault(slow_tps=5.0)),
        ("slow=12", Fault(slow_tps=12.0)),
        ("flaky", Fault(flaky=0.5)),
        ("flaky=0.25;status=500", Fault(flaky=0.25, status=500)),
        ("fail_first=2", Fault(fail_first=2)),
    ],
)
def test_fault_grammar(spec, expected):
    if expected is None:
        with pytest.raises(FaultSpecError):
            parse_fault(spec)
    else:
        assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["explode", "status=200", "status=abc", "flaky=2", "hang=1", "slow=0", "fail_first", "retry_after=-1"],
)
def test_bad_fault_specs_raise(spec):
    with pytest.raises(FaultSpecError):
        parse_fault(spec)


def test_describe_round_trips():
    fault = Fault(status=429, retry_after=2, slow_tps=3, hang_after=1)
    assert parse_fault(fault.describe()) == fault
    assert Fault().describe() == "none"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", None),
        ("sim-error-503", Fault(status=503)),
        ("vllm/qwen-fail-500", Fault(status=500)),
        ("sim-status-404", Fault(status=404)),
        ("sim-ratelimit", Fault(status=429, retry_after=1)),
        ("sim-flaky", Fault(flaky=0.5)),
        ("sim-fail-first-2", Fault(fail_first=2)),
        ("sim-hang", Fault(hang=True)),
        ("sim-slow-fail-first-1", Fault(slow_tps=5.0, fail_first=1)),
        ("sim.reset", Fault(reset=True)),
        ("sim_malformed", Fault(malformed=True)),
        ("sim-truncate", Fault(truncate_after=3)),
        ("slowpoke-hangar", None),  # keywords are whole words only
        ("error-200", None),
    ],
)
def test_model_name_keywords(model, expected):
    assert fault_from_model_name(model) == expected


def test_knob_precedence_header_over_override_over_name_over_default():
    config = SimConfig.from_kwargs(
        ttft_ms=10, fault="status=500", model_overrides={"special-hang": {"ttft_ms": 99, "fault": "none"}}
    )
    knobs = KnobResolver(config)
    assert knobs.for_request("plain", {}).fault == Fault(status=500)
    assert knobs.for_request("sim-error-503", {}).fault == Fault(status=503)
    special = knobs.for_request("special-hang", {})
    assert special.fault == Fault() and special.ttft_s == pytest.approx(0.099)
    headed = knobs.for_request("special-hang", {"x-sim-fault": "slow=7", "x-sim-ttft-ms": "0"})
    assert headed.fault == Fault(slow_tps=7) and headed.tps == 7 and headed.ttft_s == 0


@pytest.mark.parametrize(
    "settings",
    [
        {"ttft": 1},
        {"fault": "explode"},
        {"model_overrides": {"m": {"speed": 1}}},
        {"model_overrides": {"m": {"fault": "x"}}},
    ],
)
def test_config_rejects_unknown_settings(settings):
    with pytest.raises(ValueError):
        SimConfig.from_kwargs(**settings)


SCHEMAS = [
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 12}}},
    {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}}},
    {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 3},
    {"type": ["string", "null"], "minLength": 20, "maxLength": 25},
    {"type": "string", "format": "date-time"},
    {"oneOf": [{"type": "null"}, {"type": "boolean"}]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"const": 1}}},
            {"properties": {"b": {"type": "string"}}},
        ]
    },
    {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    },
    {"type": "OBJECT", "properties": {"flag": {"type": "BOOLEAN"}}},  # Gemini's OpenAPI spelling
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_schema_examples_validate(schema):
    value = example_value(schema)
    lowered = _lower_types(schema)
    jsonschema.validate(value, lowered)


def _lower_types(schema):
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def test_named_properties_get_friendly_values():
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "email": {"type": "string"}}}
    assert example_value(schema) == {"city": "Paris", "email": "ada@example.com"}


@pytest.mark.parametrize(
    ("prompt", "finish", "text"),
    [
        (Prompt("m", "hi", max_tokens=2), "length", "Simulated answer"),
        (Prompt("m", "hi", stop=("swer",)), "stop", "Simulated an"),
        (Prompt("m", "hi", stop=("Sim",)), "stop", ""),
        (Prompt("m", "hi", stop=("nowhere",)), "stop", None),
        (Prompt("m", "hi", max_tokens=3, stop=("m:",)), "length", "Simulated answer from"),
        (Prompt("m", "hi", max_tokens=3, stop=("from",)), "stop", "Simulated answer "),
    ],
)
def test_max_tokens_and_stop(prompt, finish, text):
    choice = generate(prompt, output_tokens=16).choices[0]
    assert choice.finish == finish
    if text is not None:
        assert choice.text == text
    else:
        assert len(choice.tokens) == 16


def test_tool_calls_and_counts():
    prompt = Prompt(
        "m", "hi", call_tools=(Tool("f", {"type": "object", "properties": {"query": {"type": "string"}}}),)
    )
    answer = generate(prompt, output_tokens=16)
    [call] = answer.choices[0].tool_calls
    assert call.name == "f" and call.arguments == '{"query":"simulated query"}'
    assert "".join(call.fragments) == call.arguments
    assert answer.choices[0].finish == "tool_calls"
    assert answer.completion_tokens == len(call.fragments) + 1
