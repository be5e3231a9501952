"""DynamoDB's item-size formula (pure).

The 400 KB item limit counts attribute names and values, not just the payload, and
emulators count otherwise (moto counts a Binary by its base64 length against 405,000
bytes, which `LocalDeployment` corrects while it runs: local/_moto_size.py), so the saver
measures items itself before it decides between one item and chunks.
Source: "Item sizes and formats" in the DynamoDB developer guide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# 400 KB as DynamoDB counts it: 400 * 1024 bytes, names included.
MAX_ITEM_BYTES = 400 * 1024
# A number is stored in at most 21 bytes (38 significant digits, two per byte, plus one).
_MAX_NUMBER_BYTES = 21
# Lists and maps cost 3 bytes, plus 1 byte per element.
_CONTAINER_BYTES = 3


def attribute_value_size(value: Any) -> int:
    """Size of one attribute value in the low-level wire shape (``{"S": ...}`` etc.)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise TypeError(f"not a DynamoDB attribute value: {value!r:.80}")
    ((tag, v),) = value.items()
    if tag == "S":
        return len(v.encode("utf-8"))
    if tag == "B":
        return len(v)
    if tag == "N":
        digits = v.lstrip("-").replace(".", "").lstrip("0") or "0"
        return min(_MAX_NUMBER_BYTES, (len(digits) + 1) // 2 + 1)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(s.encode("utf-8")) for s in v)
    if tag == "BS":
        return sum(len(b) for b in v)
    if tag == "NS":
        return sum(attribute_value_size({"N": n}) for n in v)
    if tag == "L":
        return _CONTAINER_BYTES + sum(attribute_value_size(e) + 1 for e in v)
    if tag == "M":
        return _CONTAINER_BYTES + sum(
            len(k.encode("utf-8")) + attribute_value_size(e) + 1 for k, e in v.items()
        )
    raise TypeError(f"unknown DynamoDB type tag {tag!r}")


def item_size(item: Mapping[str, Any]) -> int:
    """Size of an item as DynamoDB counts it against the 400 KB limit."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(v) for name, v in item.items())
