"""The immutable lake: content-addressed blobs, an append-only catalog, provenance and `verify`.

Imports nothing else of Astropolis; every other package builds on it.
"""

from astropolis.lake.errors import (
    AmbiguousObjectId,
    AppendOnlyViolation,
    CorruptObject,
    InvalidFrame,
    InvalidObjectId,
    LakeError,
    ObjectNotFound,
    ProductConflict,
)
from astropolis.lake.records import Derived, Frame, IngestResult, LakeObject, Product, ProductResult, VerifyReport
from astropolis.lake.store import Lake

__all__ = [
    "AmbiguousObjectId",
    "AppendOnlyViolation",
    "CorruptObject",
    "Derived",
    "Frame",
    "IngestResult",
    "InvalidFrame",
    "InvalidObjectId",
    "Lake",
    "LakeError",
    "LakeObject",
    "ObjectNotFound",
    "Product",
    "ProductConflict",
    "ProductResult",
    "VerifyReport",
]
