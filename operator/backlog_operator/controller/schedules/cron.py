"""When a `GoalSchedule` starts a Goal, and what it cleans up: CronJob's rules, as pure functions.

Nothing here reads a clock or talks to the cluster. `now` is always an argument, every time is a
timezone-aware datetime (times come back in UTC), and each decision comes back as a small frozen
dataclass for the reconciler to act on and to write into status, events and logs.

The rules are those of Kubernetes' CronJob controller (`pkg/controller/cronjob`), so whoever knows
CronJob knows what a GoalSchedule does:

- Syntax: five fields (minute, hour, day of month, month, day of week) or a macro (`@hourly`,
  `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`), read as CronJob's parser
  (robfig/cron `ParseStandard`) reads them: `*` and `?`, lists, ranges, steps, `JAN`-`DEC` and
  `SUN`-`SAT` in any case, day of week 0-6 (0 is Sunday; 7 is refused, as CronJob refuses it).
  When both day fields are restricted a day matching either one fires; when either starts with
  `*` or `?` (`*/2` too), a day must match both.
- Missed times (`due`): the most recent schedule time since the last one run (or since the
  schedule was created) is run for, once, however many were missed; the older ones are never run.
  A time later than `startingDeadlineSeconds` is not run; with no deadline there is no limit.
  More than 100 missed times raise CronJob's `TooManyMissedTimes` warning.
- `concurrencyPolicy`: `Allow`, `Forbid` (skip while a Goal of the schedule is active), `Replace`
  (stop the active Goals, then start).
- History: finished Goals beyond `successfulGoalsHistoryLimit`/`failedGoalsHistoryLimit` are
  deleted oldest first (by start time, then name; a Goal that never started counts as newest).
  That rule is shared with the Backlog's history: `controller/owned_goals.py`.
- Names: `<schedule>-<minutes since the epoch>` per scheduled time, so a retried reconcile can
  never create two Goals for one time.

Deliberate differences from CronJob:

- No `timeZone` means UTC, not the zone of the process evaluating the schedule: the same
  GoalSchedule then fires at the same instants wherever the operator runs.
- `TZ=`/`CRON_TZ=` prefixes are always refused, with or without `timeZone` (CronJob refuses them
  in new objects too and keeps them only in objects created before `timeZone` existed).
- Daylight saving time: a schedule is read on the wall clock of its zone, and a wall-clock time
  runs at every instant the zone's clock shows it, or at the end of the gap when it shows it at
  none. Spring forward (Europe/Berlin, last Sunday of March, 02:00 becomes 03:00): a daily
  `30 2 * * *` runs at 03:00 local time that day (01:00 UTC), the first instant after the gap,
  so a daily schedule still runs daily; however many times fall in the gap (`*/15 2 * * *`, or
  `0 2,3 * * *` with 03:00 itself), they make one run then. CronJob's parser skips them
  instead. Fall back (03:00 becomes 02:00 again): every time in the repeated hour runs twice,
  once in each pass, in the order they come, as under CronJob: `30 2 * * *` runs at 02:30
  summer time and at 02:30 winter time, an hour apart, and `*/15 2 * * *` at 02:00, 02:15,
  02:30, 02:45 summer time and then again winter time. Each run is its own UTC instant, so
  each gets its own Goal name.
- A time missed by more than `startingDeadlineSeconds` is reported (`skipped_time`, reason
  `MissSchedule`, CronJob's event reason for it). CronJob's controller narrows its search window
  to the deadline before looking, so in practice it passes over such a time without a word.
- An expression that can never fire (`0 0 30 2 *`) is refused when parsed; CronJob accepts it
  and only reports an error when it tries to schedule.
- `@every <duration>` and `@reboot` are refused: they are not part of CronJob's documented syntax.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import insort
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from backlog_operator.controller.status import require_aware, timestamp
from backlog_operator.naming import dns_label

# Reasons, for conditions and events. Where CronJob has an event for the same thing, its reason.
INVALID_SCHEDULE = "InvalidSchedule"
MISSED_SCHEDULE = "MissSchedule"
TOO_MANY_MISSED = "TooManyMissedTimes"
GOAL_ALREADY_ACTIVE = "GoalAlreadyActive"  # CronJob: JobAlreadyActive
ALREADY_STARTED = "AlreadyStarted"

# CronJob's threshold for "too many missed start times" ("more than 80, but less than lots").
MISSED_LIMIT = 100

# Goal names end up in Job names and label values: an RFC 1123 label.
MAX_NAME_LENGTH = 63

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
CONCURRENCY_POLICIES: tuple[ConcurrencyPolicy, ...] = ("Allow", "Forbid", "Replace")

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_TITLES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# The longest each month can be: a day that fits in a leap-year February does occur.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NUMBER = re.compile(r"[0-9]+")
_TZ_PREFIX = re.compile(r"(CRON_)?TZ=", re.IGNORECASE)
# CronJob's check of each part of a timeZone name (validation of batch/v1 CronJobSpec).
_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A fixed instant to try a new schedule from: only whether it ever fires matters.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A cron expression or time zone that cannot be used, with a message for the person who wrote
    it (`invalid cron expression '61 * * * *': minute must be 0-59, got 61`).

    `field` is the spec field at fault (`schedule` or `timeZone`), so a condition or event can
    point at it; `reason` is the condition reason to report it under.
    """

    reason = INVALID_SCHEDULE

    def __init__(self, field: Literal["schedule", "timeZone"], message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CronSchedule:
    """A valid schedule, made by `parse_schedule`.

    `expression` is what was written (surrounding whitespace removed) and `time_zone` the IANA
    zone it is evaluated in (`UTC` when none was given). The rest is how croniter is asked.
    """

    expression: str
    time_zone: str
    # Five numeric fields (names resolved, `?` made `*`) in croniter's syntax.
    normalized: str = field(repr=False)
    # croniter's switch between "a day matching either day field" and "matching both".
    day_or: bool = field(repr=False)
    zone: ZoneInfo = field(repr=False, compare=False)


@dataclass(frozen=True)
class Due:
    """What `due` decided.

    - `run_for`: the scheduled time to start a Goal for now, or None. Never in the future.
    - `next_time`: the next schedule time after `now`: when to look again (CronJob requeues a
      hundred milliseconds after it, against clock skew).
    - `missed`: schedule times that went by since the last one run (or the creation), `run_for`
      or `skipped_time` included. Counting stops at `MISSED_LIMIT + 1`: past that only "many"
      matters, and counting years of minutes would cost what CronJob's limit is there to avoid.
    - `too_many_missed`: CronJob's `TooManyMissedTimes` warning: more than `MISSED_LIMIT` times
      within the window it looks at (since the last run, or since `now - startingDeadlineSeconds`
      when that is later), which a shorter deadline or a fixed clock cures. Report it as a
      warning event under `TOO_MANY_MISSED`; `run_for` stands all the same.
    - `skipped_time`, `reason`: the most recent time, when it was too late to run for it.
    - `message`: one sentence saying what was decided, for logs and events.
    """

    run_for: datetime | None
    next_time: datetime
    missed: int = 0
    too_many_missed: bool = False
    skipped_time: datetime | None = None
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Decision:
    """What `concurrency_decision` decided: whether to start a Goal, and which Goals to stop
    first. `reason` says why when nothing starts; `message` says what was decided."""

    start: bool
    stop: tuple[str, ...] = ()
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names of low, low + 1, ... in order
    hint: str = ""


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES, " (or JAN-DEC)"),
    _Field("day-of-week", 0, 6, _DAY_NAMES, " (0 is Sunday; or SUN-SAT)"),
)


