"""moto counts DynamoDB item sizes as DynamoDB does, while a LocalDeployment runs on it.

Why: moto (5.x) enforces the 400 KB item limit in one place,
``moto.dynamodb.models.dynamo_type.LimitedSizeDict.__setitem__``, with arithmetic of its
own: a Binary attribute counts as its base64 text (4/3 of its bytes, since that is what
the JSON request carries), lists and maps cost no overhead, and the cap is 405,000 bytes.
DynamoDB counts a Binary by its raw length against 409,600 bytes ("Item sizes and
formats" in the developer guide). The saver measures items with DynamoDB's formula and
fills a chunk up to the real limit, so moto refused a record of a few hundred KB that
DynamoDB accepts (``PayloadTooLargeError``) unless the saver was given a smaller
``max_item_bytes`` by hand.

What: while at least one moto-backed :class:`~checkpoint_journal.local.LocalDeployment`
runs, that one method is replaced by :func:`_setitem`, which measures the whole item
*after* the assignment with ``_core.size`` (the formula the saver uses) and refuses it
above ``MAX_ITEM_BYTES`` with moto's own ``ItemSizeTooLarge``, so the client sees what
DynamoDB answers: a ValidationException "Item size has exceeded the maximum allowed
size". Nothing else of moto changes (key-length checks and the 1 MB page limit keep
moto's counting: they make pages smaller, never refuse what DynamoDB accepts).

Scope: moto keeps its models in the process, so the patch applies to every moto backend
of the process while it is installed (a ``mock_aws`` test running meanwhile included);
the last deployment to stop removes it. If a moto upgrade moves or renames the method,
:func:`install` warns and changes nothing (``tests/unit/test_moto_item_size.py`` fails
first).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from typing import Any

from checkpoint_journal._core.size import MAX_ITEM_BYTES, attribute_value_size

log = logging.getLogger(__name__)

_MODULE = "moto.dynamodb.models.dynamo_type"

_lock = threading.Lock()
_users = 0
_original: Callable[..., None] | None = None
# moto's ItemSizeTooLarge, once installed: what moto's own check raises.
_too_large: type[Exception] = Exception


def target() -> tuple[type, Any, type[Exception]] | None:
    """moto's ``LimitedSizeDict``, its ``DynamoType`` and ``ItemSizeTooLarge``, or None
    when this moto does not have them as the patch expects."""
    try:
        from moto.dynamodb.exceptions import ItemSizeTooLarge
        from moto.dynamodb.models import dynamo_type
    except ImportError:
        return None
    limited = getattr(dynamo_type, "LimitedSizeDict", None)
    dynamo = getattr(dynamo_type, "DynamoType", None)
    if not (isinstance(limited, type) and issubclass(limited, dict)
            and "__setitem__" in vars(limited) and isinstance(dynamo, type)):
        return None
    return limited, dynamo, ItemSizeTooLarge


def _raw(value: Any) -> bytes:
    """A Binary value's bytes: moto keeps what the request carried, base64 text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return base64.b64decode(str(value))


def _wire(value: Any) -> dict[str, Any]:
    """A moto ``DynamoType`` in the low-level wire shape, Binary as raw bytes."""
    tag, v = value.type, value.value
    if tag == "B":
        return {"B": _raw(v)}
    if tag == "BS":
        return {"BS": [_raw(b) for b in v]}
    if tag == "L":
        return {"L": [_wire(e) for e in v]}
    if tag == "M":
        return {"M": {k: _wire(e) for k, e in v.items()}}
    return {tag: v}


def dynamodb_size(name: str, value: Any) -> int:
    """One attribute (name and value) as DynamoDB counts it; a value moto holds in a
    shape the formula does not know is counted as moto counts it."""
    named = len(name.encode("utf-8"))
    try:
        return named + attribute_value_size(_wire(value))
    except (AttributeError, TypeError, ValueError, binascii.Error):
        size = getattr(value, "size", None)
        return named + (int(size()) if callable(size) else len(str(value).encode("utf-8")))


def _setitem(self: dict[str, Any], key: str, value: Any) -> None:
    """``LimitedSizeDict.__setitem__`` with DynamoDB's arithmetic: the item as it will be
    (a replaced attribute counted once) against DynamoDB's 409,600 bytes."""
    size = dynamodb_size(key, value) + sum(
        dynamodb_size(k, v) for k, v in dict.items(self) if k != key)
    if size > MAX_ITEM_BYTES:
        raise _too_large()
    dict.__setitem__(self, key, value)


def install() -> bool:
    """Count item sizes as DynamoDB does until the matching :func:`uninstall`
    (reference-counted: one per running deployment). False, with a warning, when this
    moto cannot be patched."""
    global _users, _original, _too_large
    with _lock:
        if _users == 0:
            found = target()
            if found is None:
                log.warning(
                    "this moto has no %s.LimitedSizeDict.__setitem__ to patch: it may refuse "
                    "DynamoDB items under 400 KB; use backend='dynamodb-local' or the moto "
                    "version in pyproject.toml", _MODULE)
                return False
            _original = vars(found[0])["__setitem__"]
            _too_large = found[2]
            setattr(found[0], "__setitem__", _setitem)
        _users += 1
        return True


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores moto's own method."""
    global _users, _original
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _original is not None:
            found = target()
            if found is not None:
                setattr(found[0], "__setitem__", _original)
            _original = None


def installed() -> bool:
    """Whether moto counts item sizes as DynamoDB does right now."""
    found = target()
    return found is not None and vars(found[0]).get("__setitem__") is _setitem
