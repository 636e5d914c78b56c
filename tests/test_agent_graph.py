"""The agent's graphs on a real simulated city: the questions people ask answered from real data, one tool per
turn in constrained mode, a tool loop through the same policy in native mode, replies that match the data,
memory written after each turn, and turns that resume after a crash without repeating a side effect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from agent_world import World
from langchain_core.messages import AIMessage, ToolMessage
from scripted_chat import Endpoint, ScriptedChat, tool_call

from astropolis.agent.graph import AgentCore, build_graph
from astropolis.agent.session import open_session
from astropolis.settings import Settings
from astropolis.tools.dispatch import Dispatcher
from astropolis.tools.policy import Caller
from astropolis.tools.toolbox import TOOLS

SNAPSHOTS = Path(__file__).parent / "data"


def session(world: World, tmp_path: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return open_session(Settings(home=home, actor="person:tester"), thread="t", deps=world.deps, **kwargs)


def test_the_questions_people_ask_are_answered_from_real_data(world: World, tmp_path: Path) -> None:
    with session(world, tmp_path) as agent:
        pending = agent.ask("what is pending?")
        assert [c["tool"] for c in pending.calls] == ["list_jobs"]
        assert f"job {world.follow_up_job} observe" in pending.reply and "2 PENDING" in pending.reply

        flagged = agent.ask(f"why was frame {world.cloudy[7:17]} flagged?")
        assert [c["tool"] for c in flagged.calls] == ["explain_frame"]
        score = world.deps.lake.product(world.quality_product).output["score"]
        assert "It was flagged." in flagged.reply and f"score {score}/100" in flagged.reply
        assert "clouds" in flagged.reply and f"job {world.reobserve_job}" in flagged.reply

        visible = agent.ask("is M51 observable from chile tonight?")
        assert visible.calls[0]["arguments"] == {"name": "M51", "site": "chile"}
        assert "chile: not observable: it never rises above 12." in visible.reply

        follow = agent.ask(f"follow up candidate {world.transients_product[7:19]}#0 with high priority")
        assert [c["tool"] for c in follow.calls] == ["follow_up_candidate"]
        assert "Proposed: job" in follow.reply and "rapid lane" in follow.reply
        again = agent.ask(f"please follow up candidate 0 of {world.transients_product[7:23]} urgently")
        assert "Already proposed" in again.reply  # one follow-up per candidate, however it is asked

        known = agent.ask("what do we know about NGC 4656?")
        assert [c["tool"] for c in known.calls] == ["about_target"]
        assert "NGC 4656 (Galaxy Pair)" in known.reply and "We have not observed it" in known.reply

        hypotheses = agent.ask("what hypotheses are open?")
        assert hypotheses.calls[0]["tool"] == "list_hypotheses" and "No hypotheses" in hypotheses.reply

        lost = agent.ask("sing me a song")
        assert lost.calls == [] and "could not match" in lost.reply
        assert [t["turn"] for t in agent.transcript()] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_each_turn_leaves_a_digest_in_memory(world: World, tmp_path: Path) -> None:
    with session(world, tmp_path) as agent:
        agent.ask("what is pending?")
    memory = world.deps.memory
    assert memory is not None
    digests = memory.recent(kinds=["digest"])
    assert len(digests) == 1 and digests[0].thread == "t" and digests[0].actor == "agent:t"
    assert f"job:{world.follow_up_job}" not in digests[0].refs  # list answers cite no single job
    assert "list_jobs" in digests[0].text


def test_the_model_is_asked_only_when_the_router_abstains_and_kept_only_when_the_words_back_it(
    world: World, tmp_path: Path
) -> None:
    choices = iter([tool_call("summarize_night", {}), tool_call("list_jobs", {})])

    def script(messages: list[Any], tools: list[dict[str, Any]]) -> AIMessage:
        return AIMessage("", tool_calls=[next(choices)])

    chat = ScriptedChat(script=script)
    with session(world, tmp_path, endpoint=Endpoint(chat, "constrained")) as agent:
        routed = agent.ask("what is pending?")
        assert routed.route["source"] == "router" and chat.requests == []  # type: ignore[index]
        backed = agent.ask("anything noteworthy happened while I slept?")
        assert backed.route["source"] == "llm" and [c["tool"] for c in backed.calls] == ["summarize_night"]  # type: ignore[index]
        unbacked = agent.ask("tell me a joke")  # the model says list_jobs; nothing in the words backs it
        assert unbacked.route["source"] == "router" and unbacked.calls == []  # type: ignore[index]
    assert len(chat.requests) == 2
    offered = {tool["function"]["name"] for tool in chat.bound[-1]}
    assert offered and all(TOOLS.get(name).tier == "read" for name in offered)  # type: ignore[union-attr]


def test_native_mode_loops_through_the_same_policy_and_quotes_tool_results(world: World, tmp_path: Path) -> None:
    def script(messages: list[Any], tools: list[dict[str, Any]]) -> AIMessage:
        if not isinstance(messages[-1], ToolMessage):
            return AIMessage("", tool_calls=[tool_call("list_jobs", {}), tool_call("open_dome", {}, 1)])
        return AIMessage("There are two pending jobs.")

    chat = ScriptedChat(script=script)
    with session(world, tmp_path, endpoint=Endpoint(chat), mode="native") as agent:
        turn = agent.ask("what is pending?")
    assert turn.reply == "There are two pending jobs."
    assert [(c["tool"], c["policy"]) for c in turn.calls] == [("list_jobs", "allowed"), ("open_dome", "refused")]
    names = {tool["function"]["name"] for tool in chat.bound[-1]}
    assert "list_jobs" in names and "propose_observation" in names and "open_dome" not in names
    tool_replies = [m for m in chat.requests[-1] if isinstance(m, ToolMessage)]
    assert all(str(m.content).startswith("<data>") for m in tool_replies)
    entry = world.deps.audit.get(turn.calls[0]["audit_seq"])
    assert entry.model_id == "scripted:test (native)" and entry.actor == "agent:t"


def test_native_mode_stops_at_the_step_limit(world: World, tmp_path: Path) -> None:
    def script(messages: list[Any], tools: list[dict[str, Any]]) -> AIMessage:
        return AIMessage("", tool_calls=[tool_call("list_jobs", {})])

    with session(world, tmp_path, endpoint=Endpoint(ScriptedChat(script=script)), mode="native") as agent:
        turn = agent.ask("loop forever")
    assert len(turn.calls) == 4 and "step limit" in turn.reply


class Crash(RuntimeError):
    pass


def test_a_turn_cut_short_resumes_without_repeating_its_side_effect(world: World, tmp_path: Path) -> None:
    """The process dies after the job was submitted but before the turn finished; resuming re-runs the step
    from its checkpoint, and the idempotency key turns the second submit into the same job."""
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, actor="person:tester")
    crashing = {"armed": True}
    original = Dispatcher.call

    def dying_call(self: Dispatcher, caller: Caller, name: str, arguments: Any, **kwargs: Any) -> Any:
        outcome = original(self, caller, name, arguments, **kwargs)
        if crashing["armed"] and name == "propose_observation":
            crashing["armed"] = False
            raise Crash("killed after the side effect")
        return outcome

    pytest.MonkeyPatch().setattr(Dispatcher, "call", dying_call)
    try:
        with open_session(settings, thread="t", deps=world.deps) as agent, pytest.raises(Crash):
            agent.ask("observe M77 in B please")
        jobs_after_crash = len(world.deps.ledger.jobs())
        with open_session(settings, thread="t", deps=world.deps) as agent:
            assert agent.interrupted
            finished = agent.resume()
            assert finished is not None and finished.resumed and "Already proposed" in finished.reply
            assert len(world.deps.ledger.jobs()) == jobs_after_crash
            assert agent.ask("what is pending?").turn == 2
    finally:
        pytest.MonkeyPatch().undo()
        Dispatcher.call = original  # type: ignore[method-assign]


def test_a_kill_at_any_checkpoint_of_a_turn_leaves_it_to_resume_never_to_skip(world: World, tmp_path: Path) -> None:
    """Die just before each checkpoint write of a turn in turn (the step's nodes have saved their writes; its
    checkpoint is not yet written — where a kill -9 once made the thread look finished and the next run skip the
    question): every time the thread reports the turn unfinished, resuming finishes it once, and the next
    question gets the next turn."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    original = SqliteSaver.put
    countdown = {"left": 0}

    def dying_put(self: SqliteSaver, *args: Any, **kwargs: Any) -> Any:
        countdown["left"] -= 1
        if countdown["left"] == 0:
            raise Crash("killed before the checkpoint")
        return original(self, *args, **kwargs)

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(SqliteSaver, "put", dying_put)
    crashes = 0
    try:
        for before_put in range(1, 30):
            settings = Settings(home=tmp_path / f"home{before_put}", actor="person:tester")
            settings.home.mkdir()
            with open_session(settings, thread="t", deps=world.deps) as agent:
                agent.ask("what is pending?")
                countdown["left"] = before_put
                try:
                    agent.ask("observe M77 in B please")
                except Crash:
                    crashed = True
                else:
                    crashed = False
            countdown["left"] = 0
            if not crashed:
                break
            crashes += 1
            with open_session(settings, thread="t", deps=world.deps) as agent:
                if before_put == 1:  # killed before the turn's first write: it never started; ask again
                    assert not agent.interrupted and agent.turns == 1
                    agent.ask("observe M77 in B please")
                else:
                    assert agent.interrupted, f"a kill before checkpoint write {before_put} left the turn looking done"
                    assert agent.turns == 2
                    assert agent.resume() is not None and not agent.interrupted
                assert agent.ask("what hypotheses are open?").turn == 3
                questions = [t["question"] for t in agent.transcript()]
            assert questions == ["what is pending?", "observe M77 in B please", "what hypotheses are open?"], questions
    finally:
        monkeypatch.undo()
    assert crashes >= 6  # input, start, recall, decide, act, respond, remember: each step's checkpoint was a window


