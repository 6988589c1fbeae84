"""Fakes of the residency manager's collaborators: a clock, a loader/unloader pair."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from llmos.resources import LoadGrant, MemoryBudget, MemoryEstimate, ResidencyManager

MiB = 1024 * 1024


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeModels:
    """Loads and unloads recorded in order; a loader may be held at a gate."""

    loads: list[LoadGrant] = field(default_factory=list)
    unloads: list[str] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)

    async def load(self, grant: LoadGrant) -> str:
        self.loads.append(grant)
        gate = self.gates.get(grant.model)
        if gate is not None:
            await gate.wait()
        if grant.model in self.fail:
            raise self.fail[grant.model]
        return f"handle:{grant.model}"

    async def unload(self, model: str, handle: str) -> None:
        assert handle == f"handle:{model}"
        self.unloads.append(model)

    def loaded(self, model: str) -> int:
        return sum(1 for g in self.loads if g.model == model)


def mib(n: int) -> MemoryEstimate:
    return MemoryEstimate.fixed(n * MiB)


def make_manager(
    models: FakeModels,
    clock: FakeClock,
    *,
    budget_mib: int = 250,
    cores: int = 4,
    default_keep_alive: float = 300.0,
    retunes: list[tuple[str, int]] | None = None,
) -> ResidencyManager[str]:
    return ResidencyManager[str](
        MemoryBudget(ram_bytes=budget_mib * MiB),
        unload=models.unload,
        cores=cores,
        default_keep_alive=default_keep_alive,
        clock=clock,
        wall_clock=clock,
        retune=(lambda m, n: retunes.append((m, n))) if retunes is not None else None,
    )
