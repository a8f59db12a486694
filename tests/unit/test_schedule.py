"""GoalSchedule's pure scheduling logic: cron parsing, time zones, missed times, concurrency,
history limits and Goal names, checked against what Kubernetes' CronJob controller does.

Time is only ever a value here: nothing sleeps and nothing reads a clock.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backlog_operator.controller.owned_goals import FinishedGoal, history_to_delete
from backlog_operator.controller.schedules.cron import (
    ALREADY_STARTED,
    GOAL_ALREADY_ACTIVE,
    INVALID_SCHEDULE,
    MISSED_LIMIT,
    MISSED_SCHEDULE,
    ConcurrencyPolicy,
    CronSchedule,
    ScheduleError,
    concurrency_decision,
    due,
    goal_name,
    next_schedule_time,
    parse_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def times(schedule: CronSchedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` schedule times after `after`, each found by a fresh call."""
    found = []
    for _ in range(count):
        after = next_schedule_time(schedule, after)
        found.append(after)
    return found


class TestParseSchedule:
    @pytest.mark.parametrize(
        ("macro", "expansion"),
        [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("  @Daily ", "0 0 * * *"),
        ],
    )
    def test_macros_fire_as_their_expansion(self, macro: str, expansion: str) -> None:
        schedule = parse_schedule(macro, None)
        assert schedule.expression == macro.strip()
        assert times(schedule, T0, 5) == times(parse_schedule(expansion, None), T0, 5)

    @pytest.mark.parametrize(
        ("expression", "expected"),
        [
            ("*/15 * * * *", [utc(2026, 1, 5, 10, 15), utc(2026, 1, 5, 10, 30)]),
            ("5/20 * * * *", [utc(2026, 1, 5, 10, 5), utc(2026, 1, 5, 10, 25)]),
            ("0 9-17/4 * * *", [utc(2026, 1, 5, 13), utc(2026, 1, 5, 17), utc(2026, 1, 6, 9)]),
            ("30 8,20 * * *", [utc(2026, 1, 5, 20, 30), utc(2026, 1, 6, 8, 30)]),
            ("0 0 * * MON-FRI", [utc(2026, 1, 6), utc(2026, 1, 7)]),
            ("0 0 * * sat,Sun", [utc(2026, 1, 10), utc(2026, 1, 11), utc(2026, 1, 17)]),
            ("0 12 ? feb ?", [utc(2026, 2, 1, 12), utc(2026, 2, 2, 12)]),
            ("0 0 29 2 *", [utc(2028, 2, 29), utc(2032, 2, 29)]),
            ("0 0 31 * *", [utc(2026, 1, 31), utc(2026, 3, 31), utc(2026, 5, 31)]),
            ("\t0  0 1   1 *\n", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ],
    )
    def test_five_fields(self, expression: str, expected: list[datetime]) -> None:
        assert times(parse_schedule(expression, None), T0, len(expected)) == expected

    def test_both_day_fields_restricted_fire_on_either(self) -> None:
        # robfig/cron and Vixie cron: the 13th of the month, and every Friday.
        schedule = parse_schedule("0 0 13 * FRI", None)
        assert times(schedule, utc(2026, 1, 31), 4) == [
            utc(2026, 2, 6),
            utc(2026, 2, 13),
            utc(2026, 2, 20),
            utc(2026, 2, 27),
        ]

    def test_a_star_day_field_means_both_must_match(self) -> None:
        # `*/2` carries robfig's star bit: odd-numbered days that are also Mondays.
        schedule = parse_schedule("0 0 */2 * MON", None)
        found = times(schedule, T0, 6)
        assert all(t.day % 2 == 1 and t.weekday() == 0 for t in found)
        assert found[0] == utc(2026, 1, 19)

    def test_a_full_range_is_still_a_restriction(self) -> None:
        # `1-31` has no star bit, so with a restricted weekday either matches: every day.
        schedule = parse_schedule("0 0 1-31 * MON", None)
        assert times(schedule, T0, 3) == [utc(2026, 1, 6), utc(2026, 1, 7), utc(2026, 1, 8)]

    def test_no_time_zone_means_utc(self) -> None:
        schedule = parse_schedule("0 9 * * *", None)
        assert schedule.time_zone == "UTC"
        assert schedule == parse_schedule("0 9 * * *", "UTC")
        assert next_schedule_time(schedule, T0) == utc(2026, 1, 6, 9)

    @pytest.mark.parametrize(
        ("expression", "problem"),
        [
            ("61 * * * *", "minute must be 0-59, got 61"),
            ("* 24 * * *", "hour must be 0-23, got 24"),
            ("* * 0 * *", "day-of-month must be 1-31, got 0"),
            ("* * * 13 *", "month must be 1-12 (or JAN-DEC), got 13"),
            ("* * * * 7", "day-of-week must be 0-6 (0 is Sunday; or SUN-SAT), got 7"),
            ("* * * FOO *", "month must be 1-12 (or JAN-DEC), got 'FOO'"),
            ("* * * * MON-FOO", "day-of-week must be 0-6 (0 is Sunday; or SUN-SAT), got 'FOO'"),
            ("1000000000000 * * * *", "minute must be 0-59, got 1000000000000"),
            ("-5 * * * *", "minute has a range with a missing number"),
            ("L * * * *", "minute must be 0-59, got 'L'"),
            ("30-10 * * * *", "minute range '30-10' runs backwards"),
            ("*/0 * * * *", "minute step must be a positive whole number, got '0'"),
            ("*/x * * * *", "minute step must be a positive whole number, got 'x'"),
            ("1/2/3 * * * *", "minute step must be a positive whole number, got '2/3'"),
            ("1,,2 * * * *", "minute has an empty item in '1,,2'"),
            ("0 0 1W * *", "day-of-month must be 1-31, got '1W'"),
            ("0 0 * * 5#3", "day-of-week must be 0-6 (0 is Sunday; or SUN-SAT), got '5#3'"),
            ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week)"),
            ("", "expected 5 fields"),
            ("0 0 * * * *", "got 6 (there are no seconds or year fields)"),
            ("0 0 30 2 *", "day-of-month 30 never occurs in February"),
            ("0 0 31 4,6 *", "day-of-month 31 never occurs in April, June"),
            ("@every 1h", "@every is not supported: write a cron expression"),
            ("@reboot", "@reboot is not supported"),
            ("@fortnightly", "unknown macro"),
        ],
    )
    def test_invalid_expressions_name_the_problem(self, expression: str, problem: str) -> None:
        with pytest.raises(ScheduleError) as caught:
            parse_schedule(expression, None)
        assert str(caught.value).startswith(f"invalid cron expression '{expression.strip()}': ")
        assert problem in str(caught.value)
        assert caught.value.field == "schedule"
        assert caught.value.reason == INVALID_SCHEDULE
        assert isinstance(caught.value, ValueError)

    def test_the_exact_message_for_an_out_of_range_minute(self) -> None:
        with pytest.raises(ScheduleError, match=r"^invalid cron expression '61 \* \* \* \*': "):
            parse_schedule("61 * * * *", None)

    def test_a_long_expression_is_shortened_in_the_message(self) -> None:
        with pytest.raises(ScheduleError) as caught:
            parse_schedule("1," * 500 + "99 * * * *", None)
        assert len(str(caught.value)) < 250

    def test_never_firing_with_a_star_weekday_is_fine_when_the_date_exists(self) -> None:
        # February 29th that is also a Sunday comes every 28 years or so: rare, not never.
        schedule = parse_schedule("0 0 29 2 */7", None)
        assert next_schedule_time(schedule, utc(2004, 3, 1)) == utc(2032, 2, 29)

    @pytest.mark.parametrize(
        ("expression", "time_zone", "problem"),
        [
            ("TZ=UTC 0 * * * *", None, "TZ= and CRON_TZ= prefixes are not supported"),
            ("CRON_TZ=Europe/Berlin 0 * * * *", None, "set timeZone instead"),
            ("CRON_TZ=Europe/Berlin 0 * * * *", "UTC", "cannot use both timeZone and a TZ="),
            ("tz=UTC 0 * * * *", "Europe/Berlin", "cannot use both timeZone"),
        ],
    )
    def test_tz_prefixes_are_refused(
        self, expression: str, time_zone: str | None, problem: str
    ) -> None:
        with pytest.raises(ScheduleError, match=problem) as caught:
            parse_schedule(expression, time_zone)
        assert caught.value.field == "schedule"

    @pytest.mark.parametrize(
        ("time_zone", "problem"),
        [
            ("Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons': use an IANA time zone"),
            ("Europe/Berlin ", "unknown time zone 'Europe/Berlin '"),
            ("europe/berlin", "unknown time zone"),
            ("America", "unknown time zone 'America'"),
            ("../../etc/passwd", "unknown time zone"),
            ("/etc/localtime", "unknown time zone"),
            ("Europe//Berlin", "unknown time zone"),
            ("-Europe/Berlin", "unknown time zone"),
            ("", "timeZone must be absent or a time zone name, not empty"),
            ("Local", "time zone 'Local' is not allowed: name an explicit zone"),
            ("localtime", "is not allowed"),
        ],
    )
    def test_invalid_time_zones_name_the_problem(self, time_zone: str, problem: str) -> None:
        with pytest.raises(ScheduleError) as caught:
            parse_schedule("0 * * * *", time_zone)
        assert problem in str(caught.value)
        assert caught.value.field == "timeZone"
        # The zone library's own text names files on the machine: never passed on.
        assert "site-packages" not in str(caught.value)
        assert "zoneinfo" not in str(caught.value).lower()

    def test_the_time_zone_is_checked_even_when_the_expression_is_bad(self) -> None:
        with pytest.raises(ScheduleError) as caught:
            parse_schedule("nonsense", "Nowhere/Special")
        assert caught.value.field == "timeZone"


