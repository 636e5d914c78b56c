"""Did a transient candidate's follow-up frames see it again? The transients reports of the frames taken for
its observe job (each against its field's reference), read back from the lake."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from astropolis.lake import Lake
from astropolis.memory import Job, JobKind
from astropolis.tools.scheduler_instance import separation_deg

CONFIRM_RADIUS_ARCSEC = 5.0  # a re-detection this close to the target is the same source (two sites' WCS)


def confirmation(
    ra_deg: float,
    dec_deg: float,
    reports: Iterable[Mapping[str, Any] | None],
    *,
    radius_arcsec: float = CONFIRM_RADIUS_ARCSEC,
) -> dict[str, Any]:
    """What the follow-up frames' transients reports (one per frame; None where transients did not run on the
    frame: no good reference, or quality spoiled it) say about the source at (ra_deg, dec_deg).

    verdict: "confirmed" (called real again in at least one frame), "seen, not called real" (a difference
    source there, but the classifier did not call it real), "not seen" (every compared frame shows nothing
    there), "not compared" (no follow-up frame could be compared with a reference) or "no frames yet"."""
    frames = compared = seen = real = 0
    best: dict[str, Any] | None = None
    for report in reports:
        frames += 1
        if report is None:
            continue
        compared += 1
        near = [
            c
            for c in report.get("candidates", [])
            if 3600.0 * separation_deg(float(c["ra_deg"]), float(c["dec_deg"]), ra_deg, dec_deg) <= radius_arcsec
        ]
        if not near:
            continue
        seen += 1
        real += any(c.get("real") for c in near)
        top = max(near, key=lambda c: (float(c["p_real"]), float(c["snr"])))
        if best is None or (float(top["p_real"]), float(top["snr"])) > (best["p_real"], best["snr"]):
            best = {"p_real": float(top["p_real"]), "snr": float(top["snr"])}
    if real:
        verdict = "confirmed"
    elif seen:
        verdict = "seen, not called real"
    elif compared:
        verdict = "not seen"
    else:
        verdict = "not compared" if frames else "no frames yet"
    return {"verdict": verdict, "frames": frames, "compared": compared, "seen": seen, "real": real, "best": best}


def describe(result: Mapping[str, Any]) -> str:
    """One line for people, e.g. 'confirmed: real in 3, seen in 3 of 3 compared frame(s) (best S/N 412.0,
    p(real) 0.951)'."""
    verdict = str(result["verdict"])
    if verdict in ("no frames yet", "not compared"):
        return verdict + (f" ({result['frames']} frame(s), none compared with a reference)" if result["frames"] else "")
    line = f"{verdict}: real in {result['real']}, seen in {result['seen']} of {result['compared']} compared frame(s)"
    best = result.get("best")
    if best:
        line += f" (best S/N {best['snr']:.1f}, p(real) {best['p_real']:.3f})"
    return line


def transients_report(lake: Lake, frame_id: str) -> Mapping[str, Any] | None:
    """The newest transients report with `frame_id` (an id or a prefix) as its new frame (None: transients never
    ran on it)."""
    frame_id = lake.resolve(frame_id)
    found = [p for p in lake.products_of(frame_id) if p.resident == "transients" and p.inputs[0] == frame_id]
    return found[-1].output if found else None


def confirm_in_lake(lake: Lake, ra_deg: float, dec_deg: float, frame_ids: Iterable[str]) -> dict[str, Any]:
    """`confirmation` of the source at (ra_deg, dec_deg) from the follow-up frames in the lake, with its
    one-line `summary` for people."""
    result = confirmation(ra_deg, dec_deg, [transients_report(lake, frame_id) for frame_id in frame_ids])
    return {**result, "summary": describe(result)}


def is_transient_follow_up(job: Job) -> bool:
    """Whether a job is the observe job of a transient candidate."""
    request = job.request
    return request.kind == JobKind.OBSERVE and request.target is not None and "transient candidate" in request.reason


def job_confirmation(lake: Lake, job: Job) -> dict[str, Any] | None:
    """`confirm_in_lake` for the observe job of a transient candidate (filed by the transients resident or by
    the agent's follow-up tool), from the frames taken for it: at its site, under its target's name, within 1'
    of its target, after it was filed. None for any other job."""
    target = job.request.target
    if target is None or not is_transient_follow_up(job):
        return None
    frames: list[str] = []
    if job.site is not None:
        near = lake.frames(cone=(target.ra_deg, target.dec_deg, 1.0 / 60.0), since=job.history[0].at)
        frames = [f.id for f in near if f.site == job.site and f.object_name == target.name]
    return confirm_in_lake(lake, target.ra_deg, target.dec_deg, frames)