def parse_schedule(expression: str, time_zone: str | None) -> CronSchedule:
    """Check a GoalSchedule's `schedule` and `timeZone`, and make the schedule to evaluate.

    Raises `ScheduleError` naming the problem: not five fields, a value out of range, an unknown
    name or macro, an expression that never fires, a `TZ=` prefix, an unknown time zone.
    """
    zone, zone_name = _parse_time_zone(time_zone)
    text = expression.strip()
    if _TZ_PREFIX.match(text):
        # CronJob: "cannot use both timeZone field and TZ or CRON_TZ in schedule", and for new
        # objects "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".
        if time_zone is not None:
            raise _invalid(text, "cannot use both timeZone and a TZ= or CRON_TZ= prefix")
        raise _invalid(text, "TZ= and CRON_TZ= prefixes are not supported: set timeZone instead")
    fields = _expand_macro(text).split()
    if len(fields) != len(_FIELDS):
        extra = " (there are no seconds or year fields)" if len(fields) in (6, 7) else ""
        raise _invalid(
            text,
            "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as "
            f"@daily, got {len(fields)}{extra}",
        )
    parsed = [_parse_field(text, part, spec) for part, spec in zip(fields, _FIELDS, strict=True)]
    days, days_star = parsed[2]
    months = parsed[3][0]
    weekdays_star = parsed[4][1]
    # robfig/cron (and Vixie cron): both day fields restricted means either may match; a day
    # field starting with `*` or `?` means both must (so `*/2 ... MON` is odd-numbered Mondays).
    day_or = not (days_star or weekdays_star)
    if not day_or and not days_star and min(days) > max(_MONTH_DAYS[m - 1] for m in months):
        month_list = ", ".join(_MONTH_TITLES[m - 1] for m in sorted(months))
        raise _invalid(text, f"day-of-month {min(days)} never occurs in {month_list}")
    # `*` only for a star that allows everything: croniter takes `*` in a day field as "no
    # restriction" (robfig's star bit), while `1-31` must stay a restriction to be OR-ed.
    normalized = " ".join(
        "*"
        if star and values == set(range(spec.low, spec.high + 1))
        else ",".join(map(str, sorted(values)))
        for (values, star), spec in zip(parsed, _FIELDS, strict=True)
    )
    schedule = CronSchedule(
        expression=text, time_zone=zone_name, normalized=normalized, day_or=day_or, zone=zone
    )
    try:
        next(_times_after(schedule, _PROBE))
    except ScheduleError:
        raise
    except (CroniterError, ValueError) as error:  # croniter disagreeing with the checks above
        raise _invalid(text, "not understood by the cron evaluator") from error
    return schedule


