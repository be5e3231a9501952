"""Bad input gets a clear JournalError before anything is written (issue 11, defect 6).

Every case here fails before the saver's first request: the unit tier has no network,
so a case that reached DynamoDB would fail with a refused connection instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.items import metadata_attrs, run_key, to_attr
from checkpoint_journal._core.store import table_findings
from checkpoint_journal.errors import InvalidKeyError, JournalError, NotConfiguredError


@pytest.fixture()
def saver() -> Any:
    with JournalSaver("t", endpoint_url="http://127.0.0.1:9", region_name="us-east-1") as s:
        yield s


def _put(saver: JournalSaver, thread: Any = "t1", cid: str | None = None) -> Any:
    cp = empty_checkpoint()
    if cid is not None:
        cp["id"] = cid
    return saver.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, cp, {}, {})


@pytest.mark.parametrize("cid", ["~", "zzzz", "1EF4F797-8335-6428-8001-8A1503F9B875", "",
                                 "1ef4f797-8335-6428-8001-8a1503f9b875#V"])
def test_a_checkpoint_id_that_is_not_a_uuid_is_refused(saver: JournalSaver, cid: str) -> None:
    with pytest.raises(InvalidKeyError, match="not a uuid"):
        _put(saver, cid=cid)


def test_a_lone_surrogate_in_a_thread_id_is_a_clear_error(saver: JournalSaver) -> None:
    with pytest.raises(InvalidKeyError, match="lone surrogate"):
        _put(saver, thread="user-\udc80")
    with pytest.raises(InvalidKeyError, match="lone surrogate"):
        saver.get_tuple({"configurable": {"thread_id": "a\ud800b"}})
    with pytest.raises(InvalidKeyError, match="lone surrogate"):
        saver.delete_thread("x\udfff")


@pytest.mark.parametrize("config", [{}, {"configurable": {}}, {"configurable": {"thread_id": None}},
                                    {"configurable": {"checkpoint_ns": ""}}, None])
def test_a_config_without_a_thread_id_says_what_to_pass(saver: JournalSaver, config: Any) -> None:
    for call in (lambda: saver.get_tuple(config), lambda: _put_config(saver, config),
                 lambda: saver.put_writes(config, [("a", 1)], "task")):
        with pytest.raises(InvalidKeyError, match="no thread_id"):
            call()


def _put_config(saver: JournalSaver, config: Any) -> Any:
    return saver.put(config, empty_checkpoint(), {}, {})


def test_put_writes_without_a_checkpoint_id_is_a_clear_error(saver: JournalSaver) -> None:
    with pytest.raises(InvalidKeyError, match="checkpoint_id"):
        saver.put_writes({"configurable": {"thread_id": "t"}}, [("a", 1)], "task")


def test_an_int_thread_id_is_taken_as_its_text() -> None:
    assert _keys.from_config({"configurable": {"thread_id": 42}}) == ("42", "", None)


@pytest.mark.parametrize("value", [1e-300, 1e200, -1e-131, 10**40 + 1, float("nan"),
                                   float("inf"), "bad\udc80text"])
def test_metadata_dynamodb_cannot_hold_stays_out_of_the_plain_attribute(value: Any) -> None:
    """The body keeps the metadata exactly; the plain ``md`` copy (for filters and
    humans) leaves out what DynamoDB would refuse, so the put is not refused."""
    assert to_attr(value) is None
    attrs = metadata_attrs({"odd": value, "step": 3})
    assert attrs["md"] == {"M": {"step": {"N": "3"}}}


def test_numbers_dynamodb_holds_are_kept() -> None:
    for v in (0, 0.0, 1e-130, 9.99e125, -2.5, 10**37, 0.1):
        attr = to_attr(v)
        assert attr is not None and Decimal(attr["N"]) == Decimal(repr(v) if isinstance(v, float) else str(v))


def test_metadata_nested_deeper_than_dynamodb_allows_is_left_out() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"k": deep}
    attrs = metadata_attrs({"deep": deep, "step": 1})
    assert "deep" not in attrs["md"]["M"]
    shallow: Any = "leaf"
    for _ in range(20):
        shallow = {"k": shallow}
    assert "shallow" in metadata_attrs({"shallow": shallow})["md"]["M"]


def test_a_long_run_id_is_indexed_by_its_hash() -> None:
    long = "r" * 3000
    assert run_key("run-1") == "run-1"
    key = run_key(long)
    assert key.startswith("sha256:") and len(key) == 71 and run_key(long) == key
    assert metadata_attrs({"run_id": long})["run_id"] == {"S": key}


def _desc(keys: list[tuple[str, str, str]], stream: str | None = "NEW_IMAGE") -> dict[str, Any]:
    d: dict[str, Any] = {
        "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in keys],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t, _ in keys],
    }
    if stream:
        d["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    return d


GOOD = [("PK", "S", "HASH"), ("SK", "S", "RANGE")]
TTL_ON = {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}


def test_check_reports_what_it_checked() -> None:
    found = table_findings("j", _desc(GOOD), TTL_ON, ttl_seconds=3600)
    assert found["keys"] == "PK (S, hash), SK (S, range)"
    assert found["stream"].startswith("NEW_IMAGE")
    assert found["ttl"] == "enabled on 'expires_at'"
    none = table_findings("j", _desc(GOOD, stream=None), {}, ttl_seconds=None)
    assert none["stream"].startswith("disabled")


@pytest.mark.parametrize("keys", [
    [("pk", "S", "HASH"), ("sk", "S", "RANGE")],
    [("PK", "S", "HASH")],
    [("PK", "N", "HASH"), ("SK", "S", "RANGE")],
])
def test_check_refuses_a_table_with_other_keys(keys: list[tuple[str, str, str]]) -> None:
    with pytest.raises(NotConfiguredError, match="needs PK"):
        table_findings("j", _desc(keys), TTL_ON, ttl_seconds=None)


def test_check_refuses_a_ttl_the_table_does_not_apply() -> None:
    with pytest.raises(NotConfiguredError, match="never deleted"):
        table_findings("j", _desc(GOOD), {"TimeToLiveStatus": "DISABLED"}, ttl_seconds=60)
    with pytest.raises(NotConfiguredError, match="expires items by 'ttl'"):
        table_findings("j", _desc(GOOD), {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"},
                       ttl_seconds=None)


def test_every_input_error_is_a_journal_error() -> None:
    assert issubclass(InvalidKeyError, JournalError)
    assert issubclass(NotConfiguredError, JournalError)
