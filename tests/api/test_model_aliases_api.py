"""`/v1/models` with model aliases: exact aliases are listed, pattern-matched names can be retrieved and
used, and a team's model list still bounds what it sees — through the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests import servers
from tests.conftest import POLICIES


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.gateway(POLICIES / "model_aliases.yaml", log_path=tmp_path_factory.mktemp("aliases") / "gw.log") as url:
        yield url


def client(url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_listing_shows_models_and_exact_aliases_not_patterns(gw: str) -> None:
    ids = [m.id for m in client(gw, "sk-research-1").models.list()]
    assert ids == ["coder", "claude-sonnet-4-5", "background", "hidden", "hidden-latest"]


def test_a_pattern_matched_name_can_be_retrieved_and_used(gw: str) -> None:
    dev = client(gw, "sk-research-1")
    assert dev.models.retrieve("claude-sonnet-4-20250514").id == "claude-sonnet-4-20250514"
    answer = dev.chat.completions.create(model="claude-sonnet-4-20250514", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        dev.models.retrieve("claude-opus-4-1")


def test_team_lists_bound_aliases_too(gw: str) -> None:
    intern = client(gw, "sk-intern-1")
    assert [m.id for m in intern.models.list()] == ["background"]
    assert intern.models.retrieve("claude-3-5-haiku-20241022").id == "claude-3-5-haiku-20241022"
    with pytest.raises(openai.NotFoundError):
        intern.models.retrieve("claude-sonnet-4-5")
    with pytest.raises(openai.PermissionDeniedError):
        intern.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
