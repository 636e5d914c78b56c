"""The lake's closed error taxonomy. Every message names the object or file and what is wrong."""

from __future__ import annotations


class LakeError(Exception):
    """Base class of every error the lake raises on purpose."""


class InvalidObjectId(LakeError, ValueError):
    """A string that is not a well-formed object id or id prefix."""


class ObjectNotFound(LakeError, KeyError):
    """No object (or no catalog row) has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class AmbiguousObjectId(LakeError, ValueError):
    """An id prefix that matches more than one object."""


class CorruptObject(LakeError):
    """Stored bytes no longer hash to their id: bit rot or tampering. Never served."""

    def __init__(self, object_id: str, actual: str) -> None:
        super().__init__(f"{object_id} is corrupt: its stored bytes hash to {actual}")
        self.object_id = object_id
        self.actual = actual


class InvalidFrame(LakeError, ValueError):
    """A file offered as a frame that is not a usable FITS image (names the file and the problem)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class AppendOnlyViolation(LakeError):
    """Something tried to change or remove a stored row or object."""


class ProductConflict(LakeError):
    """A resident produced different output for an input it already has a product for (non-determinism)."""