def next_schedule_time(schedule: CronSchedule, after: datetime) -> datetime:
    """The first schedule time strictly after `after` (aware), in UTC.

    Evaluated on the wall clock of the schedule's time zone; see the module's notes for what
    daylight saving time changes do. Raises `ScheduleError` when no time matches within 50
    years (which `parse_schedule` has already ruled out for any schedule that fires at all).
    """
    return next(_times_after(schedule, after))


def due(
    schedule: CronSchedule,
    *,
    last_schedule_time: datetime | None,
    creation_time: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
) -> Due:
    """Whether a Goal is due now, and for which scheduled time.

    CronJob's `nextScheduleTime`/`mostRecentScheduleTime`, followed by its "too late" check.

    Times since `last_schedule_time` (or `creation_time` when the schedule never ran) up to and
    including `now` are the missed ones. Only the most recent is ever run for, so an operator
    that was down for a day starts one Goal, not a burst; it is run only when no more than
    `starting_deadline_seconds` late (None: no limit). Asking again with the same arguments gives
    the same answer: record a skipped time (or the run) to move on, as CronJob records
    lastScheduleTime.
    """
    _check_due_arguments(now, creation_time, last_schedule_time, starting_deadline_seconds)
    now = now.astimezone(UTC)
    earliest = (last_schedule_time if last_schedule_time is not None else creation_time).astimezone(
        UTC
    )
    latest = _latest_at_or_before(schedule, now)
    if latest is None or latest <= earliest:
        # Nothing missed. With a last schedule time ahead of `now` (clock skew) CronJob waits
        # for the first time after it, so the same time is never run twice.
        following = next_schedule_time(schedule, max(now, earliest))
        return Due(run_for=None, next_time=following, message=f"next at {timestamp(following)}")
    return _due_for_latest(
        schedule,
        latest,
        earliest=earliest,
        now=now,
        starting_deadline_seconds=starting_deadline_seconds,
    )


