"""The agent's tools through the one dispatcher: typed schemas (snapshot), tiers and proposal limits enforced in
code, one audit entry per call, and answers from real lake, ledger and memory data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from agent_world import World, person_job

from astropolis.tools.dispatch import Dispatcher
from astropolis.tools.policy import Caller, Policy, PolicyLimits
from astropolis.tools.registry import Registry, Tool, ToolInput, ToolOutput
from astropolis.tools.toolbox import TOOLS

SNAPSHOT = Path(__file__).parent / "data" / "tool_schemas.json"
AGENT = Caller(actor="agent:test", role="agent", model_id="scripted", tool_mode="constrained")
PERSON = Caller(actor="person:ana", role="person")


def call(world: World, tool: str, caller: Caller = AGENT, policy: Policy | None = None, **arguments: Any):  # type: ignore[no-untyped-def]
    return Dispatcher(TOOLS, world.deps, policy).call(caller, tool, arguments)


def test_every_tool_schema_matches_the_reviewed_snapshot() -> None:
    current = {tool.name: {"tier": tool.tier, **tool.llm_schema()} for tool in TOOLS}
    if os.environ.get("ASTROPOLIS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "tool schemas changed: review, then regenerate with ASTROPOLIS_UPDATE_SNAPSHOTS=1"
    )


def test_every_string_the_model_can_send_is_bounded() -> None:
    def walk(schema: dict[str, Any], defs: dict[str, Any], where: str) -> None:
        if "$ref" in schema:
            walk(defs[schema["$ref"].split("/")[-1]], defs, where)
        if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
            assert "maxLength" in schema or "pattern" in schema, f"{where} is an unbounded string"
        for key in ("anyOf", "allOf", "oneOf"):
            for option in schema.get(key, []):
                walk(option, defs, where)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, defs, f"{where}.{name}")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], defs, f"{where}[]")

    for tool in TOOLS:
        parameters = tool.parameters()
        walk(parameters, parameters.get("$defs", {}), tool.name)


def test_the_model_is_never_shown_actuate_or_admin_tools() -> None:
    class Nothing(ToolInput):
        pass

    class Done(ToolOutput):
        pass

    registry = Registry(
        [
            *TOOLS,
            Tool("slew", "actuate", "slew", Nothing, Done, lambda d, a: Done()),
            Tool("grant", "admin", "grant", Nothing, Done, lambda d, a: Done()),
        ]
    )
    shown = {s["function"]["name"] for s in registry.llm_schemas()}
    assert "slew" not in shown and "grant" not in shown and "list_jobs" in shown


def test_tiers_are_enforced_outside_the_model(world: World) -> None:
    class Nothing(ToolInput):
        pass

    class Done(ToolOutput):
        pass

    ran: list[str] = []
    registry = Registry(
        [
            Tool("slew", "actuate", "slew", Nothing, Done, lambda d, a: ran.append("slew") or Done()),
            Tool("grant", "admin", "grant", Nothing, Done, lambda d, a: ran.append("grant") or Done()),
        ]
    )
    dispatcher = Dispatcher(registry, world.deps)
    assert dispatcher.call(AGENT, "slew", {}).policy == "refused"
    assert dispatcher.call(PERSON, "slew", {}).policy == "refused"  # only the scheduler and executor actuate
    assert dispatcher.call(AGENT, "grant", {}).policy == "refused"
    assert dispatcher.call(PERSON, "grant", {}).policy == "allowed"
    assert ran == ["grant"]


def test_every_call_appends_exactly_one_audit_entry_with_the_decision(world: World) -> None:
    before = world.deps.audit.head()[0]
    outcomes = [
        call(world, "list_jobs"),
        call(world, "no_such_tool"),
        call(world, "show_job", job_id="twelve"),
        call(world, "show_job", job_id=999),
        call(
            world,
            "propose_observation",
            name="M77",
            urgency="high",
            idempotency_key="test:key:0001",
            note="see https://evil.example",
        ),
    ]
    entries = world.deps.audit.entries(limit=10)
    assert world.deps.audit.head()[0] == before + len(outcomes)
    assert [e.seq for e in reversed(entries[: len(outcomes)])] == [o.audit_seq for o in outcomes]
    assert [o.policy for o in outcomes] == ["allowed", "refused", "refused", "allowed", "refused"]
    assert [o.error.kind if o.error else None for o in outcomes] == [
        None,
        "unknown_tool",
        "bad_arguments",
        "JobNotFound",
        "refused_by_policy",
    ]
    newest = entries[0]
    assert newest.tool == "tool.propose_observation" and newest.tier == "propose" and newest.policy == "refused"
    assert (
        newest.model_id == "scripted (constrained)"
        and newest.schema_hash == TOOLS.get("propose_observation").schema_hash()
    )  # type: ignore[union-attr]
    assert world.deps.audit.verify().ok


def test_pending_jobs_come_from_the_ledger(world: World) -> None:
    person = person_job(world.deps, "NGC 253", 11.888, -25.288)
    result = call(world, "list_jobs").result
    assert result is not None
    assert {job["id"] for job in result["jobs"]} == {world.reobserve_job, world.follow_up_job, person}
    assert result["by_state"] == {"PENDING": 3}
    follow_up = next(j for j in result["jobs"] if j["id"] == world.follow_up_job)
    assert follow_up["origin"] == f"product:{world.transients_product}" and follow_up["lane"] == "rapid"


def test_why_a_frame_was_flagged_comes_from_its_quality_product(world: World) -> None:
    result = call(world, "explain_frame", id=world.cloudy[7:19]).result
    assert result is not None and result["flagged"] is True
    (verdict,) = result["verdicts"]
    assert verdict["product"] == world.quality_product and "clouds" in verdict["summary"]
    product = world.deps.lake.product(world.quality_product).output
    assert verdict["details"]["score"] == product["score"] < 50
    assert result["jobs"] == [
        {"id": world.reobserve_job, "kind": "reobserve", "state": "PENDING", "product": world.quality_product}
    ]


def test_visibility_of_m51_from_each_demo_site(world: World) -> None:
    result = call(world, "check_visibility", name="M51", site="chile").result
    assert result is not None and [s["site"] for s in result["sites"]] == ["chile"]
    chile = result["sites"][0]
    # M51 (Dec +47) culminates at 90 - 30.24 - 47.20 = 12.6 deg from Cerro Pachon: below its 20 deg horizon limit.
    assert chile["observable"] is False and 11.5 < chile["peak_altitude_deg"] < 13.0
    everywhere = call(world, "check_visibility", name="M51").result
    assert everywhere is not None
    assert {s["site"]: s["observable"] for s in everywhere["sites"]}["lapalma"] is True
    assert call(world, "check_visibility", name="M51", site="mars").error.kind == "bad_arguments"  # type: ignore[union-attr]


def test_follow_up_of_a_candidate_goes_to_another_site_with_an_idempotency_key(world: World) -> None:
    first = call(
        world,
        "follow_up_candidate",
        product=world.transients_product[7:19],
        candidate=0,
        urgency="high",
        idempotency_key="agent:test:t1:follow",
    )
    again = call(
        world,
        "follow_up_candidate",
        product=world.transients_product[7:19],
        candidate=0,
        urgency="high",
        idempotency_key="agent:test:t1:follow",
    )
    assert first.ok and again.ok and first.result and again.result
    assert first.result["created"] is True and again.result["created"] is False
    job = world.deps.ledger.get(first.result["job"]["id"])
    assert job.request.constraints.sites == ("chile", "siding-spring")  # the new frame came from lapalma
    assert job.request.origin.kind == "agent" and job.request.lane == "rapid" and job.request.priority == 75
    assert world.transients_product[:19] in job.request.reason
    missing = call(
        world,
        "follow_up_candidate",
        product=world.transients_product,
        candidate=150,
        idempotency_key="agent:test:t2:follow",
    )
    assert missing.error is not None and "past them" in missing.error.message


def test_proposal_limits(world: World) -> None:
    policy = Policy(PolicyLimits(proposals_per_hour=2))
    keys = iter(f"agent:test:limit:{n:04d}" for n in range(10))
    assert call(world, "propose_observation", policy=policy, name="M77", idempotency_key=next(keys)).ok
    assert call(world, "propose_observation", policy=policy, name="M31", idempotency_key=next(keys)).ok
    third = call(world, "propose_observation", policy=policy, name="M33", idempotency_key=next(keys))
    assert third.policy == "refused" and "rate limit" in third.decision
    # People are not rate-limited by the agent policy.
    assert call(world, "propose_observation", PERSON, policy, name="M33", idempotency_key=next(keys)).ok
    # A target beside the Sun (late November: RA ~15h 20m, Dec -21) is up only in daylight, from every site.
    by_the_sun = call(world, "propose_observation", ra_deg=232.0, dec_deg=-20.5, idempotency_key=next(keys))
    assert by_the_sun.policy == "refused" and "not observable" in by_the_sun.decision
    assert call(world, "propose_observation", name="M77", idempotency_key="short").error.kind == "bad_arguments"  # type: ignore[union-attr]


def test_a_note_may_not_carry_stored_memory_or_links(world: World) -> None:
    dispatcher = Dispatcher(TOOLS, world.deps)
    secret = "Clouds over Cerro Pachon most evenings this week; prefer La Palma"
    arguments = {"name": "M77", "idempotency_key": "agent:test:leak:0001", "note": secret}
    # What the model read (a memory) is not what the person said: its words may not go into the ledger.
    leak = dispatcher.call(AGENT, "propose_observation", arguments)
    assert leak.policy == "refused" and "did not say" in leak.decision
    # Even words the person did say may not copy a stored memory into a job reason.
    echoed = dispatcher.call(AGENT, "propose_observation", arguments, said=f"observe M77: {secret}")
    assert echoed.policy == "refused" and "repeats stored memory" in echoed.decision
    link = dispatcher.call(
        AGENT, "propose_observation", {**arguments, "note": "mail results to evil.com"}, said="mail results to evil.com"
    )
    assert link.policy == "refused" and "links" in link.decision
    fine = dispatcher.call(AGENT, "propose_observation", {**arguments, "note": "check the supernova light curve"})
    assert fine.ok
    job = world.deps.ledger.get(fine.result["job"]["id"])  # type: ignore[index]
    assert job.request.reason == "M77: check the supernova light curve"


def test_an_agent_cancels_only_its_own_proposals(world: World) -> None:
    own = call(world, "propose_observation", name="M77", idempotency_key="agent:test:own:0001").result
    assert own is not None
    said = f"cancel job {own['job']['id']} because I changed my mind"
    cancel = Dispatcher(TOOLS, world.deps).call(
        AGENT, "cancel_job", {"job_id": own["job"]["id"], "note": "changed my mind"}, said=said
    )
    assert cancel.ok
    theirs = Dispatcher(TOOLS, world.deps).call(
        AGENT, "cancel_job", {"job_id": world.follow_up_job, "note": "not needed"}, said="not needed"
    )
    assert theirs.policy == "refused" and "only its own" in theirs.decision
    assert world.deps.ledger.get(world.follow_up_job).state.value == "PENDING"


def test_hypotheses_are_proposed_with_their_test_and_decided_by_products(world: World) -> None:
    from astropolis.tools.hypothesis_review import review_hypotheses

    proposed = call(
        world,
        "propose_hypothesis",
        statement="The new source in M77 is a supernova that will fade",
        evidence=[world.transients_product],
        ra_deg=40.68,
        dec_deg=-0.005,
        idempotency_key="agent:test:hyp:0001",
    )
    assert proposed.ok and proposed.result is not None
    hypothesis = proposed.result["hypothesis"]
    assert hypothesis["status"] == "open" and len(hypothesis["test_jobs"]) == 1
    listed = call(world, "list_hypotheses").result
    assert listed is not None and [h["id"] for h in listed["hypotheses"]] == [hypothesis["id"]]
    # Its test job runs: the executor completes it after taking the frame that the transients resident judged.
    test_job = hypothesis["test_jobs"][0]["id"]
    ledger = world.deps.ledger
    ledger.schedule(test_job, "chile", actor="scheduler")
    ledger.start(test_job, actor="executor:chile")
    world.clock.advance(60)
    ledger.complete(test_job, actor="executor:chile")
    # The frame with the supernova was observed before the job existed, so nothing decides it yet…
    assert review_hypotheses(world.deps, actor="agent:test") == []
    assert world.deps.hypotheses.get(hypothesis["id"]).status == "open"  # type: ignore[union-attr]


def test_memory_search_finds_by_meaning(world: World) -> None:
    result = call(world, "search_memory", query="bad weather in Chile").result
    assert result is not None and "Cerro Pachon" in result["memories"][0]["text"]
    assert result["memories"][0]["score"] > result["memories"][1]["score"]


def test_what_we_know_about_a_target_gathers_every_store(world: World) -> None:
    result = call(world, "about_target", name="M77").result
    assert result is not None
    assert result["catalogue"]["type"] == "Galaxy" and result["frames"] == 3
    assert result["frames_by_site"] == {"lapalma": 3}
    assert len(result["transients"]) == 1 and world.transients_product[:19] in result["transients"][0]
    assert any("M77" in m["text"] for m in result["memories"])
    unknown = call(world, "about_target", name="NGC 4656").result
    assert unknown is not None and unknown["frames"] == 0 and unknown["jobs"] == []


def test_last_night_summary(world: World) -> None:
    result = call(world, "summarize_night").result
    assert result is not None
    assert result["frames_by_site"] == {"lapalma": 2}  # the reference epoch was taken the night before
    assert call(world, "summarize_night", hours=48).result["frames_by_site"] == {"lapalma": 3}  # type: ignore[index]
    assert len(result["flagged_frames"]) == 1 and world.cloudy[:19] in result["flagged_frames"][0]
    assert len(result["transients"]) == 1 and len(result["follow_ups"]) == 2


@pytest.mark.parametrize("name", ["Andromeda", "crab nebula", "M 51", "NGC4656", "Whirlpool Galaxy"])
def test_names_resolve_offline(world: World, name: str) -> None:
    result = call(world, "resolve_target", name=name).result
    assert result is not None and result["source"].startswith("OpenNGC")


def test_an_unknown_name_is_a_clear_error(world: World) -> None:
    outcome = call(world, "resolve_target", name="Planet X")
    assert outcome.error is not None and "not in OpenNGC" in outcome.error.message


def test_site_status_reports_the_night_the_jobs_and_live_devices(world: World) -> None:
    from astropolis.tools.drivers import SiteStatus

    seen: list[str] = []

    def prober(site):  # type: ignore[no-untyped-def]
        seen.append(site.name)
        if site.name == "chile":
            return None, "chile: cannot reach the Alpaca server"
        return SiteStatus.model_validate(
            {
                "site": site.name,
                "connected": True,
                "safe": True,
                "parked": False,
                "slewing": False,
                "tracking": True,
                "ra_deg": 40.0,
                "dec_deg": 0.0,
                "camera_state": "idle",
                "weather": {"cloud_cover_pct": 5.0, "wind_mps": 2.0, "humidity_pct": 40.0},
            }
        ), None

    world.deps.site_probe = prober
    world.deps.ledger.schedule(world.follow_up_job, "chile", actor="scheduler")
    result = call(world, "site_status").result
    assert result is not None and seen == ["lapalma", "chile", "siding-spring"]
    rows = {row["site"]: row for row in result["sites"]}
    assert rows["lapalma"]["dark_now"] is True and rows["lapalma"]["frames_last_24h"] == 2  # 22:05 UTC in November
    assert rows["lapalma"]["devices"]["safe"] is True and rows["chile"]["devices"] is None
    assert "cannot reach" in rows["chile"]["devices_error"]
    assert rows["chile"]["active_jobs"] == [f"job {world.follow_up_job} SCHEDULED"]
    assert call(world, "site_status", site="mars").error.kind == "bad_arguments"  # type: ignore[union-attr]


def test_a_resident_run_stores_its_product_once_and_files_no_job(world: World) -> None:
    jobs = len(world.deps.ledger.jobs())
    first = call(world, "run_resident", resident="quality", frame=world.new[7:19])
    again = call(world, "run_resident", resident="quality", frame=world.new)
    assert first.ok and again.ok and first.result and again.result
    assert first.result["created"] is True and again.result["created"] is False
    assert first.result["verdict"]["product"] == again.result["verdict"]["product"]
    assert "score" in first.result["verdict"]["summary"] and len(world.deps.ledger.jobs()) == jobs
    done = call(world, "run_resident", resident="transients", frame=world.new, reference=world.reference)
    assert done.ok and done.result["created"] is False  # type: ignore[index]  # the world already ran it
    bad = call(world, "run_resident", resident="transients", frame=world.new)
    assert bad.error is not None and "takes 2 input" in bad.error.message


def test_hypotheses_are_decided_by_the_products_of_their_test_jobs(world: World, tmp_path: Path) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from astropolis.lake.clock import ManualClock
    from astropolis.memory import Ledger
    from astropolis.memory.hypotheses import HypothesisBook
    from astropolis.tools.hypothesis_review import review_hypotheses

    observed = world.deps.lake.frame(world.new).observed_at
    assert observed is not None
    clock = ManualClock(observed - timedelta(hours=1))  # the hypotheses come before the test frames are taken
    ledger = Ledger(f"sqlite:///{tmp_path / 'h-ledger.db'}", clock=clock)
    deps = replace(
        world.deps,
        ledger=ledger,
        hypotheses=HypothesisBook(f"sqlite:///{tmp_path / 'h.db'}", clock=clock),
        clock=clock,
        memory=None,
    )
    dispatcher = Dispatcher(TOOLS, deps)
    ids = {}
    for label, (ra, dec) in {"there": (40.68, -0.005), "empty": (40.66, -0.015)}.items():
        outcome = dispatcher.call(
            PERSON,
            "propose_hypothesis",
            {
                "statement": f"a new point source appears at the {label} position",
                "evidence": [world.reference],
                "ra_deg": ra,
                "dec_deg": dec,
                "idempotency_key": f"person:ana:hyp:{label}",
            },
        )
        assert outcome.ok, outcome.error
        hypothesis = outcome.result["hypothesis"]  # type: ignore[index]
        ids[label] = (hypothesis["id"], hypothesis["test_jobs"][0]["id"])
    for _, job_id in ids.values():
        ledger.schedule(job_id, "lapalma", actor="scheduler")
        ledger.start(job_id, actor="executor:lapalma")
    assert review_hypotheses(deps, actor="agent:t") == []  # tests still running: nothing decided
    clock.advance(timedelta(hours=1, minutes=10))  # the new epoch (with the supernova) was taken meanwhile
    for _, job_id in ids.values():
        ledger.complete(job_id, actor="executor:lapalma")
    changes = review_hypotheses(deps, actor="agent:t")
    assert sorted(changes) == sorted(
        [f"hypothesis {ids['there'][0]} supported", f"hypothesis {ids['empty'][0]} refuted"]
    )
    book = deps.hypotheses
    assert book is not None and book.get(ids["there"][0]).status == "supported"
    assert world.transients_product[:19] in book.get(ids["there"][0]).history[-1].reason
    assert review_hypotheses(deps, actor="agent:t") == []  # decided once
