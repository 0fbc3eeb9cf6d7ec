"""Hot reload: watch the policy file, validate a changed one, swap it in, or keep the last good one.

The file is polled (content hash, not mtime) rather than watched with inotify: Kubernetes updates a
ConfigMap volume by swapping a symlink, which inotify on the file itself misses, and polling a small
file every few seconds costs nothing. SIGHUP triggers an immediate reload.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.policy.loader import LoadedPolicy, PolicyError, load_policy

log = logging.getLogger("gateway.policy")


class PolicyReloader:
    def __init__(
        self,
        path: str,
        install: Callable[[LoadedPolicy], None],
        on_failure: Callable[[str], None],
        interval: float = 2.0,
    ) -> None:
        self.path = path
        self._install = install
        self._on_failure = on_failure
        self._interval = interval
        self._digest: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    def load_initial(self) -> LoadedPolicy:
        """Load at start-up; a bad policy here is fatal (raises PolicyError)."""
        loaded = load_policy(self.path)
        self._digest = self._file_digest()
        self._install(loaded)
        return loaded

    def _file_digest(self) -> str | None:
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        except OSError:
            return None

    async def reload_now(self) -> tuple[bool, str]:
        async with self._lock:
            digest = await asyncio.to_thread(self._file_digest)
            try:
                loaded = await asyncio.to_thread(load_policy, self.path)
                self._install(loaded)
            except PolicyError as exc:
                self.last_error = str(exc)
                self._digest = digest  # do not retry the same bad content every poll
                log.error("policy reload rejected, keeping the last good policy:\n%s", exc)
                self._on_failure(str(exc))
                return False, str(exc)
            except Exception as exc:  # a provider that cannot be built, etc.
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._digest = digest
                log.exception("policy reload failed, keeping the last good policy")
                self._on_failure(self.last_error)
                return False, self.last_error
            self._digest = digest
            self.last_error = None
            log.info("policy %s reloaded (version %s)", self.path, loaded.version)
            return True, f"policy version {loaded.version} active"

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            digest = await asyncio.to_thread(self._file_digest)
            if digest is not None and digest != self._digest:
                await self.reload_now()

    def start(self, watch: bool) -> None:
        loop = asyncio.get_running_loop()
        if watch:
            self._task = loop.create_task(self._watch())
        # Signal handlers can only be set from the main thread, and Windows has no SIGHUP.
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload_now()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
