"""A real Ray cluster on this machine: a head and one more node (Ray's own multi-node test
utility), a real ``llmos serve --cluster`` joining it with two replicas of smollm2:135m (one per
node: each asks for the node's one CPU), the affinity router, and the worker node killed mid-load.

Slow (Ray starts a dozen processes; kept to one cluster and one server for the whole module)."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.test_integration_openai import RealServer, start_server_with, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
auth_utils = pytest.importorskip("ray._private.authentication_test_utils")
reset_auth_token_state = auth_utils.reset_auth_token_state

MODEL = "smollm2:135m"
SYSTEM = (
    "You are a terse assistant for a hardware shop. Answer in one short sentence. Never invent "
    "prices; say you do not know. Refuse anything unrelated to tools, screws, nails or paint. "
) * 3


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple[Any, Any, str]]:
    token = secrets.token_hex(32)
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = token
    reset_auth_token_state()  # Ray read its auth mode when it was imported
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    worker = cluster.add_node(num_cpus=1)
    try:
        yield cluster, worker, token
    finally:
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_auth_token_state()


@pytest.fixture(scope="module")
def server(
    ray_cluster: tuple[Any, Any, str], tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> Iterator[RealServer]:
    cluster, _, token = ray_cluster
    home = tmp_path_factory.mktemp("cluster") / "home"
    env = {
        "LLMOS_CLUSTER": cluster.address,
        "LLMOS_CLUSTER_TOKEN": token,
        "LLMOS_REPLICAS": "2",
        "LLMOS_REPLICA_CPUS": "1",
        "LLMOS_N_SLOTS": "2",
        "LLMOS_N_CTX": "2048",
        "LLMOS_KEEP_ALIVE": "-1",
    }
    s = start_server_with(home, env, limit_s=300)
    try:
        r = httpx.post(
            s.url + "/api/import",
            json={"path": str(smollm2_gguf), "model": MODEL, "stream": False},
            timeout=300,
        )
        assert r.status_code == 200, r.text
        r = httpx.post(s.url + "/api/load", json={"model": MODEL}, timeout=600)
        assert r.status_code == 200, r.text + s.logs()
        yield s
    finally:
        stop_server(s)


def _chat(url: str, user: str, max_tokens: int = 8) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_two_replicas_on_two_nodes_and_affinity_routing(server: RealServer) -> None:
    status = httpx.get(server.url + "/api/cluster", timeout=30).json()
    assert status["enabled"] and len([n for n in status["nodes"] if n["alive"]]) == 2
    (model,) = status["models"]
    nodes = {r["node_id"] for r in model["replicas"] if r["state"] == "serving"}
    assert len(model["replicas"]) == 2 and len(nodes) == 2  # Ray placed one on each node
    for q in ("Do you sell hammers?", "Do you sell nails?", "Do you sell paint?"):
        assert _chat(server.url, q)["choices"][0]["message"]["content"]
    routed = httpx.get(server.url + "/api/cluster", timeout=30).json()["models"][0]["routed"]
    assert routed["affinity"] >= 2, routed  # the shared system prompt went where it was cached


def _stream(url: str, system: str, out: list[tuple[str, int]]) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "What do you sell?"}],
        "max_tokens": 48,
        "temperature": 0,
        "stream": True,
    }
    chunks, ending = 0, "no end"
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as r:
            if r.status_code != 200:
                out.append((f"http {r.status_code}", 0))
                return
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    ending = "done" if ending == "no end" else ending
                    break
                event = json.loads(data)
                if "error" in event:
                    ending = "error: " + str(event["error"].get("message", ""))
                elif event.get("choices"):
                    chunks += 1
    except httpx.HTTPError as exc:
        ending = f"transport: {exc}"
    out.append((ending, chunks))


def test_a_node_killed_mid_load_others_keep_serving(
    server: RealServer, ray_cluster: tuple[Any, Any, str]
) -> None:
    cluster, worker, _ = ray_cluster
    results: list[tuple[str, int]] = []
    # Six shops, six system prompts: no shared prefix, so the router balances them by load (two
    # run and one waits on each replica: two slots each).
    threads = [
        threading.Thread(target=_stream, args=(server.url, f"Shop number {i}. {SYSTEM}", results))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    # Wait until both replicas are busy, then kill the worker node (its raylet and workers).
    for _ in range(600):
        model = httpx.get(server.url + "/api/cluster", timeout=30).json()["models"][0]
        if sum(r["running"] > 0 for r in model["replicas"]) == 2:
            break
        threading.Event().wait(0.1)
    cluster.remove_node(worker)
    for t in threads:
        t.join(600)
    assert len(results) == 6
    done = [r for r in results if r[0] == "done"]
    failed = [r for r in results if r[0].startswith("error")]
    assert done, results  # the replica on the head kept serving, re-routed requests too
    assert failed and all("died" in r[0] or "engine" in r[0].lower() for r in failed), results
    assert len(done) + len(failed) == 6, results  # every stream ended clearly
    # After the node's death: one replica serves; no node has room for another (events say so).
    model = httpx.get(server.url + "/api/cluster", timeout=30).json()["models"][0]
    assert [r["state"] for r in model["replicas"]] == ["serving"]
    kinds = [e["kind"] for e in httpx.get(server.url + "/api/resources/events", timeout=30).json()["events"]]
    assert "replica_died" in kinds, kinds
    assert _chat(server.url, "Still there?")["choices"][0]["message"]["content"]
    # Usage rows were written for every request, those cut short included.
    usage = httpx.get(server.url + "/api/usage", params={"group_by": "model"}, timeout=30).json()["data"]
    row = next(u for u in usage if u["model"] == MODEL)
    assert row["requests"] >= 3 + 6 + 1 and row["errors"] >= len(failed)


def test_scale_through_the_api_is_bounded_by_the_cluster(server: RealServer) -> None:
    r = httpx.post(server.url + "/api/scale", json={"model": MODEL, "replicas": 0}, timeout=30)
    assert r.status_code == 400
    r = httpx.post(server.url + "/api/scale", json={"model": MODEL, "replicas": 1}, timeout=300)
    assert r.status_code == 200 and r.json()["replicas"] == 1
