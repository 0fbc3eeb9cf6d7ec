"""Plays a list of pre-rendered SSE events out in time, applying mid-stream faults.

Timing: the first event comes after ``ttft``; later events are spaced ``1 / tps`` apart (measured
from the first, so pacing does not drift). Faults count events from zero: ``hang_after=3`` sends
events 0-2 and then stalls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.simulator.config import Knobs
from gateway.simulator.wire import CUT_CONNECTION, corrupt_event


async def play(events: list[bytes], knobs: Knobs, *, max_hang_s: float) -> AsyncIterator[bytes]:
    fault = knobs.fault
    malformed_at = 0 if fault.malformed else fault.malformed_after
    loop = asyncio.get_running_loop()
    if knobs.ttft_s > 0:
        await asyncio.sleep(knobs.ttft_s)
    start = loop.time()
    for i, event in enumerate(events):
        if i == fault.hang_after:
            await asyncio.sleep(max_hang_s)
            yield CUT_CONNECTION
            return
        if i == fault.truncate_after:
            return
        if i == fault.reset_after:
            yield CUT_CONNECTION
            return
        if knobs.tps and i > 0:
            delay = start + i / knobs.tps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        yield corrupt_event(event) if i == malformed_at else event
