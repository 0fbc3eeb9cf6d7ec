"""Private redis-server processes for tests: one server (plain, password, TLS, unix socket) or a
three-master cluster. Each is started by the test on free ports (never a Redis it did not start, such as
one on the default port) and stopped by its own process id."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.servers import free_port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `bash .ci/install-test-services.sh`", pytrace=False)
    return found


class RedisServer:
    """A private ``redis-server`` on a free loopback port, with extra ``options`` (password, TLS, unix socket,
    cluster mode), that a test may kill, freeze and restart. With ``directory`` it keeps its files and a log
    there; without, it writes nothing to disk."""

    def __init__(self, *options: str, directory: Path | None = None, port: int | None = None) -> None:
        self.binary = _binary("redis-server")
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        files: list[str] = []
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            files = ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning", *files, *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2).ping()
                return self
            except redis.AuthenticationError:
                return self  # up: a password server answers NOAUTH
            except redis.RedisError:
                time.sleep(0.02)
        log = ""
        if self.directory is not None and (self.directory / "redis.log").exists():
            log = (self.directory / "redis.log").read_text()[-2000:]
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}: {log}", pytrace=False)

    def cli(self, *args: str) -> str:
        done = subprocess.run([_binary("redis-cli"), "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=10)
        return done.stdout.strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    kill = stop

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
        self.stop()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too and within range (a node refuses > 55535)."""
    for _ in range(200):
        port = random.randint(20_000, 55_535)
        if all(_free(p) for p in (port, port + 10_000)):
            return port
    pytest.fail("no free port pair for a cluster node", pytrace=False)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Cluster:
    """Three masters, no replicas: ``redis-server --cluster-enabled yes`` x3 and ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
                        "2000", directory=directory / f"node{i}", port=cluster_port())
            for i in range(3)
        ]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        create = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        if create.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {create.stdout[-2000:]}{create.stderr}", pytrace=False)
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("cluster", "info") for n in self.nodes if n.process):
                return
            time.sleep(0.1)
        pytest.fail("the cluster did not reach cluster_state:ok", pytrace=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
