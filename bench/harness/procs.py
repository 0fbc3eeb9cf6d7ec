"""Processes the harness starts: start, wait until ready, measure (CPU, RSS), pin to cores, stop.

Each server is started in its own session, so it and everything it forks form one process group that
the harness stops by that group's id (the id of the process it started), never by name.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return raw[raw.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def system_seconds(pids: Iterable[int]) -> float:
    """The kernel's share of ``cpu_seconds``: system CPU time of these processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[12])
    return total / _TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident set size summed over the processes (pages shared between forked workers count in each)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def pin(pids: Iterable[int], cpus: set[int] | None) -> None:
    """Restrict every thread of these processes to ``cpus`` (``None``: leave them where they are)."""
    if not cpus:
        return
    for pid in pids:
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def file_limit(wanted: int) -> int:
    """The open-files limit a server started with ``open_files=wanted`` gets: ``wanted`` if the hard limit
    allows it or can be raised that far (root with CAP_SYS_RESOURCE: tried on this process), else the
    hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        return wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, wanted))
    except (OSError, ValueError):
        return hard
    return wanted


def _set_file_limit(wanted: int) -> None:
    """In the child, before exec: both limits to ``wanted``, or the soft one to the hard one."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
    except (OSError, ValueError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taskset(cpus: set[int] | None) -> list[str]:
    """Command prefix that runs a program on ``cpus``."""
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


class Server:
    """A server process started by the harness, with its output in ``log``."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict[str, str | None] | None = None,
                 cwd: Path | None = None, open_files: int | None = None) -> None:
        """``env`` adds to the harness's environment; a ``None`` value removes that variable.
        ``open_files``: the process's limit on open files (see ``file_limit``)."""
        self.name, self.log = name, log
        full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
        limit = None if open_files is None else lambda: _set_file_limit(open_files)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(list(argv), env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=limit)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        return tree(self.proc.pid)

    def wait_ready(self, url: str, timeout: float = 120.0, expect_workers: int = 0) -> None:
        """Until ``url`` answers (any status below 500) and, if asked, the tree has that many processes."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status < 500 and len(self.pids()) >= expect_workers:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and len(self.pids()) >= expect_workers:
                    return
                last = exc
            except OSError as exc:
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f}s ({last}):\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                # The group may outlive its leader for a moment (uvicorn workers, nginx workers).
                end = time.monotonic() + wait
                while _group_alive(self.proc.pid) and time.monotonic() < end:
                    time.sleep(0.05)
                if not _group_alive(self.proc.pid):
                    return
            except subprocess.TimeoutExpired:
                continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class RssSampler:
    """Samples the RSS of a process tree in a thread; ``peak`` is the largest sum seen."""

    def __init__(self, server: Server, interval: float = 0.25) -> None:
        self._server, self._interval = server, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self._server.pids()))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
