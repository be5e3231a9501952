"""Stored data never runs code (I7), on both backends: a channel value that names a
callable through LangGraph's msgpack constructor extension (what an attacker who can
write to the table would store) is refused by the saver's reads and by the reading
commands, with an error naming the type and how to allow it; nothing runs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import errors
from checkpoint_journal.local import LocalDeployment
from tests.integration.cli_runner import run_cli
from tests.unit.test_serde import constructor


class Planting(JsonPlusSerializer):
    """Writes ``typed`` in place of the string "PLANT": the stored bytes an attacker
    would put there."""

    def __init__(self, typed: tuple[str, bytes]) -> None:
        super().__init__()
        self.typed = typed

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self.typed if obj == "PLANT" else super().dumps_typed(obj)


def _plant(dep: LocalDeployment, typed: tuple[str, bytes]) -> dict[str, Any]:
    config = {"configurable": {"thread_id": f"safe-{uuid.uuid4().hex[:8]}",
                               "checkpoint_ns": ""}}
    cp = empty_checkpoint()
    cp["channel_values"] = {"payload": "PLANT", "other": "fine"}
    cp["channel_versions"] = {"payload": "1", "other": "1"}
    with dep.saver(serde=Planting(typed)) as writer:
        return writer.put(config, cp, {"step": 1}, {"payload": "1", "other": "1"})


def test_reads_refuse_a_value_naming_os_system(deployment: LocalDeployment,
                                               tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = _plant(deployment, constructor("os", "system", f"touch {marker}"))
    with deployment.saver() as reader:
        with pytest.raises(errors.BlockedTypeError, match="os.system"):
            reader.get_tuple(config)
        with pytest.raises(errors.BlockedTypeError, match="os.system"):
            list(reader.list({"configurable": {**config["configurable"],
                                               "checkpoint_id": None}}))
    assert not marker.exists()


def test_show_reports_the_blocked_type_and_allow_admits_a_type(
    deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    config = _plant(deployment, constructor("os", "system", f"touch {marker}"))
    thread = config["configurable"]["thread_id"]
    r = run_cli(deployment, monkeypatch, capsys, ["show", thread, "--json"])
    assert r.code == 0, r.err
    payload = r.json()["values"]["payload"]
    assert payload["value"] is None and "os.system" in payload["error"]
    assert "--allow os.system" in payload["error"]
    assert r.json()["values"]["other"]["value"] == "fine"
    assert not marker.exists()

    path = _plant(deployment, constructor("pathlib", "PurePosixPath", "/srv/data"))
    thread = path["configurable"]["thread_id"]
    blocked = run_cli(deployment, monkeypatch, capsys, ["show", thread, "--json"]).json()
    assert blocked["values"]["payload"]["value"] is None
    allowed = run_cli(deployment, monkeypatch, capsys,
                      ["show", thread, "--json", "--allow", "pathlib.PurePosixPath"])
    assert allowed.code == 0, allowed.err
    assert allowed.json()["values"]["payload"]["value"] == "PurePosixPath('/srv/data')"
    bad = run_cli(deployment, monkeypatch, capsys, ["show", thread, "--allow", "Order"])
    assert bad.code == 2 and "module.Name" in bad.err
