"""nginx as the mock upstream and as the reference C proxy (plain ``proxy_pass``).

The mock answers ``POST /json/v1/chat/completions`` with a fixed ``chat.completion`` and
``POST /sse/v1/chat/completions`` with a fixed SSE stream (``return 200 '...'`` reads no request body
and costs a few microseconds), so it is never what limits a system under test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness import bodies
from harness.procs import Server, taskset

JSON_PATH = "/json/v1/chat/completions"
SSE_PATH = "/sse/v1/chat/completions"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if not found:
        raise RuntimeError("nginx is not installed: run `bash bench/install-tools.sh`")
    return found


def _common(prefix: Path, name: str, workers: int, connections: int = 16384) -> str:
    tmp = prefix / f"{name}-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    # As root the workers would drop to `nobody`; keep them as the invoking user so the temp dirs work.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(f"    {kind}_temp_path {tmp}/{kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes {workers};\ndaemon off;\npid {prefix}/{name}.pid;\n"
        f"error_log {prefix}/{name}-error.log warn;\n"
        f"events {{ worker_connections {connections}; multi_accept on; }}\n"
        "http {\n    access_log off;\n    keepalive_requests 10000000;\n    keepalive_timeout 300s;\n"
        f"{temp_paths}"
    )


def _quote(text: str) -> str:
    if "$" in text:
        raise ValueError("nginx would read '$' in a returned body as a variable")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _return_body(name: str, body: bytes, limit: int = 3000) -> str:
    """``return 200 <body>``. An nginx config token holds at most 4 KB, so a longer body is cut at SSE
    event boundaries into variables that ``return`` joins (a per-request cost of a few microseconds)."""
    text, parts = body.decode(), []
    while len(text) > limit:
        cut = text.rfind("\n\n", 0, limit) + 2
        if cut < 2:
            raise ValueError(f"cannot split the {name} body for nginx")
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    if len(parts) == 1:
        return f"return 200 {_quote(parts[0])};"
    sets = " ".join(f"set ${name}{i} {_quote(part)};" for i, part in enumerate(parts))
    return sets + " return 200 " + "".join(f"${name}{i}" for i in range(len(parts))) + ";"


def mock_config(prefix: Path, port: int) -> str:
    return _common(prefix, "mock", 1) + (
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        f"        location = {JSON_PATH} {{ default_type application/json;\n"
        f"            {_return_body('json', bodies.completion_json())} }}\n"
        f"        location = {SSE_PATH} {{ default_type text/event-stream; add_header Cache-Control no-cache;\n"
        f"            {_return_body('sse', bodies.completion_sse())} }}\n"
        "        location = /healthz { default_type text/plain; return 200 'ok'; }\n"
        "    }\n}\n"
    )


def proxy_config(prefix: Path, port: int, upstream_port: int, workers: int, connections: int = 16384) -> str:
    """``connections``: per worker, counting both sides (a relayed stream holds two)."""
    return _common(prefix, "proxy", workers, connections) + (
        f"    upstream mock {{ server 127.0.0.1:{upstream_port}; keepalive 256; keepalive_requests 10000000; }}\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        "        location = /healthz { default_type text/plain; return 200 'ok'; }\n"
        "        location / {\n            proxy_pass http://mock;\n            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n            proxy_buffering off;\n        }\n'
        "    }\n}\n"
    )


def start(name: str, config: str, run_dir: Path, cpus: set[int] | None = None, open_files: int | None = None) -> Server:
    conf = run_dir / f"{name}.conf"
    conf.write_text(config)
    argv = [*taskset(cpus), nginx_binary(), "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / f"{name}-error.log")]
    return Server(name, argv, run_dir / f"{name}.log", open_files=open_files)


def version() -> str:
    import subprocess

    out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().split("/")[-1]
