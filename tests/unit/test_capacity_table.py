"""The capacity table kept one change at a time agrees with the admission rule on whole lists.

`capacity.admit` is the rule (sort every waiting goal, walk, count per repository); the table
applies it incrementally (a sorted queue, the heads of the repositories' queues, slot counts,
reservations). Random tables and random sequences of changes (goals arriving, finishing,
suspended, backing off, deleted; limits varying) check that after each `CapacityTable.admit`:
the goals it reserved are those the rule admits, in its order; no goal left in the queue is one
the rule would admit; every queue position is the rule's; and the queue holds exactly the goals
that wait for capacity alone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from backlog_operator.api.goal import Phase
from backlog_operator.controller.goals.capacity import (
    EXACT_POSITIONS,
    WAITING,
    CapacityTable,
    GoalEntry,
    QueueEntry,
    admit,
    position_stale,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
REPOSITORIES = ["r0", "r1", "r2", "r3"]
PHASES = [Phase.PENDING, Phase.QUEUED, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED]


@st.composite
def entries(draw: st.DrawFn, key: str) -> GoalEntry:
    backing_off = draw(st.sampled_from([None, None, -30, 30]))  # seconds from NOW
    return GoalEntry(
        key=key,
        repository=draw(st.sampled_from(REPOSITORIES)),
        task=draw(st.sampled_from([None, "t1", "t2"])),
        phase=draw(st.sampled_from(PHASES)),
        priority=draw(st.integers(0, 3)),
        created=T0 + timedelta(minutes=draw(st.integers(0, 5))),
        suspended=draw(st.booleans()) and draw(st.booleans()),
        blocked=draw(st.booleans()) and draw(st.booleans()),
        ready_at=None if backing_off is None else NOW + timedelta(seconds=backing_off),
    )


def goal_keys(count: int) -> list[str]:
    return [f"ns/g{i:02d}" for i in range(count)]


def could_start(entry: GoalEntry, now: datetime) -> bool:
    """Waiting for capacity alone (the rule's `waiting`)."""
    return (
        entry.phase in WAITING
        and not entry.suspended
        and not entry.blocked
        and (entry.ready_at is None or entry.ready_at <= now)
    )


def check_agrees(
    table: CapacityTable, known: dict[str, GoalEntry], limits: tuple[int, int], now: datetime
) -> None:
    """The table after `admit`: as the rule says, reservations counted as running goals."""
    per_repository, total = limits
    reserved = {key for key in known if table.reserved(key)}
    queued = [
        entry for key, entry in known.items() if could_start(entry, now) and key not in reserved
    ]
    holding = [e.repository for e in known.values() if e.phase is Phase.RUNNING]
    holding += [known[key].repository for key in reserved]
    waiting = [QueueEntry(e.key, e.repository, e.priority, e.created) for e in queued]
    admitted, positions = admit(
        waiting, holding, max_per_repository=per_repository, max_total=total
    )
    assert admitted == [], "a goal the rule admits was left in the queue"
    assert {key: table.position(key) for key in positions} == positions
    assert table.queued() == len(queued)
    for key in reserved:
        assert known[key].phase in WAITING and table.position(key) is None


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40).flatmap(lambda n: st.tuples(*(entries(key) for key in goal_keys(n)))),
    st.integers(1, 3),
    st.integers(1, 8),
)
def test_a_table_built_at_once_admits_as_the_rule(
    goals: tuple[GoalEntry, ...], per_repository: int, total: int
) -> None:
    table = CapacityTable()
    for entry in goals:
        table.put(entry)

    reserved = table.admit(NOW, max_per_repository=per_repository, max_total=total)

    waiting = [
        QueueEntry(e.key, e.repository, e.priority, e.created) for e in goals if could_start(e, NOW)
    ]
    running = [e.repository for e in goals if e.phase is Phase.RUNNING]
    admitted, positions = admit(
        waiting, running, max_per_repository=per_repository, max_total=total
    )
    assert reserved == admitted
    assert {key: table.position(key) for key in positions} == positions
    assert all(table.reserved(key) for key in admitted)
    assert set(table.take_woken()) >= set(admitted)


CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["put", "finish", "start", "suspend", "remove", "later"]),
        st.integers(0, 29),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(*(entries(key) for key in goal_keys(30))),
    CHANGES,
    st.integers(1, 3),
    st.integers(1, 8),
)
def test_changes_one_at_a_time_keep_the_table_as_the_rule(
    goals: tuple[GoalEntry, ...],
    changes: list[tuple[str, int, int]],
    per_repository: int,
    total: int,
) -> None:
    table, known = CapacityTable(), dict[str, GoalEntry]()
    now = NOW
    for what, index, value in changes:
        entry = goals[index]
        current = known.get(entry.key, entry)
        if what == "put":
            changed = entry
        elif what == "finish":
            changed = replace(current, phase=Phase.SUCCEEDED)
        elif what == "start":  # a reserved goal's decision: its Job is created
            changed = replace(current, phase=Phase.RUNNING)
        elif what == "suspend":
            changed = replace(current, phase=Phase.QUEUED, suspended=value == 0)
        elif what == "later":  # time passes: some backoffs end
            now += timedelta(seconds=20 * value)
            changed = None
        else:
            table.remove(entry.key)
            known.pop(entry.key, None)
            changed = None
        if changed is not None:
            table.put(changed)
            known[changed.key] = changed
        table.admit(now, max_per_repository=per_repository, max_total=total)
        check_agrees(table, known, (per_repository, total), now)


def test_a_reservation_is_given_back_by_the_goals_own_decision() -> None:
    table = CapacityTable()
    first = GoalEntry("ns/a", "r", None, Phase.PENDING, 0, T0)
    second = GoalEntry("ns/b", "r", None, Phase.PENDING, 1, T0)
    table.put(first)
    table.put(second)
    assert table.admit(NOW, max_per_repository=1, max_total=5) == ["ns/a"]
    assert (table.held(), table.position("ns/b")) == (1, 1)

    table.put(replace(first, suspended=True))  # it decided to wait after all

    assert not table.reserved("ns/a") and table.held() == 0
    assert table.admit(NOW, max_per_repository=1, max_total=5) == ["ns/b"]
    assert table.take_woken() == ["ns/b"]  # ns/a decided; only ns/b's decision is due


def test_a_goal_of_a_task_that_stops_running_wakes_the_others_of_the_task() -> None:
    table = CapacityTable()
    running = GoalEntry("ns/a", "r", "r|t", Phase.RUNNING, 0, T0)
    waiting = GoalEntry("ns/b", "r", "r|t", Phase.QUEUED, 0, T0, blocked=True)
    other = GoalEntry("ns/c", "r", "r|u", Phase.QUEUED, 0, T0, blocked=True)
    for entry in (running, waiting, other):
        table.put(entry)
    table.take_woken()

    table.put(replace(running, phase=Phase.SUCCEEDED))

    assert table.take_woken() == ["ns/b"]
    assert [e.key for e in table.same_task(waiting)] == ["ns/a"]


def test_queue_positions_are_rewritten_exactly_near_the_head_and_by_a_tenth_further_back() -> None:
    assert not position_stale(7, 7)
    assert position_stale(None, 300)
    assert position_stale(EXACT_POSITIONS + 1, EXACT_POSITIONS)
    assert position_stale(3, 2)
    assert not position_stale(1000, 950)
    assert position_stale(1000, 900)
    table = CapacityTable()
    for index in range(200):
        table.put(GoalEntry(f"ns/g{index:03d}", "r", None, Phase.PENDING, 0, T0))
    for index in range(200):
        key = f"ns/g{index:03d}"
        table.note_position(key, table.position(key))
    assert table.stale_positions() == []  # nothing moved since they were written

    table.remove("ns/g000")  # everyone moves up by one

    stale = table.stale_positions()
    assert stale == [f"ns/g{index:03d}" for index in range(1, EXACT_POSITIONS + 1)]
    assert table.stale_positions() == []  # asked again with no change: no walk, nothing
