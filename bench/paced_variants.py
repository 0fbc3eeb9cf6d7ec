"""Prototypes of cheaper per-event relaying, applied to the gateway at start, to measure what each saves.

    python bench/paced_variants.py no-inspect,gc-freeze serve --policy bench/policies/everything.yaml ...

The first argument names the variants (comma-separated, ``baseline`` for none); the rest is the
``gateway`` command line. Nothing here is part of the gateway: each variant replaces one function of
the stream path in this process only, so ``bench/paced_profile.py`` can measure the gain of a change
before anyone makes it. Each prototype keeps what the relay must guarantee for money and the client
(usage read, cost exact, early leavers charged from counted text, every event forwarded as it arrives)
and says what it gives up:

- ``no-inspect``: the provider stops JSON-parsing every event to validate it (the relay parses again);
  only ``[DONE]`` is looked for. Gives up: a malformed content event reaches the client as is instead
  of ending the stream with an error.
- ``gc-freeze``: ``gc.freeze()`` once the app is built, so the cyclic collector's full collections do not
  walk the policy, the metrics registry and the imported modules again and again (a latency, not a
  per-event, change).
- ``no-full-gc``: a diagnostic, not a candidate: the cyclic collector's oldest generation never runs, to
  see how much of the latency tail its full collections are.

Three more prototypes were measured here (figures in bench/README.md) and are no longer applicable: the
lean meter became the relay's own (``pipeline/stream_meters.py``); the idle watchdog and the push relay
were written against the former hand-written upstream client (``providers/http1.py``, replaced by the
aiohttp transport) and live in this file's history (``git show f976ec5:bench/paced_variants.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def _no_inspect() -> None:
    from gateway.core.sse import SSEEvent
    from gateway.providers.openai_compat import OpenAICompatProvider

    def inspect_done_only(self: OpenAICompatProvider, events: list[SSEEvent], endpoint: object) -> bool:
        return any(event.data == b"[DONE]" for event in events)

    OpenAICompatProvider._inspect = inspect_done_only  # type: ignore[method-assign,assignment]


def _gc_freeze() -> None:
    import gc

    from gateway import server

    build = server.app_from_env

    def app_from_env():  # noqa: ANN202 - an ASGI app
        app = build()
        gc.collect()
        gc.freeze()  # what exists after start-up is never scanned again by the cyclic collector
        return app

    server.app_from_env = app_from_env


def _no_full_gc() -> None:
    import gc

    gc.set_threshold(700, 10, 1_000_000_000)  # a diagnostic, not a candidate: cycles would pile up


VARIANTS: dict[str, Callable[[], None]] = {
    "baseline": lambda: None,
    "no-inspect": _no_inspect,
    "gc-freeze": _gc_freeze,
    "no-full-gc": _no_full_gc,
}


def apply(names: str) -> None:
    for name in names.split(","):
        VARIANTS[name.strip()]()


def app():  # noqa: ANN201 - an ASGI app
    """The gateway with ``$BENCH_VARIANTS`` applied: the factory granian imports in its worker."""
    import os

    apply(os.environ.get("BENCH_VARIANTS", "baseline"))
    from gateway.server import app_from_env

    return app_from_env()


def main() -> None:
    apply(sys.argv[1])
    from gateway.cli import main as gateway_main

    sys.exit(gateway_main(sys.argv[2:]))


if __name__ == "__main__":
    main()
