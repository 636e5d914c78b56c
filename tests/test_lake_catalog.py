"""The catalog: idempotent ingest, frame queries, products, provenance, verify and bit rot."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from helpers import frame_bytes, write_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astropolis.lake import CorruptObject, Lake, LakeError, ObjectNotFound, ProductConflict
from astropolis.lake.clock import ManualClock

WEIGHTS = "sha256:" + "ab" * 32


def test_ingest_twice_is_one_frame(lake: Lake, tmp_path: Path) -> None:
    path = write_frame(tmp_path / "a.fits")
    first = lake.ingest(path)
    again = lake.ingest(path, site="another-name")
    assert first.created and not again.created
    assert again.frame == first.frame  # the catalogued row is never changed
    assert len(lake.objects()) == 1


def test_ingest_bytes_matches_ingest_file(lake: Lake, tmp_path: Path) -> None:
    data = frame_bytes(seed=3)
    from_memory = lake.ingest_bytes(data, name="exposure-1")
    from_file = lake.ingest(write_frame(tmp_path / "same.fits", seed=3))
    assert from_memory.frame.id == from_file.frame.id and not from_file.created


def _populate(lake: Lake, tmp_path: Path) -> dict[str, str]:
    ids = {}
    for i, (site, hour, ra, dec) in enumerate(
        [
            ("lapalma", 21, 250.0, 36.0),
            ("lapalma", 23, 10.0, -20.0),
            ("chile", 2, 250.2, 36.1),
            ("chile", 4, 359.9, 0.0),
            ("siding-spring", 12, 0.1, 0.05),
        ]
    ):
        day = 25 if hour >= 12 else 26
        path = write_frame(
            tmp_path / f"{i}.fits", seed=i, site=site, ra=ra, dec=dec, date_obs=f"2026-11-{day}T{hour:02d}:00:00"
        )
        ids[f"{site}-{hour}"] = lake.ingest(path).frame.id
    return ids


def test_frames_by_site_time_and_cone(lake: Lake, tmp_path: Path) -> None:
    ids = _populate(lake, tmp_path)
    assert {f.id for f in lake.frames(site="chile")} == {ids["chile-2"], ids["chile-4"]}
    since = datetime(2026, 11, 25, 22, tzinfo=UTC)
    until = datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert [f.id for f in lake.frames(since=since, until=until)] == [ids["lapalma-23"], ids["chile-2"]]
    near_m13 = lake.frames(cone=(250.1, 36.05, 0.5))
    assert {f.id for f in near_m13} == {ids["lapalma-21"], ids["chile-2"]}
    across_zero = lake.frames(cone=(0.0, 0.0, 0.2))  # RA wraps at 0/360
    assert {f.id for f in across_zero} == {ids["chile-4"], ids["siding-spring-12"]}
    assert lake.frames(site="chile", limit=1)[0].id == ids["chile-2"]
    with pytest.raises(LakeError, match="cone"):
        lake.frames(cone=(0.0, 95.0, 1.0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    centre=st.tuples(st.floats(0, 359.99), st.floats(-89.9, 89.9)),
    radius=st.floats(0.01, 40.0),
    seed=st.integers(0, 2**16),
)
def test_property_cone_matches_astropy(
    tmp_path_factory: pytest.TempPathFactory, centre: tuple[float, float], radius: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ras = rng.uniform(0, 360, 12)
    decs = np.degrees(np.arcsin(rng.uniform(-1, 1, 12)))
    ras[:3] = (centre[0] + rng.normal(0, radius, 3)) % 360  # make some fall inside
    decs[:3] = np.clip(centre[1] + rng.normal(0, radius, 3), -89.9, 89.9)
    with Lake(tmp_path_factory.mktemp("cone")) as lake:
        for i, (ra, dec) in enumerate(zip(ras, decs, strict=True)):
            lake.ingest_bytes(frame_bytes(seed=i, ra=float(ra), dec=float(dec), shape=(8, 8)), name=f"{i}")
        found = {round(f.ra_deg, 6) for f in lake.frames(cone=(centre[0], centre[1], radius))}
        frames = lake.frames()
    coords = SkyCoord([f.ra_deg for f in frames] * u.deg, [f.dec_deg for f in frames] * u.deg)
    separation = coords.separation(SkyCoord(centre[0] * u.deg, centre[1] * u.deg)).deg
    expected = {round(f.ra_deg, 6) for f, sep in zip(frames, separation, strict=True) if sep <= radius - 1e-9}
    borderline = {round(f.ra_deg, 6) for f, sep in zip(frames, separation, strict=True) if abs(sep - radius) < 1e-9}
    assert expected <= found <= expected | borderline


# ------------------------------------------------------------------------------------------- products
def test_products_are_idempotent_and_detect_nondeterminism(lake: Lake, tmp_path: Path) -> None:
    frame = lake.ingest(write_frame(tmp_path / "a.fits")).frame
    kwargs = dict(
        resident="quality", version="1.0", weights_sha256=WEIGHTS, inputs=[frame.id], output_kind="QualityReport"
    )
    first = lake.put_product(**kwargs, output={"score": 87.5, "flags": ["clouds"]})
    again = lake.put_product(**kwargs, output={"flags": ["clouds"], "score": 87.5})
    assert first.created and not again.created and again.product.id == first.product.id
    assert lake.find_product("quality", "1.0", [frame.id]) == first.product
    assert lake.find_product("quality", "2.0", [frame.id]) is None
    with pytest.raises(ProductConflict, match="not deterministic"):
        lake.put_product(**kwargs, output={"score": 12.0})
    assert len(lake.objects(kind="product")) == 1


def test_product_id_is_hash_of_document_independent_of_run_time(tmp_path: Path) -> None:
    ids = []
    for run, start in enumerate((datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))):
        with Lake(tmp_path / f"run{run}", clock=ManualClock(start)) as lake:
            frame = lake.ingest_bytes(frame_bytes(), name="f").frame
            product = lake.put_product(
                resident="quality",
                version="1",
                weights_sha256=WEIGHTS,
                inputs=[frame.id],
                output_kind="Q",
                output={"score": 1},
            ).product
            assert product.created_at == start
            ids.append(product.id)
            assert lake.read(product.id).startswith(b'{"inputs":')
    assert ids[0] == ids[1]


def test_product_bad_input(lake: Lake) -> None:
    unknown = "sha256:" + "cd" * 32
    with pytest.raises(ObjectNotFound, match="not in the lake"):
        lake.put_product(
            resident="quality", version="1", weights_sha256=WEIGHTS, inputs=[unknown], output_kind="Q", output={}
        )
    with pytest.raises(LakeError, match="resident name"):
        lake.put_product(
            resident="Bad Name", version="1", weights_sha256=WEIGHTS, inputs=[unknown], output_kind="Q", output={}
        )
    with pytest.raises(LakeError, match="JSON"):
        lake.put_product(
            resident="quality",
            version="1",
            weights_sha256=WEIGHTS,
            inputs=[unknown],
            output_kind="Q",
            output={"x": object()},
        )
    assert lake.objects() == []


def test_provenance_queries(lake: Lake) -> None:
    new = lake.ingest_bytes(frame_bytes(seed=1), name="new").frame.id
    ref = lake.ingest_bytes(frame_bytes(seed=2), name="ref").frame.id
    other = lake.ingest_bytes(frame_bytes(seed=3), name="other").frame.id

    def put(resident: str, inputs: list[str], output: dict) -> str:
        return lake.put_product(
            resident=resident, version="1", weights_sha256=WEIGHTS, inputs=inputs, output_kind="X", output=output
        ).product.id

    quality = put("quality", [new], {"score": 90})
    candidates = put("transients", [new, ref], {"n": 2})
    verdict = put("realbogus", [candidates], {"p_real": 0.99})
    summary = put("night-summary", [verdict, quality], {"ok": True})
    put("quality", [other], {"score": 10})

    assert {p.id for p in lake.products_of(new)} == {quality, candidates}
    assert [o.id for o in lake.inputs_of(candidates)] == [new, ref]  # the resident's order, not sorted
    derived = {(d.id, d.depth) for d in lake.derived_from(new)}
    assert derived == {(quality, 1), (candidates, 1), (verdict, 2), (summary, 2)}
    assert {d.id for d in lake.derived_from(ref)} == {candidates, verdict, summary}
    assert {(a.id, a.depth) for a in lake.ancestors_of(summary)} == {
        (verdict, 1),
        (quality, 1),
        (candidates, 2),
        (new, 2),
        (ref, 3),
    }
    assert lake.derived_from(summary) == []


def test_resolve_prefixes(lake: Lake) -> None:
    frame_id = lake.ingest_bytes(frame_bytes(), name="f").frame.id
    assert lake.resolve(frame_id[7:15]) == frame_id
    assert lake.frame(frame_id[:12].upper().replace("SHA256", "sha256")).id == frame_id
    with pytest.raises(ObjectNotFound):
        lake.resolve("0000" if not frame_id[7:].startswith("0000") else "ffff")
    with pytest.raises(ObjectNotFound, match="not a product"):
        lake.product(frame_id)


# --------------------------------------------------------------------------------------------- verify
def _flip_bit(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    index = rng.randrange(len(data) * 8)
    data[index // 8] ^= 1 << (index % 8)
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_bit_rot_is_reported_exactly_and_never_served(lake: Lake) -> None:
    rng = random.Random(7)
    frames = [lake.ingest_bytes(frame_bytes(seed=i, shape=(16, 16)), name=f"{i}").frame.id for i in range(30)]
    products = [
        lake.put_product(
            resident="quality", version="1", weights_sha256=WEIGHTS, inputs=[f], output_kind="Q", output={"i": i}
        ).product.id
        for i, f in enumerate(frames[:10])
    ]
    everything = frames + products
    assert lake.verify().ok
    rotten = sorted(rng.sample(everything, 7))
    for object_id in rotten:
        _flip_bit(lake.blobs.path_for(object_id), rng)
    report = lake.verify()
    assert not report.ok
    assert list(report.corrupt) == rotten
    assert report.missing == () and report.objects_checked == len(everything)
    for object_id in rotten:
        with pytest.raises(CorruptObject):
            lake.read(object_id)
    healthy = next(i for i in everything if i not in rotten)
    assert lake.read(healthy)


def test_verify_sample_and_missing_blob(lake: Lake) -> None:
    ids = [lake.ingest_bytes(frame_bytes(seed=i, shape=(8, 8)), name=f"{i}").frame.id for i in range(40)]
    sample = lake.verify(sample=0.05, seed=11)
    assert sample.mode == "sample" and sample.objects_checked == 2 and sample.seed == 11 and sample.ok
    assert lake.verify(sample=0.05, seed=11).model_dump() == sample.model_dump()  # repeatable
    gone = lake.blobs.path_for(ids[5])
    gone.unlink()  # simulate a lost disk block / operator error outside Astropolis
    report = lake.verify()
    assert report.missing == (ids[5],) and not report.ok
    with pytest.raises(ObjectNotFound):
        lake.read(ids[5])
    with pytest.raises(LakeError, match="fraction"):
        lake.verify(sample=1.5)


def test_unregistered_blob_is_reported_but_not_an_error(lake: Lake) -> None:
    orphan = lake.blobs.put_bytes(frame_bytes(seed=99))  # as if the writer died before cataloguing
    report = lake.verify()
    assert report.ok and report.unregistered == (orphan.id,)
    adopted = lake.ingest_bytes(frame_bytes(seed=99), name="again")
    assert adopted.created and adopted.frame.id == orphan.id
    assert lake.verify().unregistered == ()


def test_times_are_utc_and_from_the_run_clock(lake: Lake, clock: ManualClock) -> None:
    clock.advance(timedelta(hours=2))
    frame = lake.ingest_bytes(frame_bytes(), name="f").frame
    assert frame.ingested_at == clock.now() and frame.ingested_at.tzinfo is not None
