"""Settings: typed, read from GATEWAY_* variables, every bad value named, every variable documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError, reference

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_values_are_read_and_typed_from_the_environment() -> None:
    settings = Settings.from_env({"GATEWAY_PORT": "9000", "GATEWAY_ACCESS_LOG": "off", "GATEWAY_REDIS_TIMEOUT": "0.5",
                                  "GATEWAY_DOCS": "admin", "GATEWAY_ADMIN_KEY": ""})
    assert (settings.port, settings.access_log, settings.redis_timeout, settings.docs) == (9000, False, 0.5, "admin")
    assert settings.admin_key is None, "an empty variable is unset"


def test_flags_win_over_the_environment() -> None:
    assert Settings.from_env({"GATEWAY_PORT": "9000"}, port=9100, host=None).port == 9100


@pytest.mark.parametrize(("env", "named"), [
    ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
    ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
    ({"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS"),
    ({"GATEWAY_ACCESS_LOG": "perhaps"}, "GATEWAY_ACCESS_LOG"),
    ({"GATEWAY_DOCS": "public"}, "GATEWAY_DOCS"),
    ({"GATEWAY_REDIS_URL": "http://redis:6379"}, "GATEWAY_REDIS_URL"),
    ({"GATEWAY_MAX_BODY_BYTES": "10"}, "GATEWAY_MAX_BODY_BYTES"),
    ({"GATEWAY_HEADER_TIMEOUT": "0"}, "GATEWAY_HEADER_TIMEOUT"),
])
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_unknown_gateway_variables_are_not_settings() -> None:
    assert Settings.from_env({"GATEWAY_NO_SUCH_THING": "1"}).port == 8080


def test_the_reference_documents_every_variable_and_matches_docs() -> None:
    text = reference()
    for name in Settings.model_fields:
        assert f"`GATEWAY_{name.upper()}`" in text
    assert DOCS.read_text() == text, "run: gateway settings > docs/settings.md"
