"""`astropolis jobs …`: submit, list, show, cancel and reap jobs in the ledger."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from astropy.coordinates import Angle
from rich.table import Table

from astropolis.agent.cli.lake_cmds import JsonFlag, parse_when
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stderr, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.lake.clock import SystemClock
from astropolis.memory import Job, JobKind, JobState, parse_request
from astropolis.tools.followups import is_transient_follow_up, job_confirmation

jobs_app = typer.Typer(help="The job ledger: submit, list, show, cancel and reap jobs.", no_args_is_help=True)


def parse_angle(text: str | None, option: str, *, hours: bool) -> float | None:
    """Degrees from a decimal-degree string or sexagesimal (`16:41:41.6` is hours for RA, degrees for Dec)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(Angle(text, unit="hourangle" if hours else "deg").deg)
    except (ValueError, TypeError):
        raise CliInputError(f"{option} {text!r} is not an angle (degrees, or sexagesimal like 16:41:41.6)") from None


def _job_row(table: Table, job: Job) -> None:
    target = job.request.target
    where = (
        f"{target.name or ''} {target.ra_deg:.3f} {target.dec_deg:+.3f}".strip()
        if target
        else (job.request.subject or "—")[:22]
    )
    table.add_row(
        str(job.id),
        job.state.value,
        job.request.kind.value,
        str(job.request.priority),
        job.request.lane,
        job.site or "—",
        where,
        job.request.window.end.strftime("%Y-%m-%d %H:%M"),
        job.request.reason[:40],
    )


def _jobs_table(jobs: list[Job]) -> Table:
    table = Table("id", "state", "kind", "pri", "lane", "site", "target", "window end (UTC)", "reason")
    for job in jobs:
        _job_row(table, job)
    return table


def _print_job(job: Job) -> None:
    request = job.request
    stdout.print(
        f"[bold]job {job.id}[/]  {job.state.value}  ({request.kind.value}, priority {request.priority}, "
        f"{request.lane} lane)"
    )
    if request.target:
        stdout.print(
            f"target   {request.target.name or '—'}  RA {request.target.ra_deg:.5f}  "
            f"Dec {request.target.dec_deg:+.5f} (ICRS)"
        )
    if request.subject:
        stdout.print(f"subject  {request.subject}")
    stdout.print(f"window   {request.window.start.isoformat()} → {request.window.end.isoformat()}")
    stdout.print(f"reason   {request.reason}", markup=False)
    stdout.print(f"origin   {request.origin.kind}:{request.origin.ref}   key {job.idempotency_key}", markup=False)
    stdout.print(
        f"site     {job.site or '—'}   attempts {job.attempts}/{request.max_attempts}"
        + (f"   lease until {job.lease_expires_at.isoformat()}" if job.lease_expires_at else "")
    )
    table = Table("seq", "at (UTC)", "from", "to", "actor", "site", "why")
    for t in job.history:
        table.add_row(
            str(t.seq),
            t.at.strftime("%Y-%m-%d %H:%M:%S"),
            t.from_state.value if t.from_state else "—",
            t.to_state.value,
            t.actor,
            t.site or "—",
            t.reason,
        )
    stdout.print(table)


