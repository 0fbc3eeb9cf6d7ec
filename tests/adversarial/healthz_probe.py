"""Probe ``GET /healthz`` on a fresh connection at an interval, from a process of its own, and print the
latencies as JSON (``null`` for a probe that failed or took longer than the bound).

Run as ``python -m tests.adversarial.healthz_probe PORT SECONDS INTERVAL BOUND``. The slow-client tests
run it beside their attacker: measured from the attacker's own event loop, a probe would time that
loop's backlog (thousands of attacking tasks), not the gateway.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def probe(port: int, bound: float) -> float | None:
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=bound) as sock:
            sock.settimeout(max(0.001, bound - (time.perf_counter() - started)))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            status = sock.recv(64)
    except OSError:
        return None
    elapsed = time.perf_counter() - started
    return elapsed if status.startswith(b"HTTP/1.1 200") and elapsed <= bound else None


def main(argv: list[str]) -> None:
    port, seconds, interval, bound = int(argv[0]), float(argv[1]), float(argv[2]), float(argv[3])
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latencies.append(probe(port, bound))
        time.sleep(interval)
    print(json.dumps(latencies))


if __name__ == "__main__":
    main(sys.argv[1:])
