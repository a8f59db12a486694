"""`KeyQueue` (`controller.keyed`): the goals asked for a cycle wait as keys, not as tasks, and
are run in the order asked, a bounded number at once, each outside the context it was put in."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from backlog_operator.controller.keyed import KeyQueue

# What a kopf handler's context holds while it runs: its cause, with the event's whole body.
CAUSE: contextvars.ContextVar[bytes] = contextvars.ContextVar("cause")


def test_keys_run_in_the_order_put_at_most_workers_at_once() -> None:
    async def scenario() -> tuple[list[str], int]:
        ran: list[str] = []
        running = most = 0

        async def run(key: str) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            ran.append(key)
            await asyncio.sleep(0.001)
            running -= 1

        queue = KeyQueue(3, run)
        for n in range(50):
            queue.put(f"ns/g{n:02d}")
        await queue.drained()
        await queue.stop()
        return ran, most

    ran, most = asyncio.run(scenario())
    assert ran == [f"ns/g{n:02d}" for n in range(50)]
    assert most == 3


def test_a_thousand_waiting_keys_hold_no_task_and_no_handlers_context() -> None:
    """A task per waiting key would hold a copy of the handler's context (its cause, the
    event's body) until its turn: here 1,000 keys wait behind a blocked worker."""

    async def scenario() -> tuple[int, int, list[bytes | None], int]:
        gate = asyncio.Event()
        seen: list[bytes | None] = []

        async def run(key: str) -> None:
            seen.append(CAUSE.get(None))
            await gate.wait()

        queue = KeyQueue(2, run)
        before = len(asyncio.all_tasks())
        for n in range(1000):
            CAUSE.set(b"x" * 4096)  # as each kopf handler's context would have it
            queue.put(f"ns/g{n}")
        await asyncio.sleep(0.01)
        tasks, waiting = len(asyncio.all_tasks()) - before, len(queue)
        gate.set()
        await queue.drained()
        await queue.stop()
        return tasks, waiting, seen, len(asyncio.all_tasks()) - before

    tasks, waiting, seen, left = asyncio.run(scenario())
    assert tasks == 2  # the workers, however many keys wait
    assert waiting == 998
    assert len(seen) == 1000 and set(seen) == {None}  # never the context the key was put in
    assert left == 0  # stopped: no worker left behind


def test_a_run_that_raises_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> list[str]:
        ran: list[str] = []

        async def run(key: str) -> None:
            ran.append(key)
            if key == "ns/bad":
                raise RuntimeError("boom")

        queue = KeyQueue(1, run)
        for key in ("ns/a", "ns/bad", "ns/b"):
            queue.put(key)
        await queue.drained()
        await queue.stop()
        return ran

    assert asyncio.run(scenario()) == ["ns/a", "ns/bad", "ns/b"]
    assert "the cycle of ns/bad failed" in caplog.text


def test_stop_drops_what_waits_and_cancels_what_runs() -> None:
    async def scenario() -> tuple[list[str], bool]:
        started: list[str] = []
        cancelled = False

        async def run(key: str) -> None:
            nonlocal cancelled
            started.append(key)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled = True
                raise

        queue = KeyQueue(1, run)
        queue.put("ns/a")
        queue.put("ns/b")
        await asyncio.sleep(0.01)
        await queue.stop()
        return started, cancelled

    started, cancelled = asyncio.run(scenario())
    assert started == ["ns/a"] and cancelled


def test_drained_waits_for_the_keys_put_before_not_those_put_since() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        done: list[str] = []
        later = asyncio.Event()
        queue: KeyQueue

        async def run(key: str) -> None:
            await asyncio.sleep(0.005)
            if key == "ns/a":
                queue.put("ns/a-again")  # a cycle that asks for another
            if key == "ns/a-again":
                await later.wait()
            done.append(key)

        queue = KeyQueue(2, run)
        queue.put("ns/a")
        queue.put("ns/b")
        await queue.drained()  # returns although ns/a-again has not ended
        at_drained = list(done)
        later.set()
        await queue.drained()
        await queue.stop()
        return at_drained, done

    at_drained, done = asyncio.run(scenario())
    assert sorted(at_drained) == ["ns/a", "ns/b"]
    assert done[-1] == "ns/a-again"
