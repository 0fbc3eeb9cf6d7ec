"""Race a concurrency gate's slot hand-over against the waiter's own timeout, many times; print a JSON verdict.

Run as a script (``python gate_race.py PATH_TO_saturation.py TRIALS``) so that the same trial runs under
every Python the project admits: ``asyncio.wait_for`` changed between 3.11 and 3.12, which is exactly
where a hand-over racing a timeout used to lose a slot. The gate module is loaded from its file alone,
without the ``gateway`` package and its dependencies, so any interpreter can run it.

Each trial: a gate with one slot, held by A; B waits for a slot with a timeout; A releases the slot in
the same loop iteration as B's timeout fires (scheduled for the same instant, in both orders, and with
small offsets either way). However B's wait ends, the books must balance afterwards: once every holder
has released, no slot is in use and the gate admits ``limit`` callers again.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys


def _load(path: str):  # noqa: ANN202 - the module's class, whatever its version
    spec = importlib.util.spec_from_file_location("gate_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ConcurrencyGate


async def _trial(gate_class, offset: float, release_first: bool) -> str | None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    gate = gate_class(1)
    assert gate.try_acquire()  # A holds the only slot
    wait = 0.01
    release_at = loop.time() + wait + offset

    async def b() -> bool:
        return await gate.acquire(wait)

    if release_first:
        loop.call_at(release_at, gate.release)
        task = asyncio.ensure_future(b())
    else:
        task = asyncio.ensure_future(b())
        await asyncio.sleep(0)
        loop.call_at(release_at, gate.release)
    got = await task
    if got:
        gate.release()  # B held the slot it was handed
    await asyncio.sleep(0.002)
    if gate.in_use != 0:
        return f"offset {offset * 1000:+.2f} ms, release first {release_first}: B got {got}; {gate.in_use} slot(s) in use after every holder released"
    if not gate.try_acquire():
        return f"offset {offset * 1000:+.2f} ms: the gate admits nobody after every holder released"
    gate.release()
    return None


async def _main(path: str, trials: int) -> dict[str, object]:
    gate_class = _load(path)
    offsets = [-0.0005, -0.0001, 0.0, 0.0, 0.0, 0.0001, 0.0005]
    failures = []
    for i in range(trials):
        problem = await _trial(gate_class, offsets[i % len(offsets)], release_first=bool(i % 2))
        if problem:
            failures.append(problem)
    return {"python": sys.version.split()[0], "trials": trials, "failures": len(failures), "examples": failures[:3]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1], int(sys.argv[2])))))
