"""The lake catalog's tables (SQLModel). Every table is append-only, enforced by database triggers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from astropolis.lake.db import UtcText


class ObjectRow(SQLModel, table=True):
    """Every object the lake stores, frames and products alike."""

    __tablename__ = "lake_objects"

    id: str = Field(primary_key=True, max_length=71)
    kind: str = Field(index=True, max_length=16)
    size_bytes: int
    stored_at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    schema_version: int = 1


class FrameRow(SQLModel, table=True):
    """Header facts of a FITS frame."""

    __tablename__ = "lake_frames"
    __table_args__ = (Index("ix_lake_frames_dec_ra", "dec_deg", "ra_deg"),)

    id: str = Field(sa_column=Column(String(71), ForeignKey("lake_objects.id"), primary_key=True))
    site: str = Field(index=True, max_length=128)
    site_source: str
    telescope: str | None = None
    instrument: str | None = None
    observed_at: datetime | None = Field(default=None, sa_column=Column(UtcText(), index=True))
    exptime_s: float | None = None
    ra_deg: float
    dec_deg: float
    pointing_source: str
    fov_radius_deg: float | None = None
    filter: str | None = None
    object_name: str | None = None
    width: int
    height: int
    bitpix: int
    hdu_index: int
    header_digest: str
    source_name: str
    size_bytes: int
    ingested_at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    schema_version: int = 1


class ProductRow(SQLModel, table=True):
    """A resident's product; (resident, version, inputs) is unique, so reruns add nothing."""

    __tablename__ = "lake_products"
    __table_args__ = (UniqueConstraint("resident", "version", "input_key", name="uq_lake_products_run"),)

    id: str = Field(sa_column=Column(String(71), ForeignKey("lake_objects.id"), primary_key=True))
    resident: str = Field(index=True, max_length=64)
    version: str = Field(max_length=32)
    weights_sha256: str = Field(max_length=71)
    input_key: str
    inputs_json: str
    output_kind: str = Field(max_length=64)
    output_json: str
    created_at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    schema_version: int = 1


class EdgeRow(SQLModel, table=True):
    """Provenance: `child` was made from `parent`."""

    __tablename__ = "lake_edges"

    parent: str = Field(sa_column=Column(String(71), ForeignKey("lake_objects.id"), primary_key=True))
    child: str = Field(sa_column=Column(String(71), ForeignKey("lake_objects.id"), primary_key=True, index=True))
    relation: str = Field(primary_key=True, max_length=32)