class TestNextScheduleTime:
    def test_strictly_after_and_in_utc(self) -> None:
        hourly = parse_schedule("0 * * * *", None)
        assert next_schedule_time(hourly, utc(2026, 1, 5, 10)) == utc(2026, 1, 5, 11)
        before = utc(2026, 1, 5, 10) - timedelta(microseconds=1)
        assert next_schedule_time(hourly, before) == utc(2026, 1, 5, 10)
        assert next_schedule_time(hourly, utc(2026, 1, 5, 10, 0, 30)) == utc(2026, 1, 5, 11)
        assert next_schedule_time(hourly, T0).tzinfo is UTC

    def test_any_aware_input_gives_the_same_instant(self) -> None:
        schedule = parse_schedule("0 9 * * *", "Europe/Berlin")
        elsewhere = T0.astimezone(timezone(timedelta(hours=-7)))
        assert next_schedule_time(schedule, elsewhere) == next_schedule_time(schedule, T0)

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            next_schedule_time(parse_schedule("@hourly", None), datetime(2026, 1, 1))

    def test_wall_clock_of_the_zone(self) -> None:
        nine = parse_schedule("0 9 * * *", "Europe/Berlin")
        # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert next_schedule_time(nine, utc(2026, 1, 5)) == utc(2026, 1, 5, 8)
        assert next_schedule_time(nine, utc(2026, 7, 6)) == utc(2026, 7, 6, 7)
        new_york = parse_schedule("0 9 * * *", "America/New_York")
        assert next_schedule_time(new_york, utc(2026, 1, 5)) == utc(2026, 1, 5, 14)

    def test_spring_forward_runs_a_skipped_time_at_the_end_of_the_gap(self) -> None:
        # Europe/Berlin, 2024-03-31: 02:00 CET becomes 03:00 CEST; 02:30 does not exist. croniter
        # runs at 03:00 CEST (01:00 UTC) that day, then at 02:30 again from the next day.
        schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
        found = times(schedule, utc(2024, 3, 29, 12), 4)
        assert found == [
            utc(2024, 3, 30, 1, 30),  # 02:30 CET
            utc(2024, 3, 31, 1, 0),  # 03:00 CEST: the first instant after the gap
            utc(2024, 4, 1, 0, 30),  # 02:30 CEST
            utc(2024, 4, 2, 0, 30),
        ]
        assert found[1].astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"

    def test_fall_back_runs_a_repeated_time_twice(self) -> None:
        # Europe/Berlin, 2024-10-27: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
        found = times(schedule, utc(2024, 10, 26, 12), 3)
        assert found == [
            utc(2024, 10, 27, 0, 30),  # 02:30 CEST
            utc(2024, 10, 27, 1, 30),  # 02:30 CET, an hour later
            utc(2024, 10, 28, 1, 30),
        ]
        assert [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in found[:2]] == [
            "02:30 CEST",
            "02:30 CET",
        ]

    @pytest.mark.parametrize("start", [utc(2024, 3, 30, 20), utc(2024, 10, 26, 20)])
    def test_hourly_stays_hourly_across_both_changes(self, start: datetime) -> None:
        found = times(parse_schedule("@hourly", "Europe/Berlin"), start, 12)
        assert [b - a for a, b in itertools.pairwise(found)] == [timedelta(hours=1)] * 11

    # Europe/Berlin, Sunday 2010-10-31: at 01:00 UTC 03:00 CEST becomes 02:00 CET, so 02:00-02:59
    # comes twice (00:00-00:59 UTC, then 01:00-01:59 UTC). Sunday 2013-03-31: at 01:00 UTC 02:00
    # CET becomes 03:00 CEST, so 02:00-02:59 never comes. `31 3,10` picks exactly those nights.

    def test_fall_back_a_rare_time_in_the_repeated_hour_runs_at_both_passes(self) -> None:
        # croniter, asked in the zone, went from the first 02:00 straight to the next March.
        schedule = parse_schedule("0 2 31 3,10 *", "Europe/Berlin")
        assert times(schedule, utc(2010, 10, 30), 4) == [
            utc(2010, 10, 31, 0, 0),  # 02:00 CEST
            utc(2010, 10, 31, 1, 0),  # 02:00 CET
            utc(2011, 3, 31, 0, 0),  # 02:00 CEST
            utc(2011, 10, 31, 1, 0),  # 02:00 CET (DST ended on the 30th)
        ]
        for after in (
            utc(2010, 10, 31, 0, 0),
            utc(2010, 10, 31, 0, 59, 59),
            utc(2010, 10, 31, 1) - timedelta(microseconds=1),
        ):
            assert next_schedule_time(schedule, after) == utc(2010, 10, 31, 1, 0)
        assert next_schedule_time(schedule, utc(2010, 10, 31, 1, 0)) == utc(2011, 3, 31, 0, 0)

    def test_fall_back_every_time_of_the_repeated_hour_runs_twice_in_order(self) -> None:
        schedule = parse_schedule("*/15 2 31 3,10 *", "Europe/Berlin")
        first_pass = [utc(2010, 10, 31, 0, m) for m in (0, 15, 30, 45)]  # 02:xx CEST
        second_pass = [utc(2010, 10, 31, 1, m) for m in (0, 15, 30, 45)]  # 02:xx CET
        assert times(schedule, utc(2010, 10, 30), 9) == [
            *first_pass,
            *second_pass,
            utc(2011, 3, 31, 0, 0),
        ]
        # From inside either pass: the wall clock reads 02:40 both times.
        assert next_schedule_time(schedule, utc(2010, 10, 31, 0, 40)) == utc(2010, 10, 31, 0, 45)
        assert next_schedule_time(schedule, utc(2010, 10, 31, 1, 40)) == utc(2010, 10, 31, 1, 45)
        assert next_schedule_time(schedule, utc(2010, 10, 31, 0, 50)) == utc(2010, 10, 31, 1, 0)

    def test_fall_back_every_minute_of_the_repeated_hour(self) -> None:
        schedule = parse_schedule("* 2 31 3,10 *", "Europe/Berlin")
        found = times(schedule, utc(2010, 10, 30), 121)
        assert found[:120] == [utc(2010, 10, 31) + timedelta(minutes=m) for m in range(120)]
        assert found[120] == utc(2011, 3, 31, 0, 0)

    def test_spring_forward_the_missing_times_run_once_at_the_end_of_the_gap(self) -> None:
        for expression in ("0 2 31 3,10 *", "*/15 2 31 3,10 *", "* 2 31 3,10 *"):
            schedule = parse_schedule(expression, "Europe/Berlin")
            assert times(schedule, utc(2013, 3, 30), 2) == [
                utc(2013, 3, 31, 1, 0),  # 03:00 CEST, once for the whole missing hour
                utc(2013, 10, 31, 1, 0),  # 02:00 CET
            ], expression
            just_before = utc(2013, 3, 31, 1) - timedelta(microseconds=1)
            assert next_schedule_time(schedule, just_before) == utc(2013, 3, 31, 1, 0)

    def test_spring_forward_a_missing_time_and_the_end_of_the_gap_make_one_run(self) -> None:
        schedule = parse_schedule("0 2,3 * * *", "Europe/Berlin")
        assert times(schedule, utc(2013, 3, 30, 12), 3) == [
            utc(2013, 3, 31, 1, 0),  # 02:00 does not exist, 03:00 CEST does: one run
            utc(2013, 4, 1, 0, 0),  # 02:00 CEST
            utc(2013, 4, 1, 1, 0),  # 03:00 CEST
        ]

    def test_a_skipped_day_runs_its_times_when_the_day_after_begins(self) -> None:
        # Pacific/Apia went from 2011-12-29 23:59:59 (UTC-10) to 2011-12-31 00:00 (UTC+14).
        schedule = parse_schedule("0 9 * * *", "Pacific/Apia")
        assert times(schedule, utc(2011, 12, 29), 3) == [
            utc(2011, 12, 29, 19, 0),  # 09:00 on the 29th, UTC-10
            utc(2011, 12, 30, 10, 0),  # the 30th's 09:00: 00:00 on the 31st, UTC+14
            utc(2011, 12, 30, 19, 0),  # 09:00 on the 31st
        ]


