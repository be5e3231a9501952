from __future__ import annotations

import hashlib
import os

import pytest

from checkpoint_journal._core.items import (
    MAX_RECORD_BYTES,
    metadata_attrs,
    plan_items,
    to_attr,
)
from checkpoint_journal._core.size import (
    MAX_ITEM_BYTES,
    attribute_value_size,
    item_size,
)
from checkpoint_journal.errors import PayloadTooLargeError
from checkpoint_journal.schemas import Encoded


def test_the_400kb_limit_is_400_times_1024() -> None:
    assert MAX_ITEM_BYTES == 409_600


def test_sizes_follow_dynamodbs_formula() -> None:
    # Names count, values count: "name" (4) + "abc" (3).
    assert item_size({"name": {"S": "abc"}}) == 7
    assert attribute_value_size({"S": "é"}) == 2  # UTF-8 bytes
    assert attribute_value_size({"B": b"\x00" * 10}) == 10
    assert attribute_value_size({"BOOL": True}) == 1
    assert attribute_value_size({"N": "12345"}) == 4  # 5 digits -> 3 bytes + 1
    assert attribute_value_size({"N": "1" * 38}) == 20
    # A map costs 3 bytes plus, per element, its name, its value and one byte.
    assert attribute_value_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1
    assert attribute_value_size({"L": [{"S": "ab"}, {"NULL": True}]}) == 3 + 3 + 2
    with pytest.raises(TypeError):
        attribute_value_size({"X": 1})


def _enc(n: int) -> Encoded:
    return Encoded(os.urandom(n), "fp", "null")


def test_small_record_is_one_item() -> None:
    plan = plan_items("T#t", "J##c", "C", _enc(1000), written_at_ms=1, expires_at=5)
    assert plan.chunks == [] and plan.request_count == 1
    assert plan.commit["expires_at"] == {"N": "5"}


@pytest.mark.parametrize("budget", [MAX_ITEM_BYTES, 296 * 1024])
def test_large_record_is_chunked_within_the_budget(budget: int) -> None:
    body = _enc(3 * budget)
    plan = plan_items("T#t", "J##c", "C", body, written_at_ms=1, expires_at=None,
                      max_item_bytes=budget)
    assert len(plan.chunks) == 4
    assert max(item_size(c) for c in plan.chunks + [plan.commit]) <= budget
    assert b"".join(c["body"]["B"] for c in plan.chunks) == body.body
    assert plan.commit["digest"]["S"] == hashlib.sha256(body.body).hexdigest()
    assert "body" not in plan.commit


def test_record_just_under_the_limit_stays_single() -> None:
    # The overhead of the other attributes is counted: find the largest single body.
    plan = plan_items("T#t", "J##c", "C", _enc(MAX_ITEM_BYTES - 200), written_at_ms=1,
                      expires_at=None)
    assert plan.chunks == []
    plan = plan_items("T#t", "J##c", "C", _enc(MAX_ITEM_BYTES - 20), written_at_ms=1,
                      expires_at=None)
    assert plan.chunks != []


def test_absurd_record_is_refused() -> None:
    with pytest.raises(PayloadTooLargeError, match="Keep large artifacts"):
        plan_items("T#t", "J##c", "C", Encoded(b"\0" * (MAX_RECORD_BYTES + 1), "f", "null"),
                   written_at_ms=1, expires_at=None)


def test_metadata_plain_attributes() -> None:
    attrs = metadata_attrs({"source": "loop", "step": 2, "parents": {"": "x"}, "run_id": "r",
                            "score": 0.5, "obj": object()})
    assert attrs["run_id"] == {"S": "r"}
    md = attrs["md"]["M"]
    assert md["step"] == {"N": "2"} and md["score"] == {"N": "0.5"}
    assert md["parents"] == {"M": {}}  # DynamoDB map keys cannot be empty
    assert "obj" not in md
    assert to_attr(float("nan")) is None
