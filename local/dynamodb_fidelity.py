"""DynamoDB behaviour that moto (5.1) gets wrong, corrected so that the local state table behaves as
DynamoDB's does.

moto differs from DynamoDB in two ways that make the handler's checkpoints fail locally, and fail in a way
DynamoDB never does:

- **UpdateItem is not atomic.** moto applies an update expression's actions to the stored item one by
  one; when one of them is refused (the item grew over the size limit), the actions before it stay
  applied and the call still fails. DynamoDB applies all of an update or none of it. A checkpoint whose
  document was written but whose carry was not is a checkpoint that lies about its own output.
- **The item size is measured wrongly.** moto checks each attribute it sets against the item's size
  *including the value being replaced* (so replacing a 250 KB attribute with another needs 500 KB), and
  counts a binary attribute by its base64 text (a third more than its bytes). DynamoDB's limit is on
  the item as it is after the update: attribute names plus values, a binary value by its bytes.

:func:`apply` patches moto in place for the whole process and is idempotent; it only ever brings moto
closer to DynamoDB. The local endpoint calls it when it starts; tests that run moto in-process call it
before their first request.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Final

MAX_ITEM_BYTES: Final = 400 * 1024
"""DynamoDB's limit on one item: the UTF-8 bytes of every attribute name plus every value."""

_apply_lock = threading.Lock()
_applied: list[bool] = []


def apply() -> None:
    """Patch moto's DynamoDB (atomic UpdateItem, DynamoDB's item size) to behave as DynamoDB does."""
    with _apply_lock:
        if _applied:
            return
        _patch_item_size()
        _patch_atomic_update()
        _applied.append(True)


def _base64_bytes(text: str) -> int:
    """How many bytes a base64 text decodes to (without decoding it: values run to hundreds of KB)."""
    return len(text) * 3 // 4 - text[-2:].count("=")


def _patch_item_size() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    original_size = DynamoType.size

    def size(self: Any) -> int:
        if self.type == "B" and isinstance(self.value, str):
            return _base64_bytes(self.value)
        return int(original_size(self))

    def value_size(value: Any) -> int:
        return int(value.size()) if isinstance(value, DynamoType) else bytesize(str(value))

    def setitem(self: Any, key: str, value: Any) -> None:
        # The item as it will be: every other attribute, plus this one's new value (not its old one).
        others = sum(bytesize(name) + value_size(held) for name, held in self.items() if name != key)
        if others + bytesize(key) + value_size(value) > MAX_ITEM_BYTES:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    DynamoType.size = size  # type: ignore[method-assign]
    LimitedSizeDict.__setitem__ = setitem  # type: ignore[method-assign]


def _patch_atomic_update() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.update_item

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        try:
            hash_key, range_key = self.get_keys_value(table, key)
        except Exception:
            return original(self, table_name, key, *args, **kwargs)  # moto's own error for a bad key
        before = table.get_item(hash_key, range_key)
        # Values are immutable strings and numbers, so the deep copy costs little even for large items.
        saved = copy.deepcopy(dict(before.attrs)) if before is not None else None
        try:
            return original(self, table_name, key, *args, **kwargs)
        except Exception:
            if before is None:
                # moto creates a missing item before it applies the update: a refused update leaves none.
                if table.get_item(hash_key, range_key) is not None:
                    table.delete_item(hash_key, range_key)
            elif saved is not None:
                before.attrs.clear()
                # moto updates the stored item object in place: putting its attributes back undoes it.
                for name, value in saved.items():
                    dict.__setitem__(before.attrs, name, value)
            raise

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