class TestDue:
    hourly = parse_schedule("0 * * * *", None)
    minutely = parse_schedule("* * * * *", None)
    long_ago = utc(2025, 1, 1)

    def test_on_time(self) -> None:
        result = due(
            self.hourly,
            last_schedule_time=T0 - timedelta(hours=1),
            creation_time=self.long_ago,
            now=T0,
            starting_deadline_seconds=60,
        )
        assert result.run_for == T0
        assert result.next_time == T0 + timedelta(hours=1)
        assert (result.missed, result.too_many_missed, result.reason) == (1, False, None)
        assert result.message == "due for 2026-01-05T10:00:00Z"

    def test_not_yet(self) -> None:
        result = due(
            self.hourly,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=T0 + timedelta(minutes=59, seconds=59),
            starting_deadline_seconds=None,
        )
        assert result.run_for is None and result.skipped_time is None and result.reason is None
        assert result.next_time == T0 + timedelta(hours=1)
        assert result.missed == 0

    def test_slightly_late_within_the_deadline(self) -> None:
        result = due(
            self.hourly,
            last_schedule_time=T0 - timedelta(hours=1),
            creation_time=self.long_ago,
            now=T0 + timedelta(seconds=45),
            starting_deadline_seconds=60,
        )
        assert result.run_for == T0 and result.reason is None

    def test_exactly_at_the_deadline_is_still_in_time(self) -> None:
        # CronJob: too late only when scheduledTime + startingDeadlineSeconds is before now.
        result = due(
            self.hourly,
            last_schedule_time=T0 - timedelta(hours=1),
            creation_time=self.long_ago,
            now=T0 + timedelta(seconds=60),
            starting_deadline_seconds=60,
        )
        assert result.run_for == T0

    def test_too_late_is_skipped_with_a_reason(self) -> None:
        result = due(
            self.hourly,
            last_schedule_time=T0 - timedelta(hours=1),
            creation_time=self.long_ago,
            now=T0 + timedelta(seconds=61),
            starting_deadline_seconds=60,
        )
        assert result.run_for is None
        assert result.skipped_time == T0
        assert result.reason == MISSED_SCHEDULE
        assert result.next_time == T0 + timedelta(hours=1)
        assert result.message == (
            "missed the schedule time 2026-01-05T10:00:00Z by more than "
            "startingDeadlineSeconds (60s); next at 2026-01-05T11:00:00Z"
        )

    def test_a_zero_deadline_allows_only_the_exact_instant(self) -> None:
        exact, late = (
            due(
                self.hourly,
                last_schedule_time=None,
                creation_time=self.long_ago,
                now=now,
                starting_deadline_seconds=0,
            )
            for now in (T0, T0 + timedelta(seconds=1))
        )
        assert exact.run_for == T0
        assert late.run_for is None and late.skipped_time == T0

    def test_after_an_outage_exactly_one_run_for_the_most_recent(self) -> None:
        # Down from 10:00 to 15:20: 11:00 ... 15:00 were missed. One Goal, for 15:00.
        now = T0 + timedelta(hours=5, minutes=20)
        result = due(
            self.hourly,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=now,
            starting_deadline_seconds=1800,
        )
        assert result.run_for == T0 + timedelta(hours=5)
        assert result.missed == 5
        assert result.too_many_missed is False
        assert result.next_time == T0 + timedelta(hours=6)
        assert "the most recent of 5 missed schedule times" in result.message
        # Once that run is recorded, nothing else is due: the older four are never run.
        again = due(
            self.hourly,
            last_schedule_time=result.run_for,
            creation_time=self.long_ago,
            now=now,
            starting_deadline_seconds=1800,
        )
        assert again.run_for is None and again.skipped_time is None

    def test_after_an_outage_the_most_recent_too_late_is_skipped(self) -> None:
        now = T0 + timedelta(hours=5, minutes=20)
        result = due(
            self.hourly,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=now,
            starting_deadline_seconds=600,
        )
        assert result.run_for is None
        assert result.skipped_time == T0 + timedelta(hours=5)
        assert result.reason == MISSED_SCHEDULE and result.missed == 5

    def test_no_deadline_has_no_limit(self) -> None:
        # CronJob with no startingDeadlineSeconds: however late, the most recent time runs.
        now = T0 + timedelta(days=30, minutes=7)
        result = due(
            self.hourly,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=now,
            starting_deadline_seconds=None,
        )
        assert result.run_for == T0 + timedelta(days=30)
        assert result.missed == MISSED_LIMIT + 1 and result.too_many_missed is True

    def test_first_run_after_creation(self) -> None:
        created = T0 + timedelta(minutes=5)
        early, first = (
            due(
                self.hourly,
                last_schedule_time=None,
                creation_time=created,
                now=now,
                starting_deadline_seconds=None,
            )
            for now in (created + timedelta(minutes=54), T0 + timedelta(hours=1, seconds=3))
        )
        assert early.run_for is None and early.next_time == T0 + timedelta(hours=1)
        assert first.run_for == T0 + timedelta(hours=1) and first.missed == 1

    def test_the_creation_instant_itself_is_not_a_missed_time(self) -> None:
        # CronJob starts looking strictly after the creation time.
        result = due(
            self.hourly,
            last_schedule_time=None,
            creation_time=T0,
            now=T0 + timedelta(seconds=5),
            starting_deadline_seconds=None,
        )
        assert result.run_for is None and result.next_time == T0 + timedelta(hours=1)

    def test_the_last_schedule_time_wins_over_the_creation_time(self) -> None:
        result = due(
            self.hourly,
            last_schedule_time=T0,
            creation_time=T0 - timedelta(days=3),
            now=T0 + timedelta(minutes=1),
            starting_deadline_seconds=None,
        )
        assert result.run_for is None

    def test_more_than_a_hundred_missed_warns(self) -> None:
        now = T0 + timedelta(hours=3, seconds=10)
        result = due(
            self.minutely,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=now,
            starting_deadline_seconds=None,
        )
        assert result.run_for == T0 + timedelta(hours=3)
        assert result.missed == MISSED_LIMIT + 1
        assert result.too_many_missed is True
        assert "more than 100 missed schedule times" in result.message
        assert "set or decrease startingDeadlineSeconds" in result.message

    def test_exactly_a_hundred_missed_does_not_warn(self) -> None:
        result = due(
            self.minutely,
            last_schedule_time=T0,
            creation_time=self.long_ago,
            now=T0 + timedelta(minutes=100),
            starting_deadline_seconds=None,
        )
        assert (result.missed, result.too_many_missed) == (100, False)

    def test_a_deadline_narrows_the_window_the_warning_counts(self) -> None:
        # CronJob counts from now - startingDeadlineSeconds when that is later than the last
        # run: ten minutes of a minutely schedule are not "too many", three hours are.
        short, long = (
            due(
                self.minutely,
                last_schedule_time=T0,
                creation_time=self.long_ago,
                now=T0 + timedelta(hours=3),
                starting_deadline_seconds=deadline,
            )
            for deadline in (600, 3 * 3600)
        )
        assert short.run_for == long.run_for == T0 + timedelta(hours=3)
        assert (short.missed, short.too_many_missed) == (MISSED_LIMIT + 1, False)
        assert long.too_many_missed is True

    def test_a_last_schedule_time_in_the_future_waits_for_the_time_after_it(self) -> None:
        # Clock skew: CronJob waits for the first time after the recorded one.
        result = due(
            self.hourly,
            last_schedule_time=T0 + timedelta(hours=2),
            creation_time=self.long_ago,
            now=T0 + timedelta(minutes=30),
            starting_deadline_seconds=None,
        )
        assert result.run_for is None and result.next_time == T0 + timedelta(hours=3)

    def test_daily_in_berlin_on_the_spring_forward_day(self) -> None:
        schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
        result = due(
            schedule,
            last_schedule_time=utc(2024, 3, 30, 1, 30),  # 02:30 CET the day before
            creation_time=self.long_ago,
            now=utc(2024, 3, 31, 1, 0, 20),  # 03:00:20 CEST
            starting_deadline_seconds=60,
        )
        assert result.run_for == utc(2024, 3, 31, 1, 0)
        assert result.next_time == utc(2024, 4, 1, 0, 30)

    def test_daily_in_berlin_on_the_fall_back_night_runs_twice(self) -> None:
        schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
        last = utc(2024, 10, 26, 0, 30)
        runs = []
        for now in (utc(2024, 10, 27, 0, 30, 5), utc(2024, 10, 27, 1, 30, 5)):
            result = due(
                schedule,
                last_schedule_time=last,
                creation_time=self.long_ago,
                now=now,
                starting_deadline_seconds=60,
            )
            assert result.run_for is not None
            runs.append(result.run_for)
            last = result.run_for
        assert runs == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)]
        assert goal_name("nightly", runs[0]) != goal_name("nightly", runs[1])

    def test_berlin_fall_back_2010_the_second_pass_is_the_most_recent(self) -> None:
        # The property test's falsifying example: created at 00:59:59 UTC, between the first
        # 02:00 (00:00 UTC) and the second (01:00 UTC), and looked at a day later.
        result = due(
            parse_schedule("0 2 31 3,10 *", "Europe/Berlin"),
            last_schedule_time=None,
            creation_time=utc(2010, 10, 31, 0, 59, 59),
            now=utc(2010, 11, 1),
            starting_deadline_seconds=None,
        )
        assert result.run_for == utc(2010, 10, 31, 1, 0)  # 02:00 CET
        assert (result.missed, result.next_time) == (1, utc(2011, 3, 31, 0, 0))

    def test_berlin_fall_back_2010_every_minute_of_both_passes_counts(self) -> None:
        schedule = parse_schedule("* 2 31 3,10 *", "Europe/Berlin")
        for created, missed in ((utc(2010, 10, 31, 0, 59, 59), 60), (utc(2010, 10, 31, 1, 0), 59)):
            result = due(
                schedule,
                last_schedule_time=None,
                creation_time=created,
                now=utc(2010, 11, 1),
                starting_deadline_seconds=None,
            )
            assert result.run_for == utc(2010, 10, 31, 1, 59)  # 02:59 CET
            assert result.missed == missed

    def test_berlin_fall_back_2010_runs_through_both_passes_one_time_each(self) -> None:
        schedule = parse_schedule("0,30 2 31 3,10 *", "Europe/Berlin")
        last = utc(2010, 3, 31, 0, 30)
        runs = []
        for minute in range(0, 150, 5):
            now = utc(2010, 10, 30, 23, 30) + timedelta(minutes=minute)
            result = due(
                schedule,
                last_schedule_time=last,
                creation_time=self.long_ago,
                now=now,
                starting_deadline_seconds=60,
            )
            assert result.next_time > now
            if result.run_for is not None:
                runs.append(result.run_for)
                last = result.run_for
            else:
                assert result.skipped_time is None
        assert runs == [
            utc(2010, 10, 31, 0, 0),  # 02:00 CEST
            utc(2010, 10, 31, 0, 30),  # 02:30 CEST
            utc(2010, 10, 31, 1, 0),  # 02:00 CET
            utc(2010, 10, 31, 1, 30),  # 02:30 CET
        ]
        assert len({goal_name("s", run) for run in runs}) == 4

    def test_berlin_spring_forward_2013_the_missing_hour_is_one_run(self) -> None:
        schedule = parse_schedule("* 2 31 3,10 *", "Europe/Berlin")
        result = due(
            schedule,
            last_schedule_time=utc(2012, 10, 31, 1, 59),
            creation_time=self.long_ago,
            now=utc(2013, 3, 31, 1, 0, 30),  # 03:00:30 CEST
            starting_deadline_seconds=60,
        )
        assert (result.run_for, result.missed) == (utc(2013, 3, 31, 1, 0), 1)
        assert result.next_time == utc(2013, 10, 31, 1, 0)
        before = due(
            schedule,
            last_schedule_time=utc(2012, 10, 31, 1, 59),
            creation_time=self.long_ago,
            now=utc(2013, 3, 31, 0, 59, 59),  # 01:59:59 CET
            starting_deadline_seconds=60,
        )
        assert before.run_for is None and before.next_time == utc(2013, 3, 31, 1, 0)

    def test_bad_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="now must be a timezone-aware"):
            due(
                self.hourly,
                last_schedule_time=None,
                creation_time=T0,
                now=datetime(2026, 1, 1),
                starting_deadline_seconds=None,
            )
        with pytest.raises(ValueError, match="must not be negative"):
            due(
                self.hourly,
                last_schedule_time=None,
                creation_time=T0,
                now=T0,
                starting_deadline_seconds=-1,
            )


