"""Fair time limits: a call is charged what it used, not what a busy machine took from it."""

from __future__ import annotations

import os
import time

import pytest

from dlgrade.errors import CallTimeout, MachineBusy
from dlgrade.sandbox import Limits, WorkerSession
from dlgrade.sandbox.clock import MAX_STRETCH, CallClock, available
from tests.helpers import busy_machine

S = 1_000_000_000  # nanoseconds


class FakeKernel:
    """Scheduler statistics and a monotonic clock a test moves by hand."""

    def __init__(self):
        self.now = 100.0
        self.threads: dict[tuple[int, int], tuple[int, int]] = {(1, 1): (0, 0)}

    def read(self, pid):
        return dict(self.threads)

    def run(self, seconds, **per_thread):
        """Advance the clock; ``per_thread``: name → (seconds ran, seconds waited)."""
        self.now += seconds
        for name, (ran, waited) in per_thread.items():
            key = (1, hash(name) % 1000 + 2)
            cpu, delay = self.threads.get(key, (0, 0))
            self.threads[key] = (cpu + int(ran * S), delay + int(waited * S))


def clock_on(kernel, limit=10.0, cpus=2):
    clock = CallClock(limit, 1, read=kernel.read, now=lambda: kernel.now)
    clock.cpus = cpus
    kernel.run(0.25, main=(0.25, 0.0))  # the first sample: its time counts in full
    assert clock.tick() == pytest.approx(0.25)
    clock.counted = 0.0  # what follows is what each test measures
    return clock


def test_an_idle_machine_counts_every_second():
    kernel = FakeKernel()
    clock = clock_on(kernel)
    kernel.run(4.0, main=(4.0, 0.0))
    assert clock.tick() == pytest.approx(4.0)


def test_a_loop_that_gets_two_thirds_of_a_core_is_charged_two_thirds():
    kernel = FakeKernel()
    clock = clock_on(kernel)
    kernel.run(3.0, main=(2.0, 1.0))  # runnable all along, on a CPU 2/3 of it
    assert clock.tick() == pytest.approx(2.0)


def test_two_training_threads_at_half_speed_are_charged_half():
    kernel = FakeKernel()
    clock = clock_on(kernel)
    kernel.run(2.0, a=(1.0, 1.0), b=(1.0, 1.0))
    assert clock.tick() == pytest.approx(1.0)


def test_more_threads_than_cores_is_the_students_own_doing():
    """Four busy threads on two idle cores wait for each other: nothing is given back."""
    kernel = FakeKernel()
    clock = clock_on(kernel, cpus=2)
    kernel.run(2.0, a=(1.0, 1.0), b=(1.0, 1.0), c=(1.0, 1.0), d=(1.0, 1.0))
    assert clock.tick() == pytest.approx(2.0)


def test_sleeping_or_blocked_code_is_charged_in_full():
    kernel = FakeKernel()
    clock = clock_on(kernel)
    kernel.run(5.0, main=(0.0, 0.0))
    assert clock.tick() == pytest.approx(5.0)


def test_the_limit_expires_on_counted_time_and_gives_up_at_the_stretch():
    kernel = FakeKernel()
    clock = clock_on(kernel, limit=2.0)
    kernel.run(2.0, main=(1.0, 1.0))  # half a core: 1 s counted of 2 s wall
    assert not clock.expired() and not clock.gave_up()
    kernel.run(2.0, main=(1.0, 1.0))
    assert clock.expired()  # 2 s counted at 4 s wall: the student's timeout
    starved = clock_on(kernel, limit=2.0)
    kernel.run(MAX_STRETCH * 2.0, main=(0.5, MAX_STRETCH * 2.0 - 0.5))
    assert not starved.expired() and starved.gave_up()  # the machine's fault


# -- real processes: hogs on every core ------------------------------------------------------


SPIN = """\
import time


def spin(cpu_seconds):
    began = time.process_time()
    while time.process_time() - began < cpu_seconds:
        pass
    return time.process_time() - began


def forever():
    while True:
        pass


def nap(seconds):
    time.sleep(seconds)
"""

