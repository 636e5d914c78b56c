"""The job ledger: legal transitions only, history, idempotency under concurrency, leases and the reaper."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from astropolis.lake.clock import ManualClock
from astropolis.memory import (
    TERMINAL_STATES,
    TRANSITIONS,
    IdempotencyConflict,
    IllegalTransition,
    InvalidJobRequest,
    JobNotFound,
    JobState,
    Ledger,
    parse_request,
)

START = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def request_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "observe",
        "target": {"name": "M13", "ra_deg": 250.4235, "dec_deg": 36.4613},
        "window": {"start": "2026-11-25T21:00:00Z", "end": "2026-11-26T05:00:00Z"},
        "exposure": {"filter": "R", "exposure_s": 60, "count": 3},
        "priority": 60,
        "reason": "monitor the cluster core",
        "origin": {"kind": "person", "ref": "ann"},
    }
    data.update(changes)
    return data


def submit(ledger: Ledger, **changes: Any) -> int:
    return ledger.submit(parse_request(request_data(**changes)), actor="person:ann").job.id


def drive_to(ledger: Ledger, job_id: int, state: JobState) -> None:
    """Walk a fresh PENDING job to `state` through legal steps."""
    paths = {
        JobState.PENDING: [],
        JobState.SCHEDULED: ["schedule"],
        JobState.IN_PROGRESS: ["schedule", "start"],
        JobState.COMPLETED: ["schedule", "start", "complete"],
        JobState.FAILED: ["schedule", "start", "fail"],
        JobState.WINDOW_EXPIRED: ["expire"],
        JobState.CANCELED: ["cancel"],
        JobState.FAILURE_LIMIT_REACHED: ["schedule", "start", "limit"],
    }
    for step in paths[state]:
        if step == "schedule":
            ledger.schedule(job_id, "lapalma", actor="scheduler")
        elif step == "start":
            ledger.start(job_id, actor="executor:lapalma")
        elif step == "complete":
            ledger.complete(job_id, actor="executor:lapalma")
        elif step == "fail":
            ledger.fail(job_id, actor="executor:lapalma", reason="camera error", retry=False)
        elif step == "limit":
            ledger.transition(job_id, JobState.FAILURE_LIMIT_REACHED, actor="reaper", reason="limit")
        elif step == "expire":
            ledger.transition(job_id, JobState.WINDOW_EXPIRED, actor="reaper", reason="window passed")
        elif step == "cancel":
            ledger.cancel(job_id, actor="person:ann", reason="not needed")
    assert ledger.get(job_id).state == state


@pytest.mark.parametrize("source", list(JobState))
def test_transition_matrix(ledger: Ledger, source: JobState) -> None:
    for target in JobState:
        job_id = submit(ledger, idempotency_key=f"{source}-{target}")
        drive_to(ledger, job_id, source)
        before = ledger.get(job_id)
        if target in TRANSITIONS[source]:
            after = ledger.transition(job_id, target, actor="test", reason="matrix", site="lapalma")
            assert after.state == target and len(after.history) == len(before.history) + 1
            assert after.history[-1].from_state == source
        else:
            with pytest.raises(IllegalTransition) as caught:
                ledger.transition(job_id, target, actor="test", reason="matrix", site="lapalma")
            assert f"job {job_id} is {source.value}" in str(caught.value)
            assert ledger.get(job_id) == before  # nothing changed, not even the history


def test_terminal_states_are_final() -> None:
    assert {s for s in TERMINAL_STATES} == {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.WINDOW_EXPIRED,
        JobState.CANCELED,
        JobState.FAILURE_LIMIT_REACHED,
    }
    assert JobState.CANCELED not in TRANSITIONS[JobState.IN_PROGRESS]  # never interrupt an exposure


def test_history_records_who_when_why(ledger: Ledger, clock: ManualClock) -> None:
    job_id = submit(ledger)
    clock.advance(60)
    ledger.schedule(job_id, "chile", actor="scheduler", reason="best airmass at chile")
    clock.advance(60)
    job = ledger.start(job_id, actor="executor:chile")
    assert [(t.seq, t.to_state, t.actor) for t in job.history] == [
        (1, JobState.PENDING, "person:ann"),
        (2, JobState.SCHEDULED, "scheduler"),
        (3, JobState.IN_PROGRESS, "executor:chile"),
    ]
    assert job.history[1].reason == "best airmass at chile"
    assert job.history[2].at == START + timedelta(seconds=120)
    assert job.site == "chile" and job.attempts == 1
    assert job.lease_expires_at == START + timedelta(seconds=180)


def test_schedule_needs_a_site_and_unknown_job(ledger: Ledger) -> None:
    job_id = submit(ledger)
    with pytest.raises(IllegalTransition, match="needs a site"):
        ledger.transition(job_id, JobState.SCHEDULED, actor="x", reason="y")
    with pytest.raises(JobNotFound, match="job 999"):
        ledger.get(999)
    with pytest.raises(JobNotFound):
        ledger.cancel(999, actor="x", reason="y")


def test_expect_guards_against_stale_state(ledger: Ledger) -> None:
    job_id = submit(ledger)
    ledger.schedule(job_id, "lapalma", actor="scheduler")
    with pytest.raises(IllegalTransition):
        ledger.transition(job_id, JobState.CANCELED, actor="x", reason="y", expect=JobState.PENDING)
    assert ledger.get(job_id).state == JobState.SCHEDULED


# ------------------------------------------------------------------------------------------ idempotency
def test_same_request_same_job_and_key_conflict(ledger: Ledger) -> None:
    first = ledger.submit(parse_request(request_data()), actor="person:ann")
    again = ledger.submit(parse_request(request_data()), actor="person:bob")
    assert first.created and not again.created and again.job.id == first.job.id
    keyed = ledger.submit(parse_request(request_data(idempotency_key="follow-up-42")), actor="agent:t1")
    assert keyed.job.idempotency_key == "follow-up-42"
    with pytest.raises(IdempotencyConflict, match="follow-up-42"):
        ledger.submit(parse_request(request_data(idempotency_key="follow-up-42", priority=99)), actor="agent:t1")
    assert len(ledger.jobs()) == 2


def test_ten_concurrent_threads_create_one_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).close()
    barrier = threading.Barrier(10)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        ledger = Ledger(url, clock=ManualClock(START))  # each thread its own connections, as separate services
        try:
            request = parse_request(request_data(idempotency_key="concurrent-1"))
            barrier.wait()
            result = ledger.submit(request, actor="person:ann")
            results.append((result.job.id, result.created))
        except BaseException as error:
            errors.append(error)
        finally:
            ledger.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(Ledger(url).jobs()) == 1


def _process_submit(url: str, barrier: Any, queue: Any) -> None:
    ledger = Ledger(url, clock=ManualClock(START))
    request = parse_request(request_data(idempotency_key="concurrent-2"))
    barrier.wait()
    result = ledger.submit(request, actor="person:ann")
    queue.put((result.job.id, result.created))


def test_ten_concurrent_processes_create_one_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(10)
    queue = context.Queue()
    processes = [context.Process(target=_process_submit, args=(url, barrier, queue)) for _ in range(10)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(Ledger(url).jobs()) == 1


# ------------------------------------------------------------------------------------- leases and reaper
def test_lapsed_lease_returns_job_to_queue_then_hits_the_limit(ledger: Ledger, clock: ManualClock) -> None:
    job_id = submit(ledger, max_attempts=2)
    ledger.schedule(job_id, "lapalma", actor="scheduler")
    ledger.start(job_id, actor="executor:lapalma")
    clock.advance(59)
    assert ledger.reap() == []  # lease still live
    clock.advance(2)
    (reaped,) = ledger.reap()
    assert reaped.state == JobState.PENDING and reaped.site is None and reaped.attempts == 1
    assert "lease lapsed" in reaped.history[-1].reason and reaped.history[-1].actor == "reaper"
    ledger.schedule(job_id, "chile", actor="scheduler")
    ledger.start(job_id, actor="executor:chile")
    clock.advance(61)
    (limited,) = ledger.reap()
    assert limited.state == JobState.FAILURE_LIMIT_REACHED and limited.attempts == 2


def test_renewed_lease_is_not_reaped(ledger: Ledger, clock: ManualClock) -> None:
    job_id = submit(ledger)
    ledger.schedule(job_id, "lapalma", actor="scheduler")
    ledger.start(job_id, actor="executor:lapalma")
    for _ in range(5):
        clock.advance(50)
        ledger.renew(job_id, actor="executor:lapalma")
        assert ledger.reap() == []
    job = ledger.get(job_id)
    assert job.state == JobState.IN_PROGRESS and job.attempts == 1
    assert job.lease_expires_at == clock.now() + timedelta(seconds=60)
    with pytest.raises(IllegalTransition):
        ledger.renew(submit(ledger, idempotency_key="other"), actor="x")


def test_passed_windows_expire(ledger: Ledger, clock: ManualClock) -> None:
    pending = submit(
        ledger, idempotency_key="a", window={"start": "2026-11-25T21:00:00Z", "end": "2026-11-25T22:00:00Z"}
    )
    scheduled = submit(
        ledger, idempotency_key="b", window={"start": "2026-11-25T21:00:00Z", "end": "2026-11-25T22:00:00Z"}
    )
    running = submit(
        ledger, idempotency_key="c", window={"start": "2026-11-25T21:00:00Z", "end": "2026-11-25T22:00:00Z"}
    )
    later = submit(ledger, idempotency_key="d")
    ledger.schedule(scheduled, "lapalma", actor="scheduler")
    ledger.schedule(running, "lapalma", actor="scheduler")
    ledger.start(running, actor="executor:lapalma", lease_s=7200)
    clock.advance(timedelta(hours=1, seconds=1))
    changed = {job.id: job.state for job in ledger.reap()}
    assert changed == {pending: JobState.WINDOW_EXPIRED, scheduled: JobState.WINDOW_EXPIRED}
    assert ledger.get(running).state == JobState.IN_PROGRESS  # a live exposure is never cut short
    assert ledger.get(later).state == JobState.PENDING


def test_fail_retries_until_the_limit(ledger: Ledger) -> None:
    job_id = submit(ledger, max_attempts=2)
    for expected in (JobState.PENDING, JobState.FAILURE_LIMIT_REACHED):
        ledger.schedule(job_id, "lapalma", actor="scheduler")
        ledger.start(job_id, actor="executor:lapalma")
        assert ledger.fail(job_id, actor="executor:lapalma", reason="dome stuck").state == expected
    other = submit(ledger, idempotency_key="x")
    ledger.schedule(other, "lapalma", actor="scheduler")
    ledger.start(other, actor="executor:lapalma")
    assert ledger.fail(other, actor="executor:lapalma", reason="target gone", retry=False).state == JobState.FAILED


# ----------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": None}, "needs a target"),
        ({"kind": "review", "target": None}, "needs a subject"),
        ({"window": {"start": "2026-11-26T05:00:00Z", "end": "2026-11-25T21:00:00Z"}}, "not after its start"),
        ({"window": {"start": "2026-11-26T05:00:00", "end": "2026-11-27T05:00:00Z"}}, "window.start"),
        ({"priority": 0}, "priority"),
        ({"target": {"ra_deg": 400, "dec_deg": 0}}, "target.ra_deg"),
        ({"origin": {"kind": "product", "ref": "frame-1"}}, "not a lake id"),
        ({"reason": ""}, "reason"),
        ({"kind": "launch"}, "kind"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_requests_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidJobRequest, match=message):
        parse_request(request_data(**changes))


def test_window_already_over_is_refused(ledger: Ledger, clock: ManualClock) -> None:
    clock.advance(timedelta(days=2))
    with pytest.raises(InvalidJobRequest, match="window ended"):
        ledger.submit(parse_request(request_data()), actor="person:ann")
    assert ledger.jobs() == []


# ------------------------------------------------------------------------------------ stateful property
class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of operations never produce an illegal history."""

    def __init__(self) -> None:
        super().__init__()
        self.job_ids: list[int] = []

    @initialize(tmp=st.integers(0, 10**9))
    def open(self, tmp: int) -> None:
        import tempfile

        self.directory = tempfile.mkdtemp(prefix=f"ledger{tmp}-")
        self.clock = ManualClock(START)
        self.ledger = Ledger(f"sqlite:///{self.directory}/l.db", clock=self.clock, lease_s=60)

    @rule(priority=st.integers(1, 100), key=st.integers(0, 4))
    def submit(self, priority: int, key: int) -> None:
        try:
            result = self.ledger.submit(
                parse_request(request_data(priority=priority, idempotency_key=f"k{key}")), actor="person:ann"
            )
        except IdempotencyConflict:
            return
        except InvalidJobRequest:
            return  # the clock ran past the window
        if result.created:
            self.job_ids.append(result.job.id)

    @rule(index=st.integers(0, 20), state=st.sampled_from(list(JobState)))
    def move(self, index: int, state: JobState) -> None:
        if not self.job_ids:
            return
        job_id = self.job_ids[index % len(self.job_ids)]
        before = self.ledger.get(job_id)
        try:
            self.ledger.transition(job_id, state, actor="fuzz", reason="fuzz", site="lapalma")
        except IllegalTransition:
            assert self.ledger.get(job_id) == before
            assert state not in TRANSITIONS[before.state]

    @rule(seconds=st.integers(1, 4000))
    def tick_and_reap(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.ledger.reap()

    @invariant()
    def histories_are_legal(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for job in self.ledger.jobs():
            assert [t.seq for t in job.history] == list(range(1, len(job.history) + 1))
            for previous, current in zip(job.history, job.history[1:], strict=False):
                assert current.from_state == previous.to_state
                renewal = previous.to_state == current.to_state == JobState.IN_PROGRESS
                assert renewal or current.to_state in TRANSITIONS[previous.to_state]

    def teardown(self) -> None:
        if hasattr(self, "ledger"):
            self.ledger.close()


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
