"""A worker process for the crash test: runs a three-step graph on a JournalSaver
configured only from the environment (as a second process would be).

    python crash_worker.py run THREAD LOG     # blocks forever inside step2
    python crash_worker.py resume THREAD LOG  # resumes the thread, prints final state
"""

from __future__ import annotations

import json
import operator
import os
import sys
import threading
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from checkpoint_journal import JournalSaver


class State(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def main() -> None:
    mode, thread, log_path = sys.argv[1:4]

    def log(line: str) -> None:
        with open(log_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def step1(state: State) -> dict[str, Any]:
        log("step1")
        return {"done": ["step1"]}

    def step2(state: State) -> dict[str, Any]:
        log("step2-started")
        if mode == "run":
            threading.Event().wait()  # hang here until the test kills the process
        return {"done": ["step2"]}

    def step3(state: State) -> dict[str, Any]:
        log("step3")
        return {"done": ["step3"]}

    g = StateGraph(State)
    for name, fn in (("step1", step1), ("step2", step2), ("step3", step3)):
        g.add_node(name, fn)
    g.add_edge(START, "step1")
    g.add_edge("step1", "step2")
    g.add_edge("step2", "step3")
    g.add_edge("step3", END)
    # A plain saver, as a second terminal of `checkpoint-journal local` makes one: the
    # deployment's export lines (in the environment) say where everything is.
    saver = JournalSaver(os.environ["CHECKPOINT_JOURNAL_TABLE"])
    graph = g.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread}}
    if mode == "run":
        graph.invoke({"done": []}, config, durability="sync")
    else:
        print(json.dumps(graph.invoke(None, config)))


if __name__ == "__main__":
    main()
