"""A process killed mid-run is resumed by another process from its last checkpoint;
many workers write many threads at once without losing or mixing anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from checkpoint_journal.local import LocalDeployment

from . import graphs

WORKER = Path(__file__).with_name("crash_worker.py")


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_process_is_resumed_without_rerunning_finished_nodes(
    deployment: LocalDeployment, tmp_path: Path
) -> None:
    env = {**os.environ, **deployment.env()}
    thread = f"crash-{uuid.uuid4()}"
    log = tmp_path / "nodes.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, str(WORKER), "run", thread, str(log)], env=env)
    try:
        _wait_for(lambda: "step2-started" in log.read_text() or proc.poll() is not None,
                  120, "the worker to enter step2")
        assert proc.poll() is None, "the worker died before reaching step2"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    # The journal holds step1's checkpoint; the new process resumes from it.
    with deployment.saver() as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": thread}})
        assert latest is not None
        assert latest.checkpoint["channel_values"]["done"] == ["step1"]
    out = subprocess.run(
        [sys.executable, str(WORKER), "resume", thread, str(log)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(out.stdout) == {"done": ["step1", "step2", "step3"]}
    # step1 ran once; step2 twice (killed inside the first time); step3 once.
    assert log.read_text().split() == ["step1", "step2-started", "step2-started", "step3"]


def test_many_workers_many_threads(deployment: LocalDeployment) -> None:
    workers = [deployment.saver() for _ in range(4)]
    run = uuid.uuid4().hex[:8]
    threads = [f"conc-{run}-{i}" for i in range(32)]

    def converse(i: int) -> list[str]:
        graph = graphs.build_chat(workers[i % len(workers)])
        config = {"configurable": {"thread_id": threads[i]}}
        for turn in range(3):
            graph.invoke({"messages": [f"{i}:{turn}"]}, config)
        return list(graph.get_state(config).values["messages"])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(converse, range(len(threads))))
    for i, messages in enumerate(results):
        expected = [m for t in range(3) for m in (f"{i}:{t}", f"echo:{i}:{t}")]
        assert messages == expected
    # A fresh reader agrees, thread by thread, with consistent reads.
    with deployment.saver() as reader:
        graph = graphs.build_chat(reader)
        for i, thread in enumerate(threads):
            state = graph.get_state({"configurable": {"thread_id": thread}})
            assert state.values["turns"] == 3
            assert state.values["messages"][0] == f"{i}:0"
            assert len(list(graph.get_state_history({"configurable": {"thread_id": thread}}))) == 9
    for w in workers:
        w.close()
