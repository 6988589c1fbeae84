"""A real Ray cluster on this machine: a head and one more node (Ray's own multi-node test
utility), a real ``llmos serve --cluster`` joining it with two replicas of smollm2:135m (one per
node: each asks for the node's one CPU), the affinity router, one replica's actor killed mid-load
(and started again), then the worker node killed mid-load; last, a node that cannot see the
front-end's disk joins and a replica placed there gets the model's bytes sent.

Slow (Ray starts a dozen processes; kept to one cluster and one server for the whole module)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from polling import wait_until
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


@dataclass
class StreamEnd:
    """How one streamed chat ended: ``done``, ``error: ...``, ``http N`` or ``transport: ...``."""

    ending: str
    chunks: int = 0
    """Chunks with choices (the first says only the role)."""
    content_chunks: int = 0
    completion_tokens: int | None = None
    """From the final usage chunk (``stream_options.include_usage``): only a stream that finished."""


def _stream(url: str, system: str, out: list[StreamEnd]) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "What do you sell?"}],
        "max_tokens": 48,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    end = StreamEnd("no end")
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as r:
            if r.status_code != 200:
                out.append(StreamEnd(f"http {r.status_code}"))
                return
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    end.ending = "done" if end.ending == "no end" else end.ending
                    break
                event = json.loads(data)
                if "error" in event:
                    end.ending = "error: " + str(event["error"].get("message", ""))
                elif event.get("choices"):
                    end.chunks += 1
                    end.content_chunks += bool(event["choices"][0].get("delta", {}).get("content"))
                elif event.get("usage"):
                    end.completion_tokens = int(event["usage"]["completion_tokens"])
    except httpx.HTTPError as exc:
        end.ending = f"transport: {exc}"
    out.append(end)


def _model_status(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/api/cluster", timeout=30).json()["models"][0])


def _usage_row(url: str) -> dict[str, Any]:
    usage = httpx.get(url + "/api/usage", params={"group_by": "model"}, timeout=30).json()["data"]
    return next(
        (dict(u) for u in usage if u["model"] == MODEL), {"requests": 0, "errors": 0, "completion_tokens": 0}
    )


def _start_streams(url: str, place: str, results: list[StreamEnd]) -> list[threading.Thread]:
    """Six streaming chats, each with a system prompt of its own (no shared prefix: the router
    places them by load), started on threads; each appends its end to ``results``."""
    threads = [
        threading.Thread(target=_stream, args=(url, f"{place} number {i}. {SYSTEM}", results))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    return threads


def test_a_replica_actor_killed_mid_load(server: RealServer) -> None:
    """Issue #20 point 4 for one replica's actor (its Ray worker process SIGKILLed; the node lives):
    its queued requests are re-routed and succeed, its started streams end with a clear error,
    usage is written for what they delivered, the other replica serves throughout, and the replica
    is started again (its node has room once the actor is gone)."""
    before = _usage_row(server.url)
    results: list[StreamEnd] = []
    threads = _start_streams(server.url, "Store", results)

    # Two slots each: wait until one replica runs two and has one waiting, the other runs too.
    def loaded() -> tuple[dict[str, Any], dict[str, Any]] | None:
        reps = _model_status(server.url)["replicas"]
        full = [r for r in reps if r["running"] == 2 and r["queued"] >= 1]
        if len(reps) == 2 and full and all(r["running"] > 0 for r in reps):
            other = next(r for r in reps if r["name"] != full[0]["name"])
            return full[0], other
        return None

    victim, survivor = wait_until(loaded, within_s=120, what="both replicas busy, one with a request waiting")
    os.kill(victim["pid"], signal.SIGKILL)

    # Once the victim is gone from the set, requests are served at once (by the survivor, or by the
    # replacement if it is already up).
    wait_until(
        lambda: victim["name"] not in {r["name"] for r in _model_status(server.url)["replicas"]},
        within_s=60,
        what="the killed replica to leave /api/cluster",
    )
    assert _chat(server.url, "Open on Sunday?")["choices"][0]["message"]["content"]
    for t in threads:
        t.join(300)
    assert len(results) == 6, results
    done = [r for r in results if r.ending == "done"]
    failed = [r for r in results if r.ending.startswith("error")]
    assert len(done) + len(failed) == 6, results  # every stream ended clearly
    # Only what had started on the victim failed (at most its two slots); what waited there moved.
    assert 1 <= len(failed) <= victim["running"], results
    assert all("died" in r.ending or "engine" in r.ending.lower() for r in failed), results
    assert all(r.completion_tokens for r in done), results

    # Usage: a row for each request; the failed ones count as errors with what they delivered.
    delivered = sum(r.content_chunks for r in failed)
    assert delivered > 0, results
    finished = sum(r.completion_tokens or 0 for r in done)

    def usage_written() -> dict[str, Any] | None:
        row = _usage_row(server.url)
        return row if row["requests"] - before["requests"] >= 6 + 1 else None

    after = wait_until(usage_written, within_s=30, what="usage rows for the seven requests")
    assert after["errors"] - before["errors"] == len(failed), (before, after)
    assert after["completion_tokens"] - before["completion_tokens"] >= finished + delivered, (before, after)

    # The survivor served throughout; a new replica takes the victim's place.
    def replaced() -> list[dict[str, Any]] | None:
        reps = list(_model_status(server.url)["replicas"])
        return reps if len(reps) == 2 and all(r["state"] == "serving" for r in reps) else None

    reps = wait_until(replaced, within_s=120, what="a replica started in place of the killed one")
    names = {r["name"]: r for r in reps}
    assert survivor["name"] in names and names[survivor["name"]]["pid"] == survivor["pid"], reps
    assert victim["name"] not in names, reps
    events = httpx.get(server.url + "/api/resources/events", timeout=30).json()["events"]
    reasons = [(e["kind"], e["reason"]) for e in events]
    died = next(
        (i for i, (k, why) in enumerate(reasons) if k == "replica_died" and victim["name"] in why), None
    )
    assert died is not None, reasons
    # Started at once ("replaces ...") once Ray shows the dead actor's CPU free (asked again for up
    # to 2 s), else by the supervisor's next round: either way a start follows the death.
    assert any(k == "replica_started" for k, _ in reasons[died + 1 :]), reasons
    assert _chat(server.url, "Do you sell glue?")["choices"][0]["message"]["content"]


def test_a_node_killed_mid_load_others_keep_serving(
    server: RealServer, ray_cluster: tuple[Any, Any, str]
) -> None:
    cluster, worker, _ = ray_cluster
    results: list[StreamEnd] = []
    # Six shops, six system prompts: no shared prefix, so the router balances them by load (two
    # run and one waits on each replica: two slots each).
    threads = _start_streams(server.url, "Shop", results)
    # Wait until both replicas are busy, then kill the worker node (its raylet and workers).
    wait_until(
        lambda: sum(r["running"] > 0 for r in _model_status(server.url)["replicas"]) == 2,
        within_s=60,
        what="both replicas running requests",
    )
    cluster.remove_node(worker)
    for t in threads:
        t.join(600)
    assert len(results) == 6
    done = [r for r in results if r.ending == "done"]
    failed = [r for r in results if r.ending.startswith("error")]
    assert done, results  # the replica on the head kept serving, re-routed requests too
    assert failed and all("died" in r.ending or "engine" in r.ending.lower() for r in failed), results
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


def _node_without_our_disk(address: str, hidden: Path) -> subprocess.Popen[bytes] | None:
    """Another Ray node whose processes cannot see ``hidden`` (a tmpfs mounted over it in a mount
    namespace of their own: a machine with a disk of its own). None where this user may not
    make one (unshare needs root)."""
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {shlex.quote(str(hidden))}"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return None
    ray_bin = Path(sys.executable).with_name("ray")
    script = (
        f"mount -t tmpfs tmpfs {shlex.quote(str(hidden))} && exec {shlex.quote(str(ray_bin))} start "
        f"--address={shlex.quote(address)} --num-cpus=1 --block"
    )
    return subprocess.Popen(
        ["unshare", "-m", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_node_without_the_front_ends_disk_gets_the_model_sent(
    server: RealServer, ray_cluster: tuple[Any, Any, str]
) -> None:
    """Issue #20 point 1 across two disks: the replica placed on a node that cannot read the
    registry's blob gets it through Ray's object store, verified by digest, and serves."""
    cluster, _, _ = ray_cluster
    before = {x["node_id"] for x in httpx.get(server.url + "/api/cluster", timeout=30).json()["nodes"]}
    n = len(_model_status(server.url)["replicas"])  # every node's CPU is taken by one
    node = _node_without_our_disk(cluster.address, server.home.parent)
    if node is None:
        pytest.skip("unshare -m is not permitted here: no node with a disk of its own")
    try:
        new = wait_until(
            lambda: (
                {
                    x["node_id"]
                    for x in httpx.get(server.url + "/api/cluster", timeout=30).json()["nodes"]
                    if x["alive"]
                }
                - before
            ),
            within_s=120,
            what="the new node in the cluster",
        )
        (node_id,) = new
        r = httpx.post(server.url + "/api/scale", json={"model": MODEL, "replicas": n + 1}, timeout=600)
        assert r.status_code == 200, r.text

        def serving() -> list[dict[str, Any]]:
            return [r for r in _model_status(server.url)["replicas"] if r["state"] == "serving"]

        wait_until(lambda: len(serving()) == n + 1, within_s=300, what="a replica more serving")
        replicas = serving()
        assert node_id in {r["node_id"] for r in replicas}
        log = server.log.read_text(errors="replace")
        assert f"to node {node_id[:12]}" in log, log[-3000:]  # the bytes were sent, not found
        for i in range(4):  # and the model keeps answering with a replica more
            assert _chat(server.url, f"Question {i}: do you sell hinges of size {i}?")["choices"]
    finally:
        httpx.post(server.url + "/api/scale", json={"model": MODEL, "replicas": n}, timeout=300)
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(10)