def _check_due_arguments(
    now: datetime,
    creation_time: datetime,
    last_schedule_time: datetime | None,
    starting_deadline_seconds: int | None,
) -> None:
    require_aware(now, "now")
    require_aware(creation_time, "creation_time")
    if last_schedule_time is not None:
        require_aware(last_schedule_time, "last_schedule_time")
    if starting_deadline_seconds is not None and starting_deadline_seconds < 0:
        raise ValueError("starting_deadline_seconds must not be negative")


def _due_for_latest(
    schedule: CronSchedule,
    latest: datetime,
    *,
    earliest: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
) -> Due:
    """`due` once times were missed: `latest` (in `(earliest, now]`) is run for, unless it is
    more than `starting_deadline_seconds` late. All times in UTC."""
    following = next_schedule_time(schedule, now)
    missed = _count_between(schedule, earliest, now)
    too_many = _too_many_missed(
        schedule,
        missed,
        earliest=earliest,
        now=now,
        starting_deadline_seconds=starting_deadline_seconds,
    )
    warning = (
        "; too many missed start times: set or decrease startingDeadlineSeconds, "
        "or check for clock skew"
        if too_many
        else ""
    )
    # CronJob: too late when scheduledTime + startingDeadlineSeconds is before now (strictly).
    too_late = starting_deadline_seconds is not None and now > latest + timedelta(
        seconds=starting_deadline_seconds
    )
    if too_late:
        return Due(
            run_for=None,
            next_time=following,
            missed=missed,
            too_many_missed=too_many,
            skipped_time=latest,
            reason=MISSED_SCHEDULE,
            message=(
                f"missed the schedule time {timestamp(latest)} by more than "
                f"startingDeadlineSeconds ({starting_deadline_seconds}s); "
                f"next at {timestamp(following)}{warning}"
            ),
        )
    return Due(
        run_for=latest,
        next_time=following,
        missed=missed,
        too_many_missed=too_many,
        message=_due_message(latest, missed, warning),
    )


def _too_many_missed(
    schedule: CronSchedule,
    missed: int,
    *,
    earliest: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
) -> bool:
    """CronJob's `TooManyMissedTimes`: more than `MISSED_LIMIT` of the `missed` times since
    `earliest` lie in the window it looks at."""
    # CronJob counts from the later of the last run and `now - startingDeadlineSeconds`: what a
    # deadline puts out of reach is not "too many missed".
    window_start = earliest
    if starting_deadline_seconds is not None:
        window_start = max(earliest, now - timedelta(seconds=starting_deadline_seconds))
    in_window = missed if window_start == earliest else _count_between(schedule, window_start, now)
    return in_window > MISSED_LIMIT


def _due_message(latest: datetime, missed: int, warning: str) -> str:
    if missed > 1:
        count = f"more than {MISSED_LIMIT}" if missed > MISSED_LIMIT else str(missed)
        return (
            f"due for {timestamp(latest)}, the most recent of {count} missed schedule times "
            f"(the older ones are not run){warning}"
        )
    return f"due for {timestamp(latest)}"


