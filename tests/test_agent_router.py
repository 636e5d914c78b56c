"""The deterministic router on the phrasings an observatory team types: which tool, which arguments, and when it
abstains. No city needed: the router reads only the words. (Phrasings here are the build kind; the held-out
prompt set is never copied into tests.)"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from astropolis.agent.router import route

SITES = ("lapalma", "chile", "siding-spring")
TODAY = date(2026, 11, 25)
ACTIVE = ["PENDING", "SCHEDULED", "IN_PROGRESS"]
FRAME = "6a94459e05"
PRODUCT = "7061d03bd88d"


def routed(text: str) -> tuple[str | None, dict[str, Any]]:
    chosen = route(text, sites=SITES, today=TODAY)
    return chosen.tool, chosen.arguments


@pytest.mark.parametrize(
    ("text", "tool", "arguments"),
    [
        ("what is pending?", "list_jobs", {"states": ACTIVE}),
        ("show me the queue", "list_jobs", {"states": ACTIVE}),
        ("list the completed jobs", "list_jobs", {"states": ["COMPLETED"]}),
        ("which jobs failed?", "list_jobs", {"states": ["FAILED"]}),
        ("show job 12", "show_job", {"job_id": 12}),
        ("job #4 status", "show_job", {"job_id": 4}),
        (f"why was frame {FRAME} flagged?", "explain_frame", {"id": FRAME}),
        (f"provenance of sha256:{FRAME}", "provenance", {"id": FRAME}),
        ("is M51 observable from chile tonight?", "check_visibility", {"name": "M51", "site": "chile"}),
        ("can we observe M42 from La Palma?", "check_visibility", {"name": "M42", "site": "lapalma"}),
        (
            "is NGC 6744 visible from Australia tomorrow",
            "check_visibility",
            {"name": "NGC 6744", "site": "siding-spring", "night": "2026-11-26"},
        ),
        (
            "is M13 up from lapalma on 2026-12-02?",
            "check_visibility",
            {"name": "M13", "site": "lapalma", "night": "2026-12-02"},
        ),
        ("is 13:29:52 +47:11:43 visible", "check_visibility", {"ra_deg": 202.466667, "dec_deg": 47.195278}),
        (
            f"follow up candidate {PRODUCT}#0 with high priority",
            "follow_up_candidate",
            {"product": PRODUCT, "candidate": 0, "urgency": "high"},
        ),
        (
            f"follow up candidate 2 of {PRODUCT}",
            "follow_up_candidate",
            {"product": PRODUCT, "candidate": 2, "urgency": "normal"},
        ),
        ("observe M77 in B please", "propose_observation", {"name": "M77", "urgency": "normal", "filter": "B"}),
        ("take images of the Crab Nebula urgently", "propose_observation", {"name": "crab nebula", "urgency": "high"}),
        ("what do we know about NGC 4656?", "about_target", {"name": "NGC 4656"}),
        ("what do we know about the Whirlpool?", "about_target", {"name": "whirlpool"}),
        ("where is the Pinwheel galaxy?", "resolve_target", {"name": "pinwheel galaxy"}),
        ("what hypotheses are open?", "list_hypotheses", {"status": "open"}),
        ("any refuted hypotheses?", "list_hypotheses", {"status": "refuted"}),
        ("what happened last night?", "summarize_night", {}),
        ("summary of the last 12 hours", "summarize_night", {"hours": 12.0}),
        ("site status", "site_status", {}),
        (f"run anomaly on {FRAME}", "run_resident", {"resident": "anomaly", "frame": FRAME}),
        ("cancel job 3 because clouds all week", "cancel_job", {"job_id": 3, "note": "clouds all week"}),
    ],
)
def test_typical_phrasings_pick_the_tool_and_its_arguments(text: str, tool: str, arguments: dict[str, Any]) -> None:
    assert routed(text) == (tool, arguments)


@pytest.mark.parametrize("text", ["hello", "sing me a song", "cancel job 3", "what are we spending on coffee?"])
def test_it_abstains_when_no_tool_matches_or_a_reason_is_missing(text: str) -> None:
    assert routed(text) == (None, {})


def test_memory_questions_carry_the_words_as_the_query() -> None:
    tool, arguments = routed("do we remember anything about clouds?")
    assert tool == "search_memory" and arguments == {"query": "do we remember anything about clouds"}


# Fixes from the build half of the prompt set (astropolis/evals/agent_prompts/build.jsonl).
def test_a_job_number_wins_over_what_happened() -> None:
    assert routed("what happened to job 5?") == ("show_job", {"job_id": 5})
    assert routed("what happened last night?")[0] == "summarize_night"  # no job number: still the night


def test_near_misses_of_intent_words_are_read_as_the_words() -> None:
    assert routed("whats pendng?") == ("list_jobs", {"states": ACTIVE})
    assert routed("is M51 visable from chile")[0] == "check_visibility"
    assert routed("any refuted hypothesis?")[1] == {"status": "refuted"}


def test_a_near_miss_keeps_its_first_letter() -> None:
    """'spending' is one letter from 'pending' but is not a typo of it."""
    assert routed("what are we spending on coffee?") == (None, {})
    assert routed("the pendig jobs")[0] == "list_jobs"


def test_the_night_alone_asks_for_the_nights_summary() -> None:
    assert routed("how did the night go?") == ("summarize_night", {})
    assert routed("is M51 observable tonight?")[0] == "check_visibility"  # 'tonight' is not 'the night'
