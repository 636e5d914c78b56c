"""The deterministic intent router of the constrained tool mode: the person's words → one tool and its
arguments, or an abstention. It reads only what the person typed (never tool results, headers or memories),
so text planted in the data cannot steer it.

Entities first (lake ids, job numbers, candidate references, coordinates, catalogue and common names, sites,
nights), then keywords pick the intent. Arguments are validated by the tool's pydantic model afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from astropolis.tools.targets import known_names

HEX_ID = re.compile(r"\b(?:sha256:)?([0-9a-f]{8,64})\b")
CANDIDATE = re.compile(r"\b(?:sha256:)?([0-9a-f]{6,64})\s*#\s*(\d{1,3})\b")
CANDIDATE_WORDS = re.compile(
    r"\bcandidate\s+(\d{1,3})\s+(?:of|in|from)\s+(?:product\s+)?(?:sha256:)?([0-9a-f]{6,64})\b"
)
JOB = re.compile(r"\bjob\s*(?:#|number|no\.?)?\s*(\d{1,9})\b", re.I)
DESIGNATION = re.compile(r"\b(M|Messier|NGC|IC)\s*0*(\d{1,4})([A-Z]?)\b", re.I)
COORDS_DEG = re.compile(r"\bra\s*[=:]?\s*(\d{1,3}(?:\.\d+)?)\s*,?\s*dec\s*[=:]?\s*([+-]?\d{1,2}(?:\.\d+)?)\b", re.I)
COORDS_SEX = re.compile(r"\b(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)\s+([+-]\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)\b")
ISO_DATE = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)\b")
HOURS = re.compile(r"\b(?:last|past)\s+(\d{1,3})\s*(?:h|hours?)\b", re.I)

SITE_WORDS: dict[str, tuple[str, ...]] = {
    "chile": ("chile", "cerro pachon", "cerro pachón", "pachon", "pachón"),
    "lapalma": ("la palma", "lapalma", "canaries", "canary islands", "roque"),
    "siding-spring": ("siding spring", "siding-spring", "australia", "coonabarabran"),
}


@dataclass(frozen=True)
class Route:
    """The router's choice: a tool and its arguments, or an abstention with the reason."""

    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    @property
    def abstained(self) -> bool:
        """True when no tool was chosen."""
        return self.tool is None


def _has(text: str, *words: str) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)


def find_target(text: str) -> str | None:
    """The first catalogue designation or known common name in the text."""
    match = DESIGNATION.search(text)
    if match:
        kind = match.group(1).upper()
        kind = "M" if kind in ("M", "MESSIER") else kind
        # "M" alone is a common word ("I'm", "5 m"); need it glued to a number or written "Messier".
        if kind != "M" or re.match(r"(?i)(m\d|messier)", match.group(0)):
            return (
                f"{kind}{int(match.group(2))}{match.group(3).upper()}"
                if kind == "M"
                else f"{kind} {int(match.group(2))}{match.group(3).upper()}"
            )
    lowered = text.lower()
    for name in known_names():
        if len(name) >= 4 and re.search(rf"\b{re.escape(name)}\b", lowered):
            return name
    return None


def find_site(text: str, sites: Sequence[str]) -> str | None:
    """A site named in the text (by its registry name or a place word)."""
    lowered = text.lower()
    for site in sites:
        if re.search(rf"\b{re.escape(site)}\b", lowered):
            return site
    for site, words in SITE_WORDS.items():
        if site in sites and any(w in lowered for w in words):
            return site
    return None


def find_night(text: str, today: date) -> date | None:
    """The night asked about: an ISO date, 'tomorrow', or None for tonight."""
    match = ISO_DATE.search(text)
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    if "tomorrow" in text.lower():
        return today + timedelta(days=1)
    return None


def find_coordinates(text: str) -> tuple[float, float] | None:
    """RA/Dec in degrees ('RA 202.47 Dec +47.2') or sexagesimal ('13:29:52 +47:11:43')."""
    match = COORDS_DEG.search(text)
    if match:
        return float(match.group(1)), float(match.group(2))
    match = COORDS_SEX.search(text)
    if match:
        h, m, s, d, dm, ds = match.groups()
        sign = -1.0 if d.startswith("-") else 1.0
        ra = 15.0 * (int(h) + int(m) / 60 + float(s) / 3600)
        dec = sign * (abs(int(d)) + int(dm) / 60 + float(ds) / 3600)
        return round(ra, 6), round(dec, 6)
    return None