class TestConcurrencyDecision:
    def test_nothing_active_starts_under_every_policy(self) -> None:
        for policy in ("Allow", "Forbid", "Replace"):
            assert concurrency_decision(policy, []).start is True
            assert concurrency_decision(policy, []).stop == ()

    def test_allow_starts_beside_active_goals(self) -> None:
        decision = concurrency_decision("Allow", ["s-1", "s-2"])
        assert decision.start is True and decision.stop == () and decision.reason is None

    def test_forbid_skips_and_says_which_is_active(self) -> None:
        decision = concurrency_decision("Forbid", ["s-29455800"])
        assert decision.start is False and decision.stop == ()
        assert decision.reason == GOAL_ALREADY_ACTIVE
        assert "s-29455800" in decision.message and "Forbid" in decision.message

    def test_replace_stops_every_active_goal_then_starts(self) -> None:
        decision = concurrency_decision("Replace", ["s-3", "s-1", "s-3"])
        assert decision.start is True
        assert decision.stop == ("s-1", "s-3")
        assert "s-1, s-3" in decision.message

    @pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
    def test_the_goal_for_this_time_already_active_is_left_alone(
        self, policy: ConcurrencyPolicy
    ) -> None:
        # CronJob checks "already processed" before the policy: Replace must not stop the Goal
        # an earlier, interrupted reconcile created for this very time.
        decision = concurrency_decision(policy, ["s-1", "s-2"], scheduled_goal="s-2")
        assert decision.start is False and decision.stop == ()
        assert decision.reason == ALREADY_STARTED

    def test_an_unknown_policy_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown concurrencyPolicy 'Sometimes'"):
            concurrency_decision("Sometimes", [])  # type: ignore[arg-type]


