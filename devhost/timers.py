"""Timer triggers as the Functions host runs them.

Schedules are NCRONTAB or TimeSpan (`devhost.ncrontab`), in UTC. A scheduler thread starts each occurrence;
`runOnStartup` runs once at start. A timer never runs twice at once (the host's singleton lock): an occurrence
that comes due during a run waits for it (at most one waits; later ones are skipped), and a run that starts more
than PAST_DUE_TOLERANCE after its occurrence gets `past_due=True`. Exceptions are logged and the schedule goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from azure.functions.timer import TimerRequest

from devhost.invocation import Invoker
from devhost.ncrontab import Schedule

log = logging.getLogger("devhost")

Clock = Callable[[], datetime]
PAST_DUE_TOLERANCE = timedelta(milliseconds=500)
_NO_VALUE = "0001-01-01T00:00:00"  # .NET's default(DateTime), what the host reports before a first run


@dataclass
class _Run:
    scheduled: datetime | None  # None: on demand (admin endpoint, runOnStartup)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class TimerFunction:
    name: str
    expression: str  # with %SETTINGS% resolved
    schedule: Schedule
    arg_name: str
    handler: Callable[..., object]
    run_on_startup: bool
    monitored: bool  # the host passes ScheduleStatus only when it keeps it (useMonitor, not sub-minute)
    runs: int = 0
    last: datetime | None = None
    next_due: datetime | None = None
    running: bool = False
    backlog: deque[_Run] = field(default_factory=deque)


def is_sub_minute(schedule: Schedule, now: datetime) -> bool:
    """The host stops keeping schedule status for schedules that fire more than once a minute."""
    try:
        return schedule.next_after(schedule.next_after(now)) < now + timedelta(minutes=1)
    except ValueError:
        return False


class TimerRunner:
    def __init__(self, timers: dict[str, TimerFunction], invoker: Invoker, clock: Clock) -> None:
        self.timers = timers
        self._invoker = invoker
        self._clock = clock
        self._state = threading.Condition()  # guards the timers' running/backlog/runs
        self._stopping = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(timers)), thread_name_prefix="devhost-timer")
        self._thread: threading.Thread | None = None

    def start(self, *, schedule: bool) -> None:
        if not schedule:
            return
        for timer in self.timers.values():
            if timer.run_on_startup:
                self._enqueue(timer, None)
        if self.timers:
            self._thread = threading.Thread(target=self._schedule_loop, name="devhost-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._state:
            self._state.wait_for(lambda: not any(t.running for t in self.timers.values()), timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def invoke(self, name: str, *, wait: bool = False, timeout: float | None = None) -> bool:
        """Runs a timer function now, as the admin endpoint does: after a run in progress, never alongside it.
        With `wait`, returns once the run ended (False if `timeout` passed first)."""
        run = self._enqueue(self.timers[name], None)
        return run.done.wait(timeout) if wait else True

    def _enqueue(self, timer: TimerFunction, scheduled: datetime | None) -> _Run:
        run = _Run(scheduled)
        with self._state:
            if self._stopping.is_set():
                run.done.set()
                return run
            if timer.running:
                if scheduled is not None and any(r.scheduled is not None for r in timer.backlog):
                    log.warning("timer %s is still running: the occurrence at %s is skipped", timer.name,
                                scheduled.isoformat())
                    run.done.set()
                else:
                    log.info("timer %s is still running: the next run waits for it", timer.name)
                    timer.backlog.append(run)
                return run
            timer.running = True
        self._executor.submit(self._drain, timer, run)
        return run

    def _drain(self, timer: TimerFunction, run: _Run) -> None:
        while True:
            try:
                self._run(timer, run.scheduled)
            finally:
                run.done.set()
            with self._state:
                if not timer.backlog or self._stopping.is_set():
                    for waiting in timer.backlog:
                        waiting.done.set()
                    timer.backlog.clear()
                    timer.running = False
                    self._state.notify_all()
                    return
                run = timer.backlog.popleft()

    def _run(self, timer: TimerFunction, scheduled: datetime | None) -> None:
        past_due = scheduled is not None and self._clock() - scheduled > PAST_DUE_TOLERANCE
        status: dict[str, str] = {}
        if timer.monitored and scheduled is not None:
            last = timer.last.isoformat() if timer.last else _NO_VALUE
            status = {"Last": last, "Next": scheduled.isoformat(), "LastUpdated": last}
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            self._invoker.call(timer.handler, {timer.arg_name: request})
        except Exception:
            outcome = "Failed"
            log.exception("timer function %s raised", timer.name)
        with self._state:
            timer.runs += 1
            timer.last = scheduled or timer.last
        log.info("Executed 'Functions.%s' (%s, Duration=%.0fms, past_due=%s)", timer.name, outcome,
                 (time.perf_counter() - started) * 1000, past_due)

    def _next(self, timer: TimerFunction, after: datetime) -> datetime | None:
        try:
            return timer.schedule.next_after(after)
        except ValueError as exc:
            log.warning("timer %s will not run on schedule: %s", timer.name, exc)
            return None

    def _schedule_loop(self) -> None:
        timers = list(self.timers.values())
        now = self._clock()
        for timer in timers:
            timer.next_due = self._next(timer, now)
        while not self._stopping.is_set():
            now = self._clock()
            for timer in timers:
                due = timer.next_due
                if due is None or due > now:
                    continue
                self._enqueue(timer, due)
                following = self._next(timer, due)
                if following is not None and following <= now:
                    log.warning("timer %s: occurrences up to %s were missed", timer.name, now.isoformat())
                    following = self._next(timer, now)
                timer.next_due = following
            dues = [t.next_due for t in timers if t.next_due is not None]
            wait = (min(dues) - self._clock()).total_seconds() if dues else 1.0
            # At most a second, so that a clock that jumps (or a test clock) is noticed.
            self._stopping.wait(min(max(wait, 0.0), 1.0))