def _urgency(text: str) -> str:
    if _has(text, "urgent", "urgently", "high", "asap", "immediately", "rapid", "now"):
        return "high"
    if _has(text, "low", "whenever", "eventually"):
        return "low"
    return "normal"


def _states(text: str) -> list[str]:
    words = {
        "PENDING": ("pending", "waiting", "queued", "queue", "outstanding"),
        "SCHEDULED": ("scheduled", "planned"),
        "IN_PROGRESS": ("in progress", "running", "exposing", "underway"),
        "COMPLETED": ("completed", "done", "finished"),
        "FAILED": ("failed", "failing", "failure", "failures"),
        "WINDOW_EXPIRED": ("expired",),
        "CANCELED": ("canceled", "cancelled"),
    }
    chosen = [state for state, keys in words.items() if any(_has(text, k) for k in keys)]
    if chosen == ["PENDING"] and not _has(text, "only"):
        return ["PENDING", "SCHEDULED", "IN_PROGRESS"]
    return chosen or ["PENDING", "SCHEDULED", "IN_PROGRESS"]


# Words whose near-misses ("pendng", "observ") are read as the word itself.
KEYWORDS = (
    "pending",
    "observe",
    "observable",
    "visible",
    "schedule",
    "hypotheses",
    "hypothesis",
    "summary",
    "remember",
    "memory",
    "weather",
    "provenance",
    "candidate",
    "follow",
    "queue",
    "cancel",
    "tonight",
    "tomorrow",
    "status",
)


def _spelled(text: str) -> str:
    """Lower-case text with near-misses of the intent keywords corrected (alphabetic words of 5+ letters only;
    a longer form of a keyword, like 'observed', or a part of one, like 'night', is left alone)."""
    import difflib

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) < 5 or any(word.startswith(k) or (word in k and not k.startswith(word)) for k in KEYWORDS):
            return word
        # A typo keeps its first letter; without this rule 'spending' would read as 'pending'.
        close = difflib.get_close_matches(word, [k for k in KEYWORDS if k[0] == word[0]], n=1, cutoff=0.8)
        return close[0] if close else word

    return re.sub(r"\b[a-z]+\b", fix, text)


