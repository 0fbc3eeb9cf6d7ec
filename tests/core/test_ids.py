"""Request ids: unique within a process and across processes, shaped like a uuid4 hex."""

from __future__ import annotations

import string
import subprocess
import sys

from gateway.core.ids import new_id

HEX = frozenset(string.hexdigits.lower())


def test_ids_are_unique_and_uuid_shaped() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    assert all(len(i) == 32 and set(i) <= HEX for i in ids)


def test_ids_of_other_processes_never_collide() -> None:
    script = "from gateway.core.ids import new_id; print(' '.join(new_id() for _ in range(2000)))"
    batches = [set(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
                   .stdout.split()) for _ in range(3)]
    mine = {new_id() for _ in range(2000)}
    assert all(len(b) == 2000 for b in batches)
    assert len(set().union(mine, *batches)) == 8000, "a restart or another worker must not repeat an id"
