"""The gateway's shared state on a real three-master Redis Cluster started by the test.

``GATEWAY_REDIS_URL`` names one node; the gateway finds out it is a cluster by itself. The shared-state
invariants of ``test_gateway_state.py`` (no over-admission across two gateway processes, spend counted
exactly once, cache isolation between tenants and data classes) are run again here against the cluster,
then one master is killed and restarted under traffic: every request still gets its answer.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.state.backend import RateCharge, SpendEntry
from gateway.state.redis_backend import RedisBackend
from tests import servers
from tests.conftest import POLICIES
from tests.redis_support import Cluster

# The shared-state suite, collected again in this module so that it runs against the cluster fixture below.
from tests.state.test_gateway_state import (  # noqa: F401
    ENV,
    MSG,
    test_budget_exhausted_gets_429,
    test_cache_headers_and_nondeterministic_requests,
    test_errors_are_never_cached,
    test_non_stream_miss_then_hit_on_the_other_replica,
    test_rate_limit_holds_across_two_gateways,
    test_restricted_request_never_gets_a_vendor_entry,
    test_spend_counted_exactly_once_across_replicas,
    test_stream_served_from_a_non_stream_entry_and_back,
    test_tenants_and_data_classes_are_isolated,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def two_gateways(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("cluster-gateways")
    # A call timeout above the default 250 ms: on this shared 2-core machine a burst can stall a process
    # that long, and a timed-out rate-limit call fails open by policy (the over-admission this suite
    # exists to rule out would then be the machine's, not the cluster's). Failures are asserted absent.
    env = {**ENV, "GATEWAY_REDIS_URL": cluster.url, "GATEWAY_REDIS_TIMEOUT": "2"}
    with servers.gateway(POLICIES / "state.yaml", env=env, log_path=logs / "a.log") as a, \
            servers.gateway(POLICIES / "state.yaml", env=env, log_path=logs / "b.log") as b:
        yield a, b


def keys_per_node(cluster: Cluster) -> list[int]:
    return [int(node.cli("dbsize") or 0) for node in cluster.nodes]


async def test_the_backend_detects_the_cluster_and_every_script_runs_there(cluster: Cluster) -> None:
    backend = RedisBackend(cluster.url, timeout=2, prefix="gw:test-cluster:")
    try:
        assert await backend.ping() and backend.cluster is True
        # Rate limits: a key's and its team's buckets in one script (one slot by the {team} tag).
        charges = [RateCharge("{t1}key:k1:requests", 3, 1), RateCharge("{t1}team:t1:requests", 2, 1)]
        admitted = [(await backend.rate_consume(charges, 60_000)).admitted for _ in range(4)]
        assert admitted == [True, True, False, False]
        outcome = await backend.rate_consume([RateCharge("{t2}key:k2:tokens", 1000, 500)], 60_000)
        await backend.rate_adjust_many([("{t2}key:k2:tokens", outcome.window, -200),
                                        ("{t1}key:k1:requests", outcome.window, -1)])
        again = await backend.rate_consume([RateCharge("{t2}key:k2:tokens", 1000, 0)], 60_000)
        assert again.counts[0].current == 300
        # Spend: exactly once per request id.
        entries = [SpendEntry(f"r{i}", "k", "team", "dep", 1000 + i, "20260101", "202601") for i in range(20)]
        assert await backend.spend_add(entries, 3600) == 20
        assert await backend.spend_add(entries, 3600) == 0
        assert await backend.spend_get("team", "team", "20260101", "202601") == (sum(e.nanos for e in entries),) * 2
        # Cache: many keys, spread over the nodes, read back in one call.
        await backend.cache_set_many([(f"digest-{i}", f"v{i}".encode(), 60) for i in range(30)])
        values = await backend.cache_get([f"digest-{i}" for i in range(30)] + ["absent"])
        assert values == [f"v{i}".encode() for i in range(30)] + [None]
        assert sum(1 for n in keys_per_node(cluster) if n) >= 2, "all keys on one node: not really a cluster"
        await backend.stats_publish("w1", b"payload", 5000)
        assert await backend.stats_fetch(5000) == {"w1": b"payload"}
    finally:
        await backend.aclose()


def test_the_suite_above_ran_without_a_redis_failure(two_gateways) -> None:
    """The invariants held on the cluster itself, not by failing open: no Redis call failed so far."""
    for url in two_gateways:
        metrics = httpx.get(f"{url}/metrics").text
        failed = [line for line in metrics.splitlines() if line.startswith("gateway_redis_errors_total{")]
        assert not [line for line in failed if not line.endswith(" 0.0")], failed
        assert "gateway_redis_up 1.0" in metrics


def test_a_node_restart_mid_traffic_loses_no_answer(two_gateways, cluster: Cluster, tmp_path: Path) -> None:
    a, b = two_gateways
    stop = threading.Event()
    statuses: list[int] = []

    def traffic(worker: int) -> None:
        i = 0
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                # Half deterministic (cache lookups and fills on every node), half not.
                body = {"model": "self-only", "messages": MSG, "temperature": 0, "seed": worker * 1000 + i % 40}
                if i % 2:
                    body = {"model": "self-only", "messages": MSG}
                resp = http.post(f"{(a, b)[i % 2]}/v1/chat/completions", json=body,
                                 headers={"authorization": "Bearer sk-alpha"})
                statuses.append(resp.status_code)
                i += 1

    victim = cluster.nodes[1]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(traffic, w) for w in range(4)]
        time.sleep(1.0)
        before = len(statuses)
        spread = keys_per_node(cluster)
        assert sum(1 for n in spread if n) >= 2, f"the gateways' state is not spread over the cluster: {spread}"
        victim.stop()  # a master with a third of the slots, gone mid-traffic
        time.sleep(1.5)
        victim.start()  # same port, same nodes.conf: it rejoins with its slots
        cluster.wait_ok()
        time.sleep(2.0)
        stop.set()
        for w in workers:
            w.result()
    assert before > 0 and len(statuses) > before + 20
    assert set(statuses) == {200}, f"answers lost: {sorted(set(statuses))}"
    # After the restart the shared state works again on every node: a fill is a hit on the other gateway.
    body = {"model": "self-only", "messages": [{"role": "user", "content": "after the restart"}],
            "temperature": 0, "seed": 99}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        httpx.post(f"{a}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-alpha"})
        time.sleep(0.3)
        hit = httpx.post(f"{b}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-alpha"})
        if hit.headers.get("x-gateway-cache") == "hit":
            break
    else:
        pytest.fail("the cache did not work again after the node restart")