@pytest.mark.parametrize("mode", ["constrained", "native"])
def test_graph_shape_matches_the_snapshot(world: World, mode: str) -> None:
    caller = Caller(actor="agent:t", role="agent")
    core = AgentCore(Dispatcher(TOOLS, world.deps), caller, "t", mode=mode)
    drawn = build_graph(core, None).get_graph().draw_mermaid()
    path = SNAPSHOTS / f"agent_graph_{mode}.mmd"
    if os.environ.get("ASTROPOLIS_UPDATE_SNAPSHOTS") == "1":
        path.write_text(drawn)
    assert drawn == path.read_text()


def test_bad_questions_are_refused_clearly(world: World, tmp_path: Path) -> None:
    from astropolis.agent.session import SessionError

    with session(world, tmp_path) as agent:
        with pytest.raises(SessionError, match="empty"):
            agent.ask("   ")
        with pytest.raises(SessionError, match="at most 2000"):
            agent.ask("x" * 2001)
        assert agent.turns == 0
    with pytest.raises(SessionError, match="thread"):
        open_session(Settings(home=tmp_path / "home"), thread="../etc", deps=world.deps).__enter__()


def test_ended_jobs_become_episodes_once_and_can_be_asked_about(world: World, tmp_path: Path) -> None:
    ledger = world.deps.ledger
    ledger.schedule(world.follow_up_job, "chile", actor="scheduler")
    ledger.start(world.follow_up_job, actor="executor:chile")
    ledger.complete(world.follow_up_job, actor="executor:chile", reason="3 frame(s) of the M77 supernova")
    with session(world, tmp_path) as agent:
        agent.ask("what is pending?")
        agent.ask("what is pending?")
        answer = agent.ask("do we remember the supernova follow-up from chile?")
    memory = world.deps.memory
    assert memory is not None
    episodes = memory.about(f"job:{world.follow_up_job}", kinds=["episode"])
    assert len(episodes) == 1 and "ended COMPLETED at chile" in episodes[0].text
    assert answer.calls[0]["tool"] == "search_memory" and "ended COMPLETED at chile" in answer.reply
