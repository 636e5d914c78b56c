"""Runs a fixed conversation on one thread of an agent home, carrying on from wherever the thread stands
(used by the kill -9 test: killed at random moments, run again until the conversation is done)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from astropolis.agent.session import open_session, open_stores
from astropolis.settings import Settings


def main(home: str, thread: str, questions_file: str) -> None:
    questions = json.loads(Path(questions_file).read_text())
    settings = Settings(home=Path(home), actor="person:tester")
    with open_session(settings, thread=thread, deps=open_stores(settings)) as agent:
        agent.resume()
        for index, question in enumerate(questions):
            if index < agent.turns:
                continue
            agent.ask(question)
            print(f"answered {index + 1}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
