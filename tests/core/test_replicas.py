"""A model's replicas (cluster mode's ReplicaSet) over engine cores on threads with the fake
engine: routing by prompt prefix, a replica dying with requests queued, scaling, merged stats."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmos.core import CoreClient, ThreadHost
from llmos.engine.fake import FakeEngine
from llmos.errors import EngineDeadError, InvalidRequest
from llmos.kernel.replicas import ReplicaSet
from llmos.resources.residency_events import EventLog
from polling import until

from .conftest import Gate, fake_spec, request

pytestmark = pytest.mark.anyio

SYSTEM = tuple(range(100, 164))  # two routing blocks


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Replicas:
    def __init__(self) -> None:
        self.engines: dict[str, FakeEngine] = {}
        self.gates: dict[str, Gate] = {}
        self.events = EventLog()
        self.room = True
        self.no_room_answers = 0
        """How many times ``has_room`` says no before it says ``room``."""
        self.gated = False
        self.set: ReplicaSet | None = None

    def make_core(self, name: str) -> CoreClient:
        gate = Gate()
        if not self.gated:
            gate.open()
        self.gates[name] = gate

        def make(backend: str) -> FakeEngine:
            engine = FakeEngine(sleep=gate.sleep)
            self.engines[name] = engine
            return engine

        rs = self.set
        assert rs is not None
        return CoreClient(
            ThreadHost(make),
            fake_spec(n_slots=1, step_cost_s=0.001 if self.gated else 0.0),
            on_dead=lambda why: rs.replica_died(name, why),
        )

    async def has_room(self) -> bool:
        if self.no_room_answers > 0:
            self.no_room_answers -= 1
            return False
        return self.room

    def build(self, n: int = 2, **kw: object) -> ReplicaSet:
        self.set = ReplicaSet(
            "fake:test",
            self.make_core,
            min_replicas=n,
            has_room=self.has_room,
            events=self.events,
            interval_s=3600,
            **kw,  # type: ignore[arg-type]
        )
        return self.set


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    r = Replicas()
    yield r
    if r.set is not None:
        for gate in r.gates.values():
            gate.open()
        await r.set.close()


async def test_requests_sharing_a_prompt_start_go_to_one_replica_others_balance(replicas: Replicas) -> None:
    rs = replicas.build(2)
    await rs.start()
    assert len(rs.replicas) == 2
    same = [rs.submit(request(f"s{i}", prompt=(*SYSTEM, i), max_tokens=3)) for i in range(4)]
    for s in same:
        await s.collect()
    served = {n: e.info for n, e in replicas.engines.items()}
    assert len(served) == 2
    assert rs.router.decisions["affinity"] == 3 and rs.router.decisions["load"] == 1
    stats = await rs.stats()
    assert stats.completed == 4 and stats.slots == 2
    per = await rs.replica_stats()
    assert sorted(s.completed for s in per.values()) == [0, 4]  # all four on the replica that had it first


async def test_a_dead_replica_moves_its_unstarted_requests_and_fails_the_started_ones(
    replicas: Replicas,
) -> None:
    replicas.gated = True
    rs = replicas.build(2, room_wait_s=0.0)
    await rs.start()
    started = rs.submit(request("a", prompt=(*SYSTEM, 1), max_tokens=50))
    queued = rs.submit(request("b", prompt=(*SYSTEM, 2), max_tokens=3))  # affinity: behind "a", 1 slot
    owner = next(n for n, r in rs.replicas.items() if r.core.in_flight == 2)
    other = next(n for n in rs.replicas if n != owner)
    replicas.gates[other].open()
    replicas.gates[owner].step()  # "a" is admitted and gets a token
    await until(lambda: started.queue_position is None and bool(started._items), what='a token for "a"')
    replicas.room = False  # no node has room: the replica is not replaced at once
    replicas.engines[owner].kill("node lost")
    replicas.gates[owner].open()
    with pytest.raises(EngineDeadError):
        await started.collect()
    outs = await queued.collect()  # re-routed to the other replica, on the same stream
    assert outs[-1].finish_reason is not None
    assert list(rs.replicas) == [other] and rs.alive
    kinds = [e.kind for e in replicas.events.recent()]
    assert "replica_died" in kinds and kinds[-1] == "replica_failed"
    replicas.room = True
    await rs.autoscale_once()  # the supervisor restores the minimum once a node has room
    assert len(rs.replicas) == 2 and replicas.events.recent()[-1].kind == "replica_started"


async def test_a_dead_replica_is_replaced_when_room_shows_a_moment_later(replicas: Replicas) -> None:
    # Ray frees a dead actor's resources a moment after its death is known: the replacement asks
    # again rather than leaving it to the supervisor (an hour away here).
    rs = replicas.build(2, room_wait_s=5.0)
    await rs.start()
    dead = next(iter(rs.replicas))
    replicas.no_room_answers = 3
    replicas.engines[dead].kill("actor killed")
    moved = rs.replicas[dead].core.submit(request("x", max_tokens=2))  # its engine dies on it
    assert (await moved.collect())[-1].finish_reason is not None  # re-routed
    await until(
        lambda: len(rs.replicas) == 2 and dead not in rs.replicas, what="a replica in the dead one's place"
    )
    kinds = [(e.kind, e.reason) for e in replicas.events.recent()]
    assert kinds[-1] == ("replica_started", f"fake:test#3: replaces {dead}, which died"), kinds
    assert "replica_failed" not in [k for k, _ in kinds] and replicas.no_room_answers == 0


async def test_scale_up_and_down(replicas: Replicas) -> None:
    rs = replicas.build(1)
    await rs.start()
    assert await rs.scale(3) == 3
    assert await rs.scale(1) == 1
    assert [e.kind for e in replicas.events.recent()].count("scale_down") == 2
    with pytest.raises(InvalidRequest):
        await rs.scale(0)


async def test_when_every_replica_dies_the_model_is_dead(replicas: Replicas) -> None:
    deaths: list[str] = []
    rs = replicas.build(1, on_dead=deaths.append)
    await rs.start()
    (engine,) = replicas.engines.values()
    engine.kill()
    with pytest.raises(EngineDeadError):
        await rs.submit(request("x", prompt=(1, 2, 3))).collect()
    await until(lambda: bool(deaths), what="the set's death reported")
    assert rs.dead is not None and not rs.alive
    with pytest.raises(EngineDeadError):
        rs.submit(request("y"))
