"""Structured JSON access log, one line per request, written by a background thread.

The request path only puts a dict on a queue; encoding and the write to stdout happen in the
logging queue listener's thread, so a slow log sink never stalls the event loop.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from typing import Any

import orjson


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self._logger = logging.getLogger("gateway.access")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        sink = logging.StreamHandler(stream or sys.stdout)
        sink.setFormatter(_JsonFormatter())
        self._listener = logging.handlers.QueueListener(self._queue, sink)
        self._handler = logging.handlers.QueueHandler(self._queue)
        # QueueHandler.prepare would format (and stringify) on the caller's thread; pass the record as is.
        self._handler.prepare = lambda record: record  # type: ignore[method-assign]
        self._logger.handlers = [self._handler]

    def start(self) -> None:
        if self.enabled:
            self._listener.start()

    def stop(self) -> None:
        if self.enabled and self._listener._thread is not None:  # noqa: SLF001 - QueueListener has no public flag
            self._listener.stop()

    def write(self, entry: dict[str, Any]) -> None:
        if self.enabled:
            self._logger.info(entry)
