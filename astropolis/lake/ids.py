"""Content addresses: `sha256:<hex>` identifiers and the canonical JSON they are computed over."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from astropolis.lake.errors import InvalidObjectId

PREFIX = "sha256:"
_FULL = re.compile(r"^sha256:[0-9a-f]{64}$")
_PARTIAL = re.compile(r"^(?:sha256:)?([0-9a-f]{4,64})$")


def object_id(data: bytes | bytearray | memoryview) -> str:
    """Return the content address of `data`."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def id_from_digest(hexdigest: str) -> str:
    """Prefix a bare sha256 hex digest with its algorithm."""
    return PREFIX + hexdigest


def validate_object_id(text: str) -> str:
    """Return `text` if it is a full `sha256:<64 hex>` id, else raise `InvalidObjectId`."""
    if not isinstance(text, str) or not _FULL.match(text):
        raise InvalidObjectId(f"{text!r} is not an object id (expected sha256:<64 lowercase hex digits>)")
    return text


def id_prefix(text: str) -> str:
    """Normalise a full or abbreviated id (`sha256:ab12…` or `ab12…`, at least 4 hex digits) to `sha256:<hex>`."""
    match = _PARTIAL.match(text.strip().lower()) if isinstance(text, str) else None
    if match is None:
        raise InvalidObjectId(
            f"{text!r} is not an object id or id prefix (expected sha256:<hex>, at least 4 hex digits)"
        )
    return PREFIX + match.group(1)


def canonical_json(value: Any) -> bytes:
    """Serialise `value` as canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