class TestHistoryToDelete:
    def goals(self) -> list[FinishedGoal]:
        return [
            FinishedGoal("ok-1", True, T0),
            FinishedGoal("ok-2", True, T0 + timedelta(hours=1)),
            FinishedGoal("ok-3", True, T0 + timedelta(hours=2)),
            FinishedGoal("ok-4", True, T0 + timedelta(hours=3)),
            FinishedGoal("ok-5", True, T0 + timedelta(hours=4)),
            FinishedGoal("bad-1", False, T0 + timedelta(minutes=30)),
            FinishedGoal("bad-2", False, T0 + timedelta(hours=1, minutes=30)),
            FinishedGoal("bad-3", False, T0 + timedelta(hours=2, minutes=30)),
        ]

    def test_oldest_beyond_each_limit_oldest_first(self) -> None:
        goals = self.goals()
        random.Random(4).shuffle(goals)
        assert history_to_delete(goals, successful_limit=3, failed_limit=1) == [
            "ok-1",
            "bad-1",
            "ok-2",
            "bad-2",
        ]

    def test_within_limits_nothing_goes(self) -> None:
        assert history_to_delete(self.goals(), successful_limit=5, failed_limit=10) == []
        assert history_to_delete([], successful_limit=0, failed_limit=0) == []

    def test_a_zero_limit_deletes_every_goal_of_that_outcome(self) -> None:
        assert history_to_delete(self.goals(), successful_limit=10, failed_limit=0) == [
            "bad-1",
            "bad-2",
            "bad-3",
        ]

    def test_ties_are_broken_by_name_and_no_start_time_counts_as_newest(self) -> None:
        goals = [
            FinishedGoal("c", True, T0),
            FinishedGoal("a", True, T0),
            FinishedGoal("never-started", True, None),
            FinishedGoal("b", True, T0.astimezone(BERLIN)),  # the same instant
            FinishedGoal("z-newer", True, T0 + timedelta(seconds=1)),
        ]
        assert history_to_delete(goals, successful_limit=2, failed_limit=1) == ["a", "b", "c"]
        assert history_to_delete(goals, successful_limit=0, failed_limit=1)[-1] == "never-started"

    def test_bad_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="must not be negative"):
            history_to_delete([], successful_limit=-1, failed_limit=1)
        naive = FinishedGoal("x", True, datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="timezone-aware"):
            history_to_delete([naive], 1, 1)


