"""Replies written by code from a tool's structured result, so what the agent says never contradicts the data.

Quoted data (headers, job reasons, memories) is shown in quotation marks and never interpreted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _quote(text: object, limit: int = 160) -> str:
    value = " ".join(str(text).split())
    return "“" + (value[: limit - 1] + "…" if len(value) > limit else value) + "”"


def _short(object_id: object) -> str:
    return str(object_id)[:19]


def _jobs(result: dict[str, Any]) -> str:
    jobs = result["jobs"]
    if not jobs:
        return "No jobs in those states."
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result["by_state"].items()))
    lines = [f"{result['total']} job(s): {counts}."]
    for job in jobs[:10]:
        where = f" at {job['site']}" if job["site"] else ""
        lines.append(
            f"- job {job['id']} {job['kind']} {job['target'] or ''} — {job['state']}{where}, priority "
            f"{job['priority']} ({job['lane']}), window ends {job['window_end'][:16]}Z; reason "
            f"{_quote(job['reason'], 100)}"
        )
    if result["total"] > len(jobs[:10]):
        lines.append(f"… and {result['total'] - len(jobs[:10])} more.")
    return "\n".join(lines)


def _job(result: dict[str, Any]) -> str:
    job = result["job"]
    lines = [
        f"Job {job['id']}: {job['kind']} {job['target'] or ''}, {job['state']}"
        + (f" at {job['site']}" if job["site"] else "")
        + f", priority {job['priority']} ({job['lane']}).",
        f"Asked for by {job['origin']}: {_quote(job['reason'])}",
    ]
    for change in result["history"][-6:]:
        lines.append(
            f"- {change['at'][:19]}Z {change['from_state'] or 'new'} → {change['to_state']} by "
            f"{change['actor']}: {_quote(change['reason'], 100)}"
        )
    return "\n".join(lines)


def _frame(result: dict[str, Any]) -> str:
    frame = result["frame"]
    when = (frame["observed_at"] or "unknown time")[:19]
    head = (
        f"Frame {_short(frame['id'])} from {frame['site']} at {when}, {frame['filter'] or 'no'} filter, "
        f"{frame['exptime_s']} s" + (f", OBJECT {_quote(frame['object_name'], 40)}" if frame["object_name"] else "")
    )
    lines = [head + "."]
    if not result["verdicts"]:
        lines.append("No resident has looked at it yet (run `astropolis residents run quality ID`).")
    verdict_word = "It was flagged." if result["flagged"] else "It was not flagged."
    lines.append(verdict_word)
    for verdict in result["verdicts"]:
        lines.append(f"- {verdict['resident']}: {verdict['summary']} (product {_short(verdict['product'])})")
    for job in result["jobs"]:
        lines.append(f"- that verdict filed job {job['id']} ({job['kind']}, now {job['state']})")
    return "\n".join(lines)


def _provenance(result: dict[str, Any]) -> str:
    lines = [f"{result['kind'].capitalize()} {_short(result['id'])}:"]
    lines.append(
        "made from: "
        + (
            ", ".join(f"{_short(d['id'])} ({d['kind']})" for d in result["ancestors"])
            or "nothing (it is an original frame)"
        )
    )
    lines.append(
        "made from it: " + (", ".join(f"{_short(d['id'])} ({d['kind']})" for d in result["derived"]) or "nothing yet")
    )
    return "\n".join(lines)


def _target(result: dict[str, Any]) -> str:
    extra = f", also {result['common_names']}" if result.get("common_names") else ""
    hubble = f", Hubble type {result['hubble_type']}" if result.get("hubble_type") else ""
    return (
        f"{result['name']} ({result['catalogue_name']}{extra}) is a {result['object_type']}{hubble} at RA "
        f"{result['ra_deg']:.5f}°, Dec {result['dec_deg']:+.5f}° (ICRS, {result['source']})."
    )


def _visibility(result: dict[str, Any]) -> str:
    lines = [
        f"{result['target']} (RA {result['ra_deg']:.3f}°, Dec {result['dec_deg']:+.3f}°) between "
        f"{result['start'][:16]}Z and {result['end'][:16]}Z:"
    ]
    for site in result["sites"]:
        if site["observable"]:
            spans = ", ".join(f"{a[11:16]}–{b[11:16]}Z" for a, b in site["windows"])
            lines.append(
                f"- {site['site']}: observable {site['observable_hours']} h ({spans}); highest "
                f"{site['max_altitude_deg']}° at {site['best_at'][11:16]}Z, airmass {site['min_airmass']}"
            )
        else:
            why = (
                f"it never rises above {site['peak_altitude_deg']}° (horizon limit {site['horizon_deg']}°)"
                if site["peak_altitude_deg"] < site["horizon_deg"]
                else "it is not high enough while the sky is dark (Sun below -18°) within the airmass limit"
            )
            lines.append(f"- {site['site']}: not observable: {why}")
    return "\n".join(lines)


def _proposal(result: dict[str, Any]) -> str:
    job = result["job"]
    verb = "Proposed" if result["created"] else "Already proposed"
    return (
        f"{verb}: job {job['id']} {job['kind']} {job['target'] or ''}, priority {job['priority']} "
        f"({job['lane']} lane), {job['state']}; the scheduler will pick the site and time. Reason: "
        f"{_quote(job['reason'])}"
    )


def _memories(result: dict[str, Any]) -> str:
    found = result["memories"]
    if not found:
        return "Nothing in memory matches."
    lines = [f"{len(found)} {'memory' if len(found) == 1 else 'memories'}, closest first:"]
    for m in found:
        lines.append(f"- [{m['kind']}, {m['created_at'][:10]}, {m['actor']}] {_quote(m['text'], 200)}")
    return "\n".join(lines)


def _hypotheses(result: dict[str, Any]) -> str:
    found = result["hypotheses"]
    if not found:
        return "No hypotheses with that status."
    lines = []
    for h in found:
        tests = ", ".join(f"job {t['id']} {t['state']}" for t in h["test_jobs"]) or "no test job"
        lines.append(
            f"- hypothesis {h['id']} ({h['status']}): {_quote(h['statement'], 200)}; tested by {tests}; "
            f"last: {_quote(h['last_change'], 100)}"
        )
    return "\n".join(lines)


def _hypothesis(result: dict[str, Any]) -> str:
    h = result["hypothesis"]
    verb = "Recorded" if result["created"] else "Already recorded"
    tests = ", ".join(f"job {t['id']}" for t in h["test_jobs"])
    return f"{verb} hypothesis {h['id']} ({h['status']}): {_quote(h['statement'], 200)}; tested by {tests}."


def _night(result: dict[str, Any]) -> str:
    sites = ", ".join(f"{n} at {s}" for s, n in sorted(result["frames_by_site"].items())) or "none"
    states = ", ".join(f"{n} {s}" for s, n in sorted(result["jobs_by_state"].items())) or "no job changed"
    lines = [f"Since {result['since'][:16]}Z: frames {sites}; jobs {states}."]
    for title, key in (
        ("Completed", "completed"),
        ("Problems", "problems"),
        ("Flagged frames", "flagged_frames"),
        ("Transients", "transients"),
        ("Follow-ups", "follow_ups"),
    ):
        items = result[key]
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"- {item}" for item in items[:8])
    return "\n".join(lines)


def _about(result: dict[str, Any]) -> str:
    facts = result.get("catalogue") or {}
    kind = facts.get("type")
    head = (
        f"{result['target']}"
        + (f" ({kind}" + (f", {facts['hubble_type']}" if facts.get("hubble_type") else "") + ")" if kind else "")
        + f" at RA {result['ra_deg']:.4f}°, Dec {result['dec_deg']:+.4f}°."
    )
    by_site = ", ".join(f"{n} at {s}" for s, n in sorted(result["frames_by_site"].items()))
    lines = [head, f"Frames in the lake: {result['frames']}" + (f" ({by_site})" if by_site else "") + "."]
    if result["transients"]:
        lines.append("Real transient candidates: " + "; ".join(result["transients"][:5]))
    lines.append("Jobs: " + ("; ".join(result["jobs"][-6:]) if result["jobs"] else "none") + ".")
    for m in result["memories"][:3]:
        lines.append(f"Memory [{m['kind']}]: {_quote(m['text'], 160)}")
    for h in result["hypotheses"][:3]:
        lines.append(f"Hypothesis {h}")
    if not (result["frames"] or result["jobs"] or result["memories"] or result["hypotheses"]):
        lines.append("We have not observed it and nothing in memory mentions it.")
    return "\n".join(lines)


def _sites(result: dict[str, Any]) -> str:
    lines = [f"Sites at {result['at'][:16]}Z:"]
    for row in result["sites"]:
        night = f"night {row['night'][0][11:16]}–{row['night'][1][11:16]}Z" if row["night"] else "no astronomical night"
        sky = "dark" if row["dark_now"] else f"not dark (Sun {row['sun_altitude_deg']}°)"
        devices = row["devices"]
        if devices:
            weather = devices.get("weather") or {}
            live = (
                f"connected {devices.get('connected')}, safe {devices.get('safe')}, parked {devices.get('parked')}, "
                f"camera {devices.get('camera_state')}, cloud {weather.get('cloud_cover_pct')}%"
            )
        else:
            live = f"devices: {row['devices_error']}"
        jobs = ", ".join(row["active_jobs"]) or "no active job"
        lines.append(f"- {row['site']}: {sky}, {night}; {jobs}; {row['frames_last_24h']} frame(s) in 24 h; {live}")
    return "\n".join(lines)


def _resident(result: dict[str, Any]) -> str:
    verdict = result["verdict"]
    verb = "Ran" if result["created"] else "Already had"
    return f"{verb} {verdict['resident']}: {verdict['summary']} (product {_short(verdict['product'])})."


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "list_jobs": _jobs,
    "show_job": _job,
    "cancel_job": _job,
    "explain_frame": _frame,
    "provenance": _provenance,
    "resolve_target": _target,
    "check_visibility": _visibility,
    "propose_observation": _proposal,
    "follow_up_candidate": _proposal,
    "search_memory": _memories,
    "list_hypotheses": _hypotheses,
    "propose_hypothesis": _hypothesis,
    "summarize_night": _night,
    "about_target": _about,
    "site_status": _sites,
    "run_resident": _resident,
}


def render_call(call: dict[str, Any]) -> str:
    """The reply for one tool call (a ToolCall as JSON): its result in words, or what went wrong and what to do."""
    error = call.get("error")
    if error:
        if error["kind"] == "refused_by_policy":
            return f"I may not do that: {error['message']}."
        if error["kind"] == "bad_arguments":
            return f"I could not use {call['tool']} with those details: {error['message']}."
        return f"{call['tool']} could not answer: {error['message']}"
    renderer = RENDERERS.get(call["tool"])
    if renderer is None or call.get("result") is None:
        return f"{call['tool']} returned no result."
    return renderer(call["result"])
