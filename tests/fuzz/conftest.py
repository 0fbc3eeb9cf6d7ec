"""Fuzz suite fixtures: write what the fuzz runs saw to ``tests/out/fuzz-figures.json`` at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.properties import write_ledger


@pytest.fixture(scope="session", autouse=True)
def fuzz_figures() -> Iterator[None]:
    yield
    write_ledger()