def concurrency_decision(
    policy: ConcurrencyPolicy,
    active_goals: Sequence[str],
    *,
    scheduled_goal: str | None = None,
) -> Decision:
    """Whether to start the due Goal beside `active_goals` (the schedule's unfinished Goals).

    `Allow` starts; `Forbid` starts nothing while any is active and says which; `Replace` starts
    after stopping all of them (returned sorted in `stop`). When `scheduled_goal`, the name of
    the Goal about to be created, is already active, the time was handled by an earlier
    reconcile: nothing starts and, whatever the policy, nothing is stopped (CronJob checks this
    before its policy, so `Replace` never stops the Goal it has just started).
    """
    if policy not in CONCURRENCY_POLICIES:
        raise ValueError(
            f"unknown concurrencyPolicy {policy!r}; expected one of "
            + ", ".join(CONCURRENCY_POLICIES)
        )
    active = tuple(sorted(set(active_goals)))
    if scheduled_goal is not None and scheduled_goal in active:
        return Decision(
            start=False,
            reason=ALREADY_STARTED,
            message=f"goal {scheduled_goal} for this schedule time is already active",
        )
    if not active or policy == "Allow":
        return Decision(start=True)
    names = ", ".join(active)
    if policy == "Forbid":
        return Decision(
            start=False,
            reason=GOAL_ALREADY_ACTIVE,
            message=f"not starting: concurrencyPolicy is Forbid and {names} is still active",
        )
    return Decision(
        start=True, stop=active, message=f"replacing {names} (concurrencyPolicy Replace)"
    )