def route(text: str, *, sites: Sequence[str], today: date) -> Route:
    """One tool and its arguments for the person's words, or an abstention."""
    lowered = _spelled(" ".join(text.lower().split()))
    candidate = CANDIDATE.search(lowered)
    words_candidate = CANDIDATE_WORDS.search(lowered)
    job = JOB.search(lowered)
    target = find_target(text)
    coords = find_coordinates(text)
    site = find_site(lowered, sites)
    frame_id = next((m.group(1) for m in HEX_ID.finditer(lowered) if not re.fullmatch(r"\d+", m.group(1))), None)

    if (candidate or words_candidate) and _has(
        lowered, "follow", "follow-up", "followup", "observe", "reobserve", "confirm", "chase", "look again"
    ):
        if candidate is not None:
            product, index = candidate.group(1), int(candidate.group(2))
        else:
            assert words_candidate is not None
            product, index = words_candidate.group(2), int(words_candidate.group(1))
        return Route(
            "follow_up_candidate",
            {"product": product, "candidate": index, "urgency": _urgency(lowered)},
            "a candidate reference and a follow-up verb",
        )
    if _has(lowered, "hypothesis", "hypotheses", "theory", "theories", "conjecture"):
        status = (
            "supported"
            if _has(lowered, "supported", "confirmed")
            else "refuted"
            if _has(lowered, "refuted", "rejected")
            else None
            if _has(lowered, "all", "every")
            else "open"
        )
        return Route("list_hypotheses", {"status": status}, "asks about hypotheses")
    if job and _has(lowered, "cancel", "drop", "withdraw", "abort"):
        return (
            Route(None, {}, "cancelling a job needs a reason and the job must be yours: say 'cancel job N because …'")
            if "because" not in lowered
            else Route(
                "cancel_job",
                {
                    "job_id": int(job.group(1)),
                    "note": _plain(lowered.split("because", 1)[1])[:160] or "asked by a person",
                },
                "cancel a job with a reason",
            )
        )
    if job:
        return Route("show_job", {"job_id": int(job.group(1))}, "a job number")
    if _has(
        lowered,
        "last night",
        "tonight so far",
        "overnight",
        "summary",
        "summarise",
        "summarize",
        "what happened",
        "night report",
        "recap",
    ):
        hours = HOURS.search(lowered)
        return Route("summarize_night", {"hours": float(hours.group(1))} if hours else {}, "asks what happened")
    if _has(
        lowered,
        "pending",
        "queue",
        "queued",
        "scheduled",
        "outstanding",
        "jobs",
        "to do",
        "todo",
        "in progress",
        "running",
        "failed jobs",
        "expired",
    ):
        return Route("list_jobs", {"states": _states(lowered)}, "asks about jobs")
    if frame_id and _has(lowered, "provenance", "derived", "made from", "lineage", "came from", "where did"):
        return Route("provenance", {"id": frame_id}, "asks where an object came from")
    resident = re.search(r"\b(quality|anomaly|anomalies|transients?)\b", lowered)
    if frame_id and resident and _has(lowered, "run", "grade", "assess", "score", "check", "search", "look for"):
        ids = [m.group(1) for m in HEX_ID.finditer(lowered)]
        name = {"anomalies": "anomaly", "transient": "transients"}.get(resident.group(1), resident.group(1))
        arguments: dict[str, Any] = {"resident": name, "frame": ids[0]}
        if name == "transients" and len(ids) > 1:
            arguments["reference"] = ids[1]
        return Route("run_resident", arguments, "asks a resident to look at a frame")
    if frame_id:
        return Route("explain_frame", {"id": frame_id}, "a lake id")
    target_args: dict[str, Any] | None = None
    if target is not None:
        target_args = {"name": target}
    elif coords is not None:
        target_args = {"ra_deg": coords[0], "dec_deg": coords[1]}
    if target_args is not None and _has(
        lowered,
        "observable",
        "visible",
        "see",
        "up",
        "rise",
        "rises",
        "when can",
        "observe from",
        "above the horizon",
        "can we observe",
        "visibility",
    ):
        if not _has(lowered, "please observe", "take", "schedule", "queue up", "propose"):
            arguments = dict(target_args)
            if site:
                arguments["site"] = site
            night = find_night(lowered, today)
            if night:
                arguments["night"] = night.isoformat()
            return Route("check_visibility", arguments, "asks whether a target is observable")
    if target_args is not None and _has(
        lowered,
        "observe",
        "take",
        "image",
        "images",
        "exposures",
        "schedule",
        "propose",
        "shoot",
        "get data",
        "monitor",
    ):
        arguments = {**target_args, "urgency": _urgency(lowered)}
        filt = re.search(r"\b([UBVRI]|[ugriz]')?\s*(?:band|filter)\b|\bin\s+([UBVRI])\b", text)
        if filt and (filt.group(1) or filt.group(2)):
            arguments["filter"] = (filt.group(1) or filt.group(2)).upper()
        return Route("propose_observation", arguments, "asks to observe a target")
    if target_args is not None and _has(
        lowered, "know", "about", "tell", "history", "seen", "data on", "info", "information", "anything"
    ):
        return Route("about_target", target_args, "asks what is known about a target")
    if target_args is not None and target is not None and _has(lowered, "where", "coordinates", "position", "what is"):
        return Route("resolve_target", {"name": target}, "asks where a target is")
    if _has(lowered, "remember", "memory", "memories", "notes", "note about", "recall", "did we", "have we"):
        return Route("search_memory", {"query": _plain(text)[:200] or "recent"}, "asks the memory")
    if _has(
        lowered,
        "site status",
        "sites",
        "weather",
        "dome",
        "domes",
        "is it dark",
        "dark at",
        "telescope status",
        "telescopes",
        "status of",
        "safe to observe",
        "conditions",
    ):
        return Route("site_status", {"site": site} if site else {}, "asks about the sites")
    if target_args is not None:
        return Route("about_target", target_args, "names a target")
    if _has(lowered, "night", "nights"):
        return Route("summarize_night", {}, "asks about the night")
    return Route(None, {}, "no tool matches these words")


def _plain(text: str) -> str:
    """Text reduced to the characters tool notes accept."""
    return re.sub(r"[^A-Za-z0-9 ,.;:()'%+/-]", " ", text).strip()[:200]