class TestGoalName:
    def test_name_and_minutes_since_the_epoch(self) -> None:
        # CronJob's getJobName: `<name>-<scheduledTime.Unix() / 60>`.
        assert goal_name("nightly", utc(2026, 1, 2, 10, 0)) == "nightly-29455800"
        assert goal_name("nightly", utc(1970, 1, 1, 0, 1)) == "nightly-1"

    def test_deterministic_per_scheduled_instant(self) -> None:
        moment = utc(2026, 1, 2, 10, 0)
        assert goal_name("nightly", moment) == goal_name("nightly", moment.astimezone(BERLIN))
        assert goal_name("nightly", moment) != goal_name("nightly", moment + timedelta(minutes=1))
        assert goal_name("nightly", moment) != goal_name("weekly", moment)

    def test_long_names_are_shortened_to_a_unique_label(self) -> None:
        moment = utc(2026, 1, 2, 10, 0)
        first = goal_name("a" * 60 + "-one", moment)
        second = goal_name("a" * 60 + "-two", moment)
        assert first != second
        for name in (first, second, goal_name("x" * 253, moment)):
            assert len(name) <= 63 and LABEL.fullmatch(name)
            assert name.endswith("-29455800")
        assert goal_name("a" * 54, moment) == "a" * 54 + "-29455800"  # exactly 63: kept as is
        assert goal_name("a" * 55, moment) != "a" * 55 + "-29455800"

    def test_names_that_are_not_labels_stay_apart(self) -> None:
        # `a.b` and `a-b` are both valid GoalSchedule names in one namespace.
        moment = utc(2026, 1, 2, 10, 0)
        dotted, dashed = goal_name("a.b", moment), goal_name("a-b", moment)
        assert dotted != dashed and dashed == "a-b-29455800"
        assert LABEL.fullmatch(dotted) and len(dotted) <= 63

    def test_bad_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            goal_name("nightly", datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="must not be empty"):
            goal_name("", T0)