needs_schedstat = pytest.mark.skipif(not available(), reason="no per-thread scheduler statistics")


@pytest.fixture
def session(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spinner.py").write_text(SPIN)
    session = WorkerSession(tmp_path / "sub", Limits())
    session.call("spinner", "spin", (0.01,))  # started and imported
    yield session
    session.close()


@needs_schedstat
def test_correct_work_slowed_by_other_processes_is_not_charged(session):
    """1.2 s of CPU under a 2 s limit takes well over 2 s of wall time when two CPU-bound
    processes per core compete: a wall clock would charge the student; this one does not."""
    with busy_machine(per_cpu=2):
        began = time.monotonic()
        used = session.call("spinner", "spin", (1.2,), timeout=2.0)
        wall = time.monotonic() - began
    assert used >= 1.2
    assert wall > 2.0, f"the machine was not busy enough to test anything ({wall:.1f} s)"


@needs_schedstat
def test_an_infinite_loop_on_a_busy_machine_still_times_out(session):
    with busy_machine(per_cpu=1):
        began = time.monotonic()
        with pytest.raises(CallTimeout) as raised:
            session.call("spinner", "forever", timeout=2.0)
        wall = time.monotonic() - began
    assert raised.value.reason == "timeout"
    assert 2.0 <= wall < 2.0 * MAX_STRETCH
    assert session.machine_busy == 0


def test_sleeping_is_charged_like_the_wall_clock(session):
    with busy_machine(per_cpu=1):
        began = time.monotonic()
        with pytest.raises(CallTimeout):
            session.call("spinner", "nap", (60,), timeout=1.5)
        wall = time.monotonic() - began
    assert 1.5 <= wall < 3.0


@needs_schedstat
def test_a_machine_too_busy_to_grade_fairly_is_the_graders_failure(session):
    """The worker pinned to one core with four hogs gets a fifth of it: a 1 s limit would
    take 5 s of wall time; at 3× the limit the call is given up as machine_busy."""
    worker = session._proc.worker_pid
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(worker, {core})
    for task in os.listdir(f"/proc/{worker}/task"):
        os.sched_setaffinity(int(task), {core})
    with busy_machine(per_cpu=4, cpus={core}):
        began = time.monotonic()
        with pytest.raises(MachineBusy) as raised:
            session.call("spinner", "spin", (1.0,), timeout=1.0)
        wall = time.monotonic() - began
    assert MAX_STRETCH * 1.0 <= wall < MAX_STRETCH * 1.0 + 2
    assert "not counted against you" in str(raised.value)
    assert session.machine_busy == 1


# -- a hanging student costs bounded time ------------------------------------------------------

HANGS = """\
def hang():
    while True:
        pass


def quick():
    return 42
"""


def test_a_function_that_timed_out_is_not_run_again(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.py").write_text(HANGS)
    session = WorkerSession(tmp_path / "sub", Limits())
    try:
        session.start_check(1, "1.01/first_check")
        began = time.monotonic()
        with pytest.raises(CallTimeout) as first:
            session.call("activity_1_01", "hang", timeout=1.5)
        assert first.value.reason == "timeout"
        assert time.monotonic() - began >= 1.5
        session.start_check(2, "1.01/second_check")
        began = time.monotonic()
        with pytest.raises(CallTimeout) as again:
            session.call("activity_1_01", "hang", timeout=60)
        assert time.monotonic() - began < 1.0  # not 60 s
        assert again.value.reason == "hung_before"
        assert "not run again" in str(again.value) and "1.01/first_check" in str(again.value)
        assert session.call("activity_1_01", "quick") == 42  # another function still runs
    finally:
        session.close()


def test_a_module_that_hangs_on_import_is_imported_once(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.py").write_text("while True:\n    pass\n")
    session = WorkerSession(tmp_path / "sub", Limits(import_timeout=1.5))
    try:
        with pytest.raises(CallTimeout):
            session.call("activity_1_01", "solve")
        began = time.monotonic()
        with pytest.raises(CallTimeout) as again:
            session.call("activity_1_01", "loss_fn", (1.0, (1, 0, 0)))
        assert time.monotonic() - began < 1.0
        assert again.value.reason == "hung_before" and "importing activity_1_01.py" in str(
            again.value
        )
    finally:
        session.close()


class BudgetSession:
    """A stand-in for the worker: each call takes ``cost`` seconds of the student's time
    unless its limit is shorter, when it times out after using the whole limit."""

    def __init__(self):
        self.student_seconds = 0.0
        self.limits_seen: list[float] = []

    def call(self, module, function, args, kwargs, *, timeout):
        cost = args[0]
        self.limits_seen.append(timeout)
        if cost > timeout:
            self.student_seconds += timeout
            raise CallTimeout(f"{function}() did not finish within {timeout:g} s", reason="timeout")
        self.student_seconds += cost
        return cost


def test_an_activity_budget_shortens_calls_once_spent_and_says_so(tmp_path):
    from dlgrade.submission import BUDGET_FLOOR_SECONDS, Submission

    fake = BudgetSession()
    submission = Submission(tmp_path, fake)
    work = submission.module("activity_1_01").work
    submission.begin_check("1.01", 60.0, 100.0)
    assert work(50.0) == 50.0 and fake.limits_seen[-1] == 60.0
    submission.begin_check("1.01", 60.0, 100.0)
    assert work(30.0) == 30.0 and fake.limits_seen[-1] == 50.0  # 100 − 50 left
    submission.begin_check("2.01", 60.0, 100.0)
    assert work(55.0) == 55.0 and fake.limits_seen[-1] == 60.0  # another activity's budget
    submission.begin_check("1.01", 60.0, 100.0)
    with pytest.raises(CallTimeout) as cut:
        work(40.0)  # 20 s left of 1.01's budget
    assert fake.limits_seen[-1] == 20.0
    assert cut.value.reason == "time_budget"
    assert "time budget (100 s" in str(cut.value) and "had only 20 s" in str(cut.value)
    assert work(1.0) == 1.0 and fake.limits_seen[-1] == BUDGET_FLOOR_SECONDS  # fast code runs
    assert submission.spent("1.01") == pytest.approx(101.0)
    assert submission.spent("2.01") == pytest.approx(55.0)


def test_the_budget_is_one_hang_at_the_largest_limit_plus_the_tiers_limit():
    from dlgrade.rubric import activity_budget

    assert activity_budget([60, 180, 60], "quick") == 240
    assert activity_budget([300, 900], "standard") == 1200
    assert activity_budget([3, 3], "quick", override=3) == 6


@pytest.mark.slow
def test_a_hanging_solve_costs_one_limit_and_every_other_check_still_runs(grade, tmp_path):
    """1.01 with `while True` in solve(): the first check that calls it times out, every
    later one fails at once saying why, and loss_fn's check is graded as usual."""
    from tests.helpers import REFERENCE

    submission = tmp_path / "hangs"
    submission.mkdir()
    source = (REFERENCE / "activity_1_01.py").read_text()
    hang = "\n\ndef solve(*args, **kwargs):\n    while True:\n        pass\n"
    (submission / "activity_1_01.py").write_text(source + hang)
    began = time.monotonic()
    graded = grade(submission, ("1.01",), "quick", "--call-timeout", "3")
    wall = time.monotonic() - began
    solve_checks = [c for c in graded.grade["checks"] if "loss_fn" not in c["id"]]
    reasons = sorted(c["reason"] for c in solve_checks)
    assert reasons == ["hung_before"] * (len(solve_checks) - 1) + ["timeout"], graded.outcomes
    assert all(c["outcome"] == "timeout" for c in solve_checks)
    again = next(c for c in solve_checks if c["reason"] == "hung_before")
    assert "not run again" in again["feedback"] and "within 3 s in 1.01/" in again["feedback"]
    assert graded.check("loss_fn_at_known_points")["outcome"] == "pass"
    # one 3 s limit, not one per check (six checks call solve); TensorFlow's start aside
    assert sum(c["duration_s"] for c in solve_checks) < 3 + 5, solve_checks
    assert wall < 60
