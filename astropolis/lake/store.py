"""The lake: immutable blobs plus an append-only catalog of frames, products and provenance."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from astropolis.lake.blobs import BlobStore, StagedBlob
from astropolis.lake.catalog import EdgeRow, FrameRow, ObjectRow, ProductRow
from astropolis.lake.clock import Clock, SystemClock
from astropolis.lake.db import (
    insert_ignore,
    make_append_only,
    make_engine,
    read_transaction,
    sqlite_url,
    write_transaction,
)
from astropolis.lake.errors import AmbiguousObjectId, InvalidFrame, LakeError, ObjectNotFound, ProductConflict
from astropolis.lake.fitsmeta import read_frame_facts
from astropolis.lake.ids import canonical_json, id_prefix, validate_object_id
from astropolis.lake.records import Derived, Frame, IngestResult, LakeObject, Product, ProductResult, VerifyReport

PRODUCT_SCHEMA = "astropolis.product/1"
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_OBJECTS = ObjectRow.__table__  # type: ignore[attr-defined]
_FRAMES = FrameRow.__table__  # type: ignore[attr-defined]
_PRODUCTS = ProductRow.__table__  # type: ignore[attr-defined]
_EDGES = EdgeRow.__table__  # type: ignore[attr-defined]
_TABLES = [_OBJECTS, _FRAMES, _PRODUCTS, _EDGES]


def _frame(row: Any) -> Frame:
    return Frame.model_validate({name: getattr(row, name) for name in Frame.model_fields})


def _product(row: Any) -> Product:
    return Product(
        id=row.id,
        resident=row.resident,
        version=row.version,
        weights_sha256=row.weights_sha256,
        inputs=tuple(json.loads(row.inputs_json)),
        output_kind=row.output_kind,
        output=json.loads(row.output_json),
        created_at=row.created_at,
    )


def product_document(
    *, resident: str, version: str, weights_sha256: str, inputs: Sequence[str], output_kind: str, output: Any
) -> bytes:
    """The canonical bytes a product is stored as; the run time is deliberately not part of them."""
    return canonical_json(
        {
            "schema": PRODUCT_SCHEMA,
            "resident": resident,
            "version": version,
            "weights_sha256": weights_sha256,
            "inputs": list(inputs),
            "output_kind": output_kind,
            "output": output,
        }
    )


class Lake:
    """Immutable, content-addressed storage of frames and products, with provenance queries and `verify`."""

    def __init__(
        self, root: Path, *, catalog_url: str | None = None, clock: Clock | None = None, harden: bool = False
    ) -> None:
        self.root = Path(root).absolute()
        self.clock: Clock = clock or SystemClock()
        self.blobs = BlobStore(self.root, harden=harden)
        self.engine = make_engine(catalog_url or sqlite_url(self.root / "catalog.db"))
        with write_transaction(self.engine) as connection:
            SQLModel.metadata.create_all(connection, tables=_TABLES)
            make_append_only(connection, [table.name for table in _TABLES])

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ ingest
    def ingest(self, path: Path, *, site: str | None = None) -> IngestResult:
        """Store a FITS file and catalogue it; the same bytes twice give the same frame and store nothing new."""
        path = Path(path)
        if path.is_dir():
            raise InvalidFrame(str(path), "is a directory (pass the FITS files in it, e.g. DIR/*.fits)")
        if not path.is_file():
            raise ObjectNotFound(f"{path}: no such file")
        try:
            staged = self.blobs.stage_file(path)
        except OSError as error:
            raise InvalidFrame(str(path), f"cannot be read ({error.strerror})") from None
        return self._catalogue(staged, source=str(path), name=path.name, site=site)

    def ingest_bytes(self, data: bytes, *, name: str, site: str | None = None) -> IngestResult:
        """Store and catalogue FITS bytes held in memory (a driver's exposure); `name` labels it in messages."""
        return self._catalogue(self.blobs.stage_bytes(data), source=name, name=name, site=site)

    def _catalogue(self, staged: StagedBlob, *, source: str, name: str, site: str | None) -> IngestResult:
        with staged:
            # Parse the staged copy, not the source: the facts must describe exactly the bytes we keep.
            facts = read_frame_facts(staged.path, source=source, site=site)
            put = staged.commit()
        now = self.clock.now()
        fact_fields = {k: v for k, v in vars(facts).items() if k != "notes"}
        frame = Frame(id=put.id, source_name=name, size_bytes=put.size, ingested_at=now, **fact_fields)
        with write_transaction(self.engine) as connection:
            insert_ignore(
                connection, _OBJECTS, {"id": put.id, "kind": "frame", "size_bytes": put.size, "stored_at": now}
            )
            created = insert_ignore(connection, _FRAMES, frame.model_dump(exclude={"schema_version"})) == 1
            if not created:
                frame = _frame(connection.execute(select(_FRAMES).where(_FRAMES.c.id == put.id)).one())
        return IngestResult(frame=frame, created=created, notes=facts.notes)

    # ---------------------------------------------------------------- products
    def find_product(self, resident: str, version: str, inputs: Sequence[str]) -> Product | None:
        """The stored product of this resident version on these inputs, if it ran before."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(_PRODUCTS).where(
                    _PRODUCTS.c.resident == resident,
                    _PRODUCTS.c.version == version,
                    _PRODUCTS.c.input_key == canonical_json(list(inputs)).decode(),
                )
            ).one_or_none()
        return None if row is None else _product(row)

    def put_product(
        self,
        *,
        resident: str,
        version: str,
        weights_sha256: str,
        inputs: Sequence[str],
        output_kind: str,
        output: Mapping[str, Any],
    ) -> ProductResult:
        """Store a resident's output with provenance edges from each input; reruns return the stored product."""
        if not _NAME.match(resident):
            raise LakeError(f"resident name {resident!r} must be lowercase letters, digits, '_', '.', '-'")
        validate_object_id(weights_sha256)
        if not inputs:
            raise LakeError(f"product of {resident} needs at least one input")
        for input_id in inputs:
            validate_object_id(input_id)
        try:
            document = product_document(
                resident=resident,
                version=version,
                weights_sha256=weights_sha256,
                inputs=inputs,
                output_kind=output_kind,
                output=dict(output),
            )
        except (TypeError, ValueError) as error:
            raise LakeError(f"output of {resident} is not JSON-serialisable: {error}") from None
        output_json = canonical_json(dict(output)).decode()
        input_key = canonical_json(list(inputs)).decode()
        existing = self.find_product(resident, version, inputs)
        if existing is not None:
            return self._same_or_conflict(existing, output_json)
        put = self.blobs.put_bytes(document)
        now = self.clock.now()
        try:
            with write_transaction(self.engine) as connection:
                known = set(connection.execute(select(_OBJECTS.c.id).where(_OBJECTS.c.id.in_(list(inputs)))).scalars())
                unknown = [i for i in inputs if i not in known]
                if unknown:
                    raise ObjectNotFound(f"{unknown[0]}: input of {resident} is not in the lake")
                insert_ignore(
                    connection, _OBJECTS, {"id": put.id, "kind": "product", "size_bytes": put.size, "stored_at": now}
                )
                connection.execute(
                    _PRODUCTS.insert(),
                    {
                        "id": put.id,
                        "resident": resident,
                        "version": version,
                        "weights_sha256": weights_sha256,
                        "input_key": input_key,
                        "inputs_json": input_key,
                        "output_kind": output_kind,
                        "output_json": output_json,
                        "created_at": now,
                    },
                )
                insert_ignore(
                    connection,
                    _EDGES,
                    [{"parent": i, "child": put.id, "relation": "input"} for i in dict.fromkeys(inputs)],
                )
        except IntegrityError:
            # Another writer stored the same run between our check and our insert.
            existing = self.find_product(resident, version, inputs)
            if existing is None:
                raise
            return self._same_or_conflict(existing, output_json)
        return ProductResult(product=self.product(put.id), created=True)

    @staticmethod
    def _same_or_conflict(existing: Product, output_json: str) -> ProductResult:
        if canonical_json(existing.output).decode() != output_json:
            raise ProductConflict(
                f"{existing.resident} {existing.version} already stored {existing.id} for these inputs and now "
                "produced different output: the resident is not deterministic"
            )
        return ProductResult(product=existing, created=False)

    # ------------------------------------------------------------------- reads
    def read(self, object_id: str) -> bytes:
        """The verified bytes of an object (raises CorruptObject rather than return bad bytes)."""
        return self.blobs.read_bytes(self.object(object_id).id)

    def resolve(self, text_id: str) -> str:
        """Expand a full or abbreviated id (at least 4 hex digits) to the one catalogued id it names."""
        prefix = id_prefix(text_id)
        with read_transaction(self.engine) as connection:
            matches = (
                connection.execute(
                    select(_OBJECTS.c.id).where(_OBJECTS.c.id.like(prefix + "%")).order_by(_OBJECTS.c.id).limit(3)
                )
                .scalars()
                .all()
            )
        if not matches:
            raise ObjectNotFound(f"{text_id}: no object in the lake has this id")
        if len(matches) > 1:
            raise AmbiguousObjectId(f"{text_id}: prefix matches several objects ({', '.join(matches[:2])}, …)")
        return matches[0]

    def object(self, text_id: str) -> LakeObject:
        """The catalog entry of an object (full or abbreviated id)."""
        object_id = self.resolve(text_id)
        with read_transaction(self.engine) as connection:
            row = connection.execute(select(_OBJECTS).where(_OBJECTS.c.id == object_id)).one()
        return LakeObject(id=row.id, kind=row.kind, size_bytes=row.size_bytes, stored_at=row.stored_at)

    def frame(self, text_id: str) -> Frame:
        """A frame by full or abbreviated id."""
        object_id = self.resolve(text_id)
        with read_transaction(self.engine) as connection:
            row = connection.execute(select(_FRAMES).where(_FRAMES.c.id == object_id)).one_or_none()
        if row is None:
            raise ObjectNotFound(f"{text_id}: {object_id} is not a frame")
        return _frame(row)

    def product(self, text_id: str) -> Product:
        """A product by full or abbreviated id."""
        object_id = self.resolve(text_id)
        with read_transaction(self.engine) as connection:
            row = connection.execute(select(_PRODUCTS).where(_PRODUCTS.c.id == object_id)).one_or_none()
        if row is None:
            raise ObjectNotFound(f"{text_id}: {object_id} is not a product")
        return _product(row)

    def frames(
        self,
        *,
        site: str | None = None,
        since: Any = None,
        until: Any = None,
        cone: tuple[float, float, float] | None = None,
        limit: int | None = None,
    ) -> list[Frame]:
        """Frames by site, observation time range [since, until) and cone (ra_deg, dec_deg, radius_deg)."""
        query = select(_FRAMES)
        if site is not None:
            query = query.where(_FRAMES.c.site == site)
        if since is not None:
            query = query.where(_FRAMES.c.observed_at >= since)
        if until is not None:
            query = query.where(_FRAMES.c.observed_at < until)
        if cone is not None:
            ra0, dec0, radius = cone
            if not (0.0 <= radius <= 180.0 and -90.0 <= dec0 <= 90.0):
                raise LakeError(f"cone ({ra0}, {dec0}, {radius}) needs -90<=dec<=90 and 0<=radius<=180 degrees")
            # Declination band in SQL (indexed), exact great-circle distance below.
            query = query.where(_FRAMES.c.dec_deg >= dec0 - radius, _FRAMES.c.dec_deg <= dec0 + radius)
        query = query.order_by(_FRAMES.c.observed_at, _FRAMES.c.id)
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        if cone is not None and rows:
            ra = np.radians([r.ra_deg for r in rows])
            dec = np.radians([r.dec_deg for r in rows])
            ra0r, dec0r = math.radians(cone[0]), math.radians(cone[1])
            hav = np.sin((dec - dec0r) / 2) ** 2 + np.cos(dec) * math.cos(dec0r) * np.sin((ra - ra0r) / 2) ** 2
            separation = np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0))))
            rows = [row for row, sep in zip(rows, separation, strict=True) if sep <= cone[2]]
        if limit is not None:
            rows = rows[:limit]
        return [_frame(row) for row in rows]

    def objects(self, *, kind: str | None = None, limit: int | None = None) -> list[LakeObject]:
        """Catalogued objects in the order they were stored."""
        query = select(_OBJECTS).order_by(_OBJECTS.c.stored_at, _OBJECTS.c.id)
        if kind is not None:
            query = query.where(_OBJECTS.c.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [LakeObject(id=r.id, kind=r.kind, size_bytes=r.size_bytes, stored_at=r.stored_at) for r in rows]

    def products_of(self, text_id: str) -> list[Product]:
        """Products made directly from an object."""
        object_id = self.resolve(text_id)
        query = (
            select(_PRODUCTS)
            .join(_EDGES, _EDGES.c.child == _PRODUCTS.c.id)
            .where(_EDGES.c.parent == object_id)
            .order_by(_PRODUCTS.c.created_at, _PRODUCTS.c.id)
        )
        with read_transaction(self.engine) as connection:
            return [_product(row) for row in connection.execute(query).all()]

    def inputs_of(self, text_id: str) -> list[LakeObject]:
        """The inputs of a product, in the resident's order."""
        product = self.product(text_id)
        return [self.object(input_id) for input_id in product.inputs]

    def derived_from(self, text_id: str) -> list[Derived]:
        """Everything made from an object, transitively, nearest first."""
        return self._walk(self.resolve(text_id), down=True)

    def ancestors_of(self, text_id: str) -> list[Derived]:
        """Everything an object was made from, transitively, nearest first."""
        return self._walk(self.resolve(text_id), down=False)

    def _walk(self, object_id: str, *, down: bool) -> list[Derived]:
        near, far = ("parent", "child") if down else ("child", "parent")
        query = text(
            f"WITH RECURSIVE walk(id, depth) AS ("
            f" SELECT {far}, 1 FROM lake_edges WHERE {near} = :start"
            f" UNION SELECT e.{far}, walk.depth + 1 FROM lake_edges e JOIN walk ON e.{near} = walk.id)"
            " SELECT walk.id, o.kind, min(walk.depth) AS depth FROM walk JOIN lake_objects o ON o.id = walk.id"
            " GROUP BY walk.id, o.kind ORDER BY depth, walk.id"
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query, {"start": object_id}).all()
        return [Derived(id=r.id, kind=r.kind, depth=r.depth) for r in rows]

    # ------------------------------------------------------------------ verify
    def verify(self, *, sample: float | None = None, seed: int | None = None) -> VerifyReport:
        """Re-hash all (or a random `sample` fraction of) objects and cross-check catalog and blobs."""
        if sample is not None and not 0.0 < sample <= 1.0:
            raise LakeError(f"--sample {sample} must be a fraction in (0, 1]")
        with read_transaction(self.engine) as connection:
            catalogued = {r.id: r for r in connection.execute(select(_OBJECTS)).all()}
            catalog_errors = self._catalog_errors(connection)
            products = {r.id: r for r in connection.execute(select(_PRODUCTS)).all()}
        ids = sorted(catalogued)
        if sample is None:
            chosen = ids
        else:
            seed = seed if seed is not None else secrets.randbelow(2**31)
            chosen = (
                sorted(Random(seed).sample(ids, k=min(len(ids), max(1, math.ceil(len(ids) * sample))))) if ids else []
            )
        corrupt: list[str] = []
        missing: list[str] = []
        for object_id in chosen:
            status = self.blobs.check(object_id)
            if status == "missing":
                missing.append(object_id)
                continue
            if status == "corrupt":
                corrupt.append(object_id)
                continue
            row = catalogued[object_id]
            size = self.blobs.size(object_id)
            if size != row.size_bytes:
                catalog_errors.append(f"{object_id}: catalog says {row.size_bytes} bytes, blob has {size}")
            if object_id in products:
                catalog_errors.extend(self._product_mismatch(products[object_id]))
        unregistered = [i for i in self.blobs.iter_ids() if i not in catalogued]
        if sample is None:
            corrupt.extend(i for i in unregistered if self.blobs.check(i) == "corrupt")
        return VerifyReport(
            mode="full" if sample is None else "sample",
            sample_fraction=sample,
            seed=seed if sample is not None else None,
            objects_catalogued=len(ids),
            objects_checked=len(chosen),
            corrupt=tuple(sorted(corrupt)),
            missing=tuple(missing),
            unregistered=tuple(unregistered),
            catalog_errors=tuple(catalog_errors),
            temp_files=len(self.blobs.stray_temp_files()),
        )

    @staticmethod
    def _catalog_errors(connection: Connection) -> list[str]:
        checks: Iterable[tuple[str, str]] = (
            (
                "SELECT f.id FROM lake_frames f LEFT JOIN lake_objects o ON o.id = f.id WHERE o.id IS NULL",
                "frame row without an object row",
            ),
            (
                "SELECT p.id FROM lake_products p LEFT JOIN lake_objects o ON o.id = p.id WHERE o.id IS NULL",
                "product row without an object row",
            ),
            (
                "SELECT o.id FROM lake_objects o LEFT JOIN lake_frames f ON f.id = o.id "
                "WHERE o.kind = 'frame' AND f.id IS NULL",
                "frame object without a frame row",
            ),
            (
                "SELECT o.id FROM lake_objects o LEFT JOIN lake_products p ON p.id = o.id "
                "WHERE o.kind = 'product' AND p.id IS NULL",
                "product object without a product row",
            ),
            (
                "SELECT e.parent || ' -> ' || e.child FROM lake_edges e LEFT JOIN lake_objects a ON a.id = e.parent "
                "LEFT JOIN lake_objects b ON b.id = e.child WHERE a.id IS NULL OR b.id IS NULL",
                "provenance edge to an unknown object",
            ),
        )
        errors: list[str] = []
        for sql, problem in checks:
            errors.extend(f"{row[0]}: {problem}" for row in connection.exec_driver_sql(sql).all())
        return errors

    def _product_mismatch(self, row: Any) -> list[str]:
        try:
            document = json.loads(self.blobs.read_bytes(row.id))
        except LakeError as error:
            return [f"{row.id}: {error}"]
        expected = product_document(
            resident=row.resident,
            version=row.version,
            weights_sha256=row.weights_sha256,
            inputs=json.loads(row.inputs_json),
            output_kind=row.output_kind,
            output=json.loads(row.output_json),
        )
        if canonical_json(document) != expected:
            return [f"{row.id}: product row disagrees with its stored document"]
        return []