# A small generator of expressions: each field from values that exercise lists, ranges, steps,
# names, `?`, and the day-of-month/day-of-week rules. A few combinations never fire (the 31st of
# February) and are set aside.
EXPRESSIONS = st.one_of(
    st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly"]),
    st.tuples(
        st.sampled_from(["*", "0", "30", "*/15", "5,35", "10-20/5", "59"]),
        st.sampled_from(["*", "0", "2", "*/6", "9-17", "1-3"]),
        st.sampled_from(["*", "?", "1", "15", "29", "31", "*/10", "1-7"]),
        st.sampled_from(["*", "2", "JAN-JUN", "*/3", "3,10", "12"]),
        st.sampled_from(["*", "?", "MON-FRI", "0", "SAT,SUN", "*/2"]),
    ).map(" ".join),
)
ZONES = st.sampled_from(
    [
        None,
        "Europe/Berlin",
        "America/New_York",
        "America/Sao_Paulo",  # DST changes at midnight until 2019
        "Australia/Lord_Howe",  # a half-hour DST shift
        "Asia/Kathmandu",  # +05:45
        "Pacific/Apia",  # skipped 30 December 2011 altogether
    ]
)
MOMENTS = st.datetimes(
    min_value=datetime(2010, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.just(UTC),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=EXPRESSIONS,
    time_zone=ZONES,
    now=MOMENTS,
    since_last=st.one_of(st.none(), st.integers(-3 * 3600, 120 * 24 * 3600)),
    since_creation=st.integers(0, 400 * 24 * 3600),
    deadline=st.one_of(st.none(), st.integers(0, 10 * 24 * 3600)),
)
def test_due_never_runs_a_future_time_or_more_than_one(
    expression: str,
    time_zone: str | None,
    now: datetime,
    since_last: int | None,
    since_creation: int,
    deadline: int | None,
) -> None:
    try:
        schedule = parse_schedule(expression, time_zone)
    except ScheduleError:
        assume(False)
        raise
    last = None if since_last is None else now - timedelta(seconds=since_last)
    created = now - timedelta(seconds=since_creation)
    earliest = last if last is not None else created
    result = due(
        schedule,
        last_schedule_time=last,
        creation_time=created,
        now=now,
        starting_deadline_seconds=deadline,
    )
    assert result.next_time > now
    assert result.next_time == next_schedule_time(schedule, max(now, earliest))
    assert result.run_for is None or result.skipped_time is None
    chosen = result.run_for or result.skipped_time
    if chosen is None:
        # Nothing went by since the last run (or creation): nothing was overlooked.
        assert next_schedule_time(schedule, earliest) > now
        assert result.missed == 0 and result.reason is None
        return
    # The one time chosen is a schedule time, not in the future, after the last one run, and
    # the most recent: the next schedule time after it is already in the future.
    assert earliest < chosen <= now
    assert next_schedule_time(schedule, chosen - timedelta(microseconds=1)) == chosen
    assert next_schedule_time(schedule, chosen) > now
    passed: list[datetime] = []  # the schedule times in (earliest, now], one past the limit at most
    moment = earliest
    while len(passed) <= MISSED_LIMIT and (moment := next_schedule_time(schedule, moment)) <= now:
        passed.append(moment)
    assert result.missed == len(passed)
    if len(passed) <= MISSED_LIMIT:
        assert passed[-1] == chosen
    if deadline is None:  # with a deadline CronJob counts a narrower window
        assert result.too_many_missed == (len(passed) > MISSED_LIMIT)
    if result.run_for is not None:
        assert deadline is None or result.run_for + timedelta(seconds=deadline) >= now
    else:
        assert deadline is not None and result.reason == MISSED_SCHEDULE
    # Once recorded, nothing more is due at the same moment: one run, never a burst.
    again = due(
        schedule,
        last_schedule_time=chosen,
        creation_time=created,
        now=now,
        starting_deadline_seconds=deadline,
    )
    assert again.run_for is None and again.skipped_time is None
    assert goal_name("s", chosen) == goal_name("s", chosen.astimezone(BERLIN))


@functools.lru_cache
def _offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """The instants in `year` at which `zone`'s UTC offset changes, to the second."""
    changes = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        step = moment + timedelta(hours=6)
        if moment.astimezone(zone).utcoffset() != step.astimezone(zone).utcoffset():
            low, high = moment, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            changes.append(high)
        moment = step
    return changes


def _wall_matches(schedule: CronSchedule, wall: datetime) -> bool:
    """Whether a wall-clock time matches the schedule's fields: a matcher apart from croniter."""
    minute, hour, day, month, weekday = (
        None if part == "*" else {int(value) for value in part.split(",")}
        for part in schedule.normalized.split()
    )
    day_ok = day is None or wall.day in day
    weekday_ok = weekday is None or (wall.weekday() + 1) % 7 in weekday
    if schedule.day_or and day is not None and weekday is not None:
        days = day_ok or weekday_ok
    else:
        days = day_ok and weekday_ok
    return (
        (minute is None or wall.minute in minute)
        and (hour is None or wall.hour in hour)
        and (month is None or wall.month in month)
        and days
    )


def _expected_times(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """The schedule times in (start, end] (whole minutes), minute by minute: every UTC minute
    whose wall clock matches (both passes of a repeated hour), and the end of a gap in the wall
    clock when a minute in the gap matches."""
    found = []
    moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    previous = (moment - timedelta(minutes=1)).astimezone(schedule.zone).replace(tzinfo=None)
    while moment <= end:
        wall = moment.astimezone(schedule.zone).replace(tzinfo=None, fold=0)
        gap = previous + timedelta(minutes=1)
        missing = []
        while gap < wall:
            missing.append(gap)
            gap += timedelta(minutes=1)
        if _wall_matches(schedule, wall) or any(_wall_matches(schedule, m) for m in missing):
            found.append(moment)
        previous = wall
        moment += timedelta(minutes=1)
    return found


DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Apia",
]
NEAR_DST_EXPRESSIONS = st.tuples(
    st.sampled_from(["*", "0", "30", "*/15", "5,35", "59", "*/7"]),
    st.sampled_from(["*", "0", "1", "2", "3", "1-3", "0,2", "23", "*/2"]),
    st.sampled_from(["*", "?", "1-7", "*/2", "25-31", "30,31"]),
    st.sampled_from(["*", "3,10", "JAN-JUN", "*/2"]),
    st.sampled_from(["*", "SUN", "MON-FRI", "*/3"]),
).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=NEAR_DST_EXPRESSIONS,
    time_zone=st.sampled_from(DST_ZONES),
    year=st.integers(2010, 2030),
    which=st.integers(0, 3),
    shift=st.integers(-4 * 3600, 4 * 3600),
    data=st.data(),
)
def test_times_around_a_dst_change_are_the_wall_clock_rule(
    expression: str,
    time_zone: str,
    year: int,
    which: int,
    shift: int,
    data: st.DataObject,
) -> None:
    # Around a change of the zone's offset: every schedule time, in order, each once, as the
    # rule reads (`_expected_times`), whether walked forward (`next_schedule_time`) or found
    # as the most recent from any moment (`due`).
    try:
        schedule = parse_schedule(expression, time_zone)
    except ScheduleError:
        assume(False)
        raise
    changes = _offset_changes(schedule.zone, year)
    assume(changes)
    centre = changes[which % len(changes)] + timedelta(seconds=shift)
    start, end = centre - timedelta(hours=3), centre + timedelta(hours=3)
    expected = _expected_times(schedule, start, end)
    walked = []
    moment = start
    while (moment := next_schedule_time(schedule, moment)) <= end:
        walked.append(moment)
    assert walked == expected
    now = data.draw(
        st.datetimes(
            min_value=start.replace(tzinfo=None),
            max_value=end.replace(tzinfo=None),
            timezones=st.just(UTC),
        ),
        label="now",
    )
    result = due(
        schedule,
        last_schedule_time=start,
        creation_time=start,
        now=now,
        starting_deadline_seconds=None,
    )
    passed = [t for t in expected if t <= now]
    assert result.run_for == (passed[-1] if passed else None)
    assert result.missed == min(len(passed), MISSED_LIMIT + 1)
    assert result.next_time == next(
        (t for t in expected if t > now), next_schedule_time(schedule, end)
    )
    # At a schedule time itself (a few of them, both passes of a repeated hour among them).
    for moment in expected[:: max(1, len(expected) // 12)]:
        assert next_schedule_time(schedule, moment - timedelta(microseconds=1)) == moment
        at = due(
            schedule,
            last_schedule_time=start,
            creation_time=start,
            now=moment,
            starting_deadline_seconds=None,
        )
        assert at.run_for == moment
