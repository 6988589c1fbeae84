"""ResidencyManager: budget, LRU eviction, busy and pinned models, keep-alive, one load per model."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from llmos.errors import ModelNotFound, ResourceExhausted
from llmos.resources import FOREVER, MemoryBudget, MemoryEstimate, ResidencyManager

from .fakes import FakeClock, FakeModels, MiB, make_manager, mib


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_budget_fits_two_the_third_evicts_the_least_recently_used_idle_one() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        await rm.ensure_resident("a", mib(100), models.load)
        clock.advance(1)
        await rm.ensure_resident("b", mib(100), models.load)
        clock.advance(1)
        async with rm.use("a", mib(100), models.load):  # a is now more recently used than b
            clock.advance(1)
        clock.advance(1)
        assert rm.fits(mib(50)) and not rm.fits(mib(100))
        assert rm.plan_eviction(mib(100)).victims == ("b",)
        assert models.unloads == []  # planning evicts nothing

        await rm.ensure_resident("c", mib(100), models.load)

        assert models.unloads == ["b"]
        assert {i.model for i in rm.snapshot()} == {"a", "c"}
        assert rm.used() == 200 * MiB
        evict = [e for e in rm.events.recent() if e.kind == "evict"]
        assert len(evict) == 1
        assert (evict[0].model, evict[0].for_model, evict[0].bytes) == ("b", "c", 100 * MiB)
        assert "least recently used" in evict[0].reason

    run(main())


def test_busy_model_is_never_evicted() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        lease = await rm.acquire("a", mib(100), models.load)  # a: oldest, but busy
        clock.advance(1)
        await rm.ensure_resident("b", mib(100), models.load)
        clock.advance(1)

        await rm.ensure_resident("c", mib(100), models.load)
        assert models.unloads == ["b"]

        # Now a and c are both busy: d cannot fit, and nothing is evicted.
        lease_c = await rm.acquire("c", mib(100), models.load)
        with pytest.raises(ResourceExhausted) as err:
            await rm.ensure_resident("d", mib(100), models.load)
        assert "busy with 1 request" in err.value.message
        assert models.unloads == ["b"]
        assert rm.is_resident("a") and rm.is_resident("c")
        await rm.release(lease)
        await rm.release(lease_c)

    run(main())


def test_pinned_model_is_never_evicted() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        await rm.ensure_resident("a", mib(100), models.load, pin=True)
        clock.advance(1)
        await rm.ensure_resident("b", mib(100), models.load)
        clock.advance(1)
        await rm.ensure_resident("c", mib(100), models.load)
        assert models.unloads == ["b"]
        rm.pin("c")
        with pytest.raises(ResourceExhausted) as err:
            await rm.ensure_resident("d", mib(100), models.load)
        assert "pinned" in err.value.message
        rm.unpin("a")
        await rm.ensure_resident("d", mib(100), models.load)
        assert models.unloads == ["b", "a"]

    run(main())


def test_model_larger_than_the_budget_fails_fast_and_others_keep_serving() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        await rm.ensure_resident("a", mib(100), models.load)
        await rm.ensure_resident("b", mib(100), models.load)
        with pytest.raises(ResourceExhausted) as err:
            await rm.acquire("huge", mib(300), models.load)
        message = err.value.message
        assert "huge" in message and "300 MiB" in message and "250 MiB" in message
        assert "a 100 MiB (idle)" in message
        assert models.unloads == [] and models.loaded("huge") == 0
        assert rm.is_resident("a") and rm.is_resident("b")
        assert rm.events.recent()[-1].kind == "reject"
        async with rm.use("a", mib(100), models.load) as handle:
            assert handle == "handle:a"

    run(main())


def test_not_enough_even_after_evicting_every_idle_model_evicts_nothing() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        lease = await rm.acquire("a", mib(150), models.load)
        await rm.ensure_resident("b", mib(50), models.load)
        plan = rm.plan_eviction(mib(200))
        assert not plan.sufficient and plan.victims == ("b",)
        with pytest.raises(ResourceExhausted, match="only 100 MiB could be freed"):
            await rm.ensure_resident("c", mib(200), models.load)
        assert models.unloads == []
        await rm.release(lease)

    run(main())


def test_keep_alive_zero_unloads_right_after_the_request() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        first = await rm.acquire("a", mib(100), models.load, keep_alive=0)
        second = await rm.acquire("a", mib(100), models.load, keep_alive=0)
        await rm.release(first)
        assert rm.is_resident("a")  # still one request in flight
        await rm.release(second)
        assert not rm.is_resident("a")
        assert models.unloads == ["a"]
        assert rm.events.recent()[-1].kind == "expire"

    run(main())


def test_keep_alive_duration_expires_only_when_idle() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        lease = await rm.acquire("a", mib(100), models.load, keep_alive=30)
        clock.advance(3600)
        assert await rm.sweep() == []  # busy: never expires
        await rm.release(lease)
        clock.advance(29)
        assert await rm.sweep() == []
        (info,) = rm.snapshot()
        assert info.expires_at == pytest.approx(clock.now + 1)
        clock.advance(2)
        assert await rm.sweep() == ["a"]
        assert models.unloads == ["a"]
        event = rm.events.recent()[-1]
        assert event.kind == "expire" and "30s" in event.reason

    run(main())


def test_keep_alive_forever_and_default_per_model() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock, default_keep_alive=60)
        rm.set_model_keep_alive("b", 10)
        async with rm.use("a", mib(50), models.load, keep_alive=FOREVER):
            pass
        async with rm.use("b", mib(50), models.load):
            pass
        async with rm.use("c", mib(50), models.load):
            pass
        clock.advance(11)
        assert await rm.sweep() == ["b"]
        clock.advance(50)
        assert await rm.sweep() == ["c"]
        clock.advance(10**7)
        assert await rm.sweep() == []
        assert rm.is_resident("a") and rm.snapshot()[0].expires_at is None

    run(main())


def test_concurrent_requests_share_one_load() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        models.gates["a"] = asyncio.Event()
        rm = make_manager(models, clock)
        tasks = [asyncio.create_task(rm.acquire("a", mib(100), models.load)) for _ in range(10)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert models.loaded("a") == 1
        assert [i.state for i in rm.snapshot()] == ["loading"]
        models.gates["a"].set()
        leases = await asyncio.gather(*tasks)
        assert models.loaded("a") == 1
        assert {lease.handle for lease in leases} == {"handle:a"}
        assert rm.snapshot()[0].in_flight == 10
        for lease in leases:
            await rm.release(lease)
        assert rm.snapshot()[0].in_flight == 0

    run(main())


def test_different_models_load_concurrently_when_they_fit() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        models.gates["a"] = asyncio.Event()
        models.gates["b"] = asyncio.Event()
        rm = make_manager(models, clock)
        ta = asyncio.create_task(rm.ensure_resident("a", mib(100), models.load))
        tb = asyncio.create_task(rm.ensure_resident("b", mib(100), models.load))
        for _ in range(20):
            await asyncio.sleep(0)
        assert [g.model for g in models.loads] == ["a", "b"]  # both started before either finished
        # A loading model is never evicted to make room, and its space is reserved.
        with pytest.raises(ResourceExhausted, match="loading"):
            await rm.ensure_resident("c", mib(100), models.load)
        models.gates["a"].set()
        models.gates["b"].set()
        assert await asyncio.gather(ta, tb) == ["handle:a", "handle:b"]

    run(main())


def test_a_failed_load_fails_every_waiter_and_can_be_retried() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        models.gates["a"] = asyncio.Event()
        models.fail["a"] = RuntimeError("bad weights")
        rm = make_manager(models, clock)
        tasks = [asyncio.create_task(rm.acquire("a", mib(100), models.load)) for _ in range(3)]
        for _ in range(20):
            await asyncio.sleep(0)
        models.gates["a"].set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert rm.snapshot() == [] and rm.used() == 0
        assert rm.events.recent()[-1].kind == "load_failed"
        del models.fail["a"]
        assert await rm.ensure_resident("a", mib(100), models.load) == "handle:a"
        assert models.loaded("a") == 2

    run(main())


def test_explicit_unload_waits_for_busy_models_and_rejects_unknown_ones() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        await rm.ensure_resident("idle", mib(50), models.load, pin=True)
        assert await rm.unload("idle") is True
        lease = await rm.acquire("busy", mib(50), models.load)
        assert await rm.unload("busy") is False
        assert rm.is_resident("busy")
        await rm.release(lease)
        assert models.unloads == ["idle", "busy"]
        with pytest.raises(ModelNotFound):
            await rm.unload("busy")
        with pytest.raises(ModelNotFound):
            rm.pin("nope")

    run(main())


def test_a_request_for_a_model_being_evicted_waits_and_reloads() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        gate = asyncio.Event()
        unloaded: list[str] = []

        async def slow_unload(model: str, handle: str) -> None:
            await gate.wait()
            unloaded.append(model)

        rm = ResidencyManager[str](
            MemoryBudget(ram_bytes=250 * MiB), unload=slow_unload, cores=2, clock=clock
        )
        await rm.ensure_resident("a", mib(100), models.load)
        clock.advance(1)
        await rm.ensure_resident("b", mib(100), models.load)
        clock.advance(1)
        tc = asyncio.create_task(rm.ensure_resident("c", mib(100), models.load))  # evicts a
        for _ in range(10):
            await asyncio.sleep(0)
        ta = asyncio.create_task(rm.ensure_resident("a", mib(100), models.load))
        for _ in range(10):
            await asyncio.sleep(0)
        gate.set()
        await tc
        await ta  # a comes back by evicting b, the least recently used idle one now
        assert unloaded == ["a", "b"]
        assert models.loaded("a") == 2

    run(main())


def test_threads_are_granted_at_load_and_retuned_when_models_get_busy() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        retunes: list[tuple[str, int]] = []
        rm = make_manager(models, clock, cores=4, retunes=retunes)
        lease_a = await rm.acquire("a", mib(50), models.load)
        assert models.loads[0].n_threads == 4
        lease_b = await rm.acquire("b", mib(50), models.load)
        assert models.loads[1].n_threads == 2
        assert ("a", 2) in retunes
        await rm.release(lease_a)
        assert ("b", 4) in retunes
        assert {i.model: i.threads for i in rm.snapshot()} == {"a": 2, "b": 4}
        await rm.release(lease_b)

    run(main())


def test_measured_bytes_count_when_larger_than_the_estimate() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()

        async def measure(handle: str) -> int | None:
            return 120 * MiB

        rm = ResidencyManager[str](
            MemoryBudget(ram_bytes=250 * MiB), unload=models.unload, cores=2, clock=clock, measure=measure
        )
        await rm.ensure_resident("a", mib(100), models.load)
        (info,) = rm.snapshot()
        assert (info.estimated_bytes, info.measured_bytes, info.charged_bytes) == (
            100 * MiB,
            120 * MiB,
            120 * MiB,
        )
        assert not rm.fits(mib(131)) and rm.fits(mib(130))
        rm.report_measured("a", 90 * MiB)
        assert rm.snapshot()[0].charged_bytes == 100 * MiB

    run(main())


def test_gpu_models_are_charged_to_their_vram_pool() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        budget = MemoryBudget(ram_bytes=100 * MiB, vram_bytes={"cuda:0": 1000 * MiB})
        rm = ResidencyManager[str](budget, unload=models.unload, cores=2, clock=clock)
        gpu = MemoryEstimate(
            weights=600 * MiB,
            vocab=0,
            kv_cache=0,
            compute=0,
            runtime=50 * MiB,
            device="cuda:0",
            vram=600 * MiB,
        )
        await rm.ensure_resident("g", gpu, models.load)
        assert rm.used("cuda:0") == 600 * MiB and rm.used("cpu") == 50 * MiB
        with pytest.raises(ResourceExhausted, match="VRAM on cuda:0"):
            await rm.ensure_resident("g2", MemoryEstimate.fixed(2000 * MiB, "cuda:0"), models.load)

    run(main())


def test_sweeper_task_unloads_expired_models_with_an_injected_clock() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)
            clock.advance(seconds)
            await asyncio.sleep(0)

        rm = ResidencyManager[str](
            MemoryBudget(ram_bytes=250 * MiB),
            unload=models.unload,
            cores=2,
            clock=clock,
            sleep=fake_sleep,
            sweep_interval=5.0,
        )
        async with rm.use("a", mib(50), models.load, keep_alive=12):
            pass
        rm.start()
        for _ in range(100):
            if models.unloads:
                break
            await asyncio.sleep(0)
        await rm.stop()
        assert models.unloads == ["a"]
        assert delays[:3] == [5.0, 5.0, 2.0]

    run(main())


def test_shutdown_unloads_everything() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        rm = make_manager(models, clock)
        await rm.ensure_resident("a", mib(50), models.load, pin=True)
        await rm.ensure_resident("b", mib(50), models.load)
        await rm.shutdown()
        assert sorted(models.unloads) == ["a", "b"] and rm.snapshot() == []

    run(main())


def test_a_model_chosen_for_eviction_cannot_be_acquired_while_earlier_victims_unload() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        gate = asyncio.Event()
        unloaded: list[str] = []

        async def slow_unload(model: str, handle: str) -> None:
            await gate.wait()
            unloaded.append(model)

        rm = ResidencyManager[str](
            MemoryBudget(ram_bytes=250 * MiB), unload=slow_unload, cores=2, clock=clock
        )
        for name in ("a", "b"):
            await rm.ensure_resident(name, mib(100), models.load)
            clock.advance(1)
        big = asyncio.create_task(rm.ensure_resident("big", mib(250), models.load))  # evicts a, then b
        for _ in range(10):
            await asyncio.sleep(0)
        late = asyncio.create_task(rm.acquire("b", mib(100), models.load))  # b is already claimed
        for _ in range(10):
            await asyncio.sleep(0)
        assert not late.done()
        gate.set()
        await big
        assert unloaded == ["a", "b"]
        with pytest.raises(ResourceExhausted):  # b waits for its unload, then cannot fit next to big
            await late

    run(main())


def test_a_cancelled_caller_does_not_abort_the_shared_load() -> None:
    async def main() -> None:
        models, clock = FakeModels(), FakeClock()
        models.gates["a"] = asyncio.Event()
        rm = make_manager(models, clock)
        first = asyncio.create_task(rm.acquire("a", mib(100), models.load))
        second = asyncio.create_task(rm.acquire("a", mib(100), models.load))
        for _ in range(10):
            await asyncio.sleep(0)
        first.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        models.gates["a"].set()
        lease = await second
        assert first.cancelled() and lease.handle == "handle:a"
        assert rm.snapshot()[0].in_flight == 1 and models.loaded("a") == 1
        await rm.release(lease)
        assert rm.snapshot()[0].in_flight == 0

    run(main())