@jobs_app.command("submit")
@handles_errors
def submit(
    kind: Annotated[str, typer.Option(help="observe, reobserve, calibrate, review or reprocess.")] = "observe",
    ra: Annotated[str | None, typer.Option(help="Target RA: degrees or hours as 16:41:41.6.")] = None,
    dec: Annotated[str | None, typer.Option(help="Target Dec: degrees or +36:27:37.")] = None,
    name: Annotated[str | None, typer.Option(help="Target name (informational).")] = None,
    subject: Annotated[str | None, typer.Option(help="Lake id the job is about (review, reprocess).")] = None,
    start: Annotated[str | None, typer.Option(help="Window start, UTC ISO time (default: now).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, UTC ISO time (default: start + --hours).")] = None,
    hours: Annotated[float, typer.Option(min=0.01, help="Window length when --end is not given.")] = 24.0,
    priority: Annotated[int, typer.Option(min=1, max=100, help="1 (lowest) to 100 (highest).")] = 50,
    lane: Annotated[str, typer.Option(help="queue, or rapid to pre-empt the queue.")] = "queue",
    reason: Annotated[str | None, typer.Option(help="Why this job exists (required).")] = None,
    max_airmass: Annotated[float, typer.Option(help="Highest airmass allowed.")] = 2.0,
    min_moon_sep: Annotated[float, typer.Option(help="Closest approach to the Moon, degrees.")] = 30.0,
    site: Annotated[list[str] | None, typer.Option(help="Allowed site (repeat for several; default any).")] = None,
    filter_name: Annotated[str | None, typer.Option("--filter", help="Filter name.")] = None,
    exposure: Annotated[float, typer.Option(help="Seconds per exposure.")] = 60.0,
    count: Annotated[int, typer.Option(help="Number of exposures.")] = 1,
    max_attempts: Annotated[int, typer.Option(help="Attempts before FAILURE_LIMIT_REACHED.")] = 3,
    key: Annotated[str | None, typer.Option(help="Idempotency key (default: derived from the request).")] = None,
    from_json: Annotated[
        Path | None, typer.Option(help="Read the whole JobRequest from a JSON file ('-': stdin).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit a job request; the same request (or key) again returns the same job."""
    runtime = Runtime.load()
    actor = runtime.settings.actor
    if from_json is not None:
        try:
            raw = sys.stdin.read() if str(from_json) == "-" else from_json.read_text()
            data: Any = json.loads(raw)
        except (OSError, json.JSONDecodeError) as error:
            raise CliInputError(f"--from-json {from_json}: {error}") from None
    else:
        if reason is None:
            raise CliInputError("--reason is required: say why this job exists")
        now = SystemClock().now()
        window_start = parse_when(start, "--start") or now
        window_end = parse_when(end, "--end") or window_start + timedelta(hours=hours)
        ra_deg, dec_deg = parse_angle(ra, "--ra", hours=True), parse_angle(dec, "--dec", hours=False)
        if (ra_deg is None) != (dec_deg is None):
            raise CliInputError("--ra and --dec go together")
        data = {
            "kind": kind,
            "target": None if ra_deg is None else {"name": name, "ra_deg": ra_deg % 360.0, "dec_deg": dec_deg},
            "subject": None if subject is None else runtime.lake.resolve(subject),
            "window": {"start": window_start.isoformat(), "end": window_end.isoformat()},
            "constraints": {
                "max_airmass": max_airmass,
                "min_moon_separation_deg": min_moon_sep,
                "sites": list(site or []),
            },
            "exposure": {"filter": filter_name, "exposure_s": exposure, "count": count}
            if kind in ("observe", "reobserve", "calibrate")
            else None,
            "priority": priority,
            "lane": lane,
            "reason": reason,
            "origin": {"kind": "person", "ref": actor.split(":", 1)[-1]},
            "max_attempts": max_attempts,
            "idempotency_key": key,
        }
    with runtime.audited("cli.jobs.submit", submit, {"request": data}) as call:
        request = parse_request(data)
        result = runtime.ledger.submit(request, actor=actor)
        call.result = {"job_id": result.job.id, "created": result.created}
    if as_json:
        emit_json({"created": result.created, "job": result.job.summary()})
        return
    verb = "submitted" if result.created else "already submitted (same request or key)"
    stdout.print(f"job {result.job.id} {verb}: {result.job.state.value}")


@jobs_app.command("list")
@handles_errors
def list_jobs(
    state: Annotated[list[str] | None, typer.Option(help="Only jobs in this state (repeatable).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 200,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, oldest first."""
    try:
        states = [JobState(s.upper()) for s in state] if state else None
        job_kind = JobKind(kind) if kind else None
    except ValueError as error:
        raise CliInputError(
            f"{error}; states are {', '.join(s.value for s in JobState)}; kinds are "
            f"{', '.join(k.value for k in JobKind)}"
        ) from None
    jobs = Runtime.load().ledger.jobs(states=states, kind=job_kind, limit=limit)
    if as_json:
        emit_json({"jobs": [job.summary() for job in jobs]})
        return
    stdout.print(_jobs_table(jobs))
    stderr.print(f"{len(jobs)} job(s)")


@jobs_app.command("show")
@handles_errors
def show(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="Job id.")],
    as_json: JsonFlag = False,
) -> None:
    """One job with its request and full history."""
    runtime = Runtime.load()
    job = runtime.ledger.get(job_id)
    confirmation = job_confirmation(runtime.lake, job) if is_transient_follow_up(job) else None
    if as_json:
        emit_json({"job": job.summary()} | ({"confirmation": confirmation} if confirmation is not None else {}))
        return
    _print_job(job)
    if confirmation is not None:
        stdout.print(f"follow-up {confirmation['summary']}", markup=False)


@jobs_app.command("cancel")
@handles_errors
def cancel(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="Job id.")],
    reason: Annotated[str, typer.Option(help="Why it is canceled.")] = "canceled by a person",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a PENDING or SCHEDULED job (an exposure in progress is never interrupted)."""
    runtime = Runtime.load()
    with runtime.audited("cli.jobs.cancel", cancel, {"job_id": job_id, "reason": reason}) as call:
        job = runtime.ledger.cancel(job_id, actor=runtime.settings.actor, reason=reason)
        call.result = {"job_id": job.id, "state": job.state.value}
    if as_json:
        emit_json({"job": job.summary()})
        return
    stdout.print(f"job {job.id} {job.state.value}")


@jobs_app.command("reap")
@handles_errors
def reap(as_json: JsonFlag = False) -> None:
    """Expire jobs whose window has passed and hand lapsed leases back to the queue."""
    runtime = Runtime.load()
    with runtime.audited("cli.jobs.reap", reap, {}) as call:
        changed = runtime.ledger.reap(actor=runtime.settings.actor)
        call.result = {"changed": [{"job_id": j.id, "state": j.state.value} for j in changed]}
    if as_json:
        emit_json({"changed": [job.summary() for job in changed]})
        return
    for job in changed:
        stdout.print(f"job {job.id} → {job.state.value}: {job.history[-1].reason}")
    stdout.print(f"{len(changed)} job(s) changed")
