"""Item seals: every byte of a stored item bound to its key, checked on every read (I2b).

The store writes each item with a ``seal`` attribute: SHA-256 over the item's key and
every other attribute, in a canonical form that survives DynamoDB's own rewriting of
numbers (``1e+20`` comes back as ``100000000000000000000``). A flipped byte in a body,
an edited ``expires_at``, ``written_at``, ``visible_until`` or ``md``, an item copied
under another key, a swapped body: each changes what the seal covers.

The seal is keyless on purpose. It is an integrity check that every reader can make
(the saver, the projector, every command), so it detects damage, misplaced items and
edits made without recomputing it. Authenticity against someone who can write the table
and recompute SHA-256 is what the chain key gives ``verify`` (``chain``): seals are not
a substitute for it.

Form: ``"s1:" + hex(SHA-256("seal\\n" + C))``, ``C`` the compact JSON (keys sorted) of
the item without ``seal``, where a binary value is replaced by ``{"B#": hex(SHA-256 of
its bytes)}`` and a number by its normalised decimal text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

SEAL_ATTR = "seal"
_PREFIX = "s1:"
SEAL_ITEM_BYTES = len(SEAL_ATTR) + len(_PREFIX) + 64
"""What the seal adds to an item as DynamoDB counts it (name plus value)."""


def _number(text: str) -> str:
    try:
        d = Decimal(text)
    except InvalidOperation:
        return "NaN:" + text
    if d.is_zero():
        return "0"
    return format(d.normalize(), "E")


def _canon(value: Any) -> Any:
    """A DynamoDB attribute value (boto3's low-level shape) in canonical JSON form."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return {"?": repr(value)}
    ((tag, v),) = value.items()
    if tag == "B":
        data = v if isinstance(v, bytes | bytearray) else bytes(v)
        return {"B#": hashlib.sha256(data).hexdigest()}
    if tag == "N":
        return {"N": _number(str(v))}
    if tag == "M":
        return {"M": {k: _canon(x) for k, x in v.items()}}
    if tag == "L":
        return {"L": [_canon(x) for x in v]}
    if tag == "NS":
        return {"NS": sorted(_number(str(x)) for x in v)}
    if tag == "SS":
        return {"SS": sorted(v)}
    if tag == "BS":
        return {"BS": sorted(hashlib.sha256(bytes(x)).hexdigest() for x in v)}
    return {tag: v}


def seal_of(item: Mapping[str, Any]) -> str:
    """The seal an item should carry (its current ``seal`` attribute ignored)."""
    body = {k: _canon(v) for k, v in item.items() if k != SEAL_ATTR}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(b"seal\n" + text.encode("utf-8", "surrogatepass"))
    return _PREFIX + h.hexdigest()


def sealed(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with its seal (a new dict; ``item`` is left as it is)."""
    return {**item, SEAL_ATTR: {"S": seal_of(item)}}


def damage(item: Mapping[str, Any]) -> str | None:
    """Why ``item`` fails its seal (None: it is intact)."""
    stored = item.get(SEAL_ATTR)
    if not isinstance(stored, Mapping) or "S" not in stored:
        return "it carries no seal (written by hand, by a tool unaware of seals, or " \
               "before seals existed)"
    if stored["S"] != seal_of(item):
        return "its seal does not match its key and attributes (altered, or copied " \
               "from another item)"
    return None


def where(item: Mapping[str, Any]) -> str:
    """``PK / SK`` of an item, for messages."""
    pk = item.get("PK", {}).get("S", "?") if isinstance(item.get("PK"), Mapping) else "?"
    sk = item.get("SK", {}).get("S", "?") if isinstance(item.get("SK"), Mapping) else "?"
    return f"{pk!r} / {sk!r}"