def goal_name(schedule_name: str, scheduled_time: datetime) -> str:
    """The name of the Goal for `scheduled_time`: `<schedule>-<minutes since the epoch>`.

    The same schedule and time give the same name, so a retried reconcile finds the Goal it made
    instead of making another (CronJob names Jobs this way). At most 63 characters: a schedule
    name that is longer, or not a valid label as it stands, is shortened and made a label, with
    a hash of the original so that two schedules never share names.
    """
    require_aware(scheduled_time, "scheduled_time")
    if not schedule_name:
        raise ValueError("schedule_name must not be empty")
    minutes = int(scheduled_time.timestamp() // 60)
    suffix = f"-{minutes}"
    room = MAX_NAME_LENGTH - len(suffix)
    if _LABEL.fullmatch(schedule_name) and len(schedule_name) <= room:
        return f"{schedule_name}{suffix}"
    # dns_label alone would keep short names as they are once cleaned (`a.b` and `a-b` would
    # both become `a-b`); the hash of the name as written keeps them apart.
    digest = hashlib.sha256(schedule_name.encode()).hexdigest()[:8]
    # A max_length no cleaned name reaches: only clean here, shorten below.
    cleaned = dns_label(schedule_name, max_length=4 * len(schedule_name) + 1)
    head = cleaned[: room - 9].rstrip("-")
    return f"{head or 'x'}-{digest}{suffix}"


def _parse_time_zone(time_zone: str | None) -> tuple[ZoneInfo, str]:
    if time_zone is None:
        return ZoneInfo("UTC"), "UTC"
    shown = _quote(time_zone)
    if not time_zone:
        raise ScheduleError("timeZone", "timeZone must be absent or a time zone name, not empty")
    if time_zone.lower() in ("local", "localtime"):
        # CronJob: "timeZone must be an explicit time zone as defined in
        # https://www.iana.org/time-zones": the operator's own zone would make the schedule
        # depend on where it runs.
        raise ScheduleError(
            "timeZone", f"time zone {shown} is not allowed: name an explicit zone such as UTC"
        )
    unknown = ScheduleError(
        "timeZone",
        f"unknown time zone {shown}: use an IANA time zone name such as Europe/Berlin or UTC",
    )
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _ZONE_PART.fullmatch(part):
            raise unknown
    try:
        zone = ZoneInfo(time_zone)
    except (KeyError, ValueError, OSError):  # not found, not a key, a directory
        # The library's own text names files on this machine: not for a condition message.
        raise unknown from None
    return zone, time_zone


def _expand_macro(text: str) -> str:
    if not text.startswith("@"):
        return text
    macro = text.lower()
    if macro in _MACROS:
        return _MACROS[macro]
    if macro.split()[0] in ("@every", "@reboot"):
        raise _invalid(text, f"{macro.split()[0]} is not supported: write a cron expression")
    raise _invalid(text, "unknown macro; use @yearly, @monthly, @weekly, @daily or @hourly")


def _parse_field(expression: str, text: str, spec: _Field) -> tuple[set[int], bool]:
    """The values one field allows, and whether it starts with `*` or `?` (robfig's star bit)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        if not span:
            raise _invalid(expression, f"{spec.name} has an empty item in {_quote(text)}")
        if span in ("*", "?"):
            low, high, star = spec.low, spec.high, True
        else:
            first, dash, last = span.partition("-")
            low = _value(expression, first, spec)
            # `N/step` means N to the end of the range, as in robfig/cron.
            high = _value(expression, last, spec) if dash else spec.high if slash else low
            if low > high:
                raise _invalid(expression, f"{spec.name} range {_quote(span)} runs backwards")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                raise _invalid(
                    expression,
                    f"{spec.name} step must be a positive whole number, got {_quote(step_text)}",
                )
            step = int(step_text)
        values.update(range(low, high + 1, step))
    return values, star


def _value(expression: str, text: str, spec: _Field) -> int:
    if _NUMBER.fullmatch(text):
        number = int(text) if len(text) <= 6 else spec.high + 1
        if not spec.low <= number <= spec.high:
            raise _invalid(
                expression, f"{spec.name} must be {spec.low}-{spec.high}{spec.hint}, got {text}"
            )
        return number
    if text.lower() in spec.names:
        return spec.low + spec.names.index(text.lower())
    if not text:
        raise _invalid(expression, f"{spec.name} has a range with a missing number")
    raise _invalid(
        expression,
        f"{spec.name} must be {spec.low}-{spec.high}{spec.hint}, got {_quote(text)}",
    )


def _times_after(schedule: CronSchedule, after: datetime) -> Iterator[datetime]:
    """Schedule times strictly after `after`, in UTC, increasing: see `_walk`."""
    return _walk(schedule, after, forward=True)


def _latest_at_or_before(schedule: CronSchedule, moment: datetime) -> datetime | None:
    """The last schedule time not after `moment`, or None when there is none within 50 years."""
    return next(_walk(schedule, moment, forward=False), None)


def _walk(schedule: CronSchedule, moment: datetime, *, forward: bool) -> Iterator[datetime]:
    """Schedule times strictly after `moment` going forward, or at or before it going backward,
    in UTC and in order, each once. The daylight-saving rule is `_instants`'.

    croniter only matches wall-clock times: it walks the zone's wall clock as if it were UTC,
    where no hour repeats or goes missing (asked in the zone itself, it loses the second pass of
    a repeated hour: `0 2 31 3,10 *` from 02:00 summer time on 31 October 2010 jumps to March).
    `_instants` turns each wall-clock time it finds into the instants it runs at. Those do not come
    in wall-clock order (a repeated hour's 02:30 runs before its second 02:10), so they wait,
    sorted, until no wall-clock time still to come can give one beyond them: going forward the
    earliest instant of a wall-clock time never decreases as the wall clock advances, nor going
    backward the latest as it goes back, and cron times are whole minutes, so the minute after
    (before) the one found bounds everything still to come.
    """
    require_aware(moment, "after" if forward else "moment")
    moment = moment.astimezone(UTC)
    zone = schedule.zone
    minute = timedelta(minutes=1)
    start = _walk_start(zone, moment, forward=forward)
    walker = croniter(schedule.normalized, start.replace(tzinfo=UTC), day_or=schedule.day_or)
    step = walker.get_next if forward else walker.get_prev
    pending: list[datetime] = []  # sorted
    # The last one given (or the bound): each is strictly beyond it, so none comes twice.
    last = moment if forward else moment + timedelta(microseconds=1)
    exhausted = False
    while not exhausted:
        bound: datetime | None = None
        try:
            found: datetime = step(datetime)
        except CroniterBadDateError:
            # croniter looks 50 years ahead (or back): what is waiting is all there is.
            exhausted = True
        else:
            found = found.replace(tzinfo=None)
            for instant in _instants(zone, found):
                insort(pending, instant)
            # No wall-clock time still to come runs before (going backward: after) this.
            bound = (
                _instants(zone, found + minute)[0]
                if forward
                else _instants(zone, found - minute)[-1]
            )
        for instant in _settled(pending, bound, forward=forward):
            if instant > last if forward else instant < last:
                last = instant
                yield instant
    if forward:
        # parse_schedule refuses what never fires at all.
        raise _invalid(schedule.expression, "no time matches within 50 years")


def _walk_start(zone: ZoneInfo, moment: datetime, *, forward: bool) -> datetime:
    """The naive wall-clock time in `zone` for `_walk` to start croniter from, `moment` (UTC)
    being where the walk starts."""
    wall = moment.astimezone(zone).replace(tzinfo=None, fold=0)
    minute = timedelta(minutes=1)
    # In a repeated hour the wall clock of `moment` is not the bound: going forward from its
    # first pass the minutes before it come round again, and going backward from its second
    # pass the minutes after it went by once already. Widen the walk by the repeat; what
    # lands on the wrong side of `moment` is dropped by `_walk`.
    if forward:
        repeat = wall.replace(tzinfo=zone, fold=1).astimezone(UTC) - moment
        return wall - max(repeat, timedelta(0)) - minute
    repeat = moment - wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return wall + max(repeat, timedelta(0)) + minute


def _settled(
    pending: list[datetime], bound: datetime | None, *, forward: bool
) -> Iterator[datetime]:
    """Take from `pending` (sorted), nearest first, the instants no time still to come can
    precede: going forward those before `bound`, going backward those after it; all of them
    when `bound` is None (the walk is over)."""
    while pending:
        if forward:
            if bound is not None and pending[0] >= bound:
                return
            yield pending.pop(0)
        else:
            if bound is not None and pending[-1] <= bound:
                return
            yield pending.pop()


def _instants(zone: ZoneInfo, wall: datetime) -> tuple[datetime, ...]:
    """The UTC instants at which the wall-clock time `wall` (naive) in `zone` runs, in order.

    A time that occurs once runs then. A time that occurs twice (the hour repeated when the
    clocks go back) runs at both occurrences, as robfig/cron, CronJob's parser, runs it. A time
    that never occurs (the hour skipped when the clocks go forward) runs at the first instant
    after the gap, the moment of the change: every time in the gap runs there, so they make one
    run between them (and with the time at the end of the gap, when that is a schedule time too).
    """
    # PEP 495: fold=0 reads a wall-clock time with the offset in force before a change, fold=1
    # with the one after. Only around a change do the two differ.
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    if first < second:  # the clocks went back: it occurs at both
        return (first, second)
    # The clocks went forward: it does not occur, and the change lies in (second, first].
    return (_change_between(zone, second, first),)


def _change_between(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant `zone`'s UTC offset changes, given an instant before the change and one at or
    after it (whole seconds, as tz database changes are)."""
    low, high = int(before.timestamp()), math.ceil(after.timestamp())
    offset = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _count_between(schedule: CronSchedule, start: datetime, end: datetime) -> int:
    """How many schedule times lie in (start, end], counting no further than MISSED_LIMIT + 1."""
    count = 0
    for moment in _times_after(schedule, start):
        if moment > end or count > MISSED_LIMIT:
            break
        count += 1
    return count


def _quote(text: str, limit: int = 80) -> str:
    """`text` in single quotes for a message, shortened when long."""
    return "'" + (text if len(text) <= limit else text[: limit - 1] + "…") + "'"


def _invalid(expression: str, problem: str) -> ScheduleError:
    return ScheduleError("schedule", f"invalid cron expression {_quote(expression)}: {problem}")
