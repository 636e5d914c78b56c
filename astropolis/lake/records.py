"""The lake's public records (pydantic v2, frozen, extra fields forbidden)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ObjectKind = Literal["frame", "product"]


class Record(BaseModel):
    """Base of every lake record: immutable and strict about its fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LakeObject(Record):
    """One stored object and what kind of thing it is."""

    id: str = Field(description="Content address, sha256:<hex>.")
    kind: ObjectKind = Field(description="What the bytes are: a FITS frame or a resident's product.")
    size_bytes: int = Field(description="Stored size in bytes.")
    stored_at: datetime = Field(description="When the lake first stored it (UTC, run clock).")


class Frame(Record):
    """A FITS image in the lake, with the facts parsed from its header."""

    schema_version: Literal[1] = 1
    id: str = Field(description="Content address of the FITS file, sha256:<hex>.")
    site: str = Field(description="Site that took the frame (OBSERVAT/TELESCOP header or --site).")
    site_source: str = Field(description="Where `site` came from, e.g. 'header:OBSERVAT' or '--site'.")
    telescope: str | None = Field(description="TELESCOP header value.")
    instrument: str | None = Field(description="INSTRUME header value.")
    observed_at: datetime | None = Field(description="Exposure start (DATE-OBS/MJD-OBS), UTC; None if absent.")
    exptime_s: float | None = Field(description="Exposure time in seconds (EXPTIME/EXPOSURE).")
    ra_deg: float = Field(description="ICRS right ascension of the image centre (or pointing), degrees.")
    dec_deg: float = Field(description="ICRS declination of the image centre (or pointing), degrees.")
    pointing_source: str = Field(description="'WCS', 'RA/DEC' or 'OBJCTRA/OBJCTDEC'.")
    fov_radius_deg: float | None = Field(description="Centre-to-corner radius from the WCS, degrees.")
    filter: str | None = Field(description="FILTER header value.")
    object_name: str | None = Field(description="OBJECT header value.")
    width: int = Field(description="NAXIS1, pixels.")
    height: int = Field(description="NAXIS2, pixels.")
    bitpix: int = Field(description="BITPIX of the image HDU.")
    hdu_index: int = Field(description="Index of the image HDU within the file.")
    header_digest: str = Field(description="sha256 of the image HDU's header text.")
    source_name: str = Field(description="File name it was ingested from (informational).")
    size_bytes: int = Field(description="Size of the FITS file in bytes.")
    ingested_at: datetime = Field(description="When it was catalogued (UTC, run clock).")


class Product(Record):
    """A resident's output for some inputs, stored as canonical JSON whose hash is its id."""

    schema_version: Literal[1] = 1
    id: str = Field(description="Content address of the product document, sha256:<hex>.")
    resident: str = Field(description="Name of the resident that produced it.")
    version: str = Field(description="Resident version.")
    weights_sha256: str = Field(description="sha256 of the weights the resident ran with.")
    inputs: tuple[str, ...] = Field(description="Ids of the inputs, in the resident's order.")
    output_kind: str = Field(description="Name of the output model, e.g. 'QualityReport'.")
    output: dict[str, Any] = Field(description="The output itself.")
    created_at: datetime = Field(description="When it was stored (UTC, run clock).")


class IngestResult(Record):
    """What an ingest did: the frame, whether it was new, and anything worth telling the person."""

    frame: Frame
    created: bool = Field(description="False when these exact bytes were already in the lake.")
    notes: tuple[str, ...] = Field(default=(), description="Header oddities noticed while reading it.")


class ProductResult(Record):
    """What storing a product did."""

    product: Product
    created: bool = Field(description="False when the same resident/version/inputs already had a product.")


class Derived(Record):
    """An object reached by following provenance edges, and how many edges away it is."""

    id: str
    kind: ObjectKind
    depth: int


class VerifyReport(Record):
    """The result of re-hashing blobs and cross-checking the catalog."""

    mode: Literal["full", "sample"]
    sample_fraction: float | None
    seed: int | None
    objects_catalogued: int
    objects_checked: int
    corrupt: tuple[str, ...] = Field(description="Ids whose bytes no longer hash to the id.")
    missing: tuple[str, ...] = Field(description="Ids catalogued but with no stored bytes.")
    unregistered: tuple[str, ...] = Field(
        description="Stored blobs with no catalog row (a writer stopped between the two; re-ingest adopts them)."
    )
    catalog_errors: tuple[str, ...] = Field(description="Catalog rows that disagree with each other or the blobs.")
    temp_files: int = Field(description="Temp files of writers still running.")

    @property
    def ok(self) -> bool:
        """True when nothing is corrupt, missing or inconsistent."""
        return not (self.corrupt or self.missing or self.catalog_errors)
