"""The default serde is strict (I7): a stored value naming code does not run it."""

from __future__ import annotations

from pathlib import Path

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from checkpoint_journal import JournalSaver, errors
from checkpoint_journal._core.serde import StrictSerializer, parse_allow


def constructor(module: str, name: str, arg: object) -> tuple[str, bytes]:
    """A msgpack value using LangGraph's constructor extension, as an attacker who can
    write to the table would store it."""
    return "msgpack", ormsgpack.packb(ormsgpack.Ext(0, ormsgpack.packb((module, name, arg))))


def test_langgraph_and_langchain_types_round_trip() -> None:
    serde = StrictSerializer()
    value = {"messages": [HumanMessage("hi"), AIMessage("hello")], "seen": {1, 2}}
    assert serde.loads_typed(serde.dumps_typed(value)) == value


def test_a_value_naming_os_system_runs_nothing_and_says_why(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    typed = constructor("os", "system", f"touch {marker}")
    with pytest.raises(errors.BlockedTypeError, match="os.system.*--allow os.system") as info:
        StrictSerializer().loads_typed(typed)
    assert info.value.type_name == "os.system"
    assert not marker.exists()


def test_a_pickled_value_is_refused_not_unpickled() -> None:
    with pytest.raises(errors.BlockedTypeError, match="never unpickles"):
        StrictSerializer().loads_typed(("pickle", b"\x80\x04K\x01."))


def test_allowed_types_are_rebuilt() -> None:
    typed = constructor("pathlib", "PurePosixPath", "/a/b")
    with pytest.raises(errors.BlockedTypeError):
        StrictSerializer().loads_typed(typed)
    allowed = StrictSerializer(parse_allow(["pathlib.PurePosixPath"]))
    assert str(allowed.loads_typed(typed)) == "/a/b"


def test_allow_names_need_a_module() -> None:
    with pytest.raises(ValueError, match="module.Name"):
        parse_allow(["Order"])


def test_the_saver_is_strict_by_default_and_with_allowlist_keeps_it_strict() -> None:
    saver = JournalSaver("t", region_name="us-east-1")
    typed = constructor("pathlib", "PurePosixPath", "/x")
    with pytest.raises(errors.BlockedTypeError):
        saver.serde.loads_typed(typed)
    clone = saver.with_allowlist([("pathlib", "PurePosixPath")])
    assert clone is not saver and clone._store is saver._store  # a shallow copy
    assert str(clone.serde.loads_typed(typed)) == "/x"
    with pytest.raises(errors.BlockedTypeError):  # the original is unchanged
        saver.serde.loads_typed(typed)
    with pytest.raises(errors.BlockedTypeError):  # and the clone admits nothing else
        clone.serde.loads_typed(constructor("os", "system", "true"))
