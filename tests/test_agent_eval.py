"""The agent evaluation harness: the shipped prompt sets are well formed, the harness runs on the real city with the
router alone, and the scorer fails what is wrong (wrong tool, wrong argument, a call that did not validate)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from astropolis.evals.agent_eval import (
    HALVES,
    City,
    Prompt,
    evaluate,
    fill,
    load_prompts,
    placeholders,
    same,
    score,
    table,
    totals,
)
from astropolis.tools.toolbox import TOOLS

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
KNOWN = {"reference", "new", "cloudy", "quality_product", "transients_product", "follow_up_job", "reobserve_job"}


@pytest.mark.parametrize("half", HALVES)
def test_each_half_has_forty_prompts_with_real_tools_and_argument_names(half: str) -> None:
    prompts = load_prompts(half)
    assert len(prompts) >= 40
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({p.prompt.lower() for p in prompts}) == len(prompts)
    assert any(p.tool is None for p in prompts)  # some prompts must get no tool at all
    for prompt in prompts:
        assert set(PLACEHOLDER.findall(prompt.prompt + str(prompt.arguments))) <= KNOWN, prompt.id
        if prompt.tool is None:
            assert prompt.arguments == {}, prompt.id
            continue
        tool = TOOLS.get(prompt.tool)
        assert tool is not None, f"{prompt.id}: no tool {prompt.tool!r}"
        assert set(prompt.arguments) <= set(tool.input.model_fields), f"{prompt.id}: {sorted(prompt.arguments)}"


def test_the_halves_do_not_share_prompts() -> None:
    build, heldout = ({p.prompt.lower() for p in load_prompts(h)} for h in HALVES)
    assert not build & heldout


def test_placeholders_take_the_type_of_what_they_stand_for() -> None:
    ids = {
        "reference": "sha256:" + "a" * 64,
        "new": "sha256:" + "b" * 64,
        "cloudy": "sha256:" + "c" * 64,
        "quality_product": "sha256:" + "d" * 64,
        "transients_product": "sha256:" + "e" * 64,
        "follow_up_job": 7,
        "reobserve_job": 3,
    }
    prompt = Prompt("x", "follow up {transients_product}#0, see job {follow_up_job}", "follow_up_candidate", {})
    filled = fill(
        Prompt(prompt.id, prompt.prompt, prompt.tool, {"product": "{transients_product}", "job": "{follow_up_job}"}),
        placeholders(ids),
    )
    assert filled.prompt == "follow up eeeeeeeeeeee#0, see job 7"
    assert filled.arguments == {"product": "eeeeeeeeeeee", "job": 7}


def test_arguments_compare_case_insensitively_within_tolerance_and_as_sets() -> None:
    assert same("Crab Nebula", "crab  nebula") and same("abc123", "sha256:ABC123")
    assert same(202.4667, 202.46668) and not same(202.4667, 202.47)
    assert same(48, "48.0") and not same(48, "many")
    assert same(["PENDING", "SCHEDULED"], ["scheduled", "pending"]) and not same(["FAILED"], ["FAILED", "PENDING"])
    assert not same("M51", "M5") and not same("lapalma", None)


def test_the_scorer_fails_a_wrong_tool_a_wrong_argument_and_a_call_that_did_not_validate() -> None:
    expected = Prompt("p", "is M51 observable from chile?", "check_visibility", {"name": "M51", "site": "chile"})
    call = {"tool": "check_visibility", "arguments": {"name": "m51", "site": "chile", "idempotency_key": "k"}}
    right = score(expected, call, source="router", latency_s=0.1)
    assert right.valid and right.right_tool and right.right_arguments and "idempotency_key" not in right.arguments

    wrong_site = score(expected, {**call, "arguments": {"name": "M51", "site": "lapalma"}}, source="llm", latency_s=0)
    assert wrong_site.right_tool and not wrong_site.right_arguments and wrong_site.mismatched == ["site"]
    missing = score(expected, {**call, "arguments": {"name": "M51"}}, source="llm", latency_s=0)
    assert not missing.right_arguments and missing.mismatched == ["site"]

    wrong_tool = score(expected, {"tool": "about_target", "arguments": {"name": "M51"}}, source="llm", latency_s=0)
    assert wrong_tool.valid and not wrong_tool.right_tool and not wrong_tool.right_arguments

    invalid = {**call, "error": {"kind": "bad_arguments", "message": "site: unknown"}}
    bad = score(expected, invalid, source="llm", latency_s=0)
    assert bad.valid is False and bad.right_tool and not bad.right_arguments

    nothing = score(expected, None, source="none", latency_s=0)
    assert nothing.valid is None and not nothing.right_tool
    silence = score(Prompt("q", "hello", None, {}), None, source="none", latency_s=0)
    assert silence.right_tool and silence.right_arguments
    crashed = score(Prompt("q", "hello", None, {}), None, source="llm", latency_s=0, failure="context overflow")
    assert not crashed.right_tool and not crashed.right_arguments and crashed.error == "context overflow"

    figures = totals([right, wrong_site, wrong_tool, bad, nothing])
    assert figures["calls"] == 4 and figures["valid_calls_pct"] == 75.0
    assert figures["right_tool_pct"] == 60.0 and figures["right_arguments_pct"] == 20.0
    assert figures["sources"] == {"router": 1, "llm": 3, "none": 1}


def test_the_harness_scores_the_router_on_the_real_city(world_template: tuple[Path, dict[str, object]]) -> None:
    template, ids = world_template
    prompts = [
        Prompt("a", "why was frame {cloudy} flagged?", "explain_frame", {"id": "{cloudy}"}),
        Prompt("b", "is M51 observable from Chile tonight?", "check_visibility", {"name": "M51", "site": "chile"}),
        Prompt("c", "what is pending?", "show_job", {}),  # the expectation is wrong: it must score as wrong
        Prompt("d", "show job {follow_up_job}", "show_job", {"job_id": "{reobserve_job}"}),  # wrong argument
        Prompt("e", "sing me a song", None, {}),
    ]
    report = evaluate("build", None, "constrained", prompts=prompts, city=City(template, dict(ids)), memory=False)
    rows = {row["id"]: row for row in report["prompts"]}
    assert rows["a"]["right_arguments"] and rows["a"]["arguments"]["id"] == str(ids["cloudy"])[7:17]
    assert rows["b"]["right_arguments"] and rows["b"]["source"] == "router"
    assert rows["c"]["tool"] == "list_jobs" and not rows["c"]["right_tool"]
    assert rows["d"]["right_tool"] and not rows["d"]["right_arguments"] and rows["d"]["mismatched"] == ["job_id"]
    assert rows["e"]["tool"] is None and rows["e"]["right_tool"] and rows["e"]["source"] == "none"
    figures = report["totals"]
    assert figures["prompts"] == 5 and figures["calls"] == 4 and figures["valid_calls_pct"] == 100.0
    assert figures["right_tool_pct"] == 80.0 and figures["right_arguments_pct"] == 60.0
    assert figures["sources"] == {"router": 4, "none": 1}
    assert 0 < figures["latency_median_s"] <= figures["latency_p95_s"]
    assert report["model_id"] == "none (router only)"
    assert "right arguments 60.0%" in table(report)


def test_native_mode_needs_a_model() -> None:
    with pytest.raises(ValueError, match="needs an LLM"):
        evaluate("build", None, "native")
